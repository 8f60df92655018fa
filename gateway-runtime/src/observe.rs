//! Where the runtime reports certificate use to the expiry monitor.

use cert_store::LoadedCert;

/// How a certificate was used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UseRole {
    /// Served in a handshake.
    Server,
    /// Presented by a client and accepted.
    Client,
    /// Presented to an upstream.
    Upstream,
}

/// Receives certificate uses on the hot path; must return at once.
pub(crate) trait CertObserver: Send + Sync {
    /// `cert` was used in `role` for `api_id` (empty when no API is known).
    fn observe(&self, cert: &LoadedCert, role: UseRole, api_id: &str);
}

/// An observer that ignores everything (tests).
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct NoObserver;

#[cfg(test)]
impl CertObserver for NoObserver {
    fn observe(&self, _cert: &LoadedCert, _role: UseRole, _api_id: &str) {}
}
