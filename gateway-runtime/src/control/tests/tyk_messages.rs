//! Upload refusals over real HTTP: each class answers 403 with Tyk's (Go's) message first and
//! certgate's detail after `: `, and no refusal answer carries Rust `Debug` text or lists
//! thousands of blocks.

use base64::Engine as _;
use http::{Method, StatusCode};
use serde_json::Value;

use super::over_http::{call, start};
use super::{Fixture, vector, vectors_dir};

/// A block of PEM text around `der`.
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// The DER of the first block labelled `label` in `text`.
fn der_of(text: &str, label: &str) -> Vec<u8> {
    let begin = format!("-----BEGIN {label}-----");
    let start = text.find(&begin).unwrap() + begin.len();
    let end = text[start..].find("-----END").unwrap() + start;
    let b64: String = text[start..end].split_whitespace().collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

/// True when `text` looks like Rust `Debug` output: a CamelCase word followed by `(` or ` {`,
/// `Some(`/`None`-style wrappers, or a `::` path.
pub(super) fn looks_like_debug(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_uppercase() && (i == 0 || !chars[i - 1].is_ascii_alphanumeric()) {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_alphanumeric() {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let camel = word.len() > 2
                && word.chars().skip(1).any(|c| c.is_ascii_lowercase())
                && word.chars().all(|c| c.is_ascii_alphanumeric());
            let next = chars.get(i).copied();
            let brace = next == Some(' ') && chars.get(i + 1) == Some(&'{');
            if camel && (next == Some('(') || brace) {
                return true;
            }
        } else {
            i += 1;
        }
    }
    text.contains("::")
}

#[test]
fn the_debug_detector_catches_what_it_must() {
    for debug in [
        "Parsing Error: NomError(Eof)",
        "Der(DerConstraintFailed(IndefiniteLength))",
        "invalid cursor Cursor(\"zzz\")",
        "KeyMismatch { key_block: 2 }",
        "std::io::Error",
    ] {
        assert!(looks_like_debug(debug), "{debug}");
    }
    for plain in [
        "x509: malformed certificate: PEM block 1: not a valid X.509 certificate: the DER data ends before the structure does (truncated)",
        "Failed to decode certificate. It should be PEM encoded.: no CERTIFICATE or PUBLIC KEY block found (blocks seen: FOO at 1)",
        "tls: failed to find \"CERTIFICATE\" PEM block in certificate input: PEM block 2 is a private key",
    ] {
        assert!(!looks_like_debug(plain), "{plain}");
    }
}

/// The 8192-bit RSA certificate and key, made with `openssl req -x509 -newkey rsa:8192`.
fn rsa8192() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tls-core/tests/data/rsa8192.bundle.pem"
    );
    std::fs::read_to_string(path).unwrap()
}

/// One refusal class: the upload, and the text its message must start with.
struct Class {
    what: &'static str,
    body: String,
    tyk: String,
}

fn classes() -> Vec<Class> {
    let ec_cert = vector("leaf-p256-traditional.crt.pem");
    let rsa_cert = vector("leaf-rsa2048-pkcs8.crt.pem");
    let ec_key = vector("leaf-p256-traditional.key.pem");
    let leaf_der = der_of(&ec_cert, "CERTIFICATE");
    let mut trailing = leaf_der.clone();
    trailing.extend_from_slice(&[0, 0]);
    // A certificate SEQUENCE with an indefinite length (BER, not DER).
    let mut indefinite = vec![0x30, 0x80];
    indefinite.extend_from_slice(&leaf_der[4..]);
    indefinite.extend_from_slice(&[0, 0]);
    let not_pem = tls_core::TYK_NOT_PEM.to_owned();
    let bad_key = tls_core::TYK_BAD_KEY.to_owned();
    let malformed = "x509: malformed certificate".to_owned();
    let unknown_blocks: String = (0..20_000).map(|_| pem("FOO", b"x")).collect();
    vec![
        Class {
            what: "an empty body",
            body: String::new(),
            tyk: not_pem.clone(),
        },
        Class {
            what: "only white space",
            body: " \n\t\n".into(),
            tyk: not_pem.clone(),
        },
        Class {
            what: "text that is no PEM",
            body: vector("bad-garbage.pem"),
            tyk: not_pem.clone(),
        },
        Class {
            what: "a truncated block",
            body: vector("bad-truncated.pem"),
            tyk: not_pem.clone(),
        },
        Class {
            what: "a key alone",
            body: vector("bad-key-only.pem"),
            tyk: not_pem.clone(),
        },
        Class {
            what: "unknown blocks only (20,000 of them)",
            body: unknown_blocks,
            tyk: not_pem.clone(),
        },
        Class {
            what: "a truncated block with a 100,000-character label",
            body: format!("-----BEGIN {}-----\nAAAA\n", "A".repeat(100_000)),
            tyk: not_pem.clone(),
        },
        Class {
            what: "a block whose END label differs and is huge",
            body: format!(
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END {}-----\n",
                "B".repeat(100_000)
            ),
            tyk: not_pem.clone(),
        },
        Class {
            what: "a key with a huge label",
            body: format!(
                "{ec_cert}{}",
                pem(&format!("{} PRIVATE KEY", "K".repeat(100_000)), &[0x30, 0])
            ),
            tyk: tls_core::TYK_BAD_KEY.into(),
        },
        Class {
            what: "a key after a public key",
            body: format!("{}{}", vector("pubkey-p256.pem"), ec_key),
            tyk: tls_core::TYK_NO_CERTIFICATE_BLOCK.into(),
        },
        Class {
            what: "a key of the leaf's type that is not its key",
            body: vector("bad-key-mismatch.pem"),
            tyk: tls_core::TYK_KEY_MISMATCH.into(),
        },
        Class {
            what: "an ECDSA key with an RSA certificate",
            body: format!("{rsa_cert}{ec_key}"),
            tyk: tls_core::TYK_KEY_TYPE_MISMATCH.into(),
        },
        Class {
            what: "a PKCS#8 password-protected key",
            body: format!("{ec_cert}{}", pem("ENCRYPTED PRIVATE KEY", &[0x30; 80])),
            tyk: bad_key.clone(),
        },
        Class {
            what: "an OpenSSL traditional password-protected key",
            body: format!(
                "{ec_cert}-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00112233445566778899AABBCCDDEEFF\n\n{}\n-----END EC PRIVATE KEY-----\n",
                base64::engine::general_purpose::STANDARD.encode([7u8; 48])
            ),
            tyk: bad_key.clone(),
        },
        Class {
            what: "a key of an unknown kind",
            body: format!("{ec_cert}{}", pem("DSA PRIVATE KEY", &[0x30, 0])),
            tyk: bad_key.clone(),
        },
        Class {
            what: "a key that does not parse",
            body: format!("{ec_cert}{}", pem("PRIVATE KEY", &[0x30, 3, 2, 1, 0])),
            tyk: bad_key,
        },
        Class {
            what: "certificate DER that does not parse",
            body: vector("bad-asn1.pem"),
            tyk: malformed.clone(),
        },
        Class {
            what: "certificate DER with an indefinite length",
            body: pem("CERTIFICATE", &indefinite),
            tyk: malformed.clone(),
        },
        Class {
            what: "random bytes as a certificate",
            body: pem("CERTIFICATE", &[0xa5; 300]),
            tyk: malformed,
        },
        Class {
            what: "a certificate with trailing bytes",
            body: pem("CERTIFICATE", &trailing),
            tyk: "x509: trailing data".into(),
        },
        Class {
            what: "two keys",
            body: vector("bad-two-keys.pem"),
            tyk: "Found multiple private keys".into(),
        },
        Class {
            what: "a certificate with a public key",
            body: vector("bad-cert-and-pubkey.pem"),
            tyk: "Public keys can't be combined with certificates".into(),
        },
        Class {
            what: "an expired certificate",
            body: vector("expired.bundle.pem"),
            tyk: "certificate is expired".into(),
        },
    ]
}

#[tokio::test]
async fn each_refusal_class_answers_403_with_tyks_message_first_over_http() {
    let f = Fixture::new();
    let addr = start(f.api.clone()).await;
    for class in classes() {
        let reply = call(
            addr,
            Method::POST,
            "/tyk/certs?org_id=o1",
            &class.body,
            true,
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{}: {}",
            class.what,
            reply.text
        );
        assert_eq!(reply.content_type, "application/json");
        let json: Value = serde_json::from_str(&reply.text).unwrap();
        assert_eq!(json["status"], "error");
        let message = json["message"].as_str().unwrap();
        assert!(
            message == class.tyk || message.starts_with(&format!("{}: ", class.tyk)),
            "{}: {message:?} does not start with Tyk's {:?}",
            class.what,
            class.tyk
        );
        assert!(
            !looks_like_debug(message),
            "{}: Debug text in {message:?}",
            class.what
        );
        assert!(
            message.len() < 2048,
            "{}: a {} byte message",
            class.what,
            message.len()
        );
    }
    // Nothing of a refused upload was stored.
    let list = call(addr, Method::GET, "/tyk/certs", "", true).await;
    assert_eq!(list.text, "{\"certs\":null}\n");

    // A different upload with the ID of a stored one (here the certificate without its key) is
    // refused with Tyk's sentence, naming the ID. (An identical upload is an idempotent 200.)
    let bundle = vector("leaf-p256-traditional.bundle.pem");
    let first = call(addr, Method::POST, "/tyk/certs?org_id=o1", &bundle, true).await;
    assert_eq!(first.status, StatusCode::OK);
    let id = serde_json::from_str::<Value>(&first.text).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let without_key = vector("leaf-p256-traditional.crt.pem");
    let again = call(
        addr,
        Method::POST,
        "/tyk/certs?org_id=o1",
        &without_key,
        true,
    )
    .await;
    assert_eq!(again.status, StatusCode::FORBIDDEN);
    assert!(
        again
            .text
            .contains(&format!("Certificate with {id} id already exists")),
        "{}",
        again.text
    );
}

#[tokio::test]
async fn a_valid_rsa_key_too_large_to_use_is_refused_saying_the_limit() {
    let f = Fixture::new();
    let addr = start(f.api.clone()).await;
    let reply = call(addr, Method::POST, "/tyk/certs", &rsa8192(), true).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    let json: Value = serde_json::from_str(&reply.text).unwrap();
    let message = json["message"].as_str().unwrap();
    assert!(
        message.contains("8192 bits") && message.contains("4096 bits"),
        "{message}"
    );
    assert!(!message.contains("failed to parse"), "{message}");
}

#[tokio::test]
async fn no_refusal_of_a_shared_bad_vector_shows_debug_text() {
    let f = Fixture::new();
    let mut checked = 0;
    for entry in std::fs::read_dir(vectors_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with("bad-") && name.ends_with(".pem")) {
            continue;
        }
        let answer = f.send("POST", "/tyk/certs", &vector(&name)).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{name}");
        let message = answer.json["message"].as_str().unwrap();
        assert!(!looks_like_debug(message), "{name}: {message}");
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} bad vectors found");
}

#[test]
fn mutual_tls_refusals_use_tyks_texts() {
    use crate::mtls::Refusal;
    let fingerprint: tls_core::Fingerprint = "ab".repeat(32).parse().unwrap();
    assert_eq!(
        Refusal::Missing.to_string(),
        "Client TLS certificate is required"
    );
    assert_eq!(Refusal::Expired.to_string(), "Certificate has expired");
    assert_eq!(
        Refusal::NotAllowed(fingerprint).to_string(),
        format!("Certificate with SHA256 {} not allowed", "ab".repeat(32))
    );
}
