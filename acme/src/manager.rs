//! The renewal scheduler: which names are due (a third of the lifetime left, by default), the
//! retries with growing, jittered delays, and each name's status for operators.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cert_store::{CertStore, Clock};
use expiry_monitor::{CertificateRenewalFailed, CertificateRenewed, EventSink, ExpiryEvent};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tls_core::{CertId, EncodingSecret};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::challenge::{ChallengeResponder, Dns01Solver};
use crate::config::AcmeSettings;
use crate::coordinator::{Coordinator, MemoryCoordinator};
use crate::error::AcmeError;
use crate::issuer::Issuer;

/// First retry delay after a failure; it doubles with each further failure.
const FIRST_RETRY: Duration = Duration::from_secs(60);
/// Longest retry delay.
const LONGEST_RETRY: Duration = Duration::from_secs(6 * 3600);
/// How often to ask again a CA that offers no renewal information, or failed to answer.
const ARI_UNAVAILABLE_RECHECK: time::Duration = time::Duration::hours(12);

/// A managed name's state, as `certctl acme status` and the certificate details show it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NameStatus {
    /// The name.
    pub name: String,
    /// The current certificate's ID.
    pub cert_id: Option<String>,
    /// Its expiry.
    #[serde(with = "time::serde::rfc3339::option")]
    pub not_after: Option<OffsetDateTime>,
    /// When it is (or was) due for renewal, or the next retry after a failure.
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_renewal: Option<OffsetDateTime>,
    /// Consecutive failures.
    pub failures: u32,
    /// The last failure's message ([`AcmeError::summary`]: no addresses or CA-provided text).
    pub last_error: Option<String>,
    /// True when the coordinator did not answer: `failures`, `last_error` and `next_renewal`
    /// are then this process's own attempts, not the fleet's. Not part of the shared record.
    #[serde(skip)]
    pub local_only: bool,
}

/// The figures of automatic certificates (see [`AcmeManager::figures`]).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct AcmeFigures {
    /// Each managed name's status, by name.
    pub names: Vec<NameStatus>,
    /// First certificates obtained since start.
    pub issued: u64,
    /// Certificates renewed since start.
    pub renewed: u64,
    /// Failed attempts since start.
    pub failed: u64,
}

/// What a check of one name did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Not due yet.
    NotDue,
    /// Waiting for the retry delay after a failure.
    Waiting,
    /// Another process is ordering it.
    Busy,
    /// A certificate was obtained; `previous` was replaced and deleted.
    Issued {
        /// The new certificate.
        id: CertId,
        /// The replaced one.
        previous: Option<CertId>,
    },
    /// Obtaining failed; retried after `retry_in`.
    Failed {
        /// The error, as shown to users.
        error: String,
        /// The delay before the next attempt.
        retry_in: Duration,
    },
}

/// What the CA's renewal information said about one certificate.
struct Suggested {
    /// The moment picked in the suggested window, if the CA offers renewal information.
    at: Option<OffsetDateTime>,
    /// When to ask again.
    ask_again: OffsetDateTime,
}

/// This process's own failed attempts for a name.
#[derive(Default)]
struct Local {
    failures: u32,
    retry_at: Option<OffsetDateTime>,
    last_error: Option<String>,
    /// The certificate they were about (`None`: the first one): they say nothing about a
    /// certificate obtained since.
    about: Option<String>,
}

/// Composes an [`AcmeManager`].
pub struct AcmeManagerBuilder {
    settings: AcmeSettings,
    store: CertStore,
    coordinator: Option<Arc<dyn Coordinator>>,
    secret: Arc<EncodingSecret>,
    dns: Option<Arc<dyn Dns01Solver>>,
    check_interval: Duration,
    sinks: Vec<Arc<dyn EventSink>>,
}

impl AcmeManagerBuilder {
    /// Delivers `CertificateRenewed` and `CertificateRenewalFailed` to `sink` (the expiry
    /// monitor's sinks: log, webhooks).
    pub fn event_sink(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Shares locks, challenges and the account through `coordinator` (a fleet: Redis);
    /// default: in this process only.
    pub fn coordinator(mut self, coordinator: Arc<dyn Coordinator>) -> Self {
        self.coordinator = Some(coordinator);
        self
    }

    /// Seals the ACME account key with `secret` (the store's encoding secret, so that every
    /// process of the fleet opens it).
    pub fn encoding_secret(mut self, secret: EncodingSecret) -> Self {
        self.secret = Arc::new(secret);
        self
    }

    /// Answers `dns-01` with `solver`.
    pub fn dns01(mut self, solver: Arc<dyn Dns01Solver>) -> Self {
        self.dns = Some(solver);
        self
    }

    /// How often the background task checks the names (default 60 s; 2 s while another
    /// process orders one of them).
    pub fn check_interval(mut self, interval: Duration) -> Self {
        self.check_interval = interval;
        self
    }

    /// The manager.
    pub fn build(self) -> AcmeManager {
        let clock = Arc::clone(self.store.clock());
        let coordinator = self
            .coordinator
            .unwrap_or_else(|| Arc::new(MemoryCoordinator::new(Arc::clone(&clock))));
        let names = self.settings.domains.clone();
        let settings = Arc::new(self.settings);
        let responder = ChallengeResponder::new(Arc::clone(&coordinator));
        responder.manage(names.iter().map(String::as_str));
        AcmeManager {
            responder,
            issuer: Issuer::new(settings, self.store, coordinator, self.secret, self.dns),
            clock,
            names: Mutex::new(names),
            local: Mutex::default(),
            statuses: Mutex::default(),
            suggested: Mutex::default(),
            counters: Counters::default(),
            check_interval: self.check_interval,
            sinks: self.sinks,
        }
    }
}

/// Obtains and renews the certificates of a set of names into the store.
pub struct AcmeManager {
    issuer: Issuer,
    responder: ChallengeResponder,
    clock: Arc<dyn Clock>,
    names: Mutex<Vec<String>>,
    local: Mutex<HashMap<String, Local>>,
    /// The last status of each name, for the metrics.
    statuses: Mutex<HashMap<String, NameStatus>>,
    /// The CA's renewal information per certificate.
    suggested: Mutex<HashMap<CertId, Suggested>>,
    counters: Counters,
    check_interval: Duration,
    sinks: Vec<Arc<dyn EventSink>>,
}

/// Counts since start, for `/metrics`.
#[derive(Default)]
struct Counters {
    issued: std::sync::atomic::AtomicU64,
    renewed: std::sync::atomic::AtomicU64,
    failed: std::sync::atomic::AtomicU64,
}

fn bump(counter: &std::sync::atomic::AtomicU64) {
    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

impl std::fmt::Debug for AcmeManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeManager")
            .field("settings", &self.issuer.settings)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl AcmeManager {
    /// A builder for `settings`, storing into `store` (its clock drives renewals).
    pub fn builder(settings: AcmeSettings, store: CertStore) -> AcmeManagerBuilder {
        AcmeManagerBuilder {
            settings,
            store,
            coordinator: None,
            secret: Arc::new(EncodingSecret::new("")),
            dns: None,
            check_interval: Duration::from_secs(60),
            sinks: Vec::new(),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &AcmeSettings {
        &self.issuer.settings
    }

    /// Answers challenges for the listeners.
    pub fn responder(&self) -> &ChallengeResponder {
        &self.responder
    }

    /// The managed names.
    pub fn names(&self) -> Vec<String> {
        lock(&self.names).clone()
    }

    /// Adds names to manage (e.g. API domains without a certificate); invalid ones are skipped
    /// with a warning.
    pub fn add_names(&self, names: impl IntoIterator<Item = String>) {
        let mut managed = lock(&self.names);
        for name in names {
            let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
            if !crate::config::is_dns_name(&name) {
                tracing::warn!(name, "not a DNS name: no certificate is obtained for it");
            } else if !managed.contains(&name) {
                self.responder.manage([name.as_str()]);
                managed.push(name);
            }
        }
    }

    /// When `name`'s certificate is due: a `renew_when_remaining` share of its lifetime before
    /// expiry; `None` when there is no usable certificate (due now).
    async fn due(
        &self,
        name: &str,
    ) -> Result<(Option<String>, Option<(OffsetDateTime, OffsetDateTime)>), AcmeError> {
        let Some(current) = self.issuer.coordinator.current(name).await? else {
            return Ok((None, None));
        };
        let Ok(id) = current.parse::<CertId>() else {
            return Ok((Some(current), None));
        };
        let cert = match self.issuer.store.get(&id).await {
            Ok(cert) => cert,
            Err(cert_store::StoreError::NotFound { .. }) => return Ok((Some(current), None)),
            Err(error) => return Err(error.into()),
        };
        let meta = cert.metadata();
        let (Some(not_before), Some(not_after)) = (meta.not_before, meta.not_after) else {
            return Ok((Some(current), None));
        };
        // Whole seconds: the moment does not depend on floating-point rounding.
        let lifetime = (not_after - not_before).whole_seconds();
        let remaining = (lifetime as f64 * self.issuer.settings.renew_when_remaining).round();
        let mut renew_at = not_after - time::Duration::seconds(remaining as i64);
        if let Some(suggested) = lock(&self.suggested).get(&id).and_then(|s| s.at) {
            renew_at = renew_at.min(suggested);
        }
        Ok((Some(current), Some((renew_at, not_after))))
    }

    /// Asks the CA's renewal information (RFC 9773) about `name`'s certificate when the last
    /// answer has run out; a window earlier than the rule's moment moves the renewal earlier.
    async fn consult_renewal_information(&self, name: &str, now: OffsetDateTime) {
        let Ok(Some(current)) = self.issuer.coordinator.current(name).await else {
            return;
        };
        let Ok(id) = current.parse::<CertId>() else {
            return;
        };
        if lock(&self.suggested)
            .get(&id)
            .is_some_and(|s| s.ask_again > now)
        {
            return;
        }
        let Ok(cert) = self.issuer.store.get(&id).await else {
            return;
        };
        let Some(leaf) = cert.record().chain().first() else {
            return;
        };
        let entry = match self.issuer.suggested_renewal(leaf, jitter_unit()).await {
            Ok(Some((at, holds_for))) => Suggested {
                at: Some(at),
                ask_again: now
                    + time::Duration::try_from(
                        holds_for.clamp(Duration::from_secs(60), Duration::from_secs(24 * 3600)),
                    )
                    .unwrap_or(ARI_UNAVAILABLE_RECHECK),
            },
            Ok(None) => Suggested {
                at: None,
                ask_again: now + ARI_UNAVAILABLE_RECHECK,
            },
            Err(error) => {
                tracing::debug!(name, %error, "no renewal information from the CA; the lifetime rule applies");
                Suggested {
                    at: None,
                    ask_again: now + time::Duration::hours(1),
                }
            }
        };
        let mut suggested = lock(&self.suggested);
        suggested.retain(|_, s| s.ask_again > now);
        suggested.insert(id, entry);
    }

    /// Checks every name at the clock's time and obtains what is due, one name after another.
    pub async fn check_all(&self) -> Vec<(String, Outcome)> {
        let mut outcomes = Vec::new();
        for name in self.names() {
            let outcome = self.check(&name).await;
            outcomes.push((name, outcome));
        }
        outcomes
    }

    /// Checks one name and obtains its certificate when due, unless its last attempt (by this
    /// process or, as the coordinator records it, by any process of the fleet) failed and the
    /// retry delay has not passed.
    pub async fn check(&self, name: &str) -> Outcome {
        let now = self.clock.now();
        if lock(&self.local)
            .get(name)
            .and_then(|l| l.retry_at)
            .is_some_and(|at| at > now)
        {
            return Outcome::Waiting;
        }
        self.consult_renewal_information(name, now).await;
        let mut serving = None;
        let mut failures_before = 0;
        let mut about = None;
        let result = match self.due(name).await {
            Ok((_, Some((renew_at, _)))) if renew_at > now => {
                self.record_status(name, false).await;
                return Outcome::NotDue;
            }
            Ok((current, window)) => {
                let fleet = self.fleet_record(name, current.as_deref()).await;
                if let Ok(Some(record)) = &fleet {
                    if record.failures == 0 {
                        // Another process succeeded since this one failed.
                        lock(&self.local).remove(name);
                    } else if record.next_renewal.is_some_and(|at| at > now) {
                        self.record_status(name, false).await;
                        return Outcome::Waiting;
                    }
                }
                failures_before = match fleet {
                    Ok(Some(record)) => record.failures,
                    _ => self.local_failures(name, current.as_deref()).0,
                };
                about.clone_from(&current);
                // The certificate served until the new one is stored, if it is still valid.
                serving = current
                    .and_then(|id| id.parse::<CertId>().ok())
                    .zip(window.map(|(_, not_after)| not_after))
                    .filter(|(_, not_after)| *not_after > now);
                self.issuer.issue(name).await
            }
            Err(error) => Err(error),
        };
        let outcome = match result {
            Ok(issued) => {
                lock(&self.local).remove(name);
                match &issued.previous {
                    Some(previous) => {
                        bump(&self.counters.renewed);
                        if let Ok(cert) = self.issuer.store.get(&issued.id).await
                            && let Some(not_after) = cert.metadata().not_after
                        {
                            self.emit(ExpiryEvent::Renewed(CertificateRenewed::new(
                                name,
                                issued.id.fingerprint(),
                                previous.fingerprint(),
                                not_after,
                            )))
                            .await;
                        }
                    }
                    None => bump(&self.counters.issued),
                }
                Outcome::Issued {
                    id: issued.id,
                    previous: issued.previous,
                }
            }
            Err(AcmeError::Busy { .. }) => {
                self.record_status(name, false).await;
                return Outcome::Busy;
            }
            Err(error) => {
                bump(&self.counters.failed);
                // The count goes on from the fleet's (another process may have failed
                // before), so the delays grow fleet-wide.
                let failures = failures_before.saturating_add(1);
                let retry_in = retry_delay(failures, jitter());
                lock(&self.local).insert(
                    name.to_owned(),
                    Local {
                        failures,
                        retry_at: Some(now + retry_in),
                        last_error: Some(error.summary()),
                        about,
                    },
                );
                tracing::warn!(name, %error, retry_in_seconds = retry_in.as_secs(), "ACME certificate not obtained; retrying later");
                // The event describes the certificate still served (its fingerprint and expiry,
                // which webhook receivers, the event cooldowns and the certificate page key on).
                // A first certificate that cannot be obtained has none: it is told by the log,
                // the name's status (`/tyk/acme`, `certctl acme status`) and
                // `certgate_acme_consecutive_failures{name}` instead.
                if let Some((id, not_after)) = serving {
                    self.emit(ExpiryEvent::RenewalFailed(CertificateRenewalFailed::new(
                        name,
                        id.fingerprint(),
                        not_after,
                        &error.summary(),
                        failures,
                        now + retry_in,
                    )))
                    .await;
                }
                Outcome::Failed {
                    error: error.summary(),
                    retry_in,
                }
            }
        };
        // This process attempted the name: its view is the fleet's news.
        self.record_status(name, true).await;
        outcome
    }

    async fn emit(&self, event: ExpiryEvent) {
        for sink in &self.sinks {
            if let Err(error) = sink.deliver(&event).await {
                tracing::warn!(%error, event = event.name(), "an event sink refused a renewal event");
            }
        }
    }

    /// Keeps the name's status for the metrics; after an attempt of this process (`attempted`),
    /// shares it through the coordinator as the fleet's record (the other processes' checks
    /// only read it, so a process that is not ordering never overwrites the orderer's failures).
    async fn record_status(&self, name: &str, attempted: bool) {
        let status = if attempted {
            let status = self.local_status(name).await;
            if let Ok(json) = serde_json::to_string(&status)
                && let Err(error) = self.issuer.coordinator.put_status(name, &json).await
            {
                tracing::debug!(%error, "cannot record the ACME status");
            }
            status
        } else {
            self.status(name).await
        };
        lock(&self.statuses).insert(name.to_owned(), status);
    }

    /// What `/metrics` shows of automatic certificates: each managed name's status (by name),
    /// and the outcomes since start. The gateway renders them (`certgate_acme_*`).
    pub fn figures(&self) -> AcmeFigures {
        use std::sync::atomic::Ordering::Relaxed;
        let mut names: Vec<NameStatus> = lock(&self.statuses).values().cloned().collect();
        names.sort_by(|a, b| a.name.cmp(&b.name));
        AcmeFigures {
            names,
            issued: self.counters.issued.load(Relaxed),
            renewed: self.counters.renewed.load(Relaxed),
            failed: self.counters.failed.load(Relaxed),
        }
    }

    /// The fleet's record of `name` (written by whichever process last attempted it), when it
    /// is about the name's current certificate `current`; an error when the coordinator does
    /// not answer.
    async fn fleet_record(
        &self,
        name: &str,
        current: Option<&str>,
    ) -> Result<Option<NameStatus>, AcmeError> {
        let Some(json) = self.issuer.coordinator.status(name).await? else {
            return Ok(None);
        };
        match serde_json::from_str::<NameStatus>(&json) {
            // A record about a certificate replaced since says nothing about this one.
            Ok(record) => Ok(Some(record).filter(|r| r.cert_id.as_deref() == current)),
            Err(error) => {
                tracing::debug!(name, %error, "an unreadable ACME status record: ignored");
                Ok(None)
            }
        }
    }

    /// This process's own failures for `name` (count, retry moment, last error), when they are
    /// about the certificate `current`.
    fn local_failures(
        &self,
        name: &str,
        current: Option<&str>,
    ) -> (u32, Option<OffsetDateTime>, Option<String>) {
        lock(&self.local)
            .get(name)
            .filter(|l| l.about.as_deref() == current)
            .map(|l| (l.failures, l.retry_at, l.last_error.clone()))
            .unwrap_or_default()
    }

    /// `name`'s status from this process's own attempts (what it shares after one).
    async fn local_status(&self, name: &str) -> NameStatus {
        let (cert_id, window) = self.due(name).await.unwrap_or_default();
        let (failures, retry_at, last_error) = self.local_failures(name, cert_id.as_deref());
        NameStatus {
            name: name.to_owned(),
            not_after: window.map(|(_, not_after)| not_after),
            next_renewal: retry_at.or(window.map(|(renew_at, _)| renew_at)),
            cert_id,
            failures,
            last_error,
            local_only: false,
        }
    }

    /// `name`'s status for the fleet: its current certificate and when it is due, with the
    /// failures, last error and next retry that the coordinator records from whichever process
    /// last attempted it. When the coordinator does not answer, this process's own view, marked
    /// [`local_only`](NameStatus::local_only).
    pub async fn status(&self, name: &str) -> NameStatus {
        // `None` when the coordinator (or the store) did not answer.
        let (cert_id, window, fleet) = match self.due(name).await {
            Ok((cert_id, window)) => {
                let fleet = self.fleet_record(name, cert_id.as_deref()).await.ok();
                (cert_id, window, fleet)
            }
            Err(_) => (None, None, None),
        };
        let local_only = fleet.is_none();
        let (failures, retry_at, last_error) = match fleet.flatten() {
            Some(record) => (
                record.failures,
                record.next_renewal.filter(|_| record.failures > 0),
                record.last_error,
            ),
            None => self.local_failures(name, cert_id.as_deref()),
        };
        NameStatus {
            name: name.to_owned(),
            not_after: window.map(|(_, not_after)| not_after),
            next_renewal: retry_at.or(window.map(|(renew_at, _)| renew_at)),
            cert_id,
            failures,
            last_error,
            local_only,
        }
    }

    /// Every managed name's [status](Self::status), in the order the names were given.
    pub async fn statuses(&self) -> Vec<NameStatus> {
        let mut statuses = Vec::new();
        for name in self.names() {
            statuses.push(self.status(&name).await);
        }
        statuses
    }

    /// The status of the name whose current certificate is `id`; `None` when this manager does
    /// not manage that certificate.
    pub async fn status_of_certificate(&self, id: &CertId) -> Option<NameStatus> {
        let wanted = id.to_string();
        for name in self.names() {
            if let Ok(Some(current)) = self.issuer.coordinator.current(&name).await
                && current == wanted
            {
                return Some(self.status(&name).await);
            }
        }
        None
    }

    /// Checks the names now and then every `check_interval` (sooner while another process is
    /// ordering), until `stop` turns true.
    pub fn spawn(self: Arc<Self>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let outcomes = self.check_all().await;
                let busy = outcomes.iter().any(|(_, o)| matches!(o, Outcome::Busy));
                let pause = if busy {
                    Duration::from_secs(2).min(self.check_interval)
                } else {
                    self.check_interval
                };
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stop.changed() => return,
                }
            }
        })
    }
}

/// The delay before retry number `failures` (1 = first): 1 minute doubling up to 6 hours, then
/// spread by `jitter` (a factor between 0.9 and 1.1) so that a fleet does not retry in step.
pub(crate) fn retry_delay(failures: u32, jitter: f64) -> Duration {
    let doubled = FIRST_RETRY.saturating_mul(1u32 << failures.saturating_sub(1).min(20));
    doubled.min(LONGEST_RETRY).mul_f64(jitter.clamp(0.9, 1.1))
}

/// A random factor between 0.9 and 1.1.
fn jitter() -> f64 {
    0.9 + jitter_unit() * 0.2
}

/// A random number between 0 and 1.
fn jitter_unit() -> f64 {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 2];
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    f64::from(u16::from_le_bytes(bytes)) / f64::from(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_up_to_the_cap_and_stay_within_the_jitter() {
        assert_eq!(retry_delay(1, 1.0), Duration::from_secs(60));
        assert_eq!(retry_delay(2, 1.0), Duration::from_secs(120));
        assert_eq!(retry_delay(3, 1.0), Duration::from_secs(240));
        assert_eq!(retry_delay(40, 1.0), LONGEST_RETRY);
        assert_eq!(retry_delay(1, 0.9), Duration::from_secs(54));
        assert_eq!(retry_delay(1, 5.0), Duration::from_secs(66));
        for _ in 0..50 {
            let factor = jitter();
            assert!((0.9..=1.1).contains(&factor), "{factor}");
        }
    }
}
