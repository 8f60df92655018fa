//! An outage of the shared cooldown store is warned about once, and its end noted. (Alone in
//! its test binary: a thread-scoped `tracing` subscriber must not race other tests' callsites.)

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration as StdDuration;

use common::flaky::{Flaky, start};
use common::{Capture, GENERATED_AT, Line, drain, subject};
use expiry_monitor::CertRole;
use time::Duration;

fn count(lines: &[Line], level: &str, says: &str) -> usize {
    lines
        .iter()
        .filter(|l| l["level"] == level && l["message"].contains(says))
        .count()
}

#[tokio::test]
async fn an_outage_is_warned_about_once_and_its_end_noted() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let store = Arc::new(Flaky::default());
    let (monitor, mut events) = start(&store, StdDuration::ZERO);
    let observe = |name: &str| {
        monitor.observe(
            &subject(name, GENERATED_AT, Duration::days(2)),
            CertRole::Client,
            "",
        );
    };

    store.down.store(true, Ordering::SeqCst);
    for name in ["a", "b", "c"] {
        observe(name);
    }
    monitor.flush().await;
    assert_eq!(drain(&mut events).len(), 3, "local cooldowns decide");
    assert_eq!(
        monitor.metrics().shared_store_errors,
        6,
        "check and event claims"
    );
    let failed = "shared cooldown store failed";
    assert_eq!(count(&capture.lines(), "WARN", failed), 1);

    store.down.store(false, Ordering::SeqCst);
    observe("d");
    monitor.flush().await;
    assert_eq!(drain(&mut events).len(), 1);
    assert_eq!(count(&capture.lines(), "INFO", "answers again"), 1);

    store.down.store(true, Ordering::SeqCst);
    observe("e");
    monitor.flush().await;
    assert_eq!(count(&capture.lines(), "WARN", failed), 2, "a new outage");
}
