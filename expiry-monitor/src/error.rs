//! Errors of the configuration and of the monitor.

use cert_store::StoreError;

/// A configuration value that cannot be used. `setting` is the JSON field
/// (`warning_threshold_days`), or the environment variable the gateway read it from.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The value is not a whole number.
    #[error("{setting}: `{value}` is not valid; expected {expected}")]
    Invalid {
        /// The field or environment variable.
        setting: String,
        /// The value given (shortened).
        value: String,
        /// What would be accepted.
        expected: String,
    },
    /// The value is a whole number, but negative or too large.
    #[error("{setting}: `{value}` is out of range; expected {expected}")]
    OutOfRange {
        /// The field or environment variable.
        setting: String,
        /// The value given (shortened).
        value: String,
        /// What would be accepted.
        expected: String,
    },
}

/// Why the monitor cannot start, or cannot do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MonitorError {
    /// The configuration is out of range.
    #[error("expiry monitor configuration: {0}")]
    Config(#[from] ConfigError),
    /// `start` was called outside a Tokio runtime; the monitor needs one for its tasks.
    #[error("the expiry monitor must be started inside a Tokio runtime")]
    NoRuntime,
    /// `sweep_interval_seconds` is set, or a sweep was asked for, but the monitor was built
    /// without a certificate store to sweep.
    #[error(
        "a sweep needs a certificate store: pass one to ExpiryMonitorBuilder::store, or set sweep_interval_seconds to 0"
    )]
    NoStore,
    /// The certificate store failed (listing, or a temporary failure reading a record); the
    /// sweep stopped and is tried again at the next interval.
    #[error("sweep: the certificate store failed: {0}")]
    Store(#[source] StoreError),
    /// The monitor's worker has stopped (the monitor was shut down).
    #[error("the expiry monitor has stopped")]
    Stopped,
}
