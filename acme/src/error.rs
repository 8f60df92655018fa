//! What can go wrong while obtaining or renewing a certificate.

/// Why a certificate could not be obtained, or the ACME settings cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcmeError {
    /// A setting in `http_server_options.acme` is invalid.
    #[error("http_server_options.acme.{field}: {reason}")]
    Config {
        /// The setting, e.g. `directory`.
        field: &'static str,
        /// What is wrong with it and what to do.
        reason: String,
    },
    /// The CA refused a request or answered something unusable.
    #[error("the ACME CA refused or failed: {0}")]
    Ca(String),
    /// The CA could not validate the challenge for a name.
    #[error("the ACME CA could not validate {name}: {reason}")]
    Validation {
        /// The name.
        name: String,
        /// The CA's explanation.
        reason: String,
    },
    /// None of the configured challenge types is offered by the CA for a name.
    #[error("the ACME CA offers none of the configured challenge types for {name}")]
    NoUsableChallenge {
        /// The name.
        name: String,
    },
    /// Another process holds the ordering lock for the name.
    #[error("another process is ordering a certificate for {name}")]
    Busy {
        /// The name.
        name: String,
    },
    /// A newer lock holder took over while this process was ordering: its result was discarded.
    #[error("the order for {name} was taken over by another process; this result was discarded")]
    Superseded {
        /// The name.
        name: String,
    },
    /// The shared coordination state (memory or Redis) cannot be read or written.
    #[error("ACME coordination storage: {0}")]
    Coordination(String),
    /// The certificate store refused or failed.
    #[error("certificate store: {0}")]
    Store(#[from] cert_store::StoreError),
    /// The stored ACME account cannot be opened (wrong encoding secret, damaged record).
    #[error("the stored ACME account cannot be opened: {0}")]
    Account(String),
    /// A DNS provider could not publish or remove a `dns-01` record.
    #[error("DNS provider: {0}")]
    Dns(String),
}

impl AcmeError {
    /// Whether trying again later can help (everything but configuration errors).
    pub fn is_temporary(&self) -> bool {
        !matches!(self, Self::Config { .. } | Self::NoUsableChallenge { .. })
    }

    pub(crate) fn config(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Config {
            field,
            reason: reason.into(),
        }
    }
}

impl From<instant_acme::Error> for AcmeError {
    fn from(error: instant_acme::Error) -> Self {
        match error {
            instant_acme::Error::Api(problem) => Self::Ca(problem.to_string()),
            instant_acme::Error::Timeout(_) => Self::Ca("timed out waiting for the CA".to_owned()),
            instant_acme::Error::Unsupported(what) => Self::Ca(format!("not supported: {what}")),
            other => {
                // Transport errors name addresses and OS errors: kept out of what users see.
                tracing::debug!(error = %other, "ACME request failed");
                Self::Ca(
                    "cannot reach the ACME CA or read its answer (details in the debug log)"
                        .to_owned(),
                )
            }
        }
    }
}
