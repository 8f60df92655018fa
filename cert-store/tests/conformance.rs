//! The storage conformance suite on the built-in backends: memory, and Redis as one node, as a
//! Redis Cluster (3 masters, 3 replicas) and behind Redis Sentinel (master, replica, 3
//! sentinels).

use std::sync::Arc;

use cert_store::testkit::conformance;
use cert_store::{CertStorage, MemoryStorage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_storage_passes_the_conformance_suite() {
    conformance::run_all(|| async { Arc::new(MemoryStorage::new()) as Arc<dyn CertStorage> }).await;
}

/// Runs the suite on `connection`, each check with its own key prefix: a fresh, empty store.
#[cfg(feature = "redis")]
async fn run_on(connection: cert_store::RedisConnection, min_replicas_to_ack: u32) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use cert_store::{RedisConfig, RedisStorage};

    let run = AtomicUsize::new(0);
    conformance::run_all(|| {
        let config = RedisConfig::new(connection.clone())
            .with_key_prefix(format!("conf{}-cert-", run.fetch_add(1, Ordering::SeqCst)))
            .with_min_replicas_to_ack(min_replicas_to_ack, Duration::from_secs(5));
        async move {
            Arc::new(RedisStorage::connect(config).await.expect("connect")) as Arc<dyn CertStorage>
        }
    })
    .await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_storage_passes_the_conformance_suite() {
    let Some(server) = cert_store::testkit::RedisServer::start() else {
        return;
    };
    run_on(server.connection(), 0).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_storage_passes_the_conformance_suite_with_replica_acks() {
    let Some(cluster) = cert_store::testkit::RedisCluster::start() else {
        return;
    };
    run_on(cluster.connection(), 1).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sentinel_storage_passes_the_conformance_suite_with_replica_acks() {
    let Some(sentinels) = cert_store::testkit::RedisSentinels::start() else {
        return;
    };
    run_on(sentinels.connection(), 1).await;
}
