//! When the shared cooldown store fails, the monitor rests it for a pause before trying it again.
//! (Against a real Redis in `tests/redis.rs`; here a store that fails on demand makes the pause
//! observable.)

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration as StdDuration;

use common::flaky::{Flaky, start};
use common::{GENERATED_AT, drain, subject};
use expiry_monitor::CertRole;
use time::Duration;

#[tokio::test(start_paused = true)]
async fn after_a_failure_the_shared_store_rests_for_the_retry_pause() {
    let store = Arc::new(Flaky::default());
    let (monitor, mut events) = start(&store, StdDuration::from_secs(5));
    let observe = |name: &str| {
        monitor.observe(
            &subject(name, GENERATED_AT, -Duration::days(2)),
            CertRole::Upstream,
            "",
        );
    };

    store.down.store(true, Ordering::SeqCst);
    observe("a");
    observe("b");
    monitor.flush().await;
    assert_eq!(drain(&mut events).len(), 2);
    assert_eq!(
        store.calls.load(Ordering::SeqCst),
        1,
        "only the first claim went to the failing store"
    );

    store.down.store(false, Ordering::SeqCst);
    tokio::time::advance(StdDuration::from_secs(5)).await;
    observe("c");
    monitor.flush().await;
    assert_eq!(drain(&mut events).len(), 1);
    assert_eq!(
        store.calls.load(Ordering::SeqCst),
        3,
        "check and event claims are shared again"
    );
}
