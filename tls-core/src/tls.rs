//! rustls conversions: a [`CertifiedKey`] from a record or an upload.

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;

use crate::entry::{Record, Upload};
use crate::error::KeyError;
use crate::id::CertId;
use crate::key::PrivateKey;
use crate::seal::EncodingSecret;

impl Record {
    /// Decrypts the key with `secret` and loads chain and key into rustls through `provider`.
    pub fn certified_key(
        &self,
        id: &CertId,
        secret: &EncodingSecret,
        provider: &CryptoProvider,
    ) -> Result<CertifiedKey, KeyError> {
        let key = self.private_key(id, secret)?;
        certified_key(self.chain(), &key, provider)
    }
}

impl Upload {
    /// Loads chain and key into rustls through `provider` (for inline PEM in configuration).
    pub fn certified_key(&self, provider: &CryptoProvider) -> Result<CertifiedKey, KeyError> {
        certified_key(self.chain(), self.key().ok_or(KeyError::Missing)?, provider)
    }
}

fn certified_key(
    chain: &[rustls_pki_types::CertificateDer<'static>],
    key: &PrivateKey,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, KeyError> {
    let signing_key = provider
        .key_provider
        .load_private_key(key.to_rustls())
        .map_err(|e| KeyError::Unusable(e.to_string()))?;
    let certified = CertifiedKey::new(chain.to_vec(), signing_key);
    certified
        .keys_match()
        .map_err(|e| KeyError::Unusable(e.to_string()))?;
    Ok(certified)
}
