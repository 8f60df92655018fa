//! The forms an upload arrives in: CRLF line endings, surrounding white space, single-line
//! "collapsed" PEM, an `EC PARAMETERS` block before the key, password-protected keys (refused),
//! and every key type and encoding (PKCS#1 RSA, SEC1 EC, PKCS#8 RSA/P-256/P-384/Ed25519), which
//! must all load into rustls.
//!
//! Keys and certificates are made with `rcgen` and the `openssl` command line, which must be
//! installed.

mod common;

use common::{
    KEY_BUNDLES, Vectors, openssl_text, pem_blocks, positions_ending_with, scratch_dir, write_file,
};
use rcgen::{CertificateParams, KeyPair, SignatureAlgorithm};
use tls_core::{
    EncodingSecret, KeyEncoding, KeyFormat, OrgId, PemError, Record, Upload, UploadError,
};

fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Asserts that `other` is the same upload as `reference`: ID, metadata, chain and key.
fn assert_same_upload(reference: &Upload, other: &Upload, what: &str) {
    let org = OrgId::new("org1").expect("valid org");
    assert_eq!(reference.id(&org), other.id(&org), "{what}: ID");
    assert_eq!(reference.metadata(), other.metadata(), "{what}: metadata");
    assert_eq!(reference.chain(), other.chain(), "{what}: chain");
    match (reference.key(), other.key()) {
        (Some(a), Some(b)) => {
            assert_eq!(a.secret_der(), b.secret_der(), "{what}: key DER");
            assert_eq!(a.encoding(), b.encoding(), "{what}: key encoding");
        }
        (None, None) => {}
        _ => panic!("{what}: one has a key, the other not"),
    }
}

/// A self-signed certificate for `key`, as PEM.
fn self_signed(key: &KeyPair, name: &str) -> String {
    CertificateParams::new(vec![name.to_owned()])
        .expect("valid name")
        .self_signed(key)
        .expect("rcgen signs")
        .pem()
}

#[test]
fn crlf_whitespace_and_collapsed_pem_are_read_like_the_original() {
    let v = Vectors::load();
    for (file, _) in KEY_BUNDLES {
        let text = v.read(file);
        let reference = Upload::parse(&text, v.generated_at).expect("bundle parses");
        assert_eq!(reference.chain().len(), 2, "{file}: a leaf and its chain");
        let crlf = text.replace('\n', "\r\n");
        let variants = [
            ("CRLF", crlf.clone()),
            (
                "surrounding white space",
                format!("\n \t\r\n  {text}\n\n  \t"),
            ),
            ("collapsed", text.replace('\n', " ")),
            ("collapsed CRLF", crlf.replace("\r\n", " ")),
            ("CRLF with white space", format!("  \r\n{crlf}\r\n\r\n ")),
        ];
        for (form, variant) in variants {
            assert_ne!(variant, text, "{file}: {form} differs from the original");
            let parsed = Upload::parse(&variant, v.generated_at)
                .unwrap_or_else(|e| panic!("{file}, {form}: refused: {e}"));
            assert_same_upload(&reference, &parsed, &format!("{file}, {form}"));
        }
    }
}

#[test]
fn collapsed_tyk_stored_record_decodes_and_decrypts() {
    // Configuration systems collapse stored records too; the RFC 1423 headers must survive.
    let v = Vectors::load();
    let case = v.case("leaf-p256-traditional_tyk_stored");
    let text = v.text_of(case);
    let secret = EncodingSecret::new(case.decrypt_with.as_deref().expect("decrypt_with"));
    let original = Record::decode(&text).expect("decodes");
    let id = original.id(&case.org());
    let expected = original.private_key(&id, &secret).expect("decrypts");
    for form in [text.replace('\n', " "), text.replace('\n', "\r\n")] {
        let record = Record::decode(&form).expect("collapsed record decodes");
        assert_eq!(record.id(&case.org()), id);
        assert_eq!(record.chain(), original.chain());
        let key = record.private_key(&id, &secret).expect("decrypts");
        assert_eq!(key.secret_der(), expected.secret_der());
    }
}

#[test]
fn ec_parameters_block_before_a_sec1_key_is_ignored() {
    let dir = scratch_dir("ec-parameters");
    // `openssl ecparam -genkey` writes an EC PARAMETERS block, then the SEC1 key.
    let key_text = openssl_text(&["ecparam", "-name", "prime256v1", "-genkey"]);
    let key_file = write_file(&dir, "key.pem", &key_text);
    let labels: Vec<String> = pem_blocks(&key_text).into_iter().map(|b| b.label).collect();
    assert_eq!(labels, ["EC PARAMETERS", "EC PRIVATE KEY"]);
    let sec1 = pem_blocks(&key_text).remove(1).der;

    let pkcs8 = openssl_text(&["pkey", "-in", &key_file]);
    let key = KeyPair::from_pem(&pkcs8).expect("rcgen reads the PKCS#8 key");
    let cert = self_signed(&key, "ec-parameters.test");

    let now = Vectors::load().generated_at;
    for text in [format!("{cert}{key_text}"), format!("{key_text}{cert}")] {
        let upload = Upload::parse(&text, now)
            .unwrap_or_else(|e| panic!("EC PARAMETERS must be ignored: {e}\n{text}"));
        let stored = upload.key().expect("the key is kept");
        assert_eq!(stored.encoding(), KeyEncoding::Sec1);
        assert_eq!(stored.secret_der(), sec1.as_slice());
        assert_eq!(upload.chain().len(), 1);
        upload
            .certified_key(&provider())
            .expect("loads into rustls");
    }
}

#[test]
fn password_protected_keys_are_refused_as_encrypted() {
    let dir = scratch_dir("encrypted-key");
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("generates");
    let cert = self_signed(&key, "encrypted.test");
    let key_file = write_file(&dir, "key.pem", key.serialize_pem());
    let now = Vectors::load().generated_at;

    // PKCS#8 `ENCRYPTED PRIVATE KEY` (PBES2), and RFC 1423 `Proc-Type`/`DEK-Info` encryption.
    let pkcs8 = openssl_text(&[
        "pkey",
        "-in",
        &key_file,
        "-aes256",
        "-passout",
        "pass:upload password",
    ]);
    let rfc1423 = openssl_text(&[
        "ec",
        "-in",
        &key_file,
        "-aes256",
        "-passout",
        "pass:upload password",
    ]);
    assert!(
        pkcs8.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
        "{pkcs8}"
    );
    assert!(rfc1423.contains("Proc-Type: 4,ENCRYPTED"), "{rfc1423}");
    for encrypted in [pkcs8, rfc1423] {
        let text = format!("{cert}{encrypted}");
        let err = Upload::parse(&text, now).expect_err("encrypted keys are refused");
        let block = positions_ending_with(&text, "PRIVATE KEY")[0];
        assert_eq!(err, UploadError::EncryptedKey { block }, "{encrypted}");
        assert!(
            err.to_string().contains(&format!("PEM block {block}")),
            "{err}"
        );
        assert!(err.to_string().contains("password"), "{err}");
    }
    // The same key unencrypted is accepted, so the refusal is about the encryption.
    Upload::parse(&format!("{cert}{}", key.serialize_pem()), now).expect("plain key accepted");
}

#[test]
fn every_key_type_and_encoding_is_accepted_and_loads_into_rustls() {
    let v = Vectors::load();
    let now = v.generated_at;
    let dir = scratch_dir("key-types");
    let mut uploads: Vec<(String, KeyEncoding, Upload)> = Vec::new();

    let algorithms: [(&'static SignatureAlgorithm, &str); 3] = [
        (&rcgen::PKCS_ECDSA_P256_SHA256, "ECDSA P-256"),
        (&rcgen::PKCS_ECDSA_P384_SHA384, "ECDSA P-384"),
        (&rcgen::PKCS_ED25519, "Ed25519"),
    ];
    for (alg, label) in algorithms {
        // PKCS#8 as rcgen writes it, and for ECDSA also SEC1 as `openssl ec` writes it.
        let encodings: &[KeyEncoding] = if label.starts_with("ECDSA") {
            &[KeyEncoding::Pkcs8, KeyEncoding::Sec1]
        } else {
            &[KeyEncoding::Pkcs8]
        };
        for &encoding in encodings {
            let what = format!("{label} {encoding:?}");
            let key = KeyPair::generate_for(alg).expect("rcgen generates");
            let cert = self_signed(&key, "key-types.test");
            let key_pem = match encoding {
                KeyEncoding::Sec1 => {
                    let file = write_file(&dir, "pkcs8.pem", key.serialize_pem());
                    openssl_text(&["ec", "-in", &file])
                }
                _ => key.serialize_pem(),
            };
            let block = pem_blocks(&key_pem).remove(0);
            assert_eq!(block.label, encoding.pem_label(), "{what}: test input");
            let upload = Upload::parse(&format!("{cert}{key_pem}"), now)
                .unwrap_or_else(|e| panic!("{what}: refused: {e}"));
            assert_eq!(upload.metadata().key.label(), label, "{what}: key type");
            assert_eq!(
                upload.key().expect("key kept").secret_der(),
                block.der.as_slice(),
                "{what}: key DER kept as uploaded"
            );
            uploads.push((what, encoding, upload));
        }
    }

    // RSA: the vectors' PKCS#1 and PKCS#8 bundles, and each converted to the other encoding.
    for (file, to, encoding) in [
        (
            "leaf-rsa2048-traditional.bundle.pem",
            None,
            KeyEncoding::Pkcs1,
        ),
        ("leaf-rsa2048-pkcs8.bundle.pem", None, KeyEncoding::Pkcs8),
        (
            "leaf-rsa2048-traditional.bundle.pem",
            Some("pkcs8"),
            KeyEncoding::Pkcs8,
        ),
        (
            "leaf-rsa2048-pkcs8.bundle.pem",
            Some("pkcs1"),
            KeyEncoding::Pkcs1,
        ),
    ] {
        let text = v.read(file);
        let blocks = pem_blocks(&text);
        let certs: String = blocks
            .iter()
            .filter(|b| b.label == "CERTIFICATE")
            .map(|b| b.text.clone())
            .collect();
        let key_block = blocks
            .iter()
            .find(|b| b.label.ends_with("PRIVATE KEY"))
            .expect("bundle has a key");
        let key_pem = match to {
            None => key_block.text.clone(),
            Some(target) => {
                let key_file = write_file(&dir, "rsa.pem", &key_block.text);
                let mut args = vec!["pkey", "-in", key_file.as_str()];
                if target == "pkcs1" {
                    args.push("-traditional");
                }
                openssl_text(&args)
            }
        };
        let what = format!("RSA {encoding:?} from {file}");
        assert_eq!(
            pem_blocks(&key_pem)[0].label,
            encoding.pem_label(),
            "{what}: test input"
        );
        let upload = Upload::parse(&format!("{certs}{key_pem}"), now)
            .unwrap_or_else(|e| panic!("{what}: refused: {e}"));
        assert_eq!(
            upload.metadata().key.label(),
            "RSA 2048",
            "{what}: key type"
        );
        uploads.push((what, encoding, upload));
    }

    let provider = provider();
    let secret = EncodingSecret::new("forms secret");
    let org = OrgId::new("forms").expect("valid org");
    for (what, encoding, upload) in uploads {
        assert_eq!(
            upload.key().expect("key kept").encoding(),
            encoding,
            "{what}: encoding"
        );
        let certified = upload
            .certified_key(&provider)
            .unwrap_or_else(|e| panic!("{what}: does not load into rustls: {e}"));
        assert_eq!(certified.cert, upload.chain(), "{what}: chain");
        // And it still loads once stored (sealed, encoded, decoded, decrypted).
        let id = upload.id(&org);
        let stored = upload
            .seal(&id, &secret, KeyFormat::Modern)
            .expect("seals")
            .encode();
        Record::decode(&stored)
            .expect("decodes")
            .certified_key(&id, &secret, &provider)
            .unwrap_or_else(|e| panic!("{what}: stored key does not load into rustls: {e}"));
    }
}

#[test]
fn key_of_another_encoding_label_is_refused_not_misread() {
    // A PKCS#8 body under the SEC1 label is not silently accepted.
    let v = Vectors::load();
    let text = v.read("leaf-p384-pkcs8.bundle.pem");
    let relabelled = text.replace(" PRIVATE KEY-----", " EC PRIVATE KEY-----");
    assert_ne!(relabelled, text);
    let key_block = positions_ending_with(&relabelled, "PRIVATE KEY")[0];
    let err = Upload::parse(&relabelled, v.generated_at).expect_err("mislabelled key");
    assert!(
        matches!(err, UploadError::UnsupportedKey { block, .. } if block == key_block),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&format!("PEM block {key_block}")),
        "{err}"
    );
    // A truncated key block names its position.
    let cut = text.find("-----END PRIVATE KEY").expect("key END line");
    let err = Upload::parse(&text[..cut], v.generated_at).expect_err("truncated");
    assert_eq!(
        err,
        UploadError::Pem(PemError::MissingEnd {
            position: key_block,
            label: "PRIVATE KEY".to_owned()
        })
    );
    assert!(
        err.to_string().contains(&format!("PEM block {key_block}")),
        "{err}"
    );
}
