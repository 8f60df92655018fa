//! The cryptography backend of every rustls config and signature check in certgate: *ring* by
//! default, aws-lc-rs with the `aws-lc-rs` feature (faster RSA on CPUs that *ring* has no
//! special code for). Code that names cipher suites, key-exchange groups or a ticketer takes
//! them from here, so one feature switches them all. (Keys at rest are sealed with *ring*
//! either way: that is storage, not TLS.)

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
#[cfg(feature = "aws-lc-rs")]
pub use rustls::crypto::aws_lc_rs::{DEFAULT_CIPHER_SUITES, Ticketer, cipher_suite, kx_group};
#[cfg(not(feature = "aws-lc-rs"))]
pub use rustls::crypto::ring::{DEFAULT_CIPHER_SUITES, Ticketer, cipher_suite, kx_group};

/// The backend's name: `"ring"` or `"aws-lc-rs"`.
pub const BACKEND: &str = if cfg!(feature = "aws-lc-rs") {
    "aws-lc-rs"
} else {
    "ring"
};

/// The backend's provider with its defaults (cipher suites, groups, signature algorithms).
pub fn provider() -> CryptoProvider {
    #[cfg(feature = "aws-lc-rs")]
    return rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(not(feature = "aws-lc-rs"))]
    return rustls::crypto::ring::default_provider();
}

/// [`provider`], shared: what certgate's rustls configs are built with.
pub fn default_provider() -> Arc<CryptoProvider> {
    Arc::new(provider())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_provider_is_the_backend_named() {
        let provider = provider();
        assert!(!provider.cipher_suites.is_empty());
        assert_eq!(provider.cipher_suites, DEFAULT_CIPHER_SUITES);
        // The key loader is the backend's own (`Ring` or `AwsLcRs`): the feature really
        // switched the provider, not only the name.
        let loader = format!("{:?}", provider.key_provider);
        let expected = if cfg!(feature = "aws-lc-rs") {
            "AwsLcRs"
        } else {
            "Ring"
        };
        assert!(loader.contains(expected), "{loader}");
        assert_eq!(
            BACKEND,
            if cfg!(feature = "aws-lc-rs") {
                "aws-lc-rs"
            } else {
                "ring"
            }
        );
    }
}
