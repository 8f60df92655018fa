//! Parsing uploads: the PEM text a user adds to the store.
//!
//! Rules (Tyk's, with errors that name the PEM block): the first CERTIFICATE is the leaf and the
//! rest its chain in order; at most one private key (PKCS#8, PKCS#1 or SEC1; RSA, ECDSA P-256 and
//! P-384, Ed25519) and it must match the leaf; a PUBLIC KEY stands alone; every certificate must
//! be unexpired at `now`. Blocks of other types (e.g. `EC PARAMETERS`) are ignored.

use rustls::crypto::CryptoProvider;
use rustls_pki_types::{CertificateDer, SubjectPublicKeyInfoDer};
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::entry::Upload;
use crate::error::UploadError;
use crate::key::{KeyEncoding, PrivateKey};
use crate::meta::{self, Validity};
use crate::pem::{self, Block};
use crate::words;

/// How many blocks the "blocks seen" list of an error names; the rest are counted.
const MAX_LISTED_BLOCKS: usize = 20;
/// The largest RSA key ring signs with; larger ones are refused with a message saying so.
const MAX_RSA_BITS: usize = 4096;

impl Upload {
    /// Parses upload text at instant `now`, checking the key against the leaf with rustls' ring
    /// provider.
    ///
    /// ```
    /// # use tls_core::Upload;
    /// let err = Upload::parse("not pem", time::OffsetDateTime::UNIX_EPOCH).unwrap_err();
    /// assert!(err.to_string().contains("PEM"));
    /// ```
    pub fn parse(text: &str, now: OffsetDateTime) -> Result<Self, UploadError> {
        Self::parse_with_provider(text, now, &crate::crypto::provider())
    }

    /// [`Upload::parse`], loading the private key with `provider`.
    pub fn parse_with_provider(
        text: &str,
        now: OffsetDateTime,
        provider: &CryptoProvider,
    ) -> Result<Self, UploadError> {
        if text.trim().is_empty() {
            return Err(UploadError::Empty);
        }
        let blocks = pem::parse(text)?;
        if blocks.is_empty() {
            return Err(UploadError::NoPem);
        }
        let mut parts = Parts::default();
        for block in blocks {
            parts.add(block, now)?;
        }
        parts.finish(provider)
    }
}

#[derive(Default)]
struct Parts {
    certs: Vec<(usize, CertificateDer<'static>)>,
    key: Option<(usize, PrivateKey)>,
    public_key: Option<(usize, SubjectPublicKeyInfoDer<'static>)>,
    seen: Vec<String>,
    unlisted: usize,
}

impl Parts {
    fn add(&mut self, block: Block, now: OffsetDateTime) -> Result<(), UploadError> {
        let position = block.position;
        if self.seen.len() < MAX_LISTED_BLOCKS {
            self.seen
                .push(format!("{} at {position}", pem::shown(&block.label)));
        } else {
            self.unlisted += 1;
        }
        let encrypted = block.header("Proc-Type").is_some() || block.header("DEK-Info").is_some();
        match block.label.as_str() {
            "CERTIFICATE" => {
                check_certificate(&block.der, position, now)?;
                self.certs.push((position, CertificateDer::from(block.der)));
            }
            "PUBLIC KEY" => {
                match SubjectPublicKeyInfo::from_der(&block.der) {
                    Ok(([], _)) => {}
                    Ok(_) => {
                        return Err(UploadError::BadPublicKey {
                            block: position,
                            reason: "trailing data after the key".into(),
                        });
                    }
                    Err(e) => {
                        return Err(UploadError::BadPublicKey {
                            block: position,
                            reason: words::x509(&e),
                        });
                    }
                }
                if let Some((first, _)) = &self.public_key {
                    return Err(UploadError::MultiplePublicKeys {
                        first: *first,
                        second: position,
                    });
                }
                self.public_key = Some((position, SubjectPublicKeyInfoDer::from(block.der)));
            }
            label if label.ends_with("PRIVATE KEY") => {
                if let Some((first, _)) = &self.key {
                    return Err(UploadError::MultiplePrivateKeys {
                        first: *first,
                        second: position,
                    });
                }
                if encrypted || label.contains("ENCRYPTED") {
                    return Err(UploadError::EncryptedKey { block: position });
                }
                let encoding = KeyEncoding::from_pem_label(label).ok_or_else(|| UploadError::UnsupportedKey {
                    block: position,
                    reason: format!("{} is not supported; use PKCS#8 (PRIVATE KEY), PKCS#1 (RSA PRIVATE KEY) or SEC1 (EC PRIVATE KEY)", pem::shown(label)),
                })?;
                // The label must tell the truth: backends differ in what they accept under a
                // wrong label, and a stored key keeps the encoding its label announced.
                if let Some(actual) = KeyEncoding::guess(&block.der)
                    && actual != encoding
                {
                    return Err(UploadError::UnsupportedKey {
                        block: position,
                        reason: format!(
                            "the block is labelled {} but holds a {} key; label it {}",
                            pem::shown(label),
                            actual.name(),
                            actual.pem_label()
                        ),
                    });
                }
                self.key = Some((position, PrivateKey::new(encoding, block.der)));
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(self, provider: &CryptoProvider) -> Result<Upload, UploadError> {
        match (self.certs.first(), self.public_key, self.key) {
            (Some((cert_pos, _)), Some((pk_pos, _)), _) => {
                Err(UploadError::PublicKeyWithCertificates {
                    public_key_block: pk_pos,
                    certificate_block: *cert_pos,
                })
            }
            (None, Some((pk_pos, _)), Some((key_pos, _))) => Err(UploadError::KeyWithPublicKey {
                key_block: key_pos,
                public_key_block: pk_pos,
            }),
            (None, None, Some((key_pos, _))) => {
                Err(UploadError::KeyWithoutCertificate { block: key_pos })
            }
            (None, Some((pk_pos, spki)), None) => {
                let meta = SubjectPublicKeyInfo::from_der(spki.as_ref())
                    .map(|(_, parsed)| meta::of_public_key(&parsed));
                match meta {
                    Ok(meta) => Ok(Upload::public_key_of(spki, meta)),
                    Err(e) => Err(UploadError::BadPublicKey {
                        block: pk_pos,
                        reason: words::x509(&e),
                    }),
                }
            }
            (None, None, None) => {
                let mut seen = self.seen.join(", ");
                if self.unlisted > 0 {
                    seen.push_str(&format!(" and {} more", self.unlisted));
                }
                Err(UploadError::NoCertificate { seen })
            }
            (Some((leaf_pos, leaf)), None, key) => {
                let leaf_pos = *leaf_pos;
                let (_, parsed) =
                    X509Certificate::from_der(leaf).map_err(|e| UploadError::BadCertificate {
                        block: leaf_pos,
                        reason: words::x509(&e),
                    })?;
                if let Some((key_pos, key)) = &key {
                    check_key_matches(key, *key_pos, &parsed, leaf_pos, provider)?;
                }
                let meta = meta::of_certificate(leaf, &parsed, self.certs.len(), key.is_some());
                let chain = self.certs.into_iter().map(|(_, der)| der).collect();
                Ok(Upload::chain_of(chain, key.map(|(_, key)| key), meta))
            }
        }
    }
}

fn check_certificate(der: &[u8], block: usize, now: OffsetDateTime) -> Result<(), UploadError> {
    let cert = match X509Certificate::from_der(der) {
        Ok((rest, _)) if !rest.is_empty() => {
            return Err(UploadError::BadCertificate {
                block,
                reason: format!(
                    "{} bytes of trailing data after the certificate",
                    rest.len()
                ),
            });
        }
        Ok((_, cert)) => cert,
        Err(e) => {
            return Err(UploadError::BadCertificate {
                block,
                reason: words::x509(&e),
            });
        }
    };
    let validity = cert.validity();
    let (not_before, not_after) = (
        validity.not_before.to_datetime(),
        validity.not_after.to_datetime(),
    );
    if Validity::at(not_before, not_after, now, Duration::ZERO).is_expired() {
        return Err(UploadError::Expired {
            block,
            subject: cert.subject().to_string(),
            not_after,
            now,
        });
    }
    Ok(())
}

/// Loads the key with the provider (which also proves it is usable for TLS) and compares the
/// public key it yields with the leaf's.
fn check_key_matches(
    key: &PrivateKey,
    key_pos: usize,
    leaf: &X509Certificate<'_>,
    leaf_pos: usize,
    provider: &CryptoProvider,
) -> Result<(), UploadError> {
    let unsupported = |reason: String| UploadError::UnsupportedKey {
        block: key_pos,
        reason,
    };
    // The same limits whatever the backend (aws-lc-rs would load larger RSA keys than *ring*):
    // what one node of a fleet stores, every node can serve.
    match key.rsa_bits() {
        Some(bits) if bits > MAX_RSA_BITS => {
            return Err(UploadError::KeyTooLarge {
                block: key_pos,
                bits,
                max: MAX_RSA_BITS,
            });
        }
        Some(bits) if bits < 2048 => {
            return Err(unsupported(format!(
                "the RSA key has {bits} bits; at least 2048 are required"
            )));
        }
        _ => {}
    }
    let signing_key = match provider.key_provider.load_private_key(key.to_rustls()) {
        Ok(signing_key) => signing_key,
        Err(e) => return Err(unsupported(e.to_string())),
    };
    let spki = signing_key
        .public_key()
        .ok_or_else(|| unsupported("the key's public half cannot be derived".into()))?;
    let (_, key_spki) =
        SubjectPublicKeyInfo::from_der(spki.as_ref()).map_err(|e| unsupported(words::x509(&e)))?;
    let leaf_spki = leaf.public_key();
    let (key_type, leaf_type) = (
        algorithm_name(&key_spki.algorithm.algorithm),
        algorithm_name(&leaf_spki.algorithm.algorithm),
    );
    if key_type != leaf_type {
        return Err(UploadError::KeyTypeMismatch {
            key_block: key_pos,
            key_type,
            leaf_block: leaf_pos,
            leaf_type,
        });
    }
    let same = key_spki.algorithm.algorithm == leaf_spki.algorithm.algorithm
        && key_spki.subject_public_key.data == leaf_spki.subject_public_key.data;
    if same {
        Ok(())
    } else {
        Err(UploadError::KeyMismatch {
            key_block: key_pos,
            leaf_block: leaf_pos,
        })
    }
}

/// The key type as Go's `tls.X509KeyPair` tells them apart (RSA, ECDSA, Ed25519).
fn algorithm_name(oid: &x509_parser::oid_registry::Oid<'_>) -> &'static str {
    use x509_parser::oid_registry::{
        OID_KEY_TYPE_EC_PUBLIC_KEY, OID_PKCS1_RSAENCRYPTION, OID_PKCS1_RSASSAPSS, OID_SIG_ED25519,
    };
    if *oid == OID_PKCS1_RSAENCRYPTION || *oid == OID_PKCS1_RSASSAPSS {
        "RSA"
    } else if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
        "ECDSA"
    } else if *oid == OID_SIG_ED25519 {
        "Ed25519"
    } else {
        "other"
    }
}
