//! Client certificates: who may connect (at the handshake) and who may call an API (per
//! request).
//!
//! A [`ClientPolicy`] is built from the references an API lists in `client_certificates` (plus
//! `security.certificates.apis`): each certificate that is a CA becomes a trust anchor (the
//! client's chain must lead to it, with the client-auth usage, optionally checked against
//! CRLs); each other certificate is allow-listed by its leaf fingerprint (Tyk allow-lists the
//! hash of a bundle's last certificate; we use the leaf's). Expired client certificates are
//! refused.
//!
//! What the listener knows of a connection is its [`ClientInfo`], attached to each request. A
//! connection's chain cannot change, so its [`VerdictCache`] remembers which policies admitted
//! it and lets the connection's later requests skip the check while the verdict still holds.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use cert_store::LoadedCert;
use http::HeaderValue;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DistinguishedName, Error, RootCertStore};
use time::OffsetDateTime;
use tls_core::{Fingerprint, Metadata, Validity};

use crate::metrics::GatewayMetrics;

/// How an API applies its CRLs (see `ApiDefinition::client_certificate_crl_depth` and the
/// fields after it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CrlOptions {
    /// Check the leaf and every intermediate (webpki's `RevocationCheckDepth::Chain`), not only
    /// the leaf (`EndEntity`).
    pub(crate) chain: bool,
    /// Refuse a checked certificate whose issuer has no CRL (`UnknownStatusPolicy::Deny`).
    pub(crate) deny_unknown: bool,
    /// Refuse CRLs past their `nextUpdate` (at load, and `ExpirationPolicy::Enforce`).
    pub(crate) strict: bool,
}

impl Default for CrlOptions {
    fn default() -> Self {
        Self {
            chain: true,
            deny_unknown: false,
            strict: false,
        }
    }
}

impl CrlOptions {
    /// Options that admit whatever either admits (the handshake of a domain whose APIs differ;
    /// each API's own options apply to its requests).
    fn least_strict(self, other: Self) -> Self {
        Self {
            chain: self.chain && other.chain,
            deny_unknown: self.deny_unknown && other.deny_unknown,
            strict: self.strict && other.strict,
        }
    }
}

/// Checks an API's CRLs: each must be signed by a certificate of one of the CA `entries` (when
/// the API has any), and, at `load` with `options.strict`, not be past its `nextUpdate` at
/// `now` (later, `ExpirationPolicy::Enforce` fails the checks that need it). Returns the names
/// of the CRLs past their `nextUpdate`; an error names the CRL.
pub(crate) fn check_crls(
    crls: &[CertificateRevocationListDer<'_>],
    entries: &[Arc<LoadedCert>],
    options: CrlOptions,
    load: bool,
    now: OffsetDateTime,
    provider: &CryptoProvider,
) -> Result<Vec<String>, String> {
    let issuers: Vec<&CertificateDer<'static>> = entries
        .iter()
        .filter(|entry| entry.metadata().is_ca)
        .flat_map(|entry| entry.record().chain())
        .collect();
    let mut past = Vec::new();
    for (n, crl) in crls.iter().enumerate() {
        let parsed = x509_parser::parse_x509_crl(crl.as_ref())
            .map(|(_, parsed)| parsed)
            .map_err(|_| format!("client_certificate_crls: CRL {} does not parse", n + 1))?;
        let name = format!("CRL {} (issuer {})", n + 1, parsed.issuer());
        if !issuers.is_empty()
            && !issuers.iter().any(|issuer| {
                crl_signed_by(
                    crl.as_ref(),
                    issuer,
                    &provider.signature_verification_algorithms,
                )
            })
        {
            return Err(format!(
                "client_certificate_crls: {name}: its signature does not verify against any CA this API trusts (client_certificates and security.certificates.apis); it would refuse every client it applies to"
            ));
        }
        let next_update = parsed.next_update().map(|t| t.timestamp());
        match next_update {
            None => {
                return Err(format!(
                    "client_certificate_crls: {name} has no nextUpdate, which is required"
                ));
            }
            Some(at) if at < now.unix_timestamp() => {
                let when = parsed
                    .next_update()
                    .map(|t| t.to_string())
                    .unwrap_or_default();
                if options.strict && load {
                    return Err(format!(
                        "client_certificate_crls: {name}: its nextUpdate ({when}) is past; client_certificate_crls_strict refuses it"
                    ));
                }
                past.push(format!("{name}, nextUpdate {when}"));
            }
            Some(_) => {}
        }
    }
    Ok(past)
}

/// Whether `crl` (DER) carries a valid signature by `issuer`'s key.
fn crl_signed_by(
    crl: &[u8],
    issuer: &CertificateDer<'_>,
    algorithms: &rustls::crypto::WebPkiSupportedAlgorithms,
) -> bool {
    let Some((tbs, algorithm, signature)) = signed_parts(crl) else {
        return false;
    };
    let Ok(issuer) = webpki::EndEntityCert::try_from(issuer) else {
        return false;
    };
    algorithms
        .all
        .iter()
        .filter(|alg| alg.signature_alg_id().as_ref() == algorithm)
        .any(|alg| issuer.verify_signature(*alg, tbs, signature).is_ok())
}

/// The signed bytes (the whole TBS element), the signature AlgorithmIdentifier's contents and
/// the signature of a `SEQUENCE { tbs, algorithm, BIT STRING }` (a CRL or a certificate).
fn signed_parts(der: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let (tag, outer, _) = der_element(der)?;
    if tag != 0x30 {
        return None;
    }
    let (_, _, after_tbs) = der_element(outer)?;
    let tbs = &outer[..outer.len() - after_tbs.len()];
    let (tag, algorithm, rest) = der_element(after_tbs)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, bits, _) = der_element(rest)?;
    match (tag, bits.split_first()) {
        (0x03, Some((0, signature))) => Some((tbs, algorithm, signature)),
        _ => None,
    }
}

/// One DER element: its tag, its contents and what follows it.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |len, b| (len << 8) | usize::from(*b));
        (len, &rest[count..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The client certificates one API (or the control API) accepts.
pub(crate) struct ClientPolicy {
    /// Allow-listed leaves, by fingerprint, with the entry they came from.
    allowed: HashMap<Fingerprint, Arc<LoadedCert>>,
    /// CA entries, each with a verifier of chains leading to it (client-auth usage, validity,
    /// CRLs).
    cas: Vec<(Arc<LoadedCert>, Arc<dyn ClientCertVerifier>)>,
    /// Revocation lists applied to CA chains.
    crls: Vec<CertificateRevocationListDer<'static>>,
    /// How they are applied.
    crl_options: CrlOptions,
    /// Subjects of the CAs, for the CertificateRequest.
    ca_subjects: Vec<DistinguishedName>,
    /// Chains recently admitted through a CA entry (see [`ClientPolicy::check`]).
    verified: Mutex<HashMap<ChainDigest, Verified>>,
}

/// SHA-256 over a presented chain (each certificate's length, then its DER).
type ChainDigest = [u8; 32];

/// A chain admitted through a CA entry, and for how long that holds.
#[derive(Debug, Clone, Copy)]
struct Verified {
    /// Index of the admitting entry in [`ClientPolicy::cas`].
    ca: usize,
    /// When the chain was verified; it was valid then.
    checked_at: OffsetDateTime,
    /// The earliest `not_after` of the CA entry and of every certificate of the chain.
    valid_until: OffsetDateTime,
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
    /// A policy over `entries` (resolved references) and `crls`, applied per `crl_options`.
    pub(crate) fn new(
        entries: &[Arc<LoadedCert>],
        crls: Vec<CertificateRevocationListDer<'static>>,
        crl_options: CrlOptions,
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
            let mut builder =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
                    .with_crls(crls.clone());
            if !crls.is_empty() {
                if !crl_options.chain {
                    builder = builder.only_check_end_entity_revocation();
                }
                if !crl_options.deny_unknown {
                    builder = builder.allow_unknown_revocation_status();
                }
                if crl_options.strict {
                    builder = builder.enforce_revocation_expiration();
                }
            }
            let verifier = builder
                .build()
                .map_err(|e| format!("client CA {}: {e}", entry.id()))?;
            cas.push((Arc::clone(entry), verifier));
        }
        Ok(Self {
            allowed,
            cas,
            crls,
            crl_options,
            ca_subjects,
            verified: Mutex::default(),
        })
    }

    /// Chains remembered as verified, at most; when full, the expired go, and if that is not
    /// enough, all of them (each is verified again on its next use).
    const VERIFIED_CAPACITY: usize = 4096;

    /// Merges policies (a domain's APIs share one handshake).
    pub(crate) fn union(
        policies: &[&Self],
        provider: &Arc<CryptoProvider>,
    ) -> Result<Self, String> {
        let mut entries: Vec<Arc<LoadedCert>> = Vec::new();
        let mut crls = Vec::new();
        let mut options: Option<CrlOptions> = None;
        for policy in policies {
            entries.extend(policy.entries().cloned());
            crls.extend(policy.crls.iter().cloned());
            if !policy.crls.is_empty() {
                options = Some(
                    options.map_or(policy.crl_options, |o| o.least_strict(policy.crl_options)),
                );
            }
        }
        Self::new(&entries, crls, options.unwrap_or_default(), provider)
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
        if self.cas.is_empty() {
            return Err(Refusal::NotAllowed(fingerprint));
        }
        // The same chain verified earlier against this policy (the handshake of this
        // connection, or an earlier connection of the client) holds while every certificate
        // involved is valid: the policy, its CAs and CRLs never change (a changed store or
        // configuration makes a new policy). Possession of the key is still proven by each
        // handshake's CertificateVerify.
        let digest = chain_digest(chain);
        if let Some(ca) = self.verified_earlier(&digest, now) {
            return Ok(&self.cas[ca].0);
        }
        let unix = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            u64::try_from(now.unix_timestamp()).unwrap_or(0),
        ));
        let ca = self
            .cas
            .iter()
            .position(|(_, verifier)| {
                verifier
                    .verify_client_cert(leaf, intermediates, unix)
                    .is_ok()
            })
            .ok_or(Refusal::NotAllowed(fingerprint))?;
        let entry = &self.cas[ca].0;
        if let Some(valid_until) = entry
            .metadata()
            .not_after
            .zip(earliest_not_after(chain))
            .map(|(a, b)| a.min(b))
        {
            self.remember_verified(
                digest,
                Verified {
                    ca,
                    checked_at: now,
                    valid_until,
                },
            );
        }
        Ok(entry)
    }

    /// The CA entry that admitted `digest`'s chain, if that still holds at `now`.
    fn verified_earlier(&self, digest: &ChainDigest, now: OffsetDateTime) -> Option<usize> {
        self.verified_lock()
            .get(digest)
            .filter(|v| v.checked_at <= now && now < v.valid_until)
            .map(|v| v.ca)
    }

    fn remember_verified(&self, digest: ChainDigest, verified: Verified) {
        let mut remembered = self.verified_lock();
        if remembered.len() >= Self::VERIFIED_CAPACITY {
            let now = verified.checked_at;
            remembered.retain(|_, v| now < v.valid_until);
            if remembered.len() >= Self::VERIFIED_CAPACITY {
                remembered.clear();
            }
        }
        remembered.insert(digest, verified);
    }

    fn verified_lock(&self) -> std::sync::MutexGuard<'_, HashMap<ChainDigest, Verified>> {
        // Every update leaves the map consistent, so a panic elsewhere cannot corrupt it.
        self.verified.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every entry, for the expiry monitor.
    pub(crate) fn entries(&self) -> impl Iterator<Item = &Arc<LoadedCert>> {
        self.allowed
            .values()
            .chain(self.cas.iter().map(|(entry, _)| entry))
    }
}

/// What the listener knows about a connection; attached to each request as an extension.
#[derive(Debug)]
pub(crate) struct ClientInfo {
    /// Whether the connection is TLS.
    pub(crate) tls: bool,
    /// The client's certificate chain (leaf first), when it sent one.
    pub(crate) peer_certs: Option<Arc<Vec<CertificateDer<'static>>>>,
    /// The peer's IP as a header value (IPv4-mapped IPv6 shown as IPv4), formatted once per
    /// connection for `X-Forwarded-For`.
    pub(crate) ip_header: HeaderValue,
    /// Client-certificate checks this connection passed, reused by its later requests.
    pub(crate) verdicts: VerdictCache,
}

impl ClientInfo {
    /// What is known of a connection from `remote_addr`.
    pub(crate) fn new(
        remote_addr: SocketAddr,
        tls: bool,
        peer_certs: Option<Arc<Vec<CertificateDer<'static>>>>,
    ) -> Self {
        let ip = remote_addr.ip().to_canonical().to_string();
        Self {
            tls,
            peer_certs,
            // An IP address is always a valid header value.
            ip_header: HeaderValue::from_str(&ip)
                .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
            verdicts: VerdictCache::default(),
        }
    }

    /// The per-request client certificate check against `policy` at `now`: the entry that
    /// admits the connection's chain, reusing an earlier verdict while it holds.
    pub(crate) fn check(
        &self,
        policy: &Arc<ClientPolicy>,
        now: OffsetDateTime,
    ) -> Result<Arc<LoadedCert>, Refusal> {
        if !self.tls {
            return Err(Refusal::NoTls);
        }
        match &self.peer_certs {
            None => Err(Refusal::Missing),
            Some(chain) => self.verdicts.check(policy, chain, now),
        }
    }
}

/// One connection's successful client-certificate checks, so that its later requests skip
/// the fingerprint lookup or chain verification.
///
/// Keyed by policy identity: policies live in the TLS snapshot, which is replaced whole when
/// the store or the APIs change, so a changed allow-list or CRL is a new policy and misses. A
/// verdict is reused only from the instant it was reached until the earliest `not_after` of the
/// admitting entry and the presented chain; in between every certificate involved is valid.
/// Refusals are not remembered. Built for one presented chain: pass the same chain every time.
#[derive(Debug, Default)]
pub(crate) struct VerdictCache {
    /// Recent admissions, oldest first; at most [`VerdictCache::CAPACITY`].
    admissions: Mutex<Vec<Admission>>,
    /// The earliest `not_after` of the presented chain, parsed at the first CA admission;
    /// `None` inside when a certificate does not parse (then CA verdicts are not reused).
    chain_not_after: OnceLock<Option<OffsetDateTime>>,
}

/// A policy that admitted the connection's chain, and for how long that holds.
#[derive(Debug)]
struct Admission {
    /// The policy; holding the `Weak` keeps its allocation, so no other policy can take its
    /// address while this is compared with `Weak::as_ptr`.
    policy: Weak<ClientPolicy>,
    /// The entry that admitted the chain.
    entry: Arc<LoadedCert>,
    /// When the check ran; the chain was valid then.
    checked_at: OffsetDateTime,
    /// The earliest `not_after` of the entry and the chain; reuse stops there.
    valid_until: OffsetDateTime,
}

impl VerdictCache {
    /// Admissions kept per connection. A connection is bound to one domain: its mutual-TLS
    /// APIs and the control API rarely exceed a few policies, and a single slot would throw
    /// away the verdict whenever a client alternates between two of them.
    const CAPACITY: usize = 4;

    /// [`ClientPolicy::check`] of `chain` at `now`, reusing an earlier admission by the same
    /// `policy` while it holds.
    pub(crate) fn check(
        &self,
        policy: &Arc<ClientPolicy>,
        chain: &[CertificateDer<'static>],
        now: OffsetDateTime,
    ) -> Result<Arc<LoadedCert>, Refusal> {
        if let Some(entry) = self.reusable(policy, now) {
            return Ok(entry);
        }
        let entry = Arc::clone(policy.check(chain, now)?);
        if let Some(valid_until) = self.valid_until(&entry, chain) {
            self.remember(Admission {
                policy: Arc::downgrade(policy),
                entry: Arc::clone(&entry),
                checked_at: now,
                valid_until,
            });
        }
        Ok(entry)
    }

    /// The entry of a still-valid admission by `policy`.
    fn reusable(&self, policy: &Arc<ClientPolicy>, now: OffsetDateTime) -> Option<Arc<LoadedCert>> {
        self.lock()
            .iter()
            .find(|a| Weak::as_ptr(&a.policy) == Arc::as_ptr(policy))
            .filter(|a| a.checked_at <= now && now < a.valid_until)
            .map(|a| Arc::clone(&a.entry))
    }

    /// Until when an admission by `entry` holds: its `not_after`, and for a CA entry also the
    /// presented chain's (an allow-listed entry is the presented leaf, and intermediates play
    /// no part in its check). `None` when a date is unknown.
    fn valid_until(
        &self,
        entry: &LoadedCert,
        chain: &[CertificateDer<'static>],
    ) -> Option<OffsetDateTime> {
        let entry_not_after = entry.metadata().not_after?;
        if !entry.metadata().is_ca {
            return Some(entry_not_after);
        }
        let chain_not_after = *self
            .chain_not_after
            .get_or_init(|| earliest_not_after(chain));
        Some(entry_not_after.min(chain_not_after?))
    }

    /// Records `admission`, replacing any of the same policy and dropping those of policies
    /// no longer in use; the oldest goes when full.
    fn remember(&self, admission: Admission) {
        let mut admissions = self.lock();
        admissions
            .retain(|a| a.policy.strong_count() > 0 && !Weak::ptr_eq(&a.policy, &admission.policy));
        if admissions.len() >= Self::CAPACITY {
            admissions.remove(0);
        }
        admissions.push(admission);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Admission>> {
        // Every update leaves the list consistent, so a panic elsewhere cannot corrupt it.
        self.admissions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// [`ChainDigest`] of `chain`.
fn chain_digest(chain: &[CertificateDer<'_>]) -> ChainDigest {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for cert in chain {
        context.update(&(cert.len() as u64).to_be_bytes());
        context.update(cert);
    }
    let mut digest = [0; 32];
    digest.copy_from_slice(context.finish().as_ref());
    digest
}

/// The earliest `not_after` in `chain`; `None` if it is empty or a certificate does not parse.
fn earliest_not_after(chain: &[CertificateDer<'_>]) -> Option<OffsetDateTime> {
    let mut earliest: Option<OffsetDateTime> = None;
    for cert in chain {
        let not_after = Metadata::of_certificate_der(cert)?.not_after?;
        earliest = Some(earliest.map_or(not_after, |e| e.min(not_after)));
    }
    earliest
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

#[cfg(test)]
mod tests {
    use cert_store::{CertStore, Clock as _, MemoryStorage, SystemClock};
    use rustls::pki_types::CertificateRevocationListDer;
    use rustls::pki_types::pem::PemObject as _;
    use test_support::pki::{TestCa, Usage};
    use time::Duration;
    use tls_core::{EncodingSecret, OrgId};

    use super::*;

    /// From yesterday until `not_after`.
    fn until(not_after: OffsetDateTime) -> (OffsetDateTime, OffsetDateTime) {
        (SystemClock.now() - Duration::days(1), not_after)
    }

    async fn load(pem: &str) -> Arc<LoadedCert> {
        let store = CertStore::builder(Arc::new(MemoryStorage::new()))
            .encoding_secret(EncodingSecret::new("test secret"))
            .build();
        let id = store.add(pem, &OrgId::EMPTY).await.unwrap();
        store.get(&id).await.unwrap()
    }

    fn policy(entries: &[Arc<LoadedCert>]) -> Arc<ClientPolicy> {
        Arc::new(
            ClientPolicy::new(
                entries,
                Vec::new(),
                CrlOptions::default(),
                &tls_core::default_provider(),
            )
            .unwrap(),
        )
    }

    fn not_after(der: &CertificateDer<'_>) -> OffsetDateTime {
        Metadata::of_certificate_der(der)
            .unwrap()
            .not_after
            .unwrap()
    }

    /// A root entry, and a client chain under it through an intermediate that expires first.
    struct CaChain {
        root: Arc<LoadedCert>,
        intermediate: TestCa,
        chain: Vec<CertificateDer<'static>>,
    }

    async fn ca_chain() -> CaChain {
        let now = SystemClock.now();
        let root = TestCa::root_valid("root", until(now + Duration::days(365)));
        let intermediate = root.intermediate_valid("intermediate", until(now + Duration::days(5)));
        let leaf = intermediate.issue(
            &[],
            "client",
            Usage::Client,
            Some(until(now + Duration::days(10))),
        );
        CaChain {
            root: load(&root.cert_pem).await,
            chain: vec![leaf.der(), intermediate.cert.clone()],
            intermediate,
        }
    }

    #[tokio::test]
    async fn a_policy_remembers_a_verified_chain_until_its_earliest_not_after() {
        let ca = ca_chain().await;
        let now = SystemClock.now();
        let admitting = policy(std::slice::from_ref(&ca.root));
        let digest = chain_digest(&ca.chain);
        assert_eq!(admitting.verified_earlier(&digest, now), None);
        assert!(Arc::ptr_eq(
            admitting.check(&ca.chain, now).unwrap(),
            &ca.root
        ));
        assert_eq!(admitting.verified_earlier(&digest, now), Some(0));

        // From the check until the intermediate, which expires first, expires.
        let end = not_after(&ca.intermediate.cert);
        let just_before = end - Duration::seconds(1);
        assert_eq!(admitting.verified_earlier(&digest, just_before), Some(0));
        assert_eq!(admitting.verified_earlier(&digest, end), None);
        let before_the_check = now - Duration::seconds(1);
        assert_eq!(admitting.verified_earlier(&digest, before_the_check), None);
        // Past it the chain is verified again, and refused.
        let later = end + Duration::seconds(1);
        assert!(admitting.check(&ca.chain, later).is_err());

        // Another chain (the same leaf without its intermediate) is verified on its own, and
        // a refusal is not remembered.
        let leaf_only = &ca.chain[..1];
        assert!(admitting.check(leaf_only, now).is_err());
        assert_eq!(
            admitting.verified_earlier(&chain_digest(leaf_only), now),
            None
        );
        // A policy built again over the same entries has verified nothing yet.
        let rebuilt = policy(std::slice::from_ref(&ca.root));
        assert_eq!(rebuilt.verified_earlier(&digest, now), None);
    }

    #[test]
    fn remembered_chains_are_bounded() {
        let empty = policy(&[]);
        let now = SystemClock.now();
        for n in 0..ClientPolicy::VERIFIED_CAPACITY + 10 {
            let mut digest = [0u8; 32];
            digest[..8].copy_from_slice(&(n as u64).to_be_bytes());
            let verified = Verified {
                ca: 0,
                checked_at: now,
                valid_until: now + Duration::days(1),
            };
            empty.remember_verified(digest, verified);
            assert!(empty.verified_lock().len() <= ClientPolicy::VERIFIED_CAPACITY);
        }
        assert!(!empty.verified_lock().is_empty());
    }

    #[tokio::test]
    async fn an_admission_is_reused_by_the_same_policy_only() {
        let ca = ca_chain().await;
        let now = SystemClock.now();
        let cache = VerdictCache::default();
        let admitting = policy(std::slice::from_ref(&ca.root));
        let entry = cache.check(&admitting, &ca.chain, now).unwrap();
        assert!(Arc::ptr_eq(&entry, &ca.root));
        // An empty chain would be refused; the cached verdict answers without a check.
        let reused = cache.check(&admitting, &[], now).unwrap();
        assert!(Arc::ptr_eq(&reused, &ca.root));

        // A rebuilt policy over other entries is another policy, even while the first lives.
        let other = TestCa::root_valid("other", until(now + Duration::days(9)));
        let stranger = load(&other.cert_pem).await;
        let rebuilt = policy(&[stranger]);
        assert!(matches!(
            cache.check(&rebuilt, &ca.chain, now),
            Err(Refusal::NotAllowed(_))
        ));
        assert!(
            cache.check(&rebuilt, &ca.chain, now).is_err(),
            "refusals are not remembered"
        );
        // A rebuilt policy over the same entries misses too, and is then remembered itself.
        let same_entries = policy(std::slice::from_ref(&ca.root));
        assert_eq!(
            cache.check(&same_entries, &[], now).err(),
            Some(Refusal::Missing)
        );
        assert!(cache.check(&same_entries, &ca.chain, now).is_ok());
        assert!(cache.check(&same_entries, &[], now).is_ok());
        assert!(cache.check(&admitting, &[], now).is_ok(), "both are kept");
    }

    #[tokio::test]
    async fn an_admission_holds_from_the_check_until_the_earliest_not_after() {
        let ca = ca_chain().await;
        let now = SystemClock.now();
        let cache = VerdictCache::default();
        let admitting = policy(std::slice::from_ref(&ca.root));
        cache.check(&admitting, &ca.chain, now).unwrap();
        let until = not_after(&ca.intermediate.cert);
        assert_eq!(
            cache.valid_until(&ca.root, &ca.chain),
            Some(until),
            "the intermediate expires before the leaf and the root"
        );
        let second = Duration::SECOND;
        assert!(cache.check(&admitting, &[], until - second).is_ok());
        assert_eq!(
            cache.check(&admitting, &[], until).err(),
            Some(Refusal::Missing),
            "not reused once a certificate has expired"
        );
        assert!(
            matches!(
                cache.check(&admitting, &ca.chain, until + second),
                Err(Refusal::NotAllowed(_))
            ),
            "and the full check refuses the expired chain (webpki counts `not_after` as valid)"
        );
        assert_eq!(
            cache.check(&admitting, &[], now - second).err(),
            Some(Refusal::Missing),
            "not reused before the instant of the check"
        );
    }

    #[tokio::test]
    async fn an_allow_listed_admission_holds_until_the_leaf_expires() {
        let now = SystemClock.now();
        // Issued by a CA nobody trusts: admitted by its fingerprint alone.
        let leaf = TestCa::root("listed ca").issue(
            &[],
            "listed",
            Usage::Client,
            Some(until(now + Duration::days(3))),
        );
        let entry = load(&leaf.cert_pem).await;
        let cache = VerdictCache::default();
        let listing = policy(std::slice::from_ref(&entry));
        let chain = [leaf.der()];
        assert!(Arc::ptr_eq(
            &cache.check(&listing, &chain, now).unwrap(),
            &entry
        ));
        let until = not_after(&leaf.der());
        assert_eq!(cache.valid_until(&entry, &chain), Some(until));
        assert!(cache.check(&listing, &[], until - Duration::SECOND).is_ok());
        assert_eq!(
            cache.check(&listing, &chain, until).err(),
            Some(Refusal::Expired)
        );
    }

    #[tokio::test]
    async fn admissions_of_dropped_policies_go_and_the_oldest_goes_when_full() {
        let ca = ca_chain().await;
        let now = SystemClock.now();
        let cache = VerdictCache::default();
        let policies: Vec<_> = (0..=VerdictCache::CAPACITY)
            .map(|_| policy(std::slice::from_ref(&ca.root)))
            .collect();
        for admitting in &policies {
            cache.check(admitting, &ca.chain, now).unwrap();
        }
        assert_eq!(cache.lock().len(), VerdictCache::CAPACITY);
        assert!(
            cache.check(&policies[0], &[], now).is_err(),
            "the oldest went"
        );
        assert!(cache.check(&policies[1], &[], now).is_ok());

        drop(policies);
        let current = policy(std::slice::from_ref(&ca.root));
        cache.check(&current, &ca.chain, now).unwrap();
        assert_eq!(cache.lock().len(), 1, "only the live policy is kept");
    }

    #[tokio::test]
    async fn a_strict_crl_past_its_next_update_is_refused_at_load_and_reported_on_rebuilds() {
        let now = SystemClock.now();
        let root = TestCa::root_valid("crl root", until(now + Duration::days(30)));
        let crl = root.crl_between(&[], now - Duration::days(2), now - Duration::days(1));
        let crls = [CertificateRevocationListDer::from_pem_slice(crl.as_bytes()).unwrap()];
        let entries = [load(&root.cert_pem).await];
        let provider = tls_core::default_provider();
        let strict = CrlOptions {
            strict: true,
            ..CrlOptions::default()
        };
        let refused = check_crls(&crls, &entries, strict, true, now, &provider).unwrap_err();
        assert!(
            refused.contains("CRL 1 (issuer CN=crl root)") && refused.contains("nextUpdate"),
            "{refused}"
        );
        // On a rebuild the CRL is reported (the verifier's Enforce policy applies it).
        let past = check_crls(&crls, &entries, strict, false, now, &provider).unwrap();
        assert_eq!(past.len(), 1, "{past:?}");
        // Without CA entries there is nothing to verify the signature against; dates still count.
        let past = check_crls(&crls, &[], CrlOptions::default(), true, now, &provider).unwrap();
        assert_eq!(past.len(), 1);
    }
}
