//! Errors of storage backends and of the certificate manager.

use std::sync::Arc;

use tls_core::{CertId, IdError, KeyError, RecordError, UploadError};

/// What kind of storage failure happened; decides whether retrying can help.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StorageErrorKind {
    /// The storage cannot be reached (connection refused or lost). Temporary.
    Unavailable,
    /// The storage did not answer in time. Temporary.
    Timeout,
    /// The storage answered with data that breaks the layout (e.g. a malformed index entry).
    Corrupt,
    /// The storage refused the operation (permissions, read-only replica, wrong password).
    Rejected,
    /// Anything else.
    Other,
}

/// A storage backend failure.
#[derive(Clone, Debug, thiserror::Error)]
#[error("storage {}: {message}", kind_text(*kind))]
pub struct StorageError {
    kind: StorageErrorKind,
    message: String,
    #[source]
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

fn kind_text(kind: StorageErrorKind) -> &'static str {
    match kind {
        StorageErrorKind::Unavailable => "unavailable",
        StorageErrorKind::Timeout => "timed out",
        StorageErrorKind::Corrupt => "data is corrupt",
        StorageErrorKind::Rejected => "refused the operation",
        StorageErrorKind::Other => "error",
    }
}

impl StorageError {
    /// A new error of `kind`.
    pub fn new(kind: StorageErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the underlying error.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> StorageErrorKind {
        self.kind
    }

    /// True when retrying later can succeed (the storage is unreachable or slow).
    pub fn is_temporary(&self) -> bool {
        matches!(
            self.kind,
            StorageErrorKind::Unavailable | StorageErrorKind::Timeout
        )
    }
}

/// An error of the [`CertStore`](crate::CertStore) manager.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// `add` of a certificate whose ID is already stored. Tyk's message.
    #[error("Certificate with {id} id already exists")]
    AlreadyExists {
        /// The existing ID.
        id: CertId,
    },
    /// The upload was refused; nothing was stored.
    #[error(transparent)]
    Upload(#[from] UploadError),
    /// An org ID or certificate ID that is not well formed.
    #[error(transparent)]
    Id(#[from] IdError),
    /// No certificate has this ID.
    #[error("certificate {id} not found")]
    NotFound {
        /// The ID asked for.
        id: CertId,
    },
    /// The stored record cannot be read.
    #[error("certificate {id}: {source}")]
    Record {
        /// The record's ID.
        id: CertId,
        /// What is wrong with it.
        source: RecordError,
    },
    /// The private key cannot be encrypted, decrypted or used.
    #[error("certificate {id}: {source}")]
    Key {
        /// The record's ID.
        id: CertId,
        /// What went wrong.
        source: KeyError,
    },
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The record changed under a compare-and-set several times in a row. Retry.
    #[error("certificate {id} was changed concurrently; try again")]
    Conflict {
        /// The record's ID.
        id: CertId,
    },
    /// A certificate given as text (or named by a caller's reference) that cannot be loaded.
    #[error("certificate reference {reference:?}: {reason}")]
    Reference {
        /// What names it, shortened: `inline PEM`, a file name, the caller's reference.
        reference: String,
        /// Why it cannot be loaded.
        reason: String,
    },
}

impl StoreError {
    /// True when retrying later can succeed.
    pub fn is_temporary(&self) -> bool {
        match self {
            Self::Storage(e) => e.is_temporary(),
            Self::Conflict { .. } => true,
            _ => false,
        }
    }
}
