//! The storage conformance suite on the built-in backends.

use std::sync::Arc;

use cert_store::testkit::conformance;
use cert_store::{CertStorage, MemoryStorage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_storage_passes_the_conformance_suite() {
    conformance::run_all(|| async { Arc::new(MemoryStorage::new()) as Arc<dyn CertStorage> }).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_storage_passes_the_conformance_suite() {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use cert_store::testkit::RedisServer;
    use cert_store::{RedisConfig, RedisStorage};

    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    // Each check gets its own key prefix on the one private server: a fresh, empty store.
    let run = AtomicUsize::new(0);
    conformance::run_all(|| {
        let config = RedisConfig::new(url.clone())
            .with_key_prefix(format!("conf{}-cert-", run.fetch_add(1, Ordering::SeqCst)));
        async move {
            Arc::new(RedisStorage::connect(config).await.expect("connect")) as Arc<dyn CertStorage>
        }
    })
    .await;
}
