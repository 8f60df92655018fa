//! A cooldown store that fails on demand, and a monitor over it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use cert_store::{ManualClock, StorageError, StorageErrorKind};
use expiry_monitor::{
    ChannelSink, Claim, CooldownKind, CooldownStore, ExpiryEvent, ExpiryMonitor,
    ExpiryMonitorConfig, MemoryCooldowns,
};
use time::OffsetDateTime;
use tls_core::Fingerprint;
use tokio::sync::broadcast;

use super::GENERATED_AT;

/// In-memory cooldowns that fail, as an unreachable Redis does, while `down` is set.
#[derive(Default)]
pub(crate) struct Flaky {
    inner: MemoryCooldowns,
    /// Claims fail while set.
    pub(crate) down: AtomicBool,
    /// Claims asked for.
    pub(crate) calls: AtomicUsize,
}

#[async_trait]
impl CooldownStore for Flaky {
    async fn claim(
        &self,
        kind: CooldownKind,
        fingerprint: &Fingerprint,
        ttl: StdDuration,
        now: OffsetDateTime,
    ) -> Result<Claim, StorageError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(StorageError::new(
                StorageErrorKind::Unavailable,
                "connection refused",
            ));
        }
        self.inner.claim(kind, fingerprint, ttl, now).await
    }
}

/// A monitor over `store` with a manual clock at `generated_at` and a channel sink.
pub(crate) fn start(
    store: &Arc<Flaky>,
    retry: StdDuration,
) -> (ExpiryMonitor, broadcast::Receiver<ExpiryEvent>) {
    let sink = ChannelSink::new(64);
    let events = sink.subscribe();
    let monitor = ExpiryMonitor::builder(ExpiryMonitorConfig::default())
        .clock(Arc::new(ManualClock::new(GENERATED_AT)))
        .cooldowns(Arc::clone(store))
        .sink(sink)
        .shared_store_retry(retry)
        .start()
        .unwrap();
    (monitor, events)
}
