//! Client certificates: who may connect (at the handshake) and who may call an API (per
//! request).
//!
//! A [`ClientPolicy`] is built from the references an API lists in `client_certificates` (plus
//! `security.certificates.apis`): each certificate that is a CA becomes a trust anchor (the
//! client's chain must lead to it, with the client-auth usage, optionally checked against
//! CRLs); each other certificate is allow-listed by its leaf fingerprint (Tyk allow-lists the
//! hash of a bundle's last certificate; we use the leaf's). Expired client certificates are
//! refused.

use std::collections::HashMap;
use std::sync::Arc;

use cert_store::LoadedCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DistinguishedName, Error, RootCertStore};
use time::OffsetDateTime;
use tls_core::{Fingerprint, Validity};

use crate::metrics::GatewayMetrics;

/// The client certificates one API (or the control API) accepts.
pub(crate) struct ClientPolicy {
    /// Allow-listed leaves, by fingerprint, with the entry they came from.
    allowed: HashMap<Fingerprint, Arc<LoadedCert>>,
    /// CA entries, each with a verifier of chains leading to it (client-auth usage, validity,
    /// CRLs).
    cas: Vec<(Arc<LoadedCert>, Arc<dyn ClientCertVerifier>)>,
    /// Revocation lists applied to CA chains.
    crls: Vec<CertificateRevocationListDer<'static>>,
    /// Subjects of the CAs, for the CertificateRequest.
    ca_subjects: Vec<DistinguishedName>,
}

impl std::fmt::Debug for ClientPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientPolicy")
            .field("allowed", &self.allowed.len())
            .field("cas", &self.cas.len())
            .finish_non_exhaustive()
    }
}

/// Why a client certificate was refused; the texts are Tyk's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The connection is not TLS.
    NoTls,
    /// No client certificate.
    Missing,
    /// An allow-listed certificate that has expired.
    Expired,
    /// Neither allow-listed nor issued by an accepted CA.
    NotAllowed(Fingerprint),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoTls => f.write_str("TLS not enabled"),
            Self::Missing => f.write_str("Client TLS certificate is required"),
            Self::Expired => f.write_str("Certificate has expired"),
            Self::NotAllowed(fp) => write!(f, "Certificate with SHA256 {fp} not allowed"),
        }
    }
}

impl ClientPolicy {
    /// A policy over `entries` (resolved references) and `crls`.
    pub(crate) fn new(
        entries: &[Arc<LoadedCert>],
        crls: Vec<CertificateRevocationListDer<'static>>,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Self, String> {
        let mut allowed = HashMap::new();
        let mut cas = Vec::new();
        let mut ca_subjects = Vec::new();
        for entry in entries {
            let record = entry.record();
            if record.chain().is_empty() {
                continue;
            }
            if !record.metadata().is_ca {
                allowed.insert(entry.id().fingerprint(), Arc::clone(entry));
                continue;
            }
            let mut roots = RootCertStore::empty();
            for cert in record.chain() {
                roots
                    .add(cert.clone())
                    .map_err(|e| format!("CA {}: {e}", entry.id()))?;
            }
            ca_subjects.extend(roots.subjects());
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
                    .with_crls(crls.clone())
                    .build()
                    .map_err(|e| format!("client CA {}: {e}", entry.id()))?;
            cas.push((Arc::clone(entry), verifier));
        }
        Ok(Self {
            allowed,
            cas,
            crls,
            ca_subjects,
        })
    }

    /// Merges policies (a domain's APIs share one handshake).
    pub(crate) fn union(
        policies: &[&Self],
        provider: &Arc<CryptoProvider>,
    ) -> Result<Self, String> {
        let mut entries: Vec<Arc<LoadedCert>> = Vec::new();
        let mut crls = Vec::new();
        for policy in policies {
            entries.extend(policy.entries().cloned());
            crls.extend(policy.crls.iter().cloned());
        }
        Self::new(&entries, crls, provider)
    }

    /// Checks a presented chain (leaf first) at `now`; returns the entry that admitted it.
    pub(crate) fn check(
        &self,
        chain: &[CertificateDer<'static>],
        now: OffsetDateTime,
    ) -> Result<&Arc<LoadedCert>, Refusal> {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err(Refusal::Missing);
        };
        let fingerprint = Fingerprint::of(leaf);
        if let Some(entry) = self.allowed.get(&fingerprint) {
            // Same fingerprint, same DER: the entry's metadata (parsed once, when the policy
            // was built) is the presented leaf's, so no certificate is parsed per request.
            return match entry.metadata().validity(now, time::Duration::ZERO) {
                Some(Validity::Expired { .. } | Validity::NotYetValid { .. }) | None => {
                    Err(Refusal::Expired)
                }
                Some(_) => Ok(entry),
            };
        }
        let unix = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            u64::try_from(now.unix_timestamp()).unwrap_or(0),
        ));
        self.cas
            .iter()
            .find(|(_, verifier)| {
                verifier
                    .verify_client_cert(leaf, intermediates, unix)
                    .is_ok()
            })
            .map(|(entry, _)| entry)
            .ok_or(Refusal::NotAllowed(fingerprint))
    }

    /// Every entry, for the expiry monitor.
    pub(crate) fn entries(&self) -> impl Iterator<Item = &Arc<LoadedCert>> {
        self.allowed
            .values()
            .chain(self.cas.iter().map(|(entry, _)| entry))
    }
}

/// How a domain's handshakes treat client certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClientAuth {
    /// Every API on the domain requires one: verified at the handshake.
    Required,
    /// Some APIs require one: requested, signature checked, judged per request.
    Requested,
}

/// The rustls verifier for a domain.
pub(crate) struct HandshakeVerifier {
    policy: Arc<ClientPolicy>,
    mode: ClientAuth,
    announce_cas: bool,
    provider: Arc<CryptoProvider>,
    metrics: Arc<GatewayMetrics>,
}

impl std::fmt::Debug for HandshakeVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandshakeVerifier")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl HandshakeVerifier {
    pub(crate) fn new(
        policy: Arc<ClientPolicy>,
        mode: ClientAuth,
        announce_cas: bool,
        provider: Arc<CryptoProvider>,
        metrics: Arc<GatewayMetrics>,
    ) -> Self {
        Self {
            policy,
            mode,
            announce_cas,
            provider,
            metrics,
        }
    }
}

fn to_offset(now: UnixTime) -> OffsetDateTime {
    let secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl ClientCertVerifier for HandshakeVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mode == ClientAuth::Required
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        if self.announce_cas {
            &self.policy.ca_subjects
        } else {
            &[]
        }
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        if self.mode == ClientAuth::Requested {
            // Judged per request, by the API the request is for (Tyk's RequestClientCert).
            return Ok(ClientCertVerified::assertion());
        }
        let mut chain = vec![end_entity.clone().into_owned()];
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        match self.policy.check(&chain, to_offset(now)) {
            Ok(_) => Ok(ClientCertVerified::assertion()),
            Err(refusal) => {
                GatewayMetrics::inc(&self.metrics.mtls_refusals);
                tracing::info!(reason = %refusal, "client certificate refused at the handshake");
                Err(Error::InvalidCertificate(match refusal {
                    Refusal::Expired => CertificateError::Expired,
                    _ => CertificateError::ApplicationVerificationFailure,
                }))
            }
        }
    }

    crate::tls::verify_signatures_with!(provider.signature_verification_algorithms);
}
