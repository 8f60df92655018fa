//! Private keys at rest: the encoding secret and the two encrypted formats.
//!
//! - **Modern** (`CERTGATE ENCRYPTED PRIVATE KEY`, the default for writes): AES-256-GCM with a
//!   per-record key derived by HKDF-SHA256 from the secret and a random salt, the certificate ID
//!   bound as associated data. Byte layout in `docs/FORMAT.md`.
//! - **Legacy** (`ENCRYPTED PRIVATE KEY` with `Proc-Type`/`DEK-Info` headers): what Tyk writes,
//!   RFC 1423 AES-256-CBC with OpenSSL's `EVP_BytesToKey(MD5, 1 round)`. Always read; written only
//!   when asked, for stores shared with Tyk gateways. It has no integrity protection.

use core::fmt;

use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use md5::{Digest, Md5};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::error::{KeyError, RecordError};
use crate::id::{CertId, hex_lower, parse_hex};
use crate::key::{KeyEncoding, PrivateKey};
use crate::pem::{self, Block};

/// PEM label of the modern format.
pub const MODERN_LABEL: &str = "CERTGATE ENCRYPTED PRIVATE KEY";
/// PEM label of the legacy (Tyk) format.
pub const LEGACY_LABEL: &str = "ENCRYPTED PRIVATE KEY";

const MODERN_VERSION: u8 = 1;
const SALT_LEN: usize = 16;
const HEADER_LEN: usize = 2 + SALT_LEN + NONCE_LEN;
const TAG_LEN: usize = 16;
const EXTRACT_SALT: &[u8] = b"certgate encoding secret v1";
const EXPAND_INFO: &[u8] = b"certgate private key v1";
const LEGACY_CIPHER: &str = "AES-256-CBC";

/// The secret that encrypts private keys at rest (Tyk's
/// `security.private_certificate_encoding_secret`).
///
/// The HKDF pseudo-random key is derived once here, so sealing or opening a record costs one
/// HKDF-Expand and one AEAD pass, not a slow KDF. The secret bytes are wiped on drop and never
/// printed.
pub struct EncodingSecret {
    raw: Zeroizing<Vec<u8>>,
    prk: hkdf::Prk,
}

impl EncodingSecret {
    /// Wraps a secret. An empty secret is allowed, as in Tyk, but protects nothing.
    pub fn new(secret: impl AsRef<[u8]>) -> Self {
        let raw = Zeroizing::new(secret.as_ref().to_vec());
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, EXTRACT_SALT).extract(&raw);
        Self { raw, prk }
    }

    /// True when the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    fn record_key(&self, salt: &[u8]) -> Result<LessSafeKey, KeyError> {
        let info = [EXPAND_INFO, salt];
        let okm = self
            .prk
            .expand(&info, &AES_256_GCM)
            .map_err(|_| KeyError::Random)?;
        Ok(LessSafeKey::new(UnboundKey::from(okm)))
    }

    /// OpenSSL `EVP_BytesToKey(MD5, count = 1)` for a 32-byte key.
    fn legacy_key(&self, salt: &[u8]) -> Zeroizing<[u8; 32]> {
        let d1 = Md5::new()
            .chain_update(&*self.raw)
            .chain_update(salt)
            .finalize();
        let d2 = Md5::new()
            .chain_update(d1)
            .chain_update(&*self.raw)
            .chain_update(salt)
            .finalize();
        let mut key = Zeroizing::new([0u8; 32]);
        key[..16].copy_from_slice(&d1);
        key[16..].copy_from_slice(&d2);
        key
    }
}

impl fmt::Debug for EncodingSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncodingSecret(<redacted>)")
    }
}

/// Which encrypted format new records are written in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyFormat {
    /// AES-256-GCM, ID-bound, versioned (default).
    #[default]
    Modern,
    /// Tyk's RFC 1423 AES-256-CBC: for stores that Tyk gateways also read.
    Legacy,
}

/// A private key as it sits in a stored record.
pub enum StoredKey {
    /// Modern format: the decoded block body (version, encoding, salt, nonce, ciphertext, tag).
    Modern(Vec<u8>),
    /// Legacy format.
    Legacy {
        /// The IV from `DEK-Info`; its first 8 bytes are the KDF salt.
        iv: [u8; 16],
        /// AES-256-CBC ciphertext of the key DER.
        ciphertext: Vec<u8>,
    },
    /// An unencrypted key (Tyk accepts these in records written by hand).
    Plain(PrivateKey),
}

impl StoredKey {
    /// Encrypts `key` for the record of `id`.
    pub fn seal(
        key: &PrivateKey,
        id: &CertId,
        secret: &EncodingSecret,
        format: KeyFormat,
    ) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        match format {
            KeyFormat::Modern => {
                let mut out = Vec::with_capacity(HEADER_LEN + key.secret_der().len() + TAG_LEN);
                out.extend([MODERN_VERSION, key.encoding().code()]);
                let mut random = [0u8; SALT_LEN + NONCE_LEN];
                rng.fill(&mut random).map_err(|_| KeyError::Random)?;
                out.extend_from_slice(&random);
                let (salt, nonce) = random.split_at(SALT_LEN);
                let nonce =
                    Nonce::try_assume_unique_for_key(nonce).map_err(|_| KeyError::Random)?;
                let aad = aad(&out, id);
                let mut body = key.secret_der().to_vec();
                secret
                    .record_key(salt)?
                    .seal_in_place_append_tag(nonce, Aad::from(&aad[..]), &mut body)
                    .map_err(|_| KeyError::Random)?;
                out.extend_from_slice(&body);
                Ok(Self::Modern(out))
            }
            KeyFormat::Legacy => {
                let mut iv = [0u8; 16];
                rng.fill(&mut iv).map_err(|_| KeyError::Random)?;
                let cipher_key = secret.legacy_key(&iv[..8]);
                let ciphertext =
                    cbc::Encryptor::<aes::Aes256>::new_from_slices(&cipher_key[..], &iv)
                        .map_err(|_| KeyError::Random)?
                        .encrypt_padded_vec::<Pkcs7>(key.secret_der());
                Ok(Self::Legacy { iv, ciphertext })
            }
        }
    }

    /// Decrypts the key of the record of `id`.
    pub fn open(&self, id: &CertId, secret: &EncodingSecret) -> Result<PrivateKey, KeyError> {
        match self {
            Self::Modern(blob) => open_modern(blob, id, secret),
            Self::Legacy { iv, ciphertext } => {
                let cipher_key = secret.legacy_key(&iv[..8]);
                let der = cbc::Decryptor::<aes::Aes256>::new_from_slices(&cipher_key[..], iv)
                    .map_err(|_| KeyError::Decrypt)?
                    .decrypt_padded_vec::<Pkcs7>(ciphertext)
                    .map_err(|_| KeyError::Decrypt)?;
                PrivateKey::guess(der).ok_or(KeyError::Decrypt)
            }
            Self::Plain(key) => Ok(PrivateKey::new(key.encoding(), key.secret_der().to_vec())),
        }
    }

    /// The format, or `None` for a plaintext key.
    pub fn format(&self) -> Option<KeyFormat> {
        match self {
            Self::Modern(_) => Some(KeyFormat::Modern),
            Self::Legacy { .. } => Some(KeyFormat::Legacy),
            Self::Plain(_) => None,
        }
    }

    /// The PEM block for a stored record.
    pub fn to_pem(&self) -> String {
        match self {
            Self::Modern(blob) => pem::encode(MODERN_LABEL, &[], blob),
            Self::Legacy { iv, ciphertext } => {
                let dek = format!("{LEGACY_CIPHER},{}", hex_lower(iv));
                pem::encode(
                    LEGACY_LABEL,
                    &[("Proc-Type", "4,ENCRYPTED"), ("DEK-Info", &dek)],
                    ciphertext,
                )
            }
            Self::Plain(key) => key.to_pem().to_string(),
        }
    }

    /// Reads a key block of a stored record; `Ok(None)` if the block is not a private key.
    pub(crate) fn from_block(block: Block) -> Result<Option<Self>, RecordError> {
        let bad = |reason: String| RecordError::BadKeyBlock {
            block: block.position,
            reason,
        };
        if block.label == MODERN_LABEL {
            if block.der.len() < HEADER_LEN + TAG_LEN {
                return Err(bad(format!(
                    "{} bytes is too short for the certgate format",
                    block.der.len()
                )));
            }
            return Ok(Some(Self::Modern(block.der)));
        }
        if let Some(dek) = block.header("DEK-Info") {
            // Any block with DEK-Info is RFC 1423 encrypted, whatever its label (as in Tyk).
            let (cipher, iv_hex) = dek
                .split_once(',')
                .ok_or_else(|| bad(format!("malformed DEK-Info {dek:?}")))?;
            if !cipher.eq_ignore_ascii_case(LEGACY_CIPHER) {
                return Err(bad(
                    KeyError::UnsupportedCipher(cipher.to_owned()).to_string()
                ));
            }
            let iv = parse_hex(iv_hex)
                .and_then(|v| <[u8; 16]>::try_from(v).ok())
                .ok_or_else(|| bad(format!("DEK-Info IV {iv_hex:?} is not 16 bytes of hex")))?;
            if block.der.is_empty() || !block.der.len().is_multiple_of(16) {
                return Err(bad(format!(
                    "{} bytes is not a whole number of AES blocks",
                    block.der.len()
                )));
            }
            return Ok(Some(Self::Legacy {
                iv,
                ciphertext: block.der,
            }));
        }
        if block.label == LEGACY_LABEL {
            return Err(bad(
                "PKCS#8 password-encrypted keys are not supported in records".to_owned(),
            ));
        }
        match KeyEncoding::from_pem_label(&block.label) {
            Some(encoding) => Ok(Some(Self::Plain(PrivateKey::new(encoding, block.der)))),
            None if block.label.ends_with("PRIVATE KEY") => {
                Err(bad(format!("unsupported key type {}", block.label)))
            }
            None => Ok(None),
        }
    }
}

impl fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Modern(blob) => write!(f, "StoredKey::Modern(<{} bytes>)", blob.len()),
            Self::Legacy { ciphertext, .. } => {
                write!(f, "StoredKey::Legacy(<{} bytes>)", ciphertext.len())
            }
            Self::Plain(key) => write!(f, "StoredKey::Plain({key:?})"),
        }
    }
}

/// Associated data: the modern header followed by the certificate ID.
fn aad(header: &[u8], id: &CertId) -> Vec<u8> {
    let mut aad = header[..HEADER_LEN].to_vec();
    aad.extend_from_slice(id.to_string().as_bytes());
    aad
}

fn open_modern(blob: &[u8], id: &CertId, secret: &EncodingSecret) -> Result<PrivateKey, KeyError> {
    if blob.len() < HEADER_LEN + TAG_LEN {
        return Err(KeyError::UnsupportedFormat(format!(
            "{} bytes is too short",
            blob.len()
        )));
    }
    if blob[0] != MODERN_VERSION {
        return Err(KeyError::UnsupportedFormat(format!(
            "version {} (this build reads version {MODERN_VERSION})",
            blob[0]
        )));
    }
    let encoding = KeyEncoding::from_code(blob[1]).ok_or_else(|| {
        KeyError::UnsupportedFormat(format!("unknown key encoding code {}", blob[1]))
    })?;
    let salt = &blob[2..2 + SALT_LEN];
    let nonce = Nonce::try_assume_unique_for_key(&blob[2 + SALT_LEN..HEADER_LEN])
        .map_err(|_| KeyError::Decrypt)?;
    let aad = aad(blob, id);
    let mut body = Zeroizing::new(blob[HEADER_LEN..].to_vec());
    let plain_len = secret
        .record_key(salt)?
        .open_in_place(nonce, Aad::from(&aad[..]), &mut body)
        .map_err(|_| KeyError::Decrypt)?
        .len();
    Ok(PrivateKey::new(encoding, body[..plain_len].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> CertId {
        "org1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            .parse()
            .unwrap()
    }

    fn key() -> PrivateKey {
        // SEQUENCE { INTEGER 0, SEQUENCE {} , OCTET STRING 32 bytes }: shaped like PKCS#8.
        let mut der = vec![0x30, 0x27, 0x02, 0x01, 0x00, 0x30, 0x00, 0x04, 0x20];
        der.extend([0x5a; 32]);
        PrivateKey::guess(der).unwrap()
    }

    #[test]
    fn both_formats_round_trip_and_refuse_a_wrong_secret() {
        let secret = EncodingSecret::new("s3cret");
        for format in [KeyFormat::Modern, KeyFormat::Legacy] {
            let sealed = StoredKey::seal(&key(), &id(), &secret, format).unwrap();
            assert_eq!(sealed.format(), Some(format));
            let opened = sealed.open(&id(), &secret).unwrap();
            assert_eq!(opened.secret_der(), key().secret_der());
            assert_eq!(opened.encoding(), KeyEncoding::Pkcs8);
            assert!(matches!(
                sealed.open(&id(), &EncodingSecret::new("other")),
                Err(KeyError::Decrypt)
            ));
        }
    }

    #[test]
    fn modern_key_is_bound_to_its_certificate_id() {
        let secret = EncodingSecret::new("s3cret");
        let sealed = StoredKey::seal(&key(), &id(), &secret, KeyFormat::Modern).unwrap();
        let other: CertId = "org2aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            .parse()
            .unwrap();
        assert!(matches!(
            sealed.open(&other, &secret),
            Err(KeyError::Decrypt)
        ));
    }

    #[test]
    fn pem_blocks_read_back_as_the_same_stored_key() {
        let secret = EncodingSecret::new("s3cret");
        for format in [KeyFormat::Modern, KeyFormat::Legacy] {
            let text = StoredKey::seal(&key(), &id(), &secret, format)
                .unwrap()
                .to_pem();
            let block = pem::parse(&text).unwrap().pop().unwrap();
            let read = StoredKey::from_block(block).unwrap().unwrap();
            assert_eq!(
                read.open(&id(), &secret).unwrap().secret_der(),
                key().secret_der()
            );
        }
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(
            format!("{:?}", EncodingSecret::new("hunter2")),
            "EncodingSecret(<redacted>)"
        );
    }
}
