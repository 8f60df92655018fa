//! The monitor end to end with a manual clock and in-memory cooldowns: boundaries, cooldowns,
//! roles, Tyk's JSON for the shared vectors, a full queue, sinks and metrics.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use cert_store::ManualClock;
use common::{GENERATED_AT, drain, subject, vector_subject};
use expiry_monitor::{
    CertRole, ChannelSink, EventSink, EventType, ExpiryEvent, ExpiryMonitor, ExpiryMonitorConfig,
    MemoryCooldowns, MonitorError, SinkError,
};
use time::Duration;
use tokio::sync::broadcast;

struct Harness {
    clock: Arc<ManualClock>,
    monitor: ExpiryMonitor,
    events: broadcast::Receiver<ExpiryEvent>,
}

impl Harness {
    fn start(config: ExpiryMonitorConfig) -> Self {
        let clock = Arc::new(ManualClock::new(GENERATED_AT));
        let sink = ChannelSink::new(1024);
        let events = sink.subscribe();
        let monitor = ExpiryMonitor::builder(config)
            .clock(clock.clone())
            .sink(sink)
            .start()
            .unwrap();
        Self {
            clock,
            monitor,
            events,
        }
    }

    fn advance(&self, by: Duration) {
        self.clock.advance(by);
        self.monitor.sync_clock();
    }

    async fn events(&mut self) -> Vec<ExpiryEvent> {
        self.monitor.flush().await;
        drain(&mut self.events)
    }
}

fn config(check: u64, event: u64) -> ExpiryMonitorConfig {
    let mut config = ExpiryMonitorConfig::default();
    config.check_cooldown_seconds = check;
    config.event_cooldown_seconds = event;
    config
}

#[tokio::test]
async fn boundaries_hold_through_the_monitor() {
    let mut h = Harness::start(ExpiryMonitorConfig::default());
    let now = GENERATED_AT;
    let cases = [
        (
            "exactly-30d",
            Duration::days(30),
            Some(EventType::CertificateExpiringSoon),
        ),
        ("30d-plus-1s", Duration::days(30) + Duration::SECOND, None),
        (
            "1s-left",
            Duration::SECOND,
            Some(EventType::CertificateExpiringSoon),
        ),
        (
            "exactly-0",
            Duration::ZERO,
            Some(EventType::CertificateExpired),
        ),
        (
            "1min-ago",
            -Duration::MINUTE,
            Some(EventType::CertificateExpired),
        ),
        (
            "long-ago",
            -Duration::days(400),
            Some(EventType::CertificateExpired),
        ),
        ("healthy", Duration::days(365), None),
    ];
    for (name, left, _) in &cases {
        h.monitor
            .observe(&subject(name, now, *left), CertRole::Client, "api1");
    }
    // Not yet valid, though inside the warning window: no event.
    let future = expiry_monitor::CertSubject::new(
        tls_core::Fingerprint::of(b"not-yet-valid"),
        now + Duration::days(1),
        now + Duration::days(10),
        "not-yet-valid",
    );
    h.monitor.observe(&future, CertRole::Client, "api1");

    let events = h.events().await;
    for (name, _, expected) in cases {
        let got = events
            .iter()
            .find(|e| e.cert_name() == name)
            .map(ExpiryEvent::event_type);
        assert_eq!(got, expected, "{name}");
    }
    assert!(events.iter().all(|e| e.cert_name() != "not-yet-valid"));
    assert_eq!(events.len(), 5);
    let metrics = h.monitor.metrics();
    assert_eq!(metrics.checks, 8);
    assert_eq!(metrics.events_expiring_soon, 2);
    assert_eq!(metrics.events_expired, 3);
    let minute_ago = events.iter().find(|e| e.cert_name() == "1min-ago").unwrap();
    assert_eq!(
        minute_ago.message(),
        "Certificate 1min-ago is expired since 0 hours"
    );
}

#[tokio::test]
async fn within_the_check_cooldown_nothing_is_rechecked() {
    let mut h = Harness::start(config(3600, 0));
    let cert = subject("healthy.example", GENERATED_AT, Duration::days(365));
    for _ in 0..100 {
        h.monitor.observe(&cert, CertRole::Server, "");
    }
    assert!(h.events().await.is_empty());
    let metrics = h.monitor.metrics();
    assert_eq!(metrics.checks, 1);
    assert_eq!(metrics.checks_skipped, 99);

    h.advance(Duration::seconds(3599));
    h.monitor.observe(&cert, CertRole::Server, "");
    h.monitor.flush().await;
    assert_eq!(
        h.monitor.metrics().checks,
        1,
        "1 s before the cooldown ends"
    );
    assert_eq!(h.monitor.metrics().checks_skipped, 100);

    h.advance(Duration::SECOND);
    h.monitor.observe(&cert, CertRole::Server, "");
    h.monitor.flush().await;
    assert_eq!(h.monitor.metrics().checks, 2, "the cooldown has passed");
}

#[tokio::test]
async fn within_the_event_cooldown_no_second_event() {
    let mut h = Harness::start(config(1, 3600));
    let cert = subject("expiring.example", GENERATED_AT, Duration::days(10));
    h.monitor.observe(&cert, CertRole::Client, "api1");
    assert_eq!(h.events().await.len(), 1);

    // Checked again after the check cooldown, but the event cooldown holds.
    h.advance(Duration::SECOND);
    h.monitor.observe(&cert, CertRole::Client, "api1");
    assert!(h.events().await.is_empty());
    let metrics = h.monitor.metrics();
    assert_eq!((metrics.checks, metrics.events_suppressed), (2, 1));

    h.advance(Duration::seconds(3600 - 1 - 1));
    h.monitor.observe(&cert, CertRole::Client, "api1");
    assert!(
        h.events().await.is_empty(),
        "1 s before the event cooldown ends"
    );

    h.advance(Duration::SECOND);
    h.monitor.observe(&cert, CertRole::Client, "api1");
    let events = h.events().await;
    assert_eq!(events.len(), 1, "the event cooldown has passed");
    assert_eq!(
        events[0].message(),
        "Certificate expiring.example is expiring in 9 days and 23 hours"
    );
    assert_eq!(h.monitor.metrics().events_expiring_soon, 2);
}

#[tokio::test]
async fn roles_and_api_ids_are_carried_into_events() {
    let mut h = Harness::start(ExpiryMonitorConfig::default());
    let now = GENERATED_AT;
    h.monitor.observe(
        &subject("server.example", now, Duration::days(3)),
        CertRole::Server,
        "",
    );
    h.monitor.observe(
        &subject("client.example", now, Duration::days(3)),
        CertRole::Client,
        "api-c",
    );
    h.monitor.observe(
        &subject("upstream.example", now, -Duration::days(3)),
        CertRole::Upstream,
        "api-u",
    );
    let events = h.events().await;
    let find = |name: &str| events.iter().find(|e| e.cert_name() == name).unwrap();
    assert_eq!(find("server.example").role(), CertRole::Server);
    assert!(!find("server.example").to_json().contains("api_id"));
    assert_eq!(find("client.example").role(), CertRole::Client);
    assert_eq!(find("client.example").api_id(), "api-c");
    let upstream = find("upstream.example");
    assert_eq!(upstream.event_type(), EventType::CertificateExpired);
    assert!(
        upstream
            .to_json()
            .ends_with(r#""api_id":"api-u","cert_role":"upstream"}"#),
        "{}",
        upstream.to_json()
    );
}

#[tokio::test]
async fn one_certificate_has_one_cooldown_whatever_uses_it() {
    let mut h = Harness::start(ExpiryMonitorConfig::default());
    let cert = subject("shared.example", GENERATED_AT, Duration::days(3));
    h.monitor.observe(&cert, CertRole::Upstream, "first-api");
    h.monitor.observe(&cert, CertRole::Client, "second-api");
    let events = h.events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].role(), events[0].api_id()),
        (CertRole::Upstream, "first-api")
    );
}

#[tokio::test]
async fn vector_certificates_give_tyks_json() {
    let mut h = Harness::start(ExpiryMonitorConfig::default());
    for name in [
        "expiring-10d.bundle.pem",
        "valid-31d.bundle.pem",
        "expired-30min.bundle.pem",
        "not-yet-valid.bundle.pem",
    ] {
        h.monitor.observe(
            &vector_subject(name),
            CertRole::Client,
            "5e9d9544a1dcd60001d0ed20",
        );
    }
    let mut events: Vec<String> = h.events().await.iter().map(ExpiryEvent::to_json).collect();
    events.sort();
    assert_eq!(
        events,
        [
            concat!(
                r#"{"Message":"Certificate expired-30min.vectors.test is expired since 0 hours","#,
                r#""OriginatingRequest":"","#,
                r#""cert_id":"4175725546b9f9e975beae78d57c1ebbb7991a10bd3b7fa3d35f8696f761d78e","#,
                r#""cert_name":"expired-30min.vectors.test","expired_at":"2026-11-29T04:27:32Z","#,
                r#""days_since_expiry":0,"api_id":"5e9d9544a1dcd60001d0ed20","cert_role":"client"}"#
            ),
            concat!(
                r#"{"Message":"Certificate expiring-10d.vectors.test is expiring in 10 days","#,
                r#""OriginatingRequest":"","#,
                r#""cert_id":"7d0c7288f1af81476f5f2be88e96dc43a8b98ead3d974f98038bc009a7e695ce","#,
                r#""cert_name":"expiring-10d.vectors.test","expires_at":"2026-12-09T04:57:32Z","#,
                r#""days_remaining":10,"api_id":"5e9d9544a1dcd60001d0ed20","cert_role":"client"}"#
            ),
        ]
    );
}

#[tokio::test]
async fn a_full_queue_drops_the_check_and_offers_it_again_a_second_later() {
    let clock = Arc::new(ManualClock::new(GENERATED_AT));
    let sink = ChannelSink::new(16);
    let mut events = sink.subscribe();
    let monitor = ExpiryMonitor::builder(ExpiryMonitorConfig::default())
        .clock(clock.clone())
        .sink(sink)
        .queue_capacity(1)
        .start()
        .unwrap();
    let certs: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|name| subject(name, GENERATED_AT, Duration::days(1)))
        .collect();
    // A current-thread runtime: the worker cannot run before the next await.
    for cert in &certs {
        monitor.observe(cert, CertRole::Client, "");
    }
    assert_eq!(monitor.metrics().queue_full, 2);
    monitor.flush().await;
    assert_eq!(drain(&mut events).len(), 1);

    monitor.observe(&certs[1], CertRole::Client, "");
    monitor.flush().await;
    assert!(
        drain(&mut events).is_empty(),
        "not offered again before a second"
    );

    clock.advance(Duration::SECOND);
    monitor.sync_clock();
    for cert in &certs[1..] {
        monitor.observe(cert, CertRole::Client, "");
        monitor.flush().await;
    }
    let names: Vec<String> = drain(&mut events)
        .iter()
        .map(|e| e.cert_name().to_owned())
        .collect();
    assert_eq!(names, ["b", "c"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_monitors_sharing_cooldowns_emit_one_event_per_cooldown() {
    let clock = Arc::new(ManualClock::new(GENERATED_AT));
    let cooldowns = Arc::new(MemoryCooldowns::new());
    let sink = ChannelSink::new(1024);
    let mut events = sink.subscribe();
    let monitors: Vec<Arc<ExpiryMonitor>> = (0..2)
        .map(|_| {
            Arc::new(
                ExpiryMonitor::builder(config(60, 3600))
                    .clock(clock.clone())
                    .cooldowns(Arc::clone(&cooldowns))
                    .sink(sink.clone())
                    .start()
                    .unwrap(),
            )
        })
        .collect();
    let cert = subject("fleet.example", GENERATED_AT, Duration::days(5));
    let burst = || {
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let monitor = Arc::clone(&monitors[i % 2]);
                let cert = cert.clone();
                tokio::spawn(async move {
                    for _ in 0..500 {
                        monitor.observe(&cert, CertRole::Client, "api1");
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        async {
            for task in tasks {
                task.await.unwrap();
            }
            for monitor in &monitors {
                monitor.flush().await;
            }
        }
    };
    burst().await;
    assert_eq!(drain(&mut events).len(), 1);

    clock.advance(Duration::seconds(3600));
    monitors.iter().for_each(|m| m.sync_clock());
    burst().await;
    assert_eq!(drain(&mut events).len(), 1, "one more after the cooldown");
}

struct FailingSink;

#[async_trait]
impl EventSink for FailingSink {
    async fn deliver(&self, _event: &ExpiryEvent) -> Result<(), SinkError> {
        Err("the webhook is down".into())
    }
}

#[tokio::test]
async fn a_failing_sink_does_not_stop_the_others() {
    let sink = ChannelSink::new(16);
    let mut events = sink.subscribe();
    let monitor = ExpiryMonitor::builder(ExpiryMonitorConfig::default())
        .clock(Arc::new(ManualClock::new(GENERATED_AT)))
        .sink(FailingSink)
        .sink(sink)
        .start()
        .unwrap();
    monitor.observe(
        &subject("x.example", GENERATED_AT, -Duration::HOUR),
        CertRole::Client,
        "",
    );
    monitor.flush().await;
    assert_eq!(drain(&mut events).len(), 1);
    assert_eq!(monitor.metrics().sink_errors, 1);
}

#[tokio::test]
async fn metrics_give_seconds_to_expiry_names_and_counts() {
    let mut h = Harness::start(ExpiryMonitorConfig::default());
    let expiring = subject("expiring.example", GENERATED_AT, Duration::days(10));
    let healthy = subject("healthy.example", GENERATED_AT, Duration::days(100));
    h.monitor.observe(&expiring, CertRole::Client, "api1");
    h.monitor.observe(&healthy, CertRole::Client, "api1");
    h.monitor.observe(&healthy, CertRole::Client, "api1");
    h.events().await;
    h.advance(Duration::seconds(100));
    let metrics = h.monitor.metrics();
    let seconds = |fp| {
        metrics
            .certificates
            .iter()
            .find(|c| &c.fingerprint == fp)
            .map(|c| c.seconds_to_expiry)
    };
    assert_eq!(seconds(expiring.fingerprint()), Some(864_000 - 100));
    assert_eq!(seconds(healthy.fingerprint()), Some(8_640_000 - 100));
    let named = |fp| {
        metrics
            .certificates
            .iter()
            .find(|c| &c.fingerprint == fp)
            .map(|c| c.name.as_str())
    };
    assert_eq!(named(expiring.fingerprint()), Some("expiring.example"));
    assert_eq!(metrics.events(EventType::CertificateExpiringSoon), 1);
    assert_eq!(metrics.events(EventType::CertificateExpired), 0);
    assert_eq!(metrics.checks, 2);
    assert_eq!(metrics.checks_skipped, 1);
}

#[test]
fn start_outside_a_runtime_is_an_error() {
    let err = ExpiryMonitor::builder(ExpiryMonitorConfig::default())
        .start()
        .unwrap_err();
    assert!(matches!(err, MonitorError::NoRuntime), "{err}");
}

#[tokio::test]
async fn start_refuses_bad_configuration() {
    let mut config = ExpiryMonitorConfig::default();
    config.warning_threshold_days = 5000;
    let err = ExpiryMonitor::builder(config).start().unwrap_err();
    assert!(err.to_string().contains("warning_threshold_days"), "{err}");

    let mut config = ExpiryMonitorConfig::default();
    config.sweep_interval_seconds = 60;
    let err = ExpiryMonitor::builder(config).start().unwrap_err();
    assert!(matches!(err, MonitorError::NoStore), "{err}");
}

#[tokio::test]
async fn shutdown_stops_the_worker() {
    let h = Harness::start(ExpiryMonitorConfig::default());
    let monitor = Arc::new(h.monitor);
    monitor.observe(
        &subject("x.example", GENERATED_AT, Duration::days(1)),
        CertRole::Client,
        "",
    );
    monitor.flush().await;
    let monitor = Arc::into_inner(monitor).unwrap();
    monitor.shutdown().await;
}
