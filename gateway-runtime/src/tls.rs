//! rustls settings from Tyk's configuration: versions, cipher suite names, the crypto provider.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::crypto::ring::cipher_suite as suites;
use rustls::{SupportedCipherSuite, SupportedProtocolVersion};

use crate::config::{TLS12, TLS13};

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
pub fn cipher_suites(names: &[String]) -> Result<Vec<SupportedCipherSuite>, String> {
    let defaults = rustls::crypto::ring::DEFAULT_CIPHER_SUITES;
    if names.is_empty() {
        return Ok(defaults.to_vec());
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
            return Err(if is_known_weak(name) {
                format!(
                    "{name} is a weak suite that certgate does not offer; use ECDHE with AES-GCM or ChaCha20-Poly1305"
                )
            } else {
                format!("{name} is not a known cipher suite name")
            });
        };
        if !chosen.contains(suite) {
            chosen.push(*suite);
        }
    }
    Ok(chosen)
}

/// A ring provider limited to `suites`.
pub(crate) fn provider_with(suites: Vec<SupportedCipherSuite>) -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        cipher_suites: suites,
        ..rustls::crypto::ring::default_provider()
    })
}

/// The protocol versions between `min` and `max` (771 = 1.2, 772 = 1.3).
pub(crate) fn protocol_versions(min: u16, max: u16) -> Vec<&'static SupportedProtocolVersion> {
    let mut versions = Vec::new();
    if min <= TLS13 && max >= TLS13 {
        versions.push(&rustls::version::TLS13);
    }
    if min <= TLS12 && max >= TLS12 {
        versions.push(&rustls::version::TLS12);
    }
    versions
}

/// Implements the signature checks of rustls' `ServerCertVerifier` and `ClientCertVerifier`
/// (TLS 1.2, TLS 1.3, supported schemes) with the algorithms at `self.<field path>`.
macro_rules! verify_signatures_with {
    ($($field:ident).+) => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.$($field).+)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.$($field).+)
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.$($field).+.supported_schemes()
        }
    };
}
pub(crate) use verify_signatures_with;

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
                .contains("weak")
        );
        assert!(
            cipher_suites(&["NOPE".into()])
                .unwrap_err()
                .contains("not a known")
        );
        assert_eq!(
            cipher_suites(&[]).unwrap().len(),
            rustls::crypto::ring::DEFAULT_CIPHER_SUITES.len()
        );
    }

    #[test]
    fn versions_follow_min_and_max() {
        assert_eq!(protocol_versions(TLS12, TLS13).len(), 2);
        assert_eq!(protocol_versions(TLS13, TLS13), [&rustls::version::TLS13]);
        assert_eq!(protocol_versions(TLS12, TLS12), [&rustls::version::TLS12]);
    }
}
