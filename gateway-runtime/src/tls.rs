//! Signature checks shared by certgate's rustls verifiers.

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
