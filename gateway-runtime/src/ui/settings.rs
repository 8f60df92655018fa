//! What the certificate page takes from the gateway's configuration.

use crate::config::CertificateUiConfig;

/// What the page takes from the gateway's configuration.
#[derive(Clone, Debug)]
pub(crate) struct PageSettings {
    /// `certificate_ui`.
    pub(crate) page: CertificateUiConfig,
    /// The control API secret, which signs an operator in.
    pub(crate) secret: String,
    /// `control_api_hostname`: when set, the only host the page answers for.
    pub(crate) hostname: String,
    /// How long before its expiry a certificate is shown as expiring soon.
    pub(crate) warning: time::Duration,
    /// `max_request_body_bytes`.
    pub(crate) body_limit: usize,
    /// `request_read_timeout_seconds`.
    pub(crate) read_timeout: std::time::Duration,
}
