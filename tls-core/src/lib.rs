//! `tls-core`: the pure logic of certgate, with no I/O, no async and no clock.
//!
//! - Identifiers: [`OrgId`], [`Fingerprint`], [`CertId`] (org ID followed by the leaf's SHA-256),
//!   [`SpkiPin`].
//! - Uploads: [`Upload::parse`] reads PEM text (certificates with an optional key, or a public
//!   key) and refuses bad input with an [`UploadError`] naming the PEM block.
//! - Metadata: [`Metadata`] and [`Validity`] at a given instant.
//! - Keys at rest: [`EncodingSecret`], [`KeyFormat`] (modern AES-256-GCM, or Tyk's legacy
//!   RFC 1423), [`StoredKey`]; plaintext keys are [`PrivateKey`]s that wipe themselves.
//! - Records: [`Upload::seal`] gives a [`Record`], [`Record::encode`]/[`Record::decode`] convert
//!   to and from Tyk's stored text.
//! - rustls: [`Record::certified_key`] and [`Upload::certified_key`]; the backend in [`crypto`];
//!   [`danger::AcceptAnyServerCertificate`], the one verifier for settings that skip
//!   certificate verification.
//!
//! ```
//! use tls_core::{EncodingSecret, KeyFormat, OrgId, Record, Upload};
//! # let pem = include_str!("../tests/data/demo.pem");
//! let now = time::macros::datetime!(2030-01-01 0:00 UTC);
//! let upload = Upload::parse(pem, now)?;
//! let id = upload.id(&OrgId::new("org1")?);
//! let secret = EncodingSecret::new("encoding secret");
//! let stored = upload.seal(&id, &secret, KeyFormat::Modern)?.encode();
//!
//! let record = Record::decode(&stored)?;
//! assert_eq!(record.id(id.org()), id);
//! let key = rustls::crypto::ring::default_provider();
//! let certified = record.certified_key(&id, &secret, &key)?;
//! assert_eq!(certified.cert.len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod crypto;
pub mod danger;
mod entry;
mod error;
mod id;
mod key;
mod meta;
mod pem;
mod record;
mod seal;
mod tls;
mod upload;
mod words;

pub use crypto::default_provider;
pub use entry::{Entry, Record, Upload};
pub use error::{
    IdError, KeyError, PemError, RecordError, TYK_BAD_KEY, TYK_KEY_MISMATCH, TYK_KEY_TYPE_MISMATCH,
    TYK_NO_CERTIFICATE_BLOCK, TYK_NOT_PEM, UploadError,
};
pub use id::{CertId, FINGERPRINT_HEX_LEN, Fingerprint, MAX_ORG_ID_LEN, OrgId, SpkiPin};
pub use key::{KeyEncoding, PrivateKey};
pub use meta::{KeyInfo, Metadata, Name, NameAttribute, Validity};
pub use seal::{EncodingSecret, KeyFormat, LEGACY_LABEL, MODERN_LABEL, StoredKey};

pub use rustls_pki_types::{CertificateDer, SubjectPublicKeyInfoDer};
pub use time::{Duration, OffsetDateTime};
