//! The certificate page's settings: `certificate_ui` in the configuration, and what the page
//! takes from the rest of the configuration. No other part of the crate is needed here, so the
//! configuration can name these types without depending on the page.

use serde::Deserialize;

/// `certificate_ui` in the configuration: the certificate page.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default)]
#[non_exhaustive]
pub struct CertificateUiConfig {
    /// Serve the page (off by default; the demo switches it on).
    pub enabled: bool,
    /// Where the page lives on the control API's listener; starts and ends with `/`.
    pub path: String,
    /// How long a sign-in lasts, in seconds.
    pub session_ttl_seconds: u64,
}

impl Default for CertificateUiConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            path: "/ui/".into(),
            session_ttl_seconds: 3600,
        }
    }
}

impl CertificateUiConfig {
    /// Checks the path and the session lifetime.
    pub fn validate(&self) -> Result<(), String> {
        let path = &self.path;
        let plain = path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~'));
        if !path.starts_with('/')
            || !path.ends_with('/')
            || path.len() < 3
            || !plain
            || path.contains("//")
            || path.split('/').any(|s| s == "." || s == "..")
        {
            return Err(format!(
                "path {path:?} must be like \"/ui/\": start and end with '/', plain segments only"
            ));
        }
        if path.starts_with("/tyk/") || path == "/hello/" || path == "/metrics/" {
            return Err(format!("path {path:?} is taken by the control API"));
        }
        if !(60..=30 * 86_400).contains(&self.session_ttl_seconds) {
            return Err(format!(
                "session_ttl_seconds {} must be from 60 to 2592000 (30 days)",
                self.session_ttl_seconds
            ));
        }
        Ok(())
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_path_and_session_lifetime_are_checked() {
        let ok = CertificateUiConfig::default();
        assert_eq!(ok.validate(), Ok(()));
        for path in [
            "ui/", "/ui", "/", "//", "/a/../b/", "/tyk/ui/", "/u i/", "/a//b/",
        ] {
            let config = CertificateUiConfig {
                path: path.into(),
                ..CertificateUiConfig::default()
            };
            assert!(config.validate().is_err(), "{path}");
        }
        let config = CertificateUiConfig {
            path: "/certificates/".into(),
            session_ttl_seconds: 59,
            ..CertificateUiConfig::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .contains("session_ttl_seconds")
        );
    }
}
