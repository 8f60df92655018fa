//! What the monitor needs to know about a certificate, and the role it plays.

use std::sync::Arc;

use cert_store::{CertRole, LoadedCert};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tls_core::{Fingerprint, Metadata};

/// How a certificate is used when it is observed: Tyk's `cert_role`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Served to clients by a TLS listener.
    Server,
    /// Trusted to authenticate clients (an mTLS allow-list entry).
    Client,
    /// Presented to an upstream.
    Upstream,
}

impl Role {
    /// The lowercase name used in events: `server`, `client` or `upstream`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::Client => "client",
            Self::Upstream => "upstream",
        }
    }

    /// The role for a usage-index role; `None` for [`CertRole::Pin`] (a pinned public key does
    /// not expire).
    pub fn from_cert_role(role: CertRole) -> Option<Self> {
        match role {
            CertRole::Server => Some(Self::Server),
            CertRole::Client => Some(Self::Client),
            CertRole::Upstream => Some(Self::Upstream),
            _ => None,
        }
    }
}

impl core::fmt::Display for Role {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

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
