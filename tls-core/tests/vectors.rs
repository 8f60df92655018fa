//! Every case of the shared test vectors (`testdata/vectors/manifest.json`), made by an
//! implementation independent of this crate: IDs, fingerprints, pins and metadata of uploads,
//! refused uploads with the error for their defect, and records stored in Tyk's legacy format.
//!
//! Time-dependent expectations are evaluated at the manifest's `generated_at`, never at the wall
//! clock. The folder is `testdata/vectors` in the repository, or `CERTGATE_VECTORS`; the tests
//! fail when it is missing.

mod common;

use common::{Vectors, pem_blocks, pem_labels, position_of, positions_ending_with};
use ring::digest::{SHA256, digest};
use test_support::vectors::Case;
use time::{Duration, OffsetDateTime};
use tls_core::{
    CertId, EncodingSecret, KeyError, KeyFormat, Metadata, PemError, Record, Upload, UploadError,
    Validity,
};

/// The expiry monitor's default warning window.
const WARNING: Duration = Duration::days(30);

fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Checks every metadata field the case gives.
fn check_metadata(case: &Case, meta: &Metadata) {
    let name = &case.name;
    if let Some(fingerprint) = &case.fingerprint {
        assert_eq!(
            &meta.fingerprint.to_hex(),
            fingerprint,
            "{name}: fingerprint"
        );
    }
    if let Some(pin) = &case.spki_sha256_hex {
        assert_eq!(&meta.spki_pin.to_string(), pin, "{name}: SPKI pin");
        assert_eq!(
            meta.spki_pin,
            pin.parse().expect("manifest pin parses"),
            "{name}: pin"
        );
    }
    if let Some(cn) = &case.subject_cn {
        assert_eq!(
            meta.subject.common_name.as_ref(),
            Some(cn),
            "{name}: subject CN"
        );
    }
    if let Some(cn) = &case.issuer_cn {
        assert_eq!(
            meta.issuer.common_name.as_ref(),
            Some(cn),
            "{name}: issuer CN"
        );
    }
    if let Some(dns) = &case.dns_names {
        assert_eq!(&meta.dns_names, dns, "{name}: DNS names");
    }
    if let Some(is_ca) = case.is_ca {
        assert_eq!(meta.is_ca, is_ca, "{name}: is_ca");
    }
    if let Some(not_before) = case.not_before() {
        assert_eq!(meta.not_before, Some(not_before), "{name}: not_before");
    }
    if let Some(not_after) = case.not_after() {
        assert_eq!(meta.not_after, Some(not_after), "{name}: not_after");
    }
    if let Some(has_private) = case.has_private {
        assert_eq!(meta.has_private, has_private, "{name}: has_private");
    }
    if let Some(chain_len) = case.chain_len {
        assert_eq!(meta.chain_len, chain_len, "{name}: chain_len");
    }
    if let Some(is_public_key) = case.is_public_key {
        assert_eq!(meta.is_public_key, is_public_key, "{name}: is_public_key");
    }
}

/// Checks an accepted upload against its case: ID, metadata, and that its key (if any) has the
/// announced encoding and loads into rustls with its chain.
fn check_upload(case: &Case, upload: &Upload) {
    let name = &case.name;
    let id = upload.id(&case.org());
    let expect_id = case
        .expect_id
        .as_ref()
        .expect("upload cases give expect_id");
    assert_eq!(&id.to_string(), expect_id, "{name}: certificate ID");
    assert_eq!(
        id,
        expect_id.parse::<CertId>().expect("manifest ID parses"),
        "{name}: ID"
    );
    check_metadata(case, upload.metadata());
    assert_eq!(
        upload.metadata().chain_len,
        upload.chain().len(),
        "{name}: chain_len is the chain's length"
    );
    if upload.metadata().has_private {
        let key = upload.key().expect("has_private means a key");
        if let Some(encoding) = case.key_encoding() {
            assert_eq!(key.encoding(), encoding, "{name}: key encoding");
        }
        let certified = upload
            .certified_key(&provider())
            .unwrap_or_else(|e| panic!("{name}: key does not load into rustls: {e}"));
        assert_eq!(certified.cert, upload.chain(), "{name}: rustls chain");
    } else {
        assert!(upload.key().is_none(), "{name}: no key expected");
    }
}

fn is_upload_case(case: &Case) -> bool {
    !case.expect_error && case.decrypt_with.is_none()
}

/// Expired at `generated_at` according to the manifest's own `not_after`.
fn expired_at(case: &Case, now: OffsetDateTime) -> bool {
    case.not_after().is_some_and(|not_after| not_after <= now)
}

/// Position (from 1) of the first block whose END line is missing.
fn unterminated_block(text: &str) -> (usize, String) {
    let labels = pem_labels(text);
    let mut rest = text;
    for (i, label) in labels.iter().enumerate() {
        let start = rest
            .find("-----BEGIN ")
            .expect("as many BEGIN lines as labels");
        let after = &rest[start + "-----BEGIN ".len()..];
        let next_begin = after.find("-----BEGIN ").unwrap_or(after.len());
        if !after[..next_begin].contains(&format!("-----END {label}-----")) {
            return (i + 1, label.clone());
        }
        rest = after;
    }
    panic!("every block of the text is terminated")
}

#[test]
fn manifest_has_every_kind_of_case_and_its_files() {
    let v = Vectors::load();
    let cases = &v.manifest.cases;
    for case in cases {
        assert!(!case.files.is_empty(), "{}: no files", case.name);
        for file in &case.files {
            assert!(v.dir.join(file).is_file(), "{}: missing {file}", case.name);
        }
    }
    assert!(cases.iter().filter(|c| c.expect_error).count() >= 8);
    assert!(cases.iter().any(|c| c.decrypt_with.is_some()));
    assert!(
        cases
            .iter()
            .any(|c| is_upload_case(c) && c.is_public_key == Some(true))
    );
    assert!(
        cases
            .iter()
            .any(|c| is_upload_case(c) && expired_at(c, v.generated_at))
    );
    assert!(
        cases
            .iter()
            .any(|c| is_upload_case(c) && !expired_at(c, v.generated_at))
    );
}

#[test]
fn refused_uploads_fail_with_the_error_for_their_defect_naming_the_block() {
    let v = Vectors::load();
    let mut checked = 0;
    for case in v.manifest.cases.iter().filter(|c| c.expect_error) {
        let name = case.name.as_str();
        let text = v.text_of(case);
        let err = match Upload::parse(&text, v.generated_at) {
            Ok(upload) => panic!("{name}: accepted as {:?}", upload.metadata()),
            Err(err) => err,
        };
        let shown = err.to_string();
        assert!(!shown.trim().is_empty(), "{name}: empty error message");
        let names = |block: usize| {
            assert!(
                shown.contains(&format!("PEM block {block}")),
                "{name}: {shown:?} does not name PEM block {block}"
            );
        };
        match name {
            "bad_empty" => assert_eq!(err, UploadError::Empty, "{name}"),
            "bad_garbage" => assert_eq!(err, UploadError::NoPem, "{name}"),
            "bad_truncated" => {
                let (position, label) = unterminated_block(&text);
                assert_eq!(
                    err,
                    UploadError::Pem(PemError::MissingEnd { position, label }),
                    "{name}"
                );
                names(position);
            }
            "bad_key_mismatch" => {
                let key_block = positions_ending_with(&text, "PRIVATE KEY")[0];
                let leaf_block = position_of(&text, "CERTIFICATE");
                assert_eq!(
                    err,
                    UploadError::KeyMismatch {
                        key_block,
                        leaf_block
                    },
                    "{name}"
                );
                names(key_block);
                names(leaf_block);
            }
            "bad_two_keys" => {
                let keys = positions_ending_with(&text, "PRIVATE KEY");
                assert_eq!(
                    err,
                    UploadError::MultiplePrivateKeys {
                        first: keys[0],
                        second: keys[1]
                    },
                    "{name}"
                );
                assert!(
                    shown.contains(&format!("PEM blocks {} and {}", keys[0], keys[1])),
                    "{name}: {shown:?}"
                );
            }
            "bad_key_only" => {
                let block = positions_ending_with(&text, "PRIVATE KEY")[0];
                assert_eq!(err, UploadError::KeyWithoutCertificate { block }, "{name}");
                names(block);
            }
            "bad_cert_and_pubkey" => {
                let public_key_block = position_of(&text, "PUBLIC KEY");
                let certificate_block = position_of(&text, "CERTIFICATE");
                assert_eq!(
                    err,
                    UploadError::PublicKeyWithCertificates {
                        public_key_block,
                        certificate_block
                    },
                    "{name}"
                );
                names(public_key_block);
                assert!(
                    shown.contains(&format!("block {certificate_block}")),
                    "{name}: {shown:?}"
                );
            }
            "bad_asn1" => {
                let block = position_of(&text, "CERTIFICATE");
                let UploadError::BadCertificate { block: b, reason } = &err else {
                    panic!("{name}: expected UploadError::BadCertificate, got {err:?}");
                };
                assert_eq!(*b, block, "{name}");
                assert!(!reason.is_empty(), "{name}: the parser's complaint");
                names(block);
            }
            other => panic!(
                "refused case {other} is new in the manifest: \
                 state here which UploadError it must give"
            ),
        }
        checked += 1;
    }
    assert_eq!(checked, 8, "the eight refused cases were all checked");
}

#[test]
fn uploads_give_the_manifest_id_fingerprint_pin_and_metadata() {
    let v = Vectors::load();
    let mut checked = 0;
    for case in v
        .manifest
        .cases
        .iter()
        .filter(|c| is_upload_case(c) && !expired_at(c, v.generated_at))
    {
        let upload = Upload::parse(&v.text_of(case), v.generated_at)
            .unwrap_or_else(|e| panic!("{}: refused at generated_at: {e}", case.name));
        check_upload(case, &upload);
        checked += 1;
    }
    assert!(checked > 10, "only {checked} upload cases");
}

#[test]
fn expired_uploads_are_refused_naming_the_block_and_read_before_their_expiry() {
    let v = Vectors::load();
    let now = v.generated_at;
    let mut names = Vec::new();
    for case in v
        .manifest
        .cases
        .iter()
        .filter(|c| is_upload_case(c) && expired_at(c, now))
    {
        let name = &case.name;
        let text = v.text_of(case);
        let expected_not_after = case.not_after().expect("expired cases give not_after");
        let err = Upload::parse(&text, now).expect_err(name);
        let UploadError::Expired {
            block,
            not_after,
            now: at,
            ref subject,
        } = err
        else {
            panic!("{name}: expected UploadError::Expired, got {err:?}");
        };
        assert_eq!(block, position_of(&text, "CERTIFICATE"), "{name}: the leaf");
        assert_eq!(not_after, expected_not_after, "{name}: not_after");
        assert_eq!(at, now, "{name}: the moment of the upload");
        let cn = case.subject_cn.as_ref().expect("subject_cn");
        assert!(subject.contains(cn.as_str()), "{name}: subject {subject}");
        let shown = err.to_string();
        assert!(shown.contains(&format!("PEM block {block}")), "{shown}");
        let rfc3339 = not_after
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        assert!(shown.contains(&rfc3339), "{shown}");

        // A minute before it expired, the same text is accepted with the manifest's ID.
        let before = expected_not_after - Duration::minutes(1);
        let upload = Upload::parse(&text, before)
            .unwrap_or_else(|e| panic!("{name}: refused before its expiry: {e}"));
        check_upload(case, &upload);
        assert_eq!(
            upload.metadata().validity(now, WARNING),
            Some(Validity::Expired {
                since: now - expected_not_after
            }),
            "{name}: validity at generated_at"
        );
        names.push(name.as_str());
    }
    names.sort_unstable();
    assert_eq!(names, ["expired", "expired-30min"]);
}

#[test]
fn validity_at_generated_at_matches_each_case() {
    let v = Vectors::load();
    let now = v.generated_at;
    for name in [
        "not-yet-valid",
        "expiring-10d",
        "expiring-30d",
        "valid-31d",
        "expired-30min",
    ] {
        let case = v.case(name);
        let not_before = case.not_before().expect("not_before");
        let not_after = case.not_after().expect("not_after");
        let text = v.text_of(case);
        // Expired certificates are refused at `now`: read them a minute before expiry.
        let parse_at = now.min(not_after - Duration::minutes(1));
        let upload = Upload::parse(&text, parse_at)
            .unwrap_or_else(|e| panic!("{name}: refused at {parse_at}: {e}"));
        let validity = upload.metadata().validity(now, WARNING);
        let expected = match name {
            "not-yet-valid" => Validity::NotYetValid {
                starts_in: not_before - now,
            },
            "expiring-10d" | "expiring-30d" => Validity::ExpiringSoon {
                remaining: not_after - now,
            },
            "valid-31d" => Validity::Valid {
                remaining: not_after - now,
            },
            "expired-30min" => Validity::Expired {
                since: now - not_after,
            },
            _ => unreachable!(),
        };
        assert_eq!(validity, Some(expected), "{name}");
    }
    // Tyk does not check not_before: a certificate that is not valid yet is accepted.
    let case = v.case("not-yet-valid");
    let upload = Upload::parse(&v.text_of(case), now).expect("not-yet-valid is accepted");
    check_upload(case, &upload);
}

#[test]
fn public_key_upload_is_identified_by_its_spki_pin() {
    let v = Vectors::load();
    let mut checked = 0;
    for case in v
        .manifest
        .cases
        .iter()
        .filter(|c| is_upload_case(c) && c.is_public_key == Some(true))
    {
        let name = &case.name;
        let upload = Upload::parse(&v.text_of(case), v.generated_at)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        check_upload(case, &upload);
        let meta = upload.metadata();
        assert!(meta.is_public_key, "{name}");
        assert!(upload.chain().is_empty(), "{name}: no chain");
        let spki = upload.public_key().expect("a public key entry");
        let pin = case.spki_sha256_hex.as_ref().expect("spki_sha256_hex");
        assert_eq!(
            &common::hex(digest(&SHA256, spki.as_ref()).as_ref()),
            pin,
            "{name}: the stored SPKI is the uploaded one"
        );
        assert_eq!(&meta.spki_pin.to_string(), pin, "{name}: pin");
        assert_eq!(&meta.fingerprint.to_hex(), pin, "{name}: fingerprint");
        assert_eq!(meta.validity(v.generated_at, WARNING), None, "{name}");
        assert!(
            matches!(upload.certified_key(&provider()), Err(KeyError::Missing)),
            "{name}"
        );
        checked += 1;
    }
    assert!(checked > 0);
}

#[test]
fn tyk_stored_records_decode_and_their_keys_decrypt_and_load_into_rustls() {
    let v = Vectors::load();
    let mut checked = 0;
    for case in v.manifest.cases.iter().filter(|c| c.decrypt_with.is_some()) {
        let name = &case.name;
        let text = v.text_of(case);
        let record =
            Record::decode(&text).unwrap_or_else(|e| panic!("{name}: record does not decode: {e}"));
        let id = record.id(&case.org());
        assert_eq!(
            Some(&id.to_string()),
            case.expect_id.as_ref(),
            "{name}: certificate ID"
        );
        check_metadata(case, record.metadata());
        assert_eq!(
            record.key().and_then(|k| k.format()),
            Some(KeyFormat::Legacy),
            "{name}: Tyk's format"
        );

        let passphrase = case.decrypt_with.as_deref().expect("decrypt_with");
        let secret = EncodingSecret::new(passphrase);
        let key = record
            .private_key(&id, &secret)
            .unwrap_or_else(|e| panic!("{name}: key does not decrypt: {e}"));
        if let Some(encoding) = case.key_encoding() {
            assert_eq!(key.encoding(), encoding, "{name}: guessed key encoding");
        }
        // The plaintext key shipped beside the record, where there is one, is what decrypts.
        let key_file = case.files[0].replace(".tyk-stored.pem", ".key.pem");
        if v.dir.join(&key_file).is_file() {
            let original = pem_blocks(&v.read(&key_file)).remove(0);
            assert_eq!(key.secret_der(), original.der.as_slice(), "{name}: key DER");
            assert_eq!(
                key.encoding().pem_label(),
                original.label,
                "{name}: encoding"
            );
        }

        let wrong = EncodingSecret::new(format!("{passphrase}-wrong"));
        assert!(
            matches!(record.private_key(&id, &wrong), Err(KeyError::Decrypt)),
            "{name}: a wrong secret must give KeyError::Decrypt"
        );

        let certified = record
            .certified_key(&id, &secret, &provider())
            .unwrap_or_else(|e| panic!("{name}: does not load into rustls: {e}"));
        assert_eq!(certified.cert, record.chain(), "{name}: rustls chain");
        checked += 1;
    }
    assert!(checked >= 6, "only {checked} stored records");
    // Ed25519 loads, not just uploads (a Tyk defect).
    assert!(
        v.manifest
            .cases
            .iter()
            .any(|c| c.decrypt_with.is_some() && c.key_kind.as_deref() == Some("ed25519"))
    );
}

#[test]
fn tyk_stored_records_re_encode_to_the_same_text() {
    let v = Vectors::load();
    // The IV's hex case is the writer's choice (Go writes lowercase, OpenSSL uppercase).
    let normalise = |text: &str| {
        text.lines()
            .map(|line| {
                if line.starts_with("DEK-Info:") {
                    line.to_lowercase()
                } else {
                    line.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut checked = 0;
    for case in v.manifest.cases.iter().filter(|c| c.decrypt_with.is_some()) {
        let text = v.text_of(case);
        let record = Record::decode(&text).expect("decodes");
        assert_eq!(
            normalise(record.encode().trim_end()),
            normalise(text.trim_end()),
            "{}: re-encoded record differs from Tyk's layout",
            case.name
        );
        checked += 1;
    }
    assert!(checked > 0);
}

#[test]
fn stored_record_of_an_upload_re_reads_with_the_same_id_and_metadata() {
    // A record sealed from each vector bundle reads back to the manifest's ID: what `add` returns
    // is what the store can find again.
    let v = Vectors::load();
    let secret = EncodingSecret::new(v.secret());
    for case in v.manifest.cases.iter().filter(|c| {
        is_upload_case(c) && !expired_at(c, v.generated_at) && c.has_private == Some(true)
    }) {
        let upload = Upload::parse(&v.text_of(case), v.generated_at).expect("accepted");
        let id = upload.id(&case.org());
        let meta = upload.metadata().clone();
        let stored = upload
            .seal(&id, &secret, KeyFormat::default())
            .expect("seals")
            .encode();
        let record = Record::decode(&stored).expect("decodes");
        assert_eq!(record.id(&case.org()), id, "{}", case.name);
        assert_eq!(record.metadata(), &meta, "{}", case.name);
        check_metadata(case, record.metadata());
    }
}
