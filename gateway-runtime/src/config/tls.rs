//! TLS settings as `tyk.conf` writes them, parsed once: protocol versions (Go's wire numbers,
//! 0 for the default) and cipher suite names (Go's, and IANA's for TLS 1.3).

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::{SupportedCipherSuite, SupportedProtocolVersion};
use tls_core::crypto::cipher_suite as suites;

use super::{ConfigError, invalid};

/// TLS protocol versions as `tyk.conf` writes them (Go's `tls.VersionTLS12` = 771, 1.3 = 772).
pub const TLS12: u16 = TlsVersion::Tls12.wire();
/// TLS 1.3.
pub const TLS13: u16 = TlsVersion::Tls13.wire();

/// A TLS protocol version certgate offers. `tyk.conf` writes it as Go's number (771, 772), with
/// 0 for the default; [`TlsVersion::from_tyk`] reads that form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum TlsVersion {
    /// TLS 1.2 (771).
    Tls12,
    /// TLS 1.3 (772).
    Tls13,
}

impl TlsVersion {
    /// The number `tyk.conf` writes for this version.
    pub const fn wire(self) -> u16 {
        match self {
            Self::Tls12 => 771,
            Self::Tls13 => 772,
        }
    }

    /// Reads `value` as `tyk.conf` writes it: 0 is `default` (the one place where "0 means
    /// the default" is decided), 771 TLS 1.2, 772 TLS 1.3. Anything else is an error naming
    /// `field`.
    pub fn from_tyk(field: &str, value: u16, default: Self) -> Result<Self, ConfigError> {
        match value {
            0 => Ok(default),
            TLS12 => Ok(Self::Tls12),
            TLS13 => Ok(Self::Tls13),
            769 | 770 => Err(invalid(
                field,
                format!(
                    "{value} is TLS 1.0/1.1, which certgate does not offer; use 771 (TLS 1.2) or 772 (TLS 1.3)"
                ),
            )),
            _ => Err(invalid(
                field,
                format!("{value} is not a TLS version; use 771 (TLS 1.2) or 772 (TLS 1.3)"),
            )),
        }
    }

    /// The rustls protocol versions from `min` to `max`, newest first (none when `min > max`).
    pub(crate) fn range(min: Self, max: Self) -> Vec<&'static SupportedProtocolVersion> {
        let mut versions = Vec::new();
        if min <= Self::Tls13 && max >= Self::Tls13 {
            versions.push(&rustls::version::TLS13);
        }
        if min <= Self::Tls12 && max >= Self::Tls12 {
            versions.push(&rustls::version::TLS12);
        }
        versions
    }
}

impl From<TlsVersion> for u16 {
    fn from(version: TlsVersion) -> Self {
        version.wire()
    }
}

/// Suites certgate offers, by the names Go and Tyk use (and the IANA names of TLS 1.3).
const NAMED_SUITES: &[(&str, SupportedCipherSuite)] = &[
    ("TLS_AES_128_GCM_SHA256", suites::TLS13_AES_128_GCM_SHA256),
    ("TLS_AES_256_GCM_SHA384", suites::TLS13_AES_256_GCM_SHA384),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        suites::TLS13_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        suites::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        suites::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        suites::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
        suites::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        suites::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        suites::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        suites::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        suites::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// A cipher suite name in `ssl_ciphers` that certgate does not offer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CipherSuiteError {
    /// A suite Go knows that certgate refuses (CBC, RC4, 3DES, static RSA key exchange).
    #[error(
        "{name} is a weak suite that certgate does not offer; use ECDHE with AES-GCM or ChaCha20-Poly1305"
    )]
    Weak {
        /// The name as written.
        name: String,
    },
    /// Not a cipher suite name certgate knows.
    #[error("{name} is not a known cipher suite name")]
    Unknown {
        /// The name as written.
        name: String,
    },
}

/// Go suite names certgate knows but refuses to offer (CBC, RC4, 3DES, static RSA key exchange).
fn is_known_weak(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    upper.starts_with("TLS_")
        && (upper.contains("_CBC_")
            || upper.contains("RC4")
            || upper.contains("3DES")
            || upper.starts_with("TLS_RSA_"))
}

/// The suites named in `ssl_ciphers` (case-insensitive); empty means rustls' defaults. TLS 1.3
/// suites are always kept, as in Go, which does not let TLS 1.3 suites be configured.
pub fn cipher_suites(names: &[String]) -> Result<Vec<SupportedCipherSuite>, CipherSuiteError> {
    CipherSuites::from_names(names).map(|suites| suites.0)
}

/// Cipher suites parsed from `ssl_ciphers` names (see [`cipher_suites`]). Equal when they hold
/// the same suites in the same order.
#[derive(Clone, Debug)]
pub(crate) struct CipherSuites(Vec<SupportedCipherSuite>);

impl CipherSuites {
    /// Parses `names` (see [`cipher_suites`]).
    pub(crate) fn from_names(names: &[String]) -> Result<Self, CipherSuiteError> {
        let defaults = tls_core::crypto::DEFAULT_CIPHER_SUITES;
        if names.is_empty() {
            return Ok(Self(defaults.to_vec()));
        }
        let mut chosen: Vec<SupportedCipherSuite> = defaults
            .iter()
            .copied()
            .filter(|s| s.tls13().is_some())
            .collect();
        for name in names {
            let Some((_, suite)) = NAMED_SUITES
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name.trim()))
            else {
                let name = name.clone();
                return Err(if is_known_weak(&name) {
                    CipherSuiteError::Weak { name }
                } else {
                    CipherSuiteError::Unknown { name }
                });
            };
            if !chosen.contains(suite) {
                chosen.push(*suite);
            }
        }
        Ok(Self(chosen))
    }

    /// The backend's provider (`tls_core::crypto`) limited to these suites.
    pub(crate) fn provider(&self) -> Arc<CryptoProvider> {
        Arc::new(CryptoProvider {
            cipher_suites: self.0.clone(),
            ..tls_core::crypto::provider()
        })
    }

    fn ids(&self) -> impl Iterator<Item = u16> + '_ {
        self.0.iter().map(|suite| u16::from(suite.suite()))
    }
}

impl PartialEq for CipherSuites {
    fn eq(&self, other: &Self) -> bool {
        self.ids().eq(other.ids())
    }
}

impl Eq for CipherSuites {}

impl std::hash::Hash for CipherSuites {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        for id in self.ids() {
            id.hash(state);
        }
    }
}

/// The listener's TLS settings (`http_server_options`), parsed once: every snapshot's rustls
/// configurations are built from these.
#[derive(Clone, Debug)]
pub(crate) struct ServerTls {
    /// `min_version` to `max_version`, newest first.
    pub(crate) versions: Vec<&'static SupportedProtocolVersion>,
    /// A provider limited to `ssl_ciphers`.
    pub(crate) provider: Arc<CryptoProvider>,
}

impl super::HttpServerOptions {
    /// Parses `min_version`, `max_version` and `ssl_ciphers`; errors name the field.
    pub(crate) fn tls(&self) -> Result<ServerTls, ConfigError> {
        let min = TlsVersion::from_tyk(
            "http_server_options.min_version",
            self.min_version,
            TlsVersion::Tls12,
        )?;
        let max = TlsVersion::from_tyk(
            "http_server_options.max_version",
            self.max_version,
            TlsVersion::Tls13,
        )?;
        if min > max {
            return Err(invalid(
                "http_server_options.min_version",
                "is above max_version",
            ));
        }
        let suites = CipherSuites::from_names(&self.ssl_ciphers)
            .map_err(|reason| invalid("http_server_options.ssl_ciphers", reason.to_string()))?;
        Ok(ServerTls {
            versions: TlsVersion::range(min, max),
            provider: suites.provider(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_names_map_to_suites_and_weak_ones_are_refused() {
        let chosen = cipher_suites(&["tls_ecdhe_rsa_with_aes_128_gcm_sha256".into()]).unwrap();
        assert!(chosen.contains(&suites::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256));
        assert!(!chosen.contains(&suites::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384));
        assert!(
            chosen.iter().any(|s| s.tls13().is_some()),
            "TLS 1.3 suites stay"
        );
        assert!(
            cipher_suites(&["TLS_RSA_WITH_AES_128_CBC_SHA".into()])
                .unwrap_err()
                .to_string()
                .contains("weak")
        );
        assert!(
            cipher_suites(&["NOPE".into()])
                .unwrap_err()
                .to_string()
                .contains("not a known")
        );
        assert_eq!(
            cipher_suites(&[]).unwrap().len(),
            tls_core::crypto::DEFAULT_CIPHER_SUITES.len()
        );
    }

    #[test]
    fn versions_follow_min_and_max() {
        use TlsVersion::{Tls12, Tls13};
        assert_eq!(TlsVersion::range(Tls12, Tls13).len(), 2);
        assert_eq!(TlsVersion::range(Tls13, Tls13), [&rustls::version::TLS13]);
        assert_eq!(TlsVersion::range(Tls12, Tls12), [&rustls::version::TLS12]);
    }

    #[test]
    fn zero_is_the_default_and_tyk_numbers_map_to_versions() {
        let read = |value| TlsVersion::from_tyk("f", value, TlsVersion::Tls13);
        assert_eq!(read(0).unwrap(), TlsVersion::Tls13);
        assert_eq!(read(771).unwrap(), TlsVersion::Tls12);
        assert_eq!(read(772).unwrap(), TlsVersion::Tls13);
        assert_eq!(u16::from(TlsVersion::Tls12), TLS12);
        for (value, says) in [(770, "TLS 1.0/1.1"), (773, "not a TLS version")] {
            let err = read(value).unwrap_err().to_string();
            assert!(err.contains("f: ") && err.contains(says), "{err}");
        }
    }
}
