//! Verification weaker than a TLS client's default, for settings that explicitly ask for it
//! (certctl's `--insecure`, an upstream's `ssl_insecure_skip_verify`). The caller says so in its
//! log or on standard error whenever it uses one.
//!
//! [`AcceptAnyServerCertificate`] accepts whatever certificate the server sends, with no trusted
//! roots, host name or validity checked; the handshake's signatures are still verified, with the
//! algorithms it is given (take them from the [`crate::crypto`] provider the connection uses),
//! so the server holds the key of the certificate it sent.

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// Accepts any server certificate; checks only the handshake's signatures (see the module docs).
///
/// ```
/// use std::sync::Arc;
/// use rustls::client::danger::ServerCertVerifier as _;
/// use tls_core::danger::AcceptAnyServerCertificate;
///
/// let provider = tls_core::default_provider();
/// let algorithms = provider.signature_verification_algorithms;
/// let verifier = Arc::new(AcceptAnyServerCertificate::new(algorithms));
/// assert_eq!(verifier.supported_verify_schemes(), algorithms.supported_schemes());
/// let config = rustls::ClientConfig::builder_with_provider(provider)
///     .with_safe_default_protocol_versions()?
///     .dangerous()
///     .with_custom_certificate_verifier(verifier)
///     .with_no_client_auth();
/// # drop(config);
/// # Ok::<(), rustls::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct AcceptAnyServerCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl AcceptAnyServerCertificate {
    /// A verifier checking handshake signatures with `algorithms` (a provider's
    /// `signature_verification_algorithms`).
    pub fn new(algorithms: WebPkiSupportedAlgorithms) -> Self {
        Self { algorithms }
    }
}

impl ServerCertVerifier for AcceptAnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
