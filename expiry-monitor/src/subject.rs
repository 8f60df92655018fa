//! What the monitor needs to know about a certificate.

use std::sync::Arc;

use cert_store::LoadedCert;
use time::OffsetDateTime;
use tls_core::{Fingerprint, Metadata};

/// The little the monitor needs about a certificate: its leaf fingerprint, validity and subject
/// CN. Build it once, when the certificate is loaded, and keep it beside the certificate: it is
/// what [`ExpiryMonitor::observe`](crate::ExpiryMonitor::observe) takes on the request path, and
/// cloning it copies a few dozen bytes and bumps one reference count.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CertSubject {
    fingerprint: Fingerprint,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    name: Arc<str>,
}

impl CertSubject {
    /// A subject from its parts. `name` is the leaf's subject CN (empty when it has none).
    pub fn new(
        fingerprint: Fingerprint,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
        name: impl Into<Arc<str>>,
    ) -> Self {
        Self {
            fingerprint,
            not_before,
            not_after,
            name: name.into(),
        }
    }

    /// The subject of a certificate's metadata; `None` for a standalone public key, which does
    /// not expire. (Tyk reports such entries as long expired, with the hash of empty bytes; we
    /// leave them out.)
    pub fn from_metadata(metadata: &Metadata) -> Option<Self> {
        if metadata.is_public_key {
            return None;
        }
        Some(Self::new(
            metadata.fingerprint,
            metadata.not_before?,
            metadata.not_after?,
            metadata.subject.common_name.as_deref().unwrap_or_default(),
        ))
    }

    /// The subject of a certificate loaded from the store; `None` for a public key.
    pub fn from_loaded(cert: &LoadedCert) -> Option<Self> {
        Self::from_metadata(cert.metadata())
    }

    /// SHA-256 of the leaf's DER: the event's `cert_id`.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    /// Start of validity.
    pub fn not_before(&self) -> OffsetDateTime {
        self.not_before
    }

    /// End of validity.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// The leaf's subject CN: the event's `cert_name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn shared_name(&self) -> &Arc<str> {
        &self.name
    }
}
