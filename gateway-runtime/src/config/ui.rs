//! `certificate_ui`: the certificate page on the control API's listener.

use serde::Deserialize;

use super::{ConfigError, invalid};

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
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.problem()
            .map_err(|reason| invalid("certificate_ui", reason))
    }

    /// What is wrong with the path or the session lifetime.
    fn problem(&self) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_path_and_session_lifetime_are_checked() {
        let ok = CertificateUiConfig::default();
        assert!(ok.validate().is_ok());
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
                .to_string()
                .contains("certificate_ui: session_ttl_seconds")
        );
    }
}
