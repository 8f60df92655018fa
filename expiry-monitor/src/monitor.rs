//! The monitor: the request-path `observe`, the background worker that decides, and the
//! scheduled sweep.
//!
//! `observe` reads a coarse clock (an atomic the background refreshes) and the schedule; when a
//! certificate is due it marks it pending and hands it to the worker through a bounded queue
//! with `try_send`. The worker, alone, does everything that may wait: the check cooldown (local,
//! then a shared claim), validity at the clock's now, the event cooldown (local, then a shared
//! claim), the sinks, and the next-check instant. When the shared store fails it decides with
//! its local cooldowns, warns once per outage, and tries the store again after a short pause.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use cert_store::{CertRole, CertStore, CertUse, Clock, PageWalk, StoreError, SystemClock};
use time::OffsetDateTime;
use tls_core::Fingerprint;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::config::ExpiryMonitorConfig;
use crate::cooldown::{Claim, CooldownKind, CooldownStore, MemoryCooldowns};
use crate::error::MonitorError;
use crate::event::{EventType, ExpiryEvent};
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::schedule::{Schedule, Slot, Take};
use crate::sink::{EventSink, mask_cert_id};
use crate::subject::CertSubject;

/// Default capacity of the queue between `observe` and the worker.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;
/// Default period of the coarse clock that `observe` reads.
pub const DEFAULT_CLOCK_REFRESH: Duration = Duration::from_millis(100);
/// Default pause before the shared cooldown store is tried again after it failed.
pub const DEFAULT_SHARED_RETRY: Duration = Duration::from_secs(1);
/// When the queue is full, a due certificate is offered again this much later.
const QUEUE_FULL_RETRY_MS: i64 = 1000;
/// IDs listed per page by a sweep.
const SWEEP_PAGE: usize = 500;
/// The API ID Tyk's usage tracker gives the gateway's own server certificates.
const GATEWAY_API_ID: &str = "__server__";

/// Builds an [`ExpiryMonitor`]; see [`ExpiryMonitor::builder`].
pub struct ExpiryMonitorBuilder {
    config: ExpiryMonitorConfig,
    clock: Arc<dyn Clock>,
    cooldowns: Option<Arc<dyn CooldownStore>>,
    sinks: Vec<Arc<dyn EventSink>>,
    store: Option<CertStore>,
    queue_capacity: usize,
    clock_refresh: Duration,
    shared_retry: Duration,
}

impl core::fmt::Debug for ExpiryMonitorBuilder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ExpiryMonitorBuilder")
            .field("config", &self.config)
            .field("sinks", &self.sinks.len())
            .field("store", &self.store.is_some())
            .field("queue_capacity", &self.queue_capacity)
            .finish_non_exhaustive()
    }
}

impl ExpiryMonitorBuilder {
    /// The clock that judges expiry and times local cooldowns (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Where cooldowns are shared with other monitors: `RedisCooldowns` (feature `redis`) for
    /// a fleet, or one [`MemoryCooldowns`] shared by the monitors of a process. Default: a
    /// `MemoryCooldowns` of this monitor's own.
    pub fn cooldowns(mut self, store: impl CooldownStore) -> Self {
        self.cooldowns = Some(Arc::new(store));
        self
    }

    /// Adds a sink; events go to every sink, in the order they were added.
    pub fn sink(mut self, sink: impl EventSink) -> Self {
        self.sinks.push(Arc::new(sink));
        self
    }

    /// The certificate store that sweeps go through (needed when `sweep_interval_seconds` is
    /// set, or to call [`ExpiryMonitor::sweep_now`]). Its usage index gives each certificate's
    /// role and API.
    pub fn store(mut self, store: CertStore) -> Self {
        self.store = Some(store);
        self
    }

    /// Capacity of the queue between `observe` and the worker (default
    /// [`DEFAULT_QUEUE_CAPACITY`], at least 1). When it is full, `observe` drops the check and
    /// offers it again a second later; it never waits.
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.max(1);
        self
    }

    /// How often the coarse clock read by `observe` is refreshed from the clock (default
    /// [`DEFAULT_CLOCK_REFRESH`]). A check can be up to this late.
    pub fn clock_refresh(mut self, every: Duration) -> Self {
        self.clock_refresh = every.max(Duration::from_millis(1));
        self
    }

    /// How long to decide with local cooldowns only after the shared store failed, before
    /// trying it again (default [`DEFAULT_SHARED_RETRY`]; zero tries it on every claim).
    pub fn shared_store_retry(mut self, after: Duration) -> Self {
        self.shared_retry = after;
        self
    }

    /// Validates the configuration and starts the monitor's tasks on the current Tokio
    /// runtime: the worker, the coarse clock, and the sweep when `sweep_interval_seconds` is
    /// set (first sweep one interval after the start, so the usage index is filled by then).
    pub fn start(self) -> Result<ExpiryMonitor, MonitorError> {
        self.config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| MonitorError::NoRuntime)?;
        let sweep_interval = self.config.sweep_interval();
        if sweep_interval.is_some() && self.store.is_none() {
            return Err(MonitorError::NoStore);
        }
        let (queue, receiver) = mpsc::channel(self.queue_capacity);
        let shared = Arc::new(Shared {
            now_ms: AtomicI64::new(to_ms(self.clock.now())),
            clock: self.clock,
            schedule: Schedule::new(),
            queue,
            metrics: Metrics::new(),
            config: self.config,
        });
        let worker = Worker {
            shared: Arc::clone(&shared),
            receiver,
            cooldowns: self
                .cooldowns
                .unwrap_or_else(|| Arc::new(MemoryCooldowns::new())),
            sinks: self.sinks,
            local: HashMap::new(),
            shared_down: false,
            shared_retry_at: None,
            shared_retry: self.shared_retry,
            warning: self.config.warning_threshold(),
            check_cooldown: self.config.check_cooldown(),
            event_cooldown: self.config.event_cooldown(),
        };
        let mut tasks = vec![
            runtime.spawn(worker.run()),
            runtime.spawn(refresh_clock(Arc::clone(&shared), self.clock_refresh)),
        ];
        if let (Some(every), Some(store)) = (sweep_interval, &self.store) {
            tasks.push(runtime.spawn(sweep_forever(Arc::clone(&shared), store.clone(), every)));
        }
        Ok(ExpiryMonitor {
            shared,
            store: self.store,
            tasks,
        })
    }
}

/// The certificate expiry monitor. Dropping it (or [`shutdown`](Self::shutdown)) stops its
/// background tasks. Share it in an `Arc` with everything that observes certificates.
pub struct ExpiryMonitor {
    shared: Arc<Shared>,
    store: Option<CertStore>,
    tasks: Vec<JoinHandle<()>>,
}

impl core::fmt::Debug for ExpiryMonitor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ExpiryMonitor")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Drop for ExpiryMonitor {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl ExpiryMonitor {
    /// A builder with `config`, the system clock, private in-memory cooldowns, no sinks and no
    /// store.
    pub fn builder(config: ExpiryMonitorConfig) -> ExpiryMonitorBuilder {
        ExpiryMonitorBuilder {
            config,
            clock: Arc::new(SystemClock),
            cooldowns: None,
            sinks: Vec::new(),
            store: None,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            clock_refresh: DEFAULT_CLOCK_REFRESH,
            shared_retry: DEFAULT_SHARED_RETRY,
        }
    }

    /// Notes that `cert` was used in `role` by API `api_id` (empty when none). Call it on the
    /// request path for every certificate in play (Tyk checks an API's whole client allow-list
    /// on each request, and its upstream certificate on each proxied request).
    ///
    /// It returns at once: no I/O, no waiting, no allocation while `cert` is within its check
    /// cooldown, which is all but one call per cooldown. Then it is a lock-free map read and an
    /// atomic load. When the certificate is due it is queued for the background worker (one
    /// small allocation for `api_id`); if the queue is full it is offered again a second later.
    ///
    /// Why this signature: the fingerprint is the only key the fast path needs, and a
    /// [`CertSubject`] (fingerprint, validity, `Arc<str>` CN) is built once when a certificate
    /// is loaded, from a [`cert_store::LoadedCert`] or a [`tls_core::Metadata`], so callers pass
    /// a reference to something they already hold; `api_id` is a `&str` because callers hold it
    /// as a `String` in the API definition and it is copied only when a check is queued. One
    /// certificate has one cooldown, whatever API or role uses it; the event names whichever
    /// API got there first, as in Tyk.
    ///
    /// Call it for certificates from configuration (allow-lists, server and upstream
    /// certificates), not for every certificate a client presents: each new fingerprint adds
    /// an entry that is kept. A [`CertRole::Pin`] is ignored: a pinned public key does not
    /// expire.
    pub fn observe(&self, cert: &CertSubject, role: CertRole, api_id: &str) {
        self.shared.observe(cert, role, api_id);
    }

    /// Waits until the worker has processed every check queued before this call (events
    /// delivered included). Returns at once if the monitor has stopped.
    pub async fn flush(&self) {
        let (done, finished) = oneshot::channel();
        if self.shared.queue.send(Job::Flush(done)).await.is_ok() {
            let _ = finished.await;
        }
    }

    /// Reads the clock into the coarse clock `observe` uses now, rather than at the next
    /// refresh (useful after moving a test clock).
    pub fn sync_clock(&self) {
        self.shared.refresh_now();
    }

    /// Checks every certificate in the store now (those within their check cooldown are
    /// skipped), as the scheduled sweep does. Returns once all are queued; call
    /// [`flush`](Self::flush) to wait for the checks themselves.
    pub async fn sweep_now(&self) -> Result<SweepReport, MonitorError> {
        let store = self.store.as_ref().ok_or(MonitorError::NoStore)?;
        sweep(&self.shared, store).await
    }

    /// The metrics now.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared.metrics.snapshot(self.shared.clock.now())
    }

    /// The configuration in force.
    pub fn config(&self) -> &ExpiryMonitorConfig {
        &self.shared.config
    }

    /// Stops the background tasks and waits until they have stopped. Checks still queued are
    /// dropped; call [`flush`](Self::flush) first to finish them.
    pub async fn shutdown(mut self) {
        for task in std::mem::take(&mut self.tasks) {
            task.abort();
            let _ = task.await;
        }
    }
}

/// What a sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SweepReport {
    /// Certificate IDs listed.
    pub listed: usize,
    /// Checks queued.
    pub queued: usize,
    /// Certificates within their check cooldown, or already queued.
    pub skipped: usize,
    /// Standalone public keys, which do not expire.
    pub public_keys: usize,
    /// Records that could not be read (logged).
    pub unreadable: usize,
}

/// State shared by the handle, the worker and the timers.
struct Shared {
    clock: Arc<dyn Clock>,
    /// The clock in Unix milliseconds, refreshed by a timer: all `observe` reads of time.
    now_ms: AtomicI64,
    schedule: Schedule,
    queue: mpsc::Sender<Job>,
    metrics: Metrics,
    config: ExpiryMonitorConfig,
}

enum Job {
    Check(Check),
    Flush(oneshot::Sender<()>),
}

struct Check {
    subject: CertSubject,
    role: CertRole,
    api_id: Arc<str>,
    slot: Arc<Slot>,
}

impl Shared {
    fn refresh_now(&self) -> OffsetDateTime {
        let now = self.clock.now();
        self.now_ms.store(to_ms(now), Ordering::Relaxed);
        now
    }

    fn observe(&self, cert: &CertSubject, role: CertRole, api_id: &str) {
        if role == CertRole::Pin {
            return;
        }
        let now_ms = self.now_ms.load(Ordering::Relaxed);
        match self.schedule.take_if_due(cert.fingerprint(), now_ms) {
            Take::NotDue => self.metrics.skipped_on_observe.increment(),
            Take::Due(slot) => {
                let check = Check {
                    subject: cert.clone(),
                    role,
                    api_id: Arc::from(api_id),
                    slot: Arc::clone(&slot),
                };
                if self.queue.try_send(Job::Check(check)).is_err() {
                    Metrics::bump(&self.metrics.queue_full);
                    slot.release(now_ms.saturating_add(QUEUE_FULL_RETRY_MS));
                }
            }
        }
    }

    /// Queues a check of `cert` if it is due, waiting for room in the queue (sweeps only).
    /// True when queued.
    async fn enqueue(
        &self,
        cert: CertSubject,
        role: CertRole,
        api_id: Arc<str>,
    ) -> Result<bool, MonitorError> {
        let now_ms = self.now_ms.load(Ordering::Relaxed);
        match self.schedule.take_if_due(cert.fingerprint(), now_ms) {
            Take::NotDue => {
                self.metrics.skipped_on_observe.increment();
                Ok(false)
            }
            Take::Due(slot) => {
                let check = Check {
                    subject: cert,
                    role,
                    api_id,
                    slot: Arc::clone(&slot),
                };
                if self.queue.send(Job::Check(check)).await.is_err() {
                    slot.release(now_ms);
                    return Err(MonitorError::Stopped);
                }
                Ok(true)
            }
        }
    }
}

/// Keeps the coarse clock fresh.
async fn refresh_clock(shared: Arc<Shared>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        ticks.tick().await;
        shared.refresh_now();
    }
}

/// Sweeps every `every`, the first one `every` after the start.
async fn sweep_forever(shared: Arc<Shared>, store: CertStore, every: Duration) {
    let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        ticks.tick().await;
        match sweep(&shared, &store).await {
            Ok(report) => tracing::debug!(
                listed = report.listed,
                queued = report.queued,
                skipped = report.skipped,
                unreadable = report.unreadable,
                "certificate expiry sweep"
            ),
            Err(MonitorError::Stopped) => return,
            Err(e) => {
                tracing::warn!(error = %e, "certificate expiry sweep failed; trying again at the next interval")
            }
        }
    }
}

async fn sweep(shared: &Shared, store: &CertStore) -> Result<SweepReport, MonitorError> {
    shared.refresh_now();
    let mut report = SweepReport::default();
    let mut walk = PageWalk::new(SWEEP_PAGE);
    while let Some(request) = walk.request() {
        let page = store
            .list(None, request)
            .await
            .map_err(MonitorError::Store)?;
        for id in &walk.advance(page) {
            report.listed += 1;
            let cert = match store.get(id).await {
                Ok(cert) => cert,
                // Deleted since it was listed.
                Err(StoreError::NotFound { .. }) => continue,
                Err(e) if e.is_temporary() => return Err(MonitorError::Store(e)),
                Err(e) => {
                    report.unreadable += 1;
                    tracing::warn!(
                        cert_id = %mask_cert_id(&id.to_string()),
                        error = %e,
                        "certificate expiry sweep: cannot read a certificate; skipping it"
                    );
                    continue;
                }
            };
            let Some(subject) = CertSubject::from_loaded(&cert) else {
                report.public_keys += 1;
                continue;
            };
            let (role, api_id) = sweep_use(&store.apis_using(id));
            if shared.enqueue(subject, role, api_id).await? {
                report.queued += 1;
            } else {
                report.skipped += 1;
            }
        }
    }
    Ok(report)
}

/// The role and API a sweep reports a certificate under: its first use that is not a pin
/// (uses are sorted by API ID), or `server` with no API when it has none. The gateway's own
/// marker API ID `__server__` becomes no API.
fn sweep_use(uses: &[CertUse]) -> (CertRole, Arc<str>) {
    uses.iter()
        .find(|u| u.role != CertRole::Pin)
        .map(|u| {
            let api_id = if u.api_id == GATEWAY_API_ID {
                ""
            } else {
                u.api_id.as_str()
            };
            (u.role, Arc::from(api_id))
        })
        .unwrap_or_else(|| (CertRole::Server, Arc::from("")))
}

/// This process's view of one certificate's cooldowns.
#[derive(Clone, Copy, Default)]
struct LocalCooldowns {
    check_until: Option<OffsetDateTime>,
    event_until: Option<OffsetDateTime>,
}

struct Worker {
    shared: Arc<Shared>,
    receiver: mpsc::Receiver<Job>,
    cooldowns: Arc<dyn CooldownStore>,
    sinks: Vec<Arc<dyn EventSink>>,
    local: HashMap<Fingerprint, LocalCooldowns>,
    /// The shared store failed and has not answered since (warned once).
    shared_down: bool,
    /// Until then, claims are decided locally without asking the shared store.
    shared_retry_at: Option<Instant>,
    shared_retry: Duration,
    warning: time::Duration,
    check_cooldown: Duration,
    event_cooldown: Duration,
}

impl Worker {
    async fn run(mut self) {
        while let Some(job) = self.receiver.recv().await {
            match job {
                Job::Check(check) => self.check(check).await,
                Job::Flush(done) => {
                    let _ = done.send(());
                }
            }
        }
    }

    async fn check(&mut self, check: Check) {
        let shared = Arc::clone(&self.shared);
        let metrics = &shared.metrics;
        let now = shared.refresh_now();
        let fingerprint = *check.subject.fingerprint();
        let local = self.local.get(&fingerprint).copied().unwrap_or_default();
        // The gauge is computed from notAfter when metrics are read, so every certificate this
        // process uses is in it, whichever monitor of the fleet checks it.
        metrics
            .certificates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                fingerprint,
                (
                    Arc::clone(check.subject.shared_name()),
                    check.subject.not_after(),
                ),
            );

        // 1. The check cooldown: local first, then the shared claim.
        if let Some(until) = local.check_until.filter(|until| *until > now) {
            Metrics::bump(&metrics.skipped_by_worker);
            check.slot.release(to_ms(until));
            return;
        }
        if let Some(Claim::Held { remaining }) = self
            .claim(CooldownKind::Check, &fingerprint, self.check_cooldown, now)
            .await
        {
            let until = later(now, remaining);
            self.local.insert(
                fingerprint,
                LocalCooldowns {
                    check_until: Some(until),
                    ..local
                },
            );
            Metrics::bump(&metrics.skipped_by_worker);
            check.slot.release(to_ms(until));
            return;
        }
        let check_until = later(now, self.check_cooldown);

        // 2. Validity at the clock's now.
        Metrics::bump(&metrics.checks);
        let mut event_until = local.event_until;
        let event = ExpiryEvent::at(&check.subject, check.role, &check.api_id, now, self.warning);

        // 3. The event cooldown: local first, then the shared claim; then the sinks.
        if let Some(event) = event {
            if event_until.is_some_and(|until| until > now) {
                Metrics::bump(&metrics.suppressed);
            } else {
                match self
                    .claim(CooldownKind::Event, &fingerprint, self.event_cooldown, now)
                    .await
                {
                    Some(Claim::Held { remaining }) => {
                        event_until = Some(later(now, remaining));
                        Metrics::bump(&metrics.suppressed);
                    }
                    // Won, or the shared store is away: local state says go.
                    Some(Claim::Won) | None => {
                        event_until = Some(later(now, self.event_cooldown));
                        self.emit(&event).await;
                    }
                }
            }
        }

        // 4. Remember, and let observe offer it again after the check cooldown.
        self.local.insert(
            fingerprint,
            LocalCooldowns {
                check_until: Some(check_until),
                event_until,
            },
        );
        check.slot.release(to_ms(check_until));
    }

    /// Claims on the shared store; `None` when it failed (or failed recently), meaning
    /// "decide locally".
    async fn claim(
        &mut self,
        kind: CooldownKind,
        fingerprint: &Fingerprint,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Option<Claim> {
        if self
            .shared_retry_at
            .is_some_and(|retry_at| Instant::now() < retry_at)
        {
            return None;
        }
        match self.cooldowns.claim(kind, fingerprint, ttl, now).await {
            Ok(claim) => {
                if self.shared_down {
                    tracing::info!(
                        "the shared cooldown store answers again; cooldowns are shared again"
                    );
                    self.shared_down = false;
                }
                self.shared_retry_at = None;
                Some(claim)
            }
            Err(e) => {
                Metrics::bump(&self.shared.metrics.shared_store_errors);
                if !self.shared_down {
                    tracing::warn!(
                        error = %e,
                        temporary = e.is_temporary(),
                        "the shared cooldown store failed; deciding with this process's cooldowns until it answers again (other monitors may emit the same events)"
                    );
                    self.shared_down = true;
                }
                self.shared_retry_at = Some(Instant::now() + self.shared_retry);
                None
            }
        }
    }

    async fn emit(&self, event: &ExpiryEvent) {
        let metrics = &self.shared.metrics;
        match event.event_type() {
            EventType::CertificateExpiringSoon => Metrics::bump(&metrics.expiring_soon),
            EventType::CertificateExpired => Metrics::bump(&metrics.expired),
            // Emitted by the `acme` crate through the sinks, never by the monitor.
            EventType::CertificateRenewed | EventType::CertificateRenewalFailed => {}
        }
        for sink in &self.sinks {
            if let Err(e) = sink.deliver(event).await {
                Metrics::bump(&metrics.sink_errors);
                tracing::warn!(
                    error = %e,
                    event_type = event.name(),
                    cert_id = %mask_cert_id(&event.cert_id().to_hex()),
                    "an expiry event sink failed"
                );
            }
        }
    }
}

/// `at` in Unix milliseconds.
fn to_ms(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// `now + by`, saturating at the end of year 9999.
fn later(now: OffsetDateTime, by: Duration) -> OffsetDateTime {
    time::Duration::try_from(by)
        .ok()
        .and_then(|by| now.checked_add(by))
        .unwrap_or_else(|| time::PrimitiveDateTime::MAX.assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_report_the_first_non_pin_use_or_the_server_role() {
        let uses = [
            CertUse {
                api_id: "a".into(),
                role: CertRole::Pin,
            },
            CertUse {
                api_id: "b".into(),
                role: CertRole::Upstream,
            },
            CertUse {
                api_id: "c".into(),
                role: CertRole::Client,
            },
        ];
        assert_eq!(sweep_use(&uses), (CertRole::Upstream, Arc::from("b")));
        assert_eq!(sweep_use(&uses[..1]), (CertRole::Server, Arc::from("")));
        assert_eq!(sweep_use(&[]), (CertRole::Server, Arc::from("")));
        let gateway = [CertUse {
            api_id: GATEWAY_API_ID.into(),
            role: CertRole::Server,
        }];
        assert_eq!(sweep_use(&gateway), (CertRole::Server, Arc::from("")));
    }

    #[test]
    fn later_saturates_instead_of_panicking() {
        let now = time::macros::datetime!(9999-12-31 0:00 UTC);
        assert_eq!(
            later(now, Duration::from_secs(10 * 86_400)),
            time::PrimitiveDateTime::MAX.assume_utc()
        );
        assert_eq!(to_ms(OffsetDateTime::UNIX_EPOCH), 0);
    }
}
