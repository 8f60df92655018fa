//! Errors. Each says what was wrong with the caller's input and, where it helps, what to do.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// RFC 3339 for messages (falls back to the debug form for years beyond 9999).
fn rfc3339(t: &OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| format!("{t:?}"))
}

/// A malformed identifier, org ID or pin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The org ID is longer than allowed.
    #[error("org ID is {len} bytes long; at most {max} are allowed", max = crate::id::MAX_ORG_ID_LEN)]
    OrgTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The org ID has a character that is not allowed.
    #[error(
        "org ID contains {ch:?}; allowed are printable ASCII characters except / , ? # % * and spaces"
    )]
    OrgCharacter {
        /// The offending character.
        ch: char,
    },
    /// Not a certificate ID.
    #[error(
        "{input:?} is not a certificate ID: expected an org ID followed by 64 lowercase hex characters"
    )]
    CertId {
        /// The input (shortened).
        input: String,
    },
    /// Not a SHA-256 fingerprint.
    #[error("{input:?} is not a SHA-256 fingerprint: expected 64 hex characters")]
    Fingerprint {
        /// The input (shortened).
        input: String,
    },
    /// Not an SPKI pin.
    #[error(
        "{input:?} is not an SPKI pin: expected 64 hex characters or sha256/<base64 of 32 bytes>"
    )]
    Pin {
        /// The input (shortened).
        input: String,
    },
}

/// A PEM block that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PemError {
    /// A `-----BEGIN` line that does not end in `-----`.
    #[error("PEM block {position}: the BEGIN line is not terminated by -----")]
    BadBeginLine {
        /// Position of the block, from 1.
        position: usize,
    },
    /// A block that never ends: the text is truncated.
    #[error(
        "PEM block {position} ({label}) has no matching -----END {label}----- line: the text is truncated"
    )]
    MissingEnd {
        /// Position of the block, from 1.
        position: usize,
        /// Its label.
        label: String,
    },
    /// An END line whose label differs from the BEGIN line's.
    #[error("PEM block {position} begins as {begin} but ends as {end}")]
    MismatchedEnd {
        /// Position of the block, from 1.
        position: usize,
        /// The BEGIN label.
        begin: String,
        /// The END label.
        end: String,
    },
    /// The body is not base64 (or is empty).
    #[error("PEM block {position} ({label}): {reason}")]
    Body {
        /// Position of the block, from 1.
        position: usize,
        /// Its label.
        label: String,
        /// What is wrong.
        reason: String,
    },
}

/// Tyk's answer when an upload holds no certificate or public key (empty, not PEM, a key alone).
pub const TYK_NOT_PEM: &str = "Failed to decode certificate. It should be PEM encoded.";
/// Go's `tls.X509KeyPair` answer for a key that does not parse (Tyk passes it on).
pub const TYK_BAD_KEY: &str = "tls: failed to parse private key";
/// Go's answer for a key of another algorithm than the certificate's.
pub const TYK_KEY_TYPE_MISMATCH: &str = "tls: private key type does not match public key type";
/// Go's answer for a key of the certificate's algorithm that is not its key.
pub const TYK_KEY_MISMATCH: &str = "tls: private key does not match public key";
/// Go's `tls.X509KeyPair` answer when the certificate input holds no certificate.
pub const TYK_NO_CERTIFICATE_BLOCK: &str =
    "tls: failed to find \"CERTIFICATE\" PEM block in certificate input";

/// Go's `x509.ParseCertificate` answer matching a certificate parse failure.
fn go_x509(reason: &str) -> &'static str {
    if reason.contains("trailing data") {
        "x509: trailing data"
    } else {
        "x509: malformed certificate"
    }
}

/// An upload that was refused. Nothing of a refused upload is kept.
///
/// Each message starts with the text Tyk (Go) answers for the same refusal, where Tyk refuses
/// it, then `: ` and certgate's detail naming the PEM block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UploadError {
    /// The input is empty or only white space.
    #[error(
        "{TYK_NOT_PEM}: the upload is empty; send PEM text with a certificate (and optionally its chain and private key) or a PUBLIC KEY"
    )]
    Empty,
    /// The input holds no PEM block at all.
    #[error("{TYK_NOT_PEM}: no -----BEGIN ...----- block was found")]
    NoPem,
    /// A block's PEM framing or base64 is broken.
    #[error("{TYK_NOT_PEM}: {0}")]
    Pem(#[from] PemError),
    /// Blocks were found, but none is a certificate or a public key.
    #[error("{TYK_NOT_PEM}: no CERTIFICATE or PUBLIC KEY block found (blocks seen: {seen})")]
    NoCertificate {
        /// The labels seen, with positions (at most 20 are listed).
        seen: String,
    },
    /// A CERTIFICATE block that is not a valid X.509 certificate.
    #[error(
        "{}: PEM block {block}: not a valid X.509 certificate: {reason}",
        go_x509(reason)
    )]
    BadCertificate {
        /// Position of the block, from 1.
        block: usize,
        /// The parser's complaint.
        reason: String,
    },
    /// A PUBLIC KEY block that is not a valid SubjectPublicKeyInfo.
    #[error("PEM block {block}: not a valid PUBLIC KEY (SubjectPublicKeyInfo): {reason}")]
    BadPublicKey {
        /// Position of the block, from 1.
        block: usize,
        /// The parser's complaint.
        reason: String,
    },
    /// A private key block that cannot be parsed or is of an unsupported type.
    #[error("{TYK_BAD_KEY}: PEM block {block}: unsupported or invalid private key: {reason}")]
    UnsupportedKey {
        /// Position of the block, from 1.
        block: usize,
        /// What is wrong.
        reason: String,
    },
    /// An RSA key larger than the crypto provider signs with (Tyk accepts these).
    #[error(
        "PEM block {block}: the RSA private key has {bits} bits; keys of more than {max} bits are not supported (use 2048 to {max} bits)"
    )]
    KeyTooLarge {
        /// Position of the key block.
        block: usize,
        /// The key's modulus size.
        bits: usize,
        /// The largest size accepted.
        max: usize,
    },
    /// A password-protected private key.
    #[error(
        "{TYK_BAD_KEY}: PEM block {block}: the private key is password-protected; upload it unencrypted (e.g. `openssl pkey -in key.pem`), it is encrypted at rest by the store"
    )]
    EncryptedKey {
        /// Position of the block, from 1.
        block: usize,
    },
    /// More than one private key.
    #[error(
        "Found multiple private keys: PEM blocks {first} and {second}; upload one key, the leaf's"
    )]
    MultiplePrivateKeys {
        /// Position of the first key block.
        first: usize,
        /// Position of the second key block.
        second: usize,
    },
    /// More than one public key.
    #[error("found multiple public keys: PEM blocks {first} and {second}; upload one")]
    MultiplePublicKeys {
        /// Position of the first.
        first: usize,
        /// Position of the second.
        second: usize,
    },
    /// A private key with no certificate.
    #[error(
        "{TYK_NOT_PEM}: PEM block {block}: a private key was uploaded without its certificate; add the certificate before the key"
    )]
    KeyWithoutCertificate {
        /// Position of the key block.
        block: usize,
    },
    /// A private key together with a public key and no certificate (Tyk stores the public key
    /// and drops the private key without a word).
    #[error(
        "{TYK_NO_CERTIFICATE_BLOCK}: PEM block {key_block} is a private key and block {public_key_block} a PUBLIC KEY; a private key needs its certificate"
    )]
    KeyWithPublicKey {
        /// Position of the key block.
        key_block: usize,
        /// Position of the public key block.
        public_key_block: usize,
    },
    /// The private key is of another algorithm than the leaf's public key.
    #[error(
        "{TYK_KEY_TYPE_MISMATCH}: the {key_type} key in PEM block {key_block} cannot belong to the {leaf_type} leaf certificate in PEM block {leaf_block}"
    )]
    KeyTypeMismatch {
        /// Position of the key block.
        key_block: usize,
        /// The key's algorithm.
        key_type: &'static str,
        /// Position of the leaf block.
        leaf_block: usize,
        /// The leaf's algorithm.
        leaf_type: &'static str,
    },
    /// The private key does not belong to the leaf (the first certificate).
    #[error(
        "{TYK_KEY_MISMATCH}: the key in PEM block {key_block} does not belong to the leaf certificate in PEM block {leaf_block}"
    )]
    KeyMismatch {
        /// Position of the key block.
        key_block: usize,
        /// Position of the leaf block.
        leaf_block: usize,
    },
    /// A public key together with certificates.
    #[error(
        "Public keys can't be combined with certificates: PEM block {public_key_block} is a PUBLIC KEY and block {certificate_block} a CERTIFICATE"
    )]
    PublicKeyWithCertificates {
        /// Position of the public key block.
        public_key_block: usize,
        /// Position of the first certificate block.
        certificate_block: usize,
    },
    /// A certificate of the upload has expired.
    #[error(
        "certificate is expired: PEM block {block} ({subject}) expired at {}, now is {}",
        rfc3339(not_after),
        rfc3339(now)
    )]
    Expired {
        /// Position of the block, from 1.
        block: usize,
        /// The certificate's subject.
        subject: String,
        /// When it expired.
        not_after: OffsetDateTime,
        /// The moment of the upload.
        now: OffsetDateTime,
    },
}

/// A stored record that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// A block's PEM framing or base64 is broken.
    #[error("stored record: {0}")]
    Pem(#[from] PemError),
    /// No certificate or public key in the record.
    #[error("stored record has no CERTIFICATE or PUBLIC KEY block")]
    Empty,
    /// A certificate in the record does not parse.
    #[error("stored record, PEM block {block}: not a valid X.509 certificate: {reason}")]
    BadCertificate {
        /// Position of the block, from 1.
        block: usize,
        /// The parser's complaint.
        reason: String,
    },
    /// A public key in the record does not parse.
    #[error("stored record, PEM block {block}: not a valid PUBLIC KEY: {reason}")]
    BadPublicKey {
        /// Position of the block, from 1.
        block: usize,
        /// The parser's complaint.
        reason: String,
    },
    /// A key block whose format is unknown or malformed.
    #[error("stored record, PEM block {block}: unreadable private key block: {reason}")]
    BadKeyBlock {
        /// Position of the block, from 1.
        block: usize,
        /// What is wrong.
        reason: String,
    },
    /// More than one private key, or a key with a public key.
    #[error("stored record, PEM block {block}: unexpected block {label}")]
    Unexpected {
        /// Position of the block, from 1.
        block: usize,
        /// Its label.
        label: String,
    },
}

/// A private key that cannot be decrypted or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Decryption failed: the secret is wrong, or the stored key was altered.
    #[error(
        "the private key does not decrypt: the encoding secret is wrong or the record was altered"
    )]
    Decrypt,
    /// The record's encryption header names a cipher we do not support.
    #[error(
        "unsupported private key encryption {0:?}: only AES-256-CBC (legacy) and certgate v1 (AES-256-GCM) are read"
    )]
    UnsupportedCipher(String),
    /// A modern record with a version or layout we do not know.
    #[error("unsupported encrypted key format: {0}")]
    UnsupportedFormat(String),
    /// The decrypted key is not a key rustls can use.
    #[error("the private key cannot be used for TLS: {0}")]
    Unusable(String),
    /// The record holds no private key.
    #[error("the record holds no private key")]
    Missing,
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
}
