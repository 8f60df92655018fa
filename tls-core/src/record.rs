//! Stored records: the Tyk-compatible text kept under `cert-raw-<id>`.
//!
//! The certificates re-encoded as PEM and separated by blank lines, then a blank line and the
//! encrypted private key block if there is one; a public key is its PEM alone.

use rustls_pki_types::{CertificateDer, SubjectPublicKeyInfoDer};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::entry::{Record, Upload};
use crate::error::{KeyError, RecordError};
use crate::id::CertId;
use crate::key::PrivateKey;
use crate::meta;
use crate::pem;
use crate::seal::{EncodingSecret, KeyFormat, StoredKey};

impl Upload {
    /// Encrypts the private key (if any) for the record of `id`, giving the record to store.
    pub fn seal(
        self,
        id: &CertId,
        secret: &EncodingSecret,
        format: KeyFormat,
    ) -> Result<Record, KeyError> {
        let key = self
            .key()
            .map(|key| StoredKey::seal(key, id, secret, format))
            .transpose()?;
        Ok(self.map_key(key))
    }
}

impl Record {
    /// The record as stored text.
    pub fn encode(&self) -> String {
        if let Some(spki) = self.public_key() {
            return pem::encode("PUBLIC KEY", &[], spki.as_ref());
        }
        let certs: Vec<String> = self
            .chain()
            .iter()
            .map(|c| pem::encode("CERTIFICATE", &[], c))
            .collect();
        let mut text = certs.join("\n");
        if let Some(key) = self.key() {
            text.push('\n');
            text.push_str(&key.to_pem());
        }
        text
    }

    /// Reads stored text: certificates, a public key, and the key block (modern, legacy, or
    /// plaintext). Certificates are not checked for expiry here: a stored certificate may have
    /// expired since its upload, and the caller decides what that means.
    pub fn decode(text: &str) -> Result<Self, RecordError> {
        let mut certs: Vec<(usize, CertificateDer<'static>)> = Vec::new();
        let mut public_key: Option<SubjectPublicKeyInfoDer<'static>> = None;
        let mut key: Option<StoredKey> = None;
        for block in pem::parse(text)? {
            let position = block.position;
            match block.label.as_str() {
                "CERTIFICATE" => {
                    if let Err(e) = X509Certificate::from_der(&block.der) {
                        return Err(RecordError::BadCertificate {
                            block: position,
                            reason: crate::words::x509(&e),
                        });
                    }
                    certs.push((position, CertificateDer::from(block.der)));
                }
                "PUBLIC KEY" if public_key.is_none() => {
                    if let Err(e) = SubjectPublicKeyInfo::from_der(&block.der) {
                        return Err(RecordError::BadPublicKey {
                            block: position,
                            reason: crate::words::x509(&e),
                        });
                    }
                    public_key = Some(SubjectPublicKeyInfoDer::from(block.der));
                }
                label => {
                    let label = label.to_owned();
                    if let Some(found) = StoredKey::from_block(block)? {
                        if key.is_some() {
                            return Err(RecordError::Unexpected {
                                block: position,
                                label,
                            });
                        }
                        key = Some(found);
                    }
                }
            }
        }
        if let Some(spki) = public_key {
            if let Some((position, _)) = certs.first() {
                return Err(RecordError::Unexpected {
                    block: *position,
                    label: "CERTIFICATE".into(),
                });
            }
            let (_, parsed) = SubjectPublicKeyInfo::from_der(spki.as_ref()).map_err(|e| {
                RecordError::BadPublicKey {
                    block: 1,
                    reason: crate::words::x509(&e),
                }
            })?;
            let meta = meta::of_public_key(&parsed);
            return Ok(Self::public_key_of(spki, meta));
        }
        let Some((leaf_pos, leaf)) = certs.first() else {
            return Err(RecordError::Empty);
        };
        let (_, parsed) =
            X509Certificate::from_der(leaf).map_err(|e| RecordError::BadCertificate {
                block: *leaf_pos,
                reason: crate::words::x509(&e),
            })?;
        let meta = meta::of_certificate(leaf, &parsed, certs.len(), key.is_some());
        Ok(Self::chain_of(
            certs.into_iter().map(|(_, c)| c).collect(),
            key,
            meta,
        ))
    }

    /// The same record with its private key replaced (e.g. re-encrypted with a new secret).
    /// A public-key record has no key and is returned unchanged.
    pub fn with_key(self, key: StoredKey) -> Self {
        if self.public_key().is_some() {
            return self;
        }
        self.map_key(Some(key))
    }

    /// Decrypts the private key of this record, stored under `id`.
    pub fn private_key(
        &self,
        id: &CertId,
        secret: &EncodingSecret,
    ) -> Result<PrivateKey, KeyError> {
        self.key().ok_or(KeyError::Missing)?.open(id, secret)
    }
}
