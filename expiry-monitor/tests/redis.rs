//! Monitors sharing cooldowns through real Redis (a private `redis-server`, a private Redis
//! Cluster of 3 masters and 3 replicas, a private Sentinel setup): exactly one event per
//! certificate per cooldown across the fleet, Tyk's keys, and an outage.
#![cfg(feature = "redis")]

mod common;

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use cert_store::{Clock as _, ManualClock, RedisConnection, SystemClock};
use common::{GENERATED_AT, drain, subject};
use expiry_monitor::{
    CertRole, CertSubject, ChannelSink, ExpiryEvent, ExpiryMonitor, ExpiryMonitorConfig,
    RedisCooldowns,
};
use redis::AsyncCommands as _;
use test_support::redis::{RedisCluster, RedisSentinels, RedisServer, raw, raw_cluster};
use time::Duration;
use tokio::sync::broadcast;

fn config(check: u64, event: u64) -> ExpiryMonitorConfig {
    let mut config = ExpiryMonitorConfig::default();
    config.check_cooldown_seconds = check;
    config.event_cooldown_seconds = event;
    config
}

/// A Redis deployment the test started.
enum Target {
    One(RedisServer),
    Cluster(RedisCluster),
    Sentinel(RedisSentinels),
}

/// A plain redis-rs connection to a target, to look at its keys.
enum Raw {
    One(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Target {
    fn connection(&self) -> RedisConnection {
        match self {
            Self::One(server) => server.connection(),
            Self::Cluster(cluster) => cluster.connection(),
            Self::Sentinel(sentinels) => sentinels.connection(),
        }
    }

    async fn raw(&self) -> Raw {
        match self {
            Self::One(server) => Raw::One(raw(server).await),
            Self::Cluster(cluster) => Raw::Cluster(raw_cluster(cluster).await),
            Self::Sentinel(sentinels) => Raw::One(
                redis::Client::open(format!("redis://127.0.0.1:{}/", sentinels.master_port()))
                    .unwrap()
                    .get_multiplexed_async_connection()
                    .await
                    .unwrap(),
            ),
        }
    }
}

impl Raw {
    async fn query<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> T {
        match self {
            Self::One(c) => cmd.query_async(c).await.unwrap(),
            Self::Cluster(c) => cmd.query_async(c).await.unwrap(),
        }
    }
}

/// Every monitor observes `cert` from several tasks at once, then each drains its queue.
async fn burst(monitors: &[Arc<ExpiryMonitor>], cert: &CertSubject) {
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let monitor = Arc::clone(&monitors[i % monitors.len()]);
            let cert = cert.clone();
            tokio::spawn(async move {
                for _ in 0..500 {
                    monitor.observe(&cert, CertRole::Client, "api1");
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    for monitor in monitors {
        monitor.flush().await;
    }
}

/// Two monitors on `connection`, each with its own connection, publishing to one channel.
async fn fleet(
    connection: RedisConnection,
    config: ExpiryMonitorConfig,
    clock: Arc<dyn cert_store::Clock>,
) -> (
    Vec<Arc<ExpiryMonitor>>,
    Vec<RedisCooldowns>,
    broadcast::Receiver<ExpiryEvent>,
) {
    let sink = ChannelSink::new(4096);
    let events = sink.subscribe();
    let mut monitors = Vec::new();
    let mut stores = Vec::new();
    for _ in 0..2 {
        let cooldowns = RedisCooldowns::connect(connection.clone()).await.unwrap();
        stores.push(cooldowns.clone());
        monitors.push(Arc::new(
            ExpiryMonitor::builder(config)
                .clock(Arc::clone(&clock))
                .cooldowns(cooldowns)
                .sink(sink.clone())
                .shared_store_retry(StdDuration::ZERO)
                .start()
                .unwrap(),
        ));
    }
    (monitors, stores, events)
}

/// Waits (polling) until `key` is gone from Redis.
async fn until_gone(redis: &mut Raw, key: &str) {
    let deadline = Instant::now() + StdDuration::from_secs(10);
    loop {
        let exists: bool = redis.query(redis::cmd("EXISTS").arg(key)).await;
        if !exists {
            return;
        }
        assert!(Instant::now() < deadline, "{key} did not expire");
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
}

/// Two monitors sharing `target`: exactly one event per cooldown, Tyk's keys.
async fn exactly_one_event_per_cooldown_on(target: Target) {
    // Redis times its keys with the real clock, so this test uses it too, with 2 s cooldowns.
    let (monitors, _, mut events) =
        fleet(target.connection(), config(2, 2), Arc::new(SystemClock)).await;
    let cert = subject("fleet.example", SystemClock.now(), Duration::days(5));
    let fp = cert.fingerprint().to_string();
    let event_key = format!("cert-cooldown:cert_expiry_event_cooldown:{fp}");
    let check_key = format!("cert-cooldown:cert_check_cooldown:{fp}");

    burst(&monitors, &cert).await;
    let first = drain(&mut events);
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].cert_id().to_string(), fp);

    // Tyk's keys, value "1", with the cooldowns as TTLs.
    let mut redis = target.raw().await;
    for key in [&event_key, &check_key] {
        let value: String = redis.query(redis::cmd("GET").arg(key)).await;
        assert_eq!(value, "1", "{key}");
        let ttl: i64 = redis.query(redis::cmd("PTTL").arg(key)).await;
        assert!((1..=2000).contains(&ttl), "{key}: {ttl} ms");
    }
    let claimed_events: u64 = monitors
        .iter()
        .map(|m| m.metrics().events_expiring_soon)
        .sum();
    assert_eq!(claimed_events, 1);

    // Real waiting, only here: until Redis lets the cooldowns lapse.
    until_gone(&mut redis, &event_key).await;
    until_gone(&mut redis, &check_key).await;
    monitors.iter().for_each(|m| m.sync_clock());
    burst(&monitors, &cert).await;
    assert_eq!(drain(&mut events).len(), 1, "exactly one more");
    let skipped: u64 = monitors.iter().map(|m| m.metrics().checks_skipped).sum();
    assert!(
        skipped > 7000,
        "nearly every observation was a lookup: {skipped}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_monitors_on_one_redis_emit_exactly_one_event_per_cooldown() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    exactly_one_event_per_cooldown_on(Target::One(server)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_monitors_on_a_redis_cluster_emit_exactly_one_event_per_cooldown() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    exactly_one_event_per_cooldown_on(Target::Cluster(cluster)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_monitors_behind_redis_sentinel_emit_exactly_one_event_per_cooldown() {
    let Some(sentinels) = RedisSentinels::start() else {
        return;
    };
    exactly_one_event_per_cooldown_on(Target::Sentinel(sentinels)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_outage_falls_back_to_local_cooldowns_and_recovers() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let clock = Arc::new(ManualClock::new(GENERATED_AT));
    let (monitors, stores, mut events) =
        fleet(server.connection(), config(1, 3600), clock.clone()).await;
    let (a, b) = (&monitors[0], &monitors[1]);

    // Redis up: one event for the fleet.
    let before = subject("before.example", GENERATED_AT, Duration::days(5));
    burst(&monitors, &before).await;
    assert_eq!(drain(&mut events).len(), 1);

    // Redis down: observe still returns at once, and events still come, from local cooldowns.
    server.stop();
    let during = subject("during.example", GENERATED_AT, -Duration::minutes(30));
    let started = Instant::now();
    for _ in 0..1000 {
        a.observe(&during, CertRole::Upstream, "api2");
        a.observe(&before, CertRole::Client, "api1");
        b.observe(&before, CertRole::Client, "api1");
    }
    assert!(
        started.elapsed() < StdDuration::from_millis(500),
        "observe waited: {:?}",
        started.elapsed()
    );
    a.flush().await;
    let got = drain(&mut events);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].cert_name(), "during.example");
    assert_eq!(
        got[0].message(),
        "Certificate during.example is expired since 0 hours"
    );
    assert!(a.metrics().shared_store_errors >= 1);

    // Still down: the local event cooldown holds after the check cooldown passes.
    let earlier = a.metrics();
    clock.advance(Duration::seconds(2));
    a.sync_clock();
    a.observe(&during, CertRole::Upstream, "api2");
    a.flush().await;
    assert!(drain(&mut events).is_empty());
    let metrics = a.metrics();
    assert_eq!(metrics.checks, earlier.checks + 1, "checked again");
    assert_eq!(metrics.events_suppressed, earlier.events_suppressed + 1);

    // Redis back: once both connections answer, cooldowns are shared again.
    server.restart();
    let deadline = Instant::now() + StdDuration::from_secs(10);
    for store in &stores {
        while store.ping().await.is_err() {
            assert!(Instant::now() < deadline, "Redis did not come back");
            tokio::time::sleep(StdDuration::from_millis(20)).await;
        }
    }
    let after = subject("after.example", GENERATED_AT, Duration::days(5));
    burst(&monitors, &after).await;
    let got = drain(&mut events);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].cert_name(), "after.example");
    let mut redis = raw(&server).await;
    let value: String = redis
        .get(format!(
            "cert-cooldown:cert_expiry_event_cooldown:{}",
            after.fingerprint()
        ))
        .await
        .unwrap();
    assert_eq!(value, "1");
}
