//! Upstream public-key pinning (reference §6.5, with Tyk's defects fixed).
//!
//! A `pinned_public_keys` value is a comma-separated list of entries. Each entry is a literal pin
//! (64 hex characters, Tyk's form, or HPKP's `sha256/<base64>`) or a reference that
//! [`CertStore::resolve`] understands (a stored public-key or certificate ID, inline PEM, or a
//! file when file references are enabled). A reference contributes its SPKI pin; for a
//! certificate that is the leaf's public key (Tyk hashed the certificate, so a certificate
//! reference never matched). An entry that is both 64 hex characters and a stored ID is the
//! stored record. Entries are resolved when APIs or certificates are (re)loaded, never per
//! connection.
//!
//! [`PinningVerifier`] adds pinning to normal verification: it runs the webpki verifier (chain to
//! the trusted roots, validity, host name) and then requires a valid path from the presented
//! leaf to a trusted root that contains a pinned key (leaf, intermediate or trust anchor). A
//! pinned certificate that the server merely sends along, outside every valid path, does not
//! count. Pins as the only check exist only in [`super::danger`].

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use cert_store::{CertStore, StoreError};

use crate::config::CertificateRef;
use crate::retain::Retained;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, OtherError, RootCertStore};
use tls_core::{CertId, SpkiPin};

/// The pins that apply to one upstream host. Empty means every entry failed to resolve:
/// connections are refused rather than left unpinned.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct PinSet {
    pins: BTreeSet<SpkiPin>,
}

impl PinSet {
    /// A set of `pins`.
    #[cfg(test)]
    pub(crate) fn new(pins: impl IntoIterator<Item = SpkiPin>) -> Self {
        Self {
            pins: pins.into_iter().collect(),
        }
    }

    /// Whether `pin` is in the set.
    pub(crate) fn contains(&self, pin: &SpkiPin) -> bool {
        self.pins.contains(pin)
    }

    /// The pins, sorted.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &SpkiPin> {
        self.pins.iter()
    }
}

/// Resolves a `pinned_public_keys` value. Entries that cannot be resolved are logged and
/// skipped; `api_id` and `host` are for the logs.
#[cfg(test)]
pub(crate) async fn resolve_pins(
    store: &CertStore,
    value: &str,
    api_id: &str,
    host: &str,
) -> PinSet {
    let retained = Retained::new(Arc::default(), false);
    resolve_pins_keeping(store, &retained, value, api_id, host).await
}

/// [`resolve_pins`], serving stored public keys and certificates from their last good copies
/// when the store has lost them (see `retain`).
pub(crate) async fn resolve_pins_keeping(
    store: &CertStore,
    retained: &Retained,
    value: &str,
    api_id: &str,
    host: &str,
) -> PinSet {
    let mut pins = BTreeSet::new();
    let mut failures = 0usize;
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        match resolve_entry(store, retained, entry, api_id).await {
            Ok(pin) => {
                pins.insert(pin);
            }
            Err(reason) => {
                failures += 1;
                tracing::warn!(
                    api_id,
                    upstream = host,
                    entry = %describe_entry(entry),
                    %reason,
                    "upstream pin entry ignored"
                );
            }
        }
    }
    if pins.is_empty() {
        tracing::error!(
            api_id,
            upstream = host,
            failed_entries = failures,
            "no usable pin for this upstream: connections to it will be refused until the pins are fixed"
        );
    }
    PinSet { pins }
}

/// A `pinned_public_keys` entry that gives no pin.
#[derive(Debug, thiserror::Error)]
enum PinEntryError {
    /// It starts like an HPKP pin but is not one.
    #[error("not a valid sha256/<base64> pin")]
    BadPin,
    /// It is neither a pin nor a reference that resolves.
    #[error(
        "neither a pin (64 hex characters or sha256/<base64>) nor a usable public key or certificate reference: {0}"
    )]
    Unresolved(#[source] StoreError),
    /// It is not a reference either.
    #[error("{0}")]
    Reference(#[source] crate::config::CertificateRefError),
}

/// One entry: the stored record or inline PEM it names, else the literal pin it is.
async fn resolve_entry(
    store: &CertStore,
    retained: &Retained,
    entry: &str,
    api_id: &str,
) -> Result<SpkiPin, PinEntryError> {
    let literal = entry.parse::<SpkiPin>().ok();
    let may_be_reference = entry.contains("-----BEGIN ")
        || entry.parse::<CertId>().is_ok()
        || (literal.is_none() && !entry.starts_with("sha256/"));
    if !may_be_reference {
        return literal.ok_or(PinEntryError::BadPin);
    }
    let resolved = match entry.parse::<CertificateRef>() {
        Ok(reference) => retained.resolve(store, &reference, api_id).await,
        Err(error) => return literal.ok_or(PinEntryError::Reference(error)),
    };
    match resolved {
        Ok(loaded) => Ok(loaded.metadata().spki_pin),
        Err(error) => match literal {
            Some(pin) => {
                if !matches!(error, StoreError::NotFound { .. }) {
                    tracing::warn!(entry = %describe_entry(entry), %error, "cannot look the pin up in the store; using it as a literal pin");
                }
                Ok(pin)
            }
            None => Err(PinEntryError::Unresolved(error)),
        },
    }
}

/// An entry for logs: inline PEM is not printed whole.
fn describe_entry(entry: &str) -> String {
    if entry.contains("-----BEGIN ") {
        "<inline PEM>".to_owned()
    } else {
        entry.chars().take(160).collect()
    }
}

/// The SPKI pins of DER certificates, in order; certificates that do not parse are skipped.
pub(crate) fn chain_pins<'a>(
    chain: impl IntoIterator<Item = &'a CertificateDer<'a>>,
) -> Vec<SpkiPin> {
    chain
        .into_iter()
        .filter_map(|der| webpki::EndEntityCert::try_from(der).ok())
        .map(|cert| SpkiPin::of_spki(cert.subject_public_key_info().as_ref()))
        .collect()
}

/// The pin of a certificate, if it parses.
pub(crate) fn cert_pin(der: &CertificateDer<'_>) -> Option<SpkiPin> {
    chain_pins([der]).into_iter().next()
}

/// Why an upstream was refused by pinning: what was expected and what the server presented.
#[derive(Debug, thiserror::Error)]
#[error("public keys do not match")]
pub(crate) struct PinMismatch {
    /// The configured pins.
    pub(crate) expected: Vec<SpkiPin>,
    /// The pins of the chain the server presented, leaf first.
    pub(crate) presented: Vec<SpkiPin>,
}

impl PinMismatch {
    /// The rustls error carrying this mismatch.
    pub(crate) fn into_rustls(
        pins: &PinSet,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> rustls::Error {
        let mismatch = Self {
            expected: pins.iter().copied().collect(),
            presented: chain_pins(std::iter::once(end_entity).chain(intermediates)),
        };
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(mismatch))))
    }
}

/// Pins joined for logs.
pub(crate) struct PinList<'a>(pub(crate) &'a [SpkiPin]);

impl fmt::Display for PinList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, pin) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{pin}")?;
        }
        Ok(())
    }
}

/// Chain and host-name verification (webpki, trusted roots), then pinning on a verified path.
#[derive(Debug)]
pub(crate) struct PinningVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    roots: Arc<RootCertStore>,
    algorithms: WebPkiSupportedAlgorithms,
    pins: Arc<PinSet>,
}

impl PinningVerifier {
    pub(crate) fn new(
        webpki: Arc<WebPkiServerVerifier>,
        roots: Arc<RootCertStore>,
        algorithms: WebPkiSupportedAlgorithms,
        pins: Arc<PinSet>,
    ) -> Self {
        Self {
            webpki,
            roots,
            algorithms,
            pins,
        }
    }
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let leaf = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        // Path building tries every candidate path; a path without a pinned key is refused and
        // the search goes on, so this succeeds iff some valid path holds a pinned key.
        let holds_pin = |path: &webpki::VerifiedPath<'_>| {
            let anchor = webpki::spki_for_anchor(path.anchor());
            let mut spkis = std::iter::once(path.end_entity().subject_public_key_info())
                .chain(
                    path.intermediate_certificates()
                        .map(|cert| cert.subject_public_key_info()),
                )
                .chain(std::iter::once(anchor));
            if spkis.any(|spki| self.pins.contains(&SpkiPin::of_spki(spki.as_ref()))) {
                Ok(())
            } else {
                Err(webpki::Error::UnknownIssuer)
            }
        };
        leaf.verify_for_usage(
            self.algorithms.all,
            &self.roots.roots,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
            None,
            Some(&holds_pin),
        )
        .map(|_| verified)
        .map_err(|_| PinMismatch::into_rustls(&self.pins, end_entity, intermediates))
    }

    crate::tls::verify_signatures_with!(algorithms);
}
