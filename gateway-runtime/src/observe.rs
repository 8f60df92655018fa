//! Where the runtime reports certificate use to the expiry monitor.

use cert_store::{CertRole, LoadedCert};

/// Receives certificate uses on the hot path; must return at once.
pub(crate) trait CertObserver: Send + Sync {
    /// `cert` was used in `role` (server, client or upstream) for `api_id` (empty when no API
    /// is known).
    fn observe(&self, cert: &LoadedCert, role: CertRole, api_id: &str);
}

/// An observer that ignores everything (tests).
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct NoObserver;

#[cfg(test)]
impl CertObserver for NoObserver {
    fn observe(&self, _cert: &LoadedCert, _role: CertRole, _api_id: &str) {}
}
