//! Counters and per-certificate expiry gauges, as a snapshot: figures, not text. Whoever
//! exposes them (the gateway's `/metrics`) chooses names and format.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use time::OffsetDateTime;
use tls_core::Fingerprint;

use crate::event::EventType;

/// A counter bumped from many threads: one cache line per stripe, so the request path does not
/// fight over a single line.
pub(crate) struct StripedCounter {
    stripes: [Stripe; STRIPES],
}

const STRIPES: usize = 16;

#[repr(align(128))]
#[derive(Default)]
struct Stripe(AtomicU64);

static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn my_stripe() -> usize {
    STRIPE.with(|stripe| {
        let mut index = stripe.get();
        if index == usize::MAX {
            index = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % STRIPES;
            stripe.set(index);
        }
        index
    })
}

impl StripedCounter {
    pub(crate) fn new() -> Self {
        Self {
            stripes: Default::default(),
        }
    }

    pub(crate) fn increment(&self) {
        if let Some(stripe) = self.stripes.get(my_stripe()) {
            stripe.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn sum(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

/// The monitor's live counters.
pub(crate) struct Metrics {
    /// Observations that did not lead to a check: within the check cooldown, or queued already.
    pub(crate) skipped_on_observe: StripedCounter,
    /// Checks the worker skipped because the check cooldown was held (locally or shared).
    pub(crate) skipped_by_worker: AtomicU64,
    pub(crate) checks: AtomicU64,
    pub(crate) expiring_soon: AtomicU64,
    pub(crate) expired: AtomicU64,
    pub(crate) suppressed: AtomicU64,
    pub(crate) queue_full: AtomicU64,
    pub(crate) shared_store_errors: AtomicU64,
    pub(crate) sink_errors: AtomicU64,
    /// Per certificate seen by the worker: its CN and `notAfter`.
    pub(crate) certificates: Mutex<HashMap<Fingerprint, (Arc<str>, OffsetDateTime)>>,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        Self {
            skipped_on_observe: StripedCounter::new(),
            skipped_by_worker: AtomicU64::new(0),
            checks: AtomicU64::new(0),
            expiring_soon: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
            queue_full: AtomicU64::new(0),
            shared_store_errors: AtomicU64::new(0),
            sink_errors: AtomicU64::new(0),
            certificates: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, now: OffsetDateTime) -> MetricsSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut certificates: Vec<CertificateExpiry> = self
            .certificates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(fingerprint, (name, not_after))| CertificateExpiry {
                fingerprint: *fingerprint,
                name: name.to_string(),
                not_after: *not_after,
                seconds_to_expiry: (*not_after - now).whole_seconds(),
            })
            .collect();
        certificates.sort_by_key(|c| c.fingerprint);
        MetricsSnapshot {
            certificates,
            checks: load(&self.checks),
            checks_skipped: self
                .skipped_on_observe
                .sum()
                .wrapping_add(load(&self.skipped_by_worker)),
            events_expiring_soon: load(&self.expiring_soon),
            events_expired: load(&self.expired),
            events_suppressed: load(&self.suppressed),
            queue_full: load(&self.queue_full),
            shared_store_errors: load(&self.shared_store_errors),
            sink_errors: load(&self.sink_errors),
        }
    }
}

/// One certificate the monitor has seen.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CertificateExpiry {
    /// The leaf fingerprint.
    pub fingerprint: Fingerprint,
    /// The subject CN.
    pub name: String,
    /// The certificate's `notAfter`.
    pub not_after: OffsetDateTime,
    /// Seconds from the snapshot's clock reading to `notAfter`; negative once expired.
    pub seconds_to_expiry: i64,
}

impl CertificateExpiry {
    /// An entry from its parts (for renderers' tests and custom snapshots).
    pub fn new(
        fingerprint: Fingerprint,
        name: impl Into<String>,
        not_after: OffsetDateTime,
        seconds_to_expiry: i64,
    ) -> Self {
        Self {
            fingerprint,
            name: name.into(),
            not_after,
            seconds_to_expiry,
        }
    }
}

/// The monitor's metrics at one instant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Every certificate observed or swept so far (due at least once), by fingerprint.
    pub certificates: Vec<CertificateExpiry>,
    /// Checks done (validity evaluated).
    pub checks: u64,
    /// Observations and sweep visits that led to no check because of the check cooldown (or
    /// because a check of that certificate was already queued).
    pub checks_skipped: u64,
    /// `CertificateExpiringSoon` events emitted.
    pub events_expiring_soon: u64,
    /// `CertificateExpired` events emitted.
    pub events_expired: u64,
    /// Events not emitted because the event cooldown was held (here or by another monitor).
    pub events_suppressed: u64,
    /// Checks dropped because the worker's queue was full (retried a second later).
    pub queue_full: u64,
    /// Failed claims on the shared cooldown store (decided locally instead).
    pub shared_store_errors: u64,
    /// Failed deliveries to sinks.
    pub sink_errors: u64,
}

impl MetricsSnapshot {
    /// Events emitted of type `event_type`.
    pub fn events(&self, event_type: EventType) -> u64 {
        match event_type {
            EventType::CertificateExpiringSoon => self.events_expiring_soon,
            EventType::CertificateExpired => self.events_expired,
            // Renewal events are counted by their emitter (the `acme` crate), not the monitor.
            EventType::CertificateRenewed | EventType::CertificateRenewalFailed => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn striped_counter_sums_across_threads() {
        let counter = Arc::new(StripedCounter::new());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let counter = Arc::clone(&counter);
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        counter.increment();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(counter.sum(), 8000);
    }
}
