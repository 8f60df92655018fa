//! Scale figures for the certificate store and the gateway, printed as one table:
//!
//! - listing 100,000 certificates of one org through `CertStore::list` pages (memory, and Redis
//!   when `redis-server` is installed);
//! - bulk import rate through `CertStore::import` (memory and Redis);
//! - propagation between two stores on one Redis: an add on store A until store B's change
//!   notice arrives and `get` succeeds, and a delete on A until B's cache drops the entry
//!   (p50/p99);
//! - cold start to the first handshake of a gateway serving 10,000 certificates from memory and
//!   from Redis (the gateway's store starts with an empty cache; it loads every configured
//!   certificate before it listens, so "listening" is also "all warm").
//!
//! Every Redis figure is measured on one private `redis-server` and then on a private Redis
//! Cluster of 3 masters and 3 replicas (`test_support::redis::RedisCluster`), in the same run.
//!
//! Records are the shared vectors' P-256 bundle (`testdata/vectors`, or `$CERTGATE_VECTORS`):
//! the store is content-addressed, so distinct IDs are made by storing one certificate under many
//! org IDs (import, cold start, propagation) or by indexing one record under synthetic
//! fingerprints (listing). Sizes can be lowered with `SCALE_LIST`, `SCALE_IMPORT`, `SCALE_COLD`,
//! `SCALE_PROPAGATION`.
//!
//! ```sh
//! cargo run --release -p certgate-examples --example scale
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use cert_store::{
    CertStorage, CertStore, Change, ManualClock, MemoryStorage, PageRequest, PageWalk, RedisConfig,
    RedisConnection, RedisStorage,
};
use gateway_runtime::{GatewayBuilder, GatewayConfig};
use test_support::redis::{RedisCluster, RedisServer};
use test_support::vectors::read as vector;
use time::macros::datetime;
use tls_core::{CertId, EncodingSecret, Fingerprint, KeyFormat, OrgId, Upload};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

type Error = Box<dyn std::error::Error>;

const SECRET: &str = "scale secret";
const SERVER_NAME: &str = "p256-traditional.vectors.test";

fn size(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn store_over(storage: Arc<dyn CertStorage>) -> CertStore {
    CertStore::builder(storage)
        .encoding_secret(EncodingSecret::new(SECRET))
        .clock(Arc::new(ManualClock::new(
            datetime!(2026-11-29 04:57:32 UTC),
        )))
        .build()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn row(what: &str, figure: String) {
    println!("| {what} | {figure} |");
}

/// Indexes `n` IDs of one org (one record under synthetic fingerprints), then lists them all.
async fn listing(
    label: &str,
    storage: Arc<dyn CertStorage>,
    pem: &str,
    n: usize,
) -> Result<(), Error> {
    let store = store_over(Arc::clone(&storage));
    let org = OrgId::new("5e9d9544a1dcd60001d0ed20")?;
    let upload = Upload::parse(pem, datetime!(2026-11-29 04:57:32 UTC))?;
    let first = upload.id(&org);
    let record = upload
        .seal(&first, &EncodingSecret::new(SECRET), KeyFormat::Modern)?
        .encode();
    let batch: Vec<(CertId, String)> = (0..n as u64)
        .map(|i| {
            (
                CertId::new(org.clone(), Fingerprint::of(&i.to_le_bytes())),
                record.clone(),
            )
        })
        .collect();
    for chunk in batch.chunks(1000) {
        for outcome in storage.insert_many(chunk).await {
            outcome?;
        }
    }
    for limit in [100usize, 1000] {
        let started = Instant::now();
        let mut walk = PageWalk::new(limit);
        let mut seen = 0;
        let mut pages = 0;
        while let Some(request) = walk.request() {
            let listed = store.list(Some(&org), request).await?;
            seen += walk.advance(listed).len();
            pages += 1;
        }
        let elapsed = started.elapsed();
        assert_eq!(seen, n, "listed every ID");
        row(
            &format!("{label}: list {n} IDs of one org, pages of {limit}"),
            format!("{elapsed:.2?} ({pages} pages)"),
        );
    }
    let started = Instant::now();
    let detailed = store
        .list_detailed(Some(&org), &PageRequest::first(100))
        .await?;
    row(
        &format!("{label}: list_detailed, first page of 100 (cold cache)"),
        format!("{:.2?} ({} items)", started.elapsed(), detailed.items.len()),
    );
    Ok(())
}

/// Imports `n` uploads (one bundle under `n` orgs) in batches of 1000.
async fn import(
    label: &str,
    storage: Arc<dyn CertStorage>,
    pem: &str,
    n: usize,
) -> Result<(), Error> {
    let store = store_over(storage);
    let uploads: Vec<(OrgId, String)> = (0..n)
        .map(|i| Ok((OrgId::new(format!("import{i:06}"))?, pem.to_owned())))
        .collect::<Result<_, Error>>()?;
    let started = Instant::now();
    for chunk in uploads.chunks(1000) {
        for outcome in store.import(chunk).await {
            outcome?;
        }
    }
    let elapsed = started.elapsed();
    row(
        &format!("{label}: import {n} certificates (batches of 1000)"),
        format!(
            "{elapsed:.2?} = {:.0} certificates/s",
            n as f64 / elapsed.as_secs_f64()
        ),
    );
    Ok(())
}

async fn redis_storage(
    connection: &RedisConnection,
    prefix: &str,
) -> Result<Arc<dyn CertStorage>, Error> {
    Ok(Arc::new(
        RedisStorage::connect(RedisConfig::new(connection.clone()).with_key_prefix(prefix)).await?,
    ))
}

/// Adds on A, then times B seeing it; deletes on A, then times B's cache dropping it.
async fn propagation(
    label: &str,
    connection: &RedisConnection,
    pem: &str,
    n: usize,
) -> Result<(), Error> {
    let node_a = store_over(redis_storage(connection, "prop-cert-").await?);
    let node_b = store_over(redis_storage(connection, "prop-cert-").await?);
    let mut notices = node_b.subscribe();
    // Let both subscriptions settle.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (mut added, mut readable, mut evicted) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let org = OrgId::new(format!("prop{i:05}"))?;
        let started = Instant::now();
        let id = node_a.add(pem, &org).await?;
        node_b.get(&id).await?;
        readable.push(started.elapsed());
        loop {
            match tokio::time::timeout(Duration::from_secs(5), notices.next()).await? {
                Some(Change::Added(seen)) if seen == id => break,
                Some(_) => {}
                None => return Err("B's notices ended".into()),
            }
        }
        added.push(started.elapsed());
        let started = Instant::now();
        node_a.delete(&id).await?;
        while node_b.cached(&id).is_some() {
            if started.elapsed() > Duration::from_secs(5) {
                return Err("B still caches a deleted certificate after 5 s".into());
            }
            tokio::task::yield_now().await;
        }
        evicted.push(started.elapsed());
    }
    for (what, mut times) in [
        (
            "add on A until B.get succeeds (misses are not cached)",
            readable,
        ),
        ("add on A until B's Added notice", added),
        ("delete on A until B's cache drops it", evicted),
    ] {
        times.sort();
        row(
            &format!("{label} propagation ({n} rounds): {what}"),
            format!(
                "p50 {:.2?}, p99 {:.2?}, max {:.2?}",
                percentile(&times, 0.5),
                percentile(&times, 0.99),
                times[times.len() - 1]
            ),
        );
    }
    Ok(())
}

/// A gateway whose `ssl_certificates` names `n` certificates stored in `storage` beforehand:
/// time from `start` to listening and to the first completed handshake. The gateway gets a store
/// of its own over `storage`, so its cache starts empty, as in a new process.
async fn cold_start(
    label: &str,
    storage: Arc<dyn CertStorage>,
    pem: &str,
    n: usize,
) -> Result<(), Error> {
    let writer = store_over(Arc::clone(&storage));
    let uploads: Vec<(OrgId, String)> = (0..n)
        .map(|i| Ok((OrgId::new(format!("cold{i:06}"))?, pem.to_owned())))
        .collect::<Result<_, Error>>()?;
    let mut ids = Vec::with_capacity(n);
    for chunk in uploads.chunks(1000) {
        for outcome in writer.import(chunk).await {
            ids.push(outcome?.into());
        }
    }
    let store = store_over(storage);
    let mut config = GatewayConfig::default();
    config.listen_address = "127.0.0.1".into();
    config.listen_port = 0;
    config.secret = "scale".into();
    config.http_server_options.use_ssl = true;
    config.http_server_options.ssl_certificates = ids;

    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(vector("root-ca.pem").as_bytes()) {
        roots.add(cert?)?;
    }
    let client =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
    let connector = TlsConnector::from(Arc::new(client));

    let started = Instant::now();
    let gateway = GatewayBuilder::new(config).store(store).start().await?;
    let listening = started.elapsed();
    let tcp = tokio::net::TcpStream::connect(gateway.local_addr()).await?;
    connector
        .connect(ServerName::try_from(SERVER_NAME)?, tcp)
        .await?;
    let first = started.elapsed();
    row(
        &format!("cold start, {n} certificates in {label}: start() until listening (all loaded)"),
        format!("{listening:.2?}"),
    );
    row(
        &format!("cold start, {n} certificates in {label}: start() until first handshake done"),
        format!("{first:.2?}"),
    );
    gateway.shutdown().await;
    Ok(())
}

async fn run() -> Result<(), Error> {
    let pem = vector("leaf-p256-traditional.bundle.pem");
    println!("| figure | measured |");
    println!("| --- | --- |");
    let list_n = size("SCALE_LIST", 100_000);
    let import_n = size("SCALE_IMPORT", 10_000);
    listing("memory", Arc::new(MemoryStorage::new()), &pem, list_n).await?;
    import("memory", Arc::new(MemoryStorage::new()), &pem, import_n).await?;
    let cold_n = size("SCALE_COLD", 10_000);
    cold_start("memory", Arc::new(MemoryStorage::new()), &pem, cold_n).await?;
    let propagation_n = size("SCALE_PROPAGATION", 500);
    match RedisServer::start() {
        Some(server) => {
            redis_figures(
                "Redis",
                &server.connection(),
                &pem,
                list_n,
                import_n,
                cold_n,
                propagation_n,
            )
            .await?;
        }
        None => println!("| Redis figures | skipped: redis-server is not installed |"),
    }
    match RedisCluster::start() {
        Some(cluster) => {
            redis_figures(
                "Redis Cluster (3+3)",
                &cluster.connection(),
                &pem,
                list_n,
                import_n,
                cold_n,
                propagation_n,
            )
            .await?;
        }
        None => println!("| Redis Cluster figures | skipped: redis-server is not installed |"),
    }
    Ok(())
}

/// Every Redis figure on one deployment; each figure gets its own key prefix (a fresh store).
async fn redis_figures(
    label: &str,
    connection: &RedisConnection,
    pem: &str,
    list_n: usize,
    import_n: usize,
    cold_n: usize,
    propagation_n: usize,
) -> Result<(), Error> {
    listing(
        label,
        redis_storage(connection, "list-cert-").await?,
        pem,
        list_n,
    )
    .await?;
    import(
        label,
        redis_storage(connection, "import-cert-").await?,
        pem,
        import_n,
    )
    .await?;
    propagation(label, connection, pem, propagation_n).await?;
    cold_start(
        label,
        redis_storage(connection, "cold-cert-").await?,
        pem,
        cold_n,
    )
    .await?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("scale: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scale: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
