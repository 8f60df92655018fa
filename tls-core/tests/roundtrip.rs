//! Property tests of stored records: for every key type and encoding of the vectors and both key
//! formats, with arbitrary secrets and org IDs, sealing, encoding, decoding and decrypting gives
//! back the same chain and key; and any single-bit change of a modern encrypted key is detected.

mod common;

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::{KEY_BUNDLES, Vectors, pem_blocks, pem_encode};
use proptest::prelude::*;
use proptest::test_runner::Config;
use tls_core::{
    EncodingSecret, KeyFormat, LEGACY_LABEL, MAX_ORG_ID_LEN, MODERN_LABEL, OrgId, Record, Upload,
};

/// The vectors, loaded once per test binary.
fn vectors() -> &'static Vectors {
    static VECTORS: OnceLock<Vectors> = OnceLock::new();
    VECTORS.get_or_init(Vectors::load)
}

/// Few cases, so the suite stays fast in debug builds; no regression files in the source tree.
fn config() -> Config {
    Config {
        cases: 32,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Valid org IDs: printable ASCII without `/ , ? # % *`, empty up to the maximum length.
fn org_id() -> impl Strategy<Value = OrgId> {
    let allowed: Vec<char> = ('!'..='~')
        .filter(|c| !matches!(c, '/' | ',' | '?' | '#' | '%' | '*'))
        .collect();
    let char = proptest::sample::select(allowed);
    prop_oneof![
        4 => proptest::collection::vec(char.clone(), 0..40),
        1 => proptest::collection::vec(char, MAX_ORG_ID_LEN - 8..=MAX_ORG_ID_LEN),
    ]
    .prop_map(|chars| OrgId::new(chars.into_iter().collect::<String>()).expect("valid org ID"))
}

/// Secrets: any bytes, including none.
fn secret() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..64)
}

fn key_format() -> impl Strategy<Value = KeyFormat> {
    prop_oneof![Just(KeyFormat::Modern), Just(KeyFormat::Legacy)]
}

fn bundle() -> impl Strategy<Value = usize> {
    0..KEY_BUNDLES.len()
}

fn upload(bundle: usize) -> Upload {
    vectors().upload(KEY_BUNDLES[bundle].0)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn sealed_records_decode_to_the_same_chain_and_key(
        bundle in bundle(),
        format in key_format(),
        secret in secret(),
        org in org_id(),
    ) {
        let (file, encoding) = KEY_BUNDLES[bundle];
        let bundle_text = vectors().read(file);
        let leaf_pem = pem_blocks(&bundle_text).remove(0);
        prop_assert_eq!(&leaf_pem.label, "CERTIFICATE");

        let upload = upload(bundle);
        let id = upload.id(&org);
        let chain = upload.chain().to_vec();
        let meta = upload.metadata().clone();
        let key = upload.key().expect("bundle has a key");
        let (key_der, key_encoding) = (key.secret_der().to_vec(), key.encoding());
        prop_assert_eq!(key_encoding, encoding);
        let secret = EncodingSecret::new(&secret);

        let text = upload.seal(&id, &secret, format).expect("seals").encode();
        prop_assert!(
            text.starts_with(&leaf_pem.text),
            "the record starts with the leaf PEM:\n{}",
            text
        );
        let key_block = pem_blocks(&text).pop().expect("a key block");
        match format {
            KeyFormat::Legacy => {
                prop_assert_eq!(&key_block.label, LEGACY_LABEL);
                prop_assert!(text.contains("Proc-Type: 4,ENCRYPTED"));
                prop_assert!(text.contains("DEK-Info: AES-256-CBC,"));
            }
            _ => {
                prop_assert_eq!(&key_block.label, MODERN_LABEL);
                prop_assert!(!text.contains("Proc-Type"));
            }
        }
        let plain_b64 = BASE64.encode(&key_der);
        prop_assert!(!text.contains(&plain_b64[..40]), "plaintext key in the record");

        let record = Record::decode(&text).expect("decodes");
        prop_assert_eq!(record.chain(), chain.as_slice());
        prop_assert_eq!(record.id(&org), id.clone());
        prop_assert_eq!(record.metadata(), &meta);
        prop_assert_eq!(record.key().and_then(|k| k.format()), Some(format));
        let opened = record.private_key(&id, &secret).expect("decrypts");
        prop_assert_eq!(opened.secret_der(), key_der.as_slice());
        prop_assert_eq!(opened.encoding(), key_encoding);
    }

    #[test]
    fn modern_key_opens_only_with_its_secret_and_id(
        bundle in bundle(),
        secret in secret(),
        other_secret in secret(),
        org in org_id(),
        other_org in org_id(),
    ) {
        let upload = upload(bundle);
        let id = upload.id(&org);
        let sealed = EncodingSecret::new(&secret);
        let record = Record::decode(
            &upload.seal(&id, &sealed, KeyFormat::Modern).expect("seals").encode(),
        )
        .expect("decodes");
        prop_assert!(record.private_key(&id, &sealed).is_ok());
        if other_secret != secret {
            prop_assert!(record.private_key(&id, &EncodingSecret::new(&other_secret)).is_err());
        }
        if other_org != org {
            let other_id = tls_core::CertId::new(other_org, id.fingerprint());
            prop_assert!(record.private_key(&other_id, &sealed).is_err());
        }
    }

    #[test]
    fn any_single_bit_change_of_a_modern_key_blob_is_detected(
        bundle in bundle(),
        secret in secret(),
        org in org_id(),
        bit in any::<usize>(),
    ) {
        let upload = upload(bundle);
        let id = upload.id(&org);
        let secret = EncodingSecret::new(&secret);
        let text = upload.seal(&id, &secret, KeyFormat::Modern).expect("seals").encode();
        let key_block = pem_blocks(&text).pop().expect("a key block");
        prop_assert_eq!(&key_block.label, MODERN_LABEL);

        let mut blob = key_block.der.clone();
        let bit = bit % (blob.len() * 8);
        blob[bit / 8] ^= 1 << (bit % 8);
        let tampered = text.replace(&key_block.text, &pem_encode(MODERN_LABEL, &[], &blob));
        prop_assert_ne!(&tampered, &text);

        // The blob keeps its length, so the record still reads; its key must not decrypt, and
        // above all must never decrypt to a different key.
        let record = Record::decode(&tampered).expect("same length, still a record");
        let opened = record.private_key(&id, &secret);
        prop_assert!(opened.is_err(), "bit {} flipped, still decrypts", bit);
    }
}

#[test]
fn every_key_bundle_is_covered() {
    // The strategies above draw from KEY_BUNDLES: each must parse with its announced encoding.
    for (index, (file, encoding)) in KEY_BUNDLES.iter().enumerate() {
        let upload = upload(index);
        assert_eq!(
            upload.key().map(|k| k.encoding()),
            Some(*encoding),
            "{file}"
        );
    }
}
