//! Upstream verification that is weaker than the default; used only when the configuration asks
//! for it, and logged at warn level whenever such a verifier is built.
//!
//! - [`AcceptAnyServerCertificate`] (tls-core's, which certctl's `--insecure` uses too):
//!   `proxy.transport.ssl_insecure_skip_verify` (or the global
//!   `proxy_ssl_insecure_skip_verify`) with no pins for the host. Any certificate is accepted;
//!   only the handshake signature is checked (the server holds the key of the certificate it
//!   sent).
//! - [`PinOnlyVerifier`], "pin-only" mode: skip-verify **and** pins for the host. There is no
//!   Tyk field for this: it is what Tyk always did with pins (reference §6.5), and certgate does
//!   it only under this explicit dangerous combination. No trusted roots and no host name are
//!   checked; the connection is accepted when the presented leaf's public key is pinned, or when
//!   the presented chain is validly signed (and in its validity period) from the leaf up to a
//!   presented certificate whose public key is pinned. A pinned certificate merely sent along,
//!   without signing the leaf, is not enough.
//!
//! Without skip-verify, pins add to chain and host-name verification
//! ([`super::pins::PinningVerifier`]).

use std::sync::Arc;

use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tls_core::danger::AcceptAnyServerCertificate;

use super::pins::{PinMismatch, PinSet, cert_pin};

/// The verifier for a skip-verify upstream: pin-only when `pins` are configured, else none.
/// `api_id` and `host` name the upstream in the warning.
pub(crate) fn insecure_verifier(
    algorithms: WebPkiSupportedAlgorithms,
    pins: Option<Arc<PinSet>>,
    api_id: &str,
    host: &str,
) -> Arc<dyn ServerCertVerifier> {
    match pins {
        Some(pins) => {
            tracing::warn!(
                api_id,
                upstream = host,
                "ssl_insecure_skip_verify with pinned public keys: upstream certificates are checked against the pins only (no trusted roots, no host name)"
            );
            Arc::new(PinOnlyVerifier { algorithms, pins })
        }
        None => {
            tracing::warn!(
                api_id,
                upstream = host,
                "ssl_insecure_skip_verify: upstream certificates are not verified"
            );
            Arc::new(AcceptAnyServerCertificate::new(algorithms))
        }
    }
}

/// Pins as the only check (see the module docs).
#[derive(Debug)]
pub(crate) struct PinOnlyVerifier {
    algorithms: WebPkiSupportedAlgorithms,
    pins: Arc<PinSet>,
}

impl ServerCertVerifier for PinOnlyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mismatch = || PinMismatch::into_rustls(&self.pins, end_entity, intermediates);
        if cert_pin(end_entity).is_some_and(|pin| self.pins.contains(&pin)) {
            return Ok(ServerCertVerified::assertion());
        }
        // The pinned certificates the server sent act as the only trust anchors.
        let anchors: Vec<_> = intermediates
            .iter()
            .filter(|der| cert_pin(der).is_some_and(|pin| self.pins.contains(&pin)))
            .filter_map(|der| webpki::anchor_from_trusted_cert(der).ok())
            .collect();
        if anchors.is_empty() {
            return Err(mismatch());
        }
        let leaf = webpki::EndEntityCert::try_from(end_entity).map_err(|_| mismatch())?;
        leaf.verify_for_usage(
            self.algorithms.all,
            &anchors,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .map(|_| ServerCertVerified::assertion())
        .map_err(|_| mismatch())
    }

    crate::tls::verify_signatures_with!(algorithms);
}
