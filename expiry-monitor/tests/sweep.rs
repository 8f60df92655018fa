//! Sweeps over a certificate store: idle certificates warn too (Tyk only checks on use).

mod common;

use std::sync::Arc;

use cert_store::{CertRole, CertStore, ManualClock, MemoryStorage};
use common::{GENERATED_AT, drain, vector};
use expiry_monitor::{ChannelSink, ExpiryEvent, ExpiryMonitor, ExpiryMonitorConfig, MonitorError};
use tls_core::{CertId, OrgId};
use tokio::sync::broadcast;

const EXPIRING_FINGERPRINT: &str =
    "7d0c7288f1af81476f5f2be88e96dc43a8b98ead3d974f98038bc009a7e695ce";

/// A memory store holding the expiring and the healthy vector under org1, with a clock at the
/// vectors' `generated_at`.
async fn store_with_two_certificates() -> (CertStore, Arc<ManualClock>, CertId, CertId) {
    let clock = Arc::new(ManualClock::new(GENERATED_AT));
    let store = CertStore::builder(Arc::new(MemoryStorage::new()))
        .clock(clock.clone())
        .build();
    let org = OrgId::new("org1").unwrap();
    let expiring = store
        .add(&vector("expiring-10d.bundle.pem"), &org)
        .await
        .unwrap();
    let healthy = store
        .add(&vector("valid-31d.bundle.pem"), &org)
        .await
        .unwrap();
    (store, clock, expiring, healthy)
}

fn monitor_over(
    store: &CertStore,
    clock: Arc<ManualClock>,
    config: ExpiryMonitorConfig,
) -> (ExpiryMonitor, broadcast::Receiver<ExpiryEvent>) {
    let sink = ChannelSink::new(64);
    let events = sink.subscribe();
    let monitor = ExpiryMonitor::builder(config)
        .clock(clock)
        .store(store.clone())
        .sink(sink)
        .start()
        .unwrap();
    (monitor, events)
}

#[tokio::test]
async fn a_sweep_warns_about_the_idle_expiring_certificate_only() {
    let (store, clock, _, _) = store_with_two_certificates().await;
    let (monitor, mut events) = monitor_over(&store, clock, ExpiryMonitorConfig::default());

    let report = monitor.sweep_now().await.unwrap();
    assert_eq!((report.listed, report.queued, report.skipped), (2, 2, 0));
    monitor.flush().await;
    let events = drain(&mut events);
    assert_eq!(events.len(), 1, "{events:?}");
    let ExpiryEvent::ExpiringSoon(event) = &events[0] else {
        panic!("expected CertificateExpiringSoon, got {events:?}");
    };
    assert_eq!(
        event.cert_id.to_string(),
        EXPIRING_FINGERPRINT,
        "no org prefix"
    );
    assert_eq!(event.cert_name, "expiring-10d.vectors.test");
    assert_eq!(event.days_remaining, 10);
    assert_eq!(
        (event.cert_role, event.api_id.as_str()),
        (CertRole::Server, "")
    );
    assert_eq!(monitor.metrics().checks, 2);

    // A second sweep within the check cooldown checks nothing.
    let report = monitor.sweep_now().await.unwrap();
    assert_eq!((report.queued, report.skipped), (0, 2));
}

#[tokio::test]
async fn a_sweep_reports_the_role_and_api_from_the_usage_index() {
    let (store, clock, expiring, _) = store_with_two_certificates().await;
    store
        .usage()
        .register(expiring.clone(), "api-a", CertRole::Pin);
    store
        .usage()
        .register(expiring.clone(), "api-b", CertRole::Upstream);
    store
        .usage()
        .register(expiring.clone(), "api-c", CertRole::Client);
    let (monitor, mut events) = monitor_over(&store, clock, ExpiryMonitorConfig::default());
    monitor.sweep_now().await.unwrap();
    monitor.flush().await;
    let events = drain(&mut events);
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].role(), events[0].api_id()),
        (CertRole::Upstream, "api-b")
    );
}

#[tokio::test]
async fn a_sweep_skips_public_keys_and_needs_a_store() {
    let (store, clock, _, _) = store_with_two_certificates().await;
    store
        .add(&vector("pubkey-p256.pem"), &OrgId::EMPTY)
        .await
        .unwrap();
    let (monitor, mut events) = monitor_over(&store, clock.clone(), ExpiryMonitorConfig::default());
    let report = monitor.sweep_now().await.unwrap();
    assert_eq!(
        (report.listed, report.public_keys, report.queued),
        (3, 1, 2)
    );
    monitor.flush().await;
    assert_eq!(drain(&mut events).len(), 1);

    let storeless = ExpiryMonitor::builder(ExpiryMonitorConfig::default())
        .clock(clock)
        .start()
        .unwrap();
    assert!(matches!(
        storeless.sweep_now().await,
        Err(MonitorError::NoStore)
    ));
}

#[tokio::test(start_paused = true)]
async fn the_scheduled_sweep_runs_every_interval() {
    let (store, clock, _, _) = store_with_two_certificates().await;
    let mut config = ExpiryMonitorConfig::default();
    config.sweep_interval_seconds = 600;
    let (monitor, mut events) = monitor_over(&store, clock, config);
    // Tokio's paused clock jumps to the first sweep, 600 s after the start.
    let started = tokio::time::Instant::now();
    let event = events.recv().await.unwrap();
    assert_eq!(event.cert_name(), "expiring-10d.vectors.test");
    assert!(started.elapsed() >= std::time::Duration::from_secs(600));
    // The paused clock only moves when every task is idle: after this the sweep has finished.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    monitor.flush().await;
    assert_eq!(monitor.metrics().checks, 2);

    // The next sweep finds both within their check cooldown (the certificate clock stands still).
    tokio::time::sleep(std::time::Duration::from_secs(600)).await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    monitor.flush().await;
    let metrics = monitor.metrics();
    assert_eq!((metrics.checks, metrics.checks_skipped), (2, 2));
    assert!(drain(&mut events).is_empty());
}
