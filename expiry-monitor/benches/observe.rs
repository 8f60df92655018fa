//! The cost of `ExpiryMonitor::observe` on the request path, within the check cooldown (all but
//! one call per certificate per cooldown), among 1000 known certificates. Target: <= 50 ns.
//!
//! Run: `cargo bench -p certgate-expiry-monitor --bench observe -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::Arc;

use cert_store::ManualClock;
use criterion::{Criterion, criterion_group, criterion_main};
use expiry_monitor::{CertRole, CertSubject, ExpiryMonitor, ExpiryMonitorConfig};
use time::{Duration, macros::datetime};
use tls_core::Fingerprint;

fn observe_within_cooldown(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let now = datetime!(2026-11-29 04:57:32 UTC);
    let monitor = runtime.block_on(async {
        ExpiryMonitor::builder(ExpiryMonitorConfig::default())
            .clock(Arc::new(ManualClock::new(now)))
            .start()
            .expect("the monitor starts")
    });
    let certs: Vec<CertSubject> = (0u32..1000)
        .map(|i| {
            CertSubject::new(
                Fingerprint::of(&i.to_le_bytes()),
                now - Duration::days(30),
                now + Duration::days(365),
                format!("cert{i}.example.com"),
            )
        })
        .collect();
    // The first observation of each certificate queues its check; after it, every observation
    // is within the check cooldown.
    for cert in &certs {
        monitor.observe(cert, CertRole::Client, "api1");
    }
    runtime.block_on(monitor.flush());
    assert_eq!(monitor.metrics().checks, 1000);

    let mut next = 0usize;
    c.bench_function("observe within check cooldown (1000 certificates)", |b| {
        b.iter(|| {
            next = (next + 1) % certs.len();
            if let Some(cert) = certs.get(next) {
                monitor.observe(black_box(cert), CertRole::Client, black_box("api1"));
            }
        });
    });
    assert_eq!(
        monitor.metrics().checks,
        1000,
        "no check while benchmarking"
    );
}

criterion_group!(benches, observe_within_cooldown);
criterion_main!(benches);
