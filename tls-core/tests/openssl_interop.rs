//! The legacy (Tyk, RFC 1423) key format against a second implementation, the `openssl` command
//! line: keys that tls-core encrypts decrypt with `openssl`, and keys that `openssl` encrypts
//! decrypt with tls-core. `openssl` must be installed; the tests fail without it.

mod common;

use common::{
    KEY_BUNDLES, Vectors, hex, openssl, openssl_text, pem_blocks, pem_encode, scratch_dir,
    write_file,
};
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};
use tls_core::{
    EncodingSecret, KeyEncoding, KeyError, KeyFormat, LEGACY_LABEL, OrgId, Record, Upload,
};

/// Secrets passed to `openssl` as `pass:...`: plain, and with spaces, symbols and non-ASCII.
const SECRETS: [&str; 2] = ["interop-secret", "s\u{e9}cr\u{e8}t with spaces & $ymbols!"];

/// The `openssl` command that prints a private key's DER in `encoding`.
fn der_command(encoding: KeyEncoding) -> &'static [&'static str] {
    match encoding {
        // (`pkey -outform DER` would write EC keys as SEC1.)
        KeyEncoding::Pkcs8 => &["pkcs8", "-topk8", "-nocrypt"],
        KeyEncoding::Pkcs1 => &["rsa", "-traditional"],
        KeyEncoding::Sec1 => &["ec"],
        other => panic!("no openssl command for {other:?}"),
    }
}

/// The leaf and chain of a bundle, as PEM text in Tyk's record layout (blank line between).
fn certificates_of(bundle_text: &str) -> String {
    pem_blocks(bundle_text)
        .into_iter()
        .filter(|b| b.label == "CERTIFICATE")
        .map(|b| b.text)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn legacy_records_written_by_tls_core_decrypt_with_openssl() {
    let v = Vectors::load();
    let dir = scratch_dir("tls-core-to-openssl");
    let org = OrgId::new("interop").expect("valid org");
    for (file, encoding) in KEY_BUNDLES {
        for passphrase in SECRETS {
            let what = format!("{file} with secret {passphrase:?}");
            let upload = v.upload(file);
            let id = upload.id(&org);
            let pin = upload.metadata().spki_pin;
            let key = upload.key().expect("bundle has a key");
            assert_eq!(key.encoding(), encoding);
            let key_der = key.secret_der().to_vec();

            let secret = EncodingSecret::new(passphrase);
            let record = upload
                .seal(&id, &secret, KeyFormat::Legacy)
                .expect("seals")
                .encode();
            let block = pem_blocks(&record)
                .into_iter()
                .find(|b| b.label == LEGACY_LABEL)
                .unwrap_or_else(|| panic!("{what}: no {LEGACY_LABEL} block in\n{record}"));
            assert_eq!(block.header("Proc-Type"), Some("4,ENCRYPTED"), "{what}");
            assert!(
                block
                    .header("DEK-Info")
                    .is_some_and(|d| d.starts_with("AES-256-CBC,")),
                "{what}"
            );

            // OpenSSL reads RFC 1423 encryption under the label of the key's own encoding.
            let relabelled = block.text.replace(LEGACY_LABEL, encoding.pem_label());
            let path = write_file(&dir, "key.pem", &relabelled);
            let pass = format!("pass:{passphrase}");
            let mut args: Vec<&str> = der_command(encoding).to_vec();
            args.extend(["-in", &path, "-passin", &pass, "-outform", "DER"]);
            let der = openssl(&args);
            assert_eq!(
                der, key_der,
                "{what}: openssl decrypts to the uploaded key DER"
            );

            let spki = openssl(&[
                "pkey", "-in", &path, "-passin", &pass, "-pubout", "-outform", "DER",
            ]);
            assert_eq!(
                hex(digest(&SHA256, &spki).as_ref()),
                pin.to_string(),
                "{what}: the decrypted key's public half is the leaf's"
            );
        }
    }
}

/// Encrypts `der` as RFC 1423 PEM under `label` with the `openssl` command line: the key is
/// OpenSSL's `EVP_BytesToKey(MD5, 1 round)` of the passphrase with the IV's first 8 bytes as salt
/// (`openssl enc -md md5 -S`), the cipher `openssl enc -aes-256-cbc`.
fn openssl_rfc1423(dir: &std::path::Path, label: &str, der: &[u8], passphrase: &str) -> String {
    let mut iv = [0u8; 16];
    SystemRandom::new().fill(&mut iv).expect("random IV");
    let iv_hex = hex(&iv).to_uppercase();
    let derived = openssl_text(&[
        "enc",
        "-aes-256-cbc",
        "-md",
        "md5",
        "-S",
        &iv_hex[..16],
        "-pass",
        &format!("pass:{passphrase}"),
        "-P",
    ]);
    let key_hex = derived
        .lines()
        .find_map(|l| l.strip_prefix("key="))
        .unwrap_or_else(|| panic!("no key= in openssl enc -P output: {derived}"))
        .trim()
        .to_owned();
    let plain = write_file(dir, "key.der", der);
    let ciphertext = openssl(&[
        "enc",
        "-aes-256-cbc",
        "-K",
        &key_hex,
        "-iv",
        &iv_hex,
        "-in",
        &plain,
    ]);
    let dek_info = format!("AES-256-CBC,{iv_hex}");
    pem_encode(
        label,
        &[("Proc-Type", "4,ENCRYPTED"), ("DEK-Info", &dek_info)],
        &ciphertext,
    )
}

#[test]
fn keys_encrypted_by_openssl_decrypt_with_tls_core() {
    let v = Vectors::load();
    let dir = scratch_dir("openssl-to-tls-core");
    let provider = rustls::crypto::ring::default_provider();
    for (file, encoding) in KEY_BUNDLES {
        for passphrase in SECRETS {
            let what = format!("{file} with secret {passphrase:?}");
            let bundle = v.read(file);
            let key_block = pem_blocks(&bundle)
                .into_iter()
                .find(|b| b.label.ends_with("PRIVATE KEY"))
                .expect("bundle has a key");
            assert_eq!(key_block.label, encoding.pem_label(), "{what}");
            let key_path = write_file(&dir, "plain.pem", &key_block.text);
            let pass = format!("pass:{passphrase}");

            // What openssl writes: `ec`/`rsa -traditional` encrypt SEC1 and PKCS#1 keys in RFC
            // 1423 form themselves; PKCS#8 DER is encrypted with `openssl enc` as Tyk does.
            let encrypted = match encoding {
                KeyEncoding::Sec1 => {
                    openssl_text(&["ec", "-in", &key_path, "-aes256", "-passout", &pass])
                }
                KeyEncoding::Pkcs1 => openssl_text(&[
                    "rsa",
                    "-in",
                    &key_path,
                    "-traditional",
                    "-aes256",
                    "-passout",
                    &pass,
                ]),
                _ => openssl_rfc1423(&dir, encoding.pem_label(), &key_block.der, passphrase),
            };
            let encrypted_block = pem_blocks(&encrypted).remove(0);
            assert_eq!(encrypted_block.label, encoding.pem_label(), "{what}");
            let dek_info = encrypted_block.header("DEK-Info").expect("DEK-Info");
            assert!(dek_info.starts_with("AES-256-CBC,"), "{what}: {dek_info}");
            // OpenSSL writes the IV in upper case; tls-core must read either case.
            assert_eq!(dek_info, dek_info.to_uppercase(), "{what}");
            assert_ne!(encrypted_block.der, key_block.der, "{what}: encrypted");

            // Stored as Tyk stores it: certificates, a blank line, the relabelled key block.
            let record_text = format!(
                "{}\n{}",
                certificates_of(&bundle),
                encrypted_block
                    .text
                    .replace(encoding.pem_label(), LEGACY_LABEL)
            );
            let record = Record::decode(&record_text)
                .unwrap_or_else(|e| panic!("{what}: does not decode: {e}\n{record_text}"));
            let upload = Upload::parse(&bundle, v.generated_at).expect("bundle parses");
            let id = record.id(&OrgId::EMPTY);
            assert_eq!(id, upload.id(&OrgId::EMPTY), "{what}: same certificate");
            assert_eq!(
                record.key().and_then(|k| k.format()),
                Some(KeyFormat::Legacy)
            );

            let secret = EncodingSecret::new(passphrase);
            let key = record
                .private_key(&id, &secret)
                .unwrap_or_else(|e| panic!("{what}: does not decrypt: {e}"));
            assert_eq!(
                key.secret_der(),
                key_block.der.as_slice(),
                "{what}: key DER"
            );
            assert_eq!(key.encoding(), encoding, "{what}: guessed encoding");
            record
                .certified_key(&id, &secret, &provider)
                .unwrap_or_else(|e| panic!("{what}: does not load into rustls: {e}"));
            assert!(
                matches!(
                    record.private_key(&id, &EncodingSecret::new(format!("{passphrase}x"))),
                    Err(KeyError::Decrypt)
                ),
                "{what}: a wrong secret gives KeyError::Decrypt"
            );
        }
    }
}
