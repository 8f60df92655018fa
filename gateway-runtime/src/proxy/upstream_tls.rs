//! rustls client configurations for upstreams: trusted roots, protocol versions and cipher
//! suites, the server verifier (webpki, webpki plus pins, or a [`super::danger`] one), the
//! client certificate, and ALPN (`h2`, `http/1.1`).

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, ClientConfig, RootCertStore, SignatureScheme};
use tls_core::CertId;

use super::danger;
use super::pins::{PinSet, PinningVerifier};
use crate::config::{CipherSuiteError, CipherSuites, ConfigError, TlsVersion};

/// Why an API's upstream TLS settings cannot be used (its requests are answered 502 with this
/// message).
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamTlsError {
    /// `proxy.transport.ssl_min_version` is not a TLS version certgate offers.
    #[error("{0}")]
    Version(#[source] ConfigError),
    /// `proxy.transport.ssl_ciphers` names a suite certgate does not offer.
    #[error("proxy.transport.ssl_ciphers: {0}")]
    Ciphers(#[source] CipherSuiteError),
    /// rustls finds no TLS version that the chosen cipher suites can use.
    #[error("no usable TLS version and cipher suite: {0}")]
    NoUsableVersion(#[source] rustls::Error),
}

/// Everything that makes one upstream TLS configuration differ from another. APIs whose
/// upstreams have equal settings share one client, hence one connection pool.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TlsSettings {
    /// The client certificate presented to the upstream.
    pub(crate) client_cert: Option<CertId>,
    /// The pins that apply (`None`: no pinning).
    pub(crate) pins: Option<Arc<PinSet>>,
    /// Skip chain and host-name verification (pin-only when `pins` is set).
    pub(crate) skip_verify: bool,
    /// Lowest TLS version.
    pub(crate) min_version: TlsVersion,
    /// The suites of `proxy.transport.ssl_ciphers` (rustls' defaults when it is empty).
    pub(crate) ciphers: CipherSuites,
}

/// Trusted roots for upstream verification: the system's (loaded once per process, on first
/// need) plus extra roots given at start-up.
#[derive(Debug)]
pub(crate) struct Trust {
    extra: Vec<CertificateDer<'static>>,
    use_system: bool,
    roots: OnceLock<Arc<RootCertStore>>,
}

impl Trust {
    pub(crate) fn new(extra: Vec<CertificateDer<'static>>, use_system: bool) -> Self {
        Self {
            extra,
            use_system,
            roots: OnceLock::new(),
        }
    }

    /// The root store, built on first use.
    pub(crate) fn roots(&self) -> Arc<RootCertStore> {
        Arc::clone(self.roots.get_or_init(|| {
            let mut roots = RootCertStore::empty();
            if self.use_system {
                let (added, ignored) = roots.add_parsable_certificates(system_roots().to_vec());
                tracing::debug!(added, ignored, "system roots for upstream TLS");
            }
            for root in &self.extra {
                if let Err(error) = roots.add(root.clone()) {
                    tracing::warn!(%error, "extra upstream root ignored");
                }
            }
            if roots.is_empty() {
                tracing::warn!(
                    "no trusted root certificates for upstream TLS: HTTPS upstreams fail verification unless ssl_insecure_skip_verify is set"
                );
            }
            Arc::new(roots)
        }))
    }
}

/// The system's roots (`rustls-native-certs`, which honours `SSL_CERT_FILE` and
/// `SSL_CERT_DIR`), read once per process.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static SYSTEM: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    SYSTEM.get_or_init(|| {
        let loaded = rustls_native_certs::load_native_certs();
        for error in &loaded.errors {
            tracing::warn!(%error, "while loading the system's root certificates");
        }
        if loaded.certs.is_empty() {
            tracing::warn!("the system has no root certificates");
        }
        loaded.certs
    })
}

/// The client configuration for `settings`. `client_key` is the key of
/// `settings.client_cert`; `api_id` and `host` name the first upstream that uses it, in logs.
pub(crate) fn client_config(
    settings: &TlsSettings,
    client_key: Option<Arc<CertifiedKey>>,
    trust: &Trust,
    api_id: &str,
    host: &str,
) -> Result<ClientConfig, UpstreamTlsError> {
    let provider = settings.ciphers.provider();
    let algorithms = provider.signature_verification_algorithms;
    let versions = TlsVersion::range(settings.min_version, TlsVersion::Tls13);
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(UpstreamTlsError::NoUsableVersion)?;
    let verifier: Arc<dyn ServerCertVerifier> = if settings.skip_verify {
        danger::insecure_verifier(algorithms, settings.pins.clone(), api_id, host)
    } else {
        let roots = trust.roots();
        match WebPkiServerVerifier::builder_with_provider(Arc::clone(&roots), provider).build() {
            Ok(webpki) => match &settings.pins {
                Some(pins) => Arc::new(PinningVerifier::new(
                    webpki,
                    roots,
                    algorithms,
                    Arc::clone(pins),
                )),
                None => webpki,
            },
            Err(error) => {
                tracing::warn!(api_id, upstream = host, %error, "upstream certificates cannot be verified");
                Arc::new(NoTrustedRoots { algorithms })
            }
        }
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match client_key {
        Some(key) => builder.with_client_cert_resolver(Arc::new(AlwaysPresent(key))),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Presents one client certificate whatever CA names the server lists (Go's
/// `GetClientCertificate`, as Tyk uses it).
#[derive(Debug)]
struct AlwaysPresent(Arc<CertifiedKey>);

impl ResolvesClientCert for AlwaysPresent {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Refuses every server certificate: there are no trusted roots.
#[derive(Debug)]
struct NoTrustedRoots {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for NoTrustedRoots {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Err(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ))
    }

    crate::tls::verify_signatures_with!(algorithms);
}
