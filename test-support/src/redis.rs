//! The Redis test servers, cert-store's `testkit` ones (one copy, which users' conformance runs
//! use too): a private `redis-server` ([`RedisServer`]), a Cluster of 3 masters and 3 replicas
//! ([`RedisCluster`]) and a master, a replica and three sentinels ([`RedisSentinels`]), stopped
//! on drop. Without `redis-server` they return `None` so the test can skip, except with
//! `CI=true`, where they panic: Redis tests must run in CI.
//!
//! Beside them, plain redis-rs connections, for tests that look at or plant keys behind the
//! store's back.

pub use cert_store::testkit::{Failover, Paused, RedisCluster, RedisSentinels, RedisServer};

/// A plain redis-rs connection to `server`.
pub async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .expect("a valid Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("the test Redis answers")
}

/// A plain redis-rs cluster connection to `cluster`.
pub async fn raw_cluster(cluster: &RedisCluster) -> redis::cluster_async::ClusterConnection {
    redis::cluster::ClusterClient::new(
        cluster
            .addrs()
            .iter()
            .map(|a| format!("redis://{a}"))
            .collect::<Vec<_>>(),
    )
    .expect("valid Redis URLs")
    .get_async_connection()
    .await
    .expect("the test Redis Cluster answers")
}
