//! A `gateway` process killed in the middle of an ACME order, in a fleet on one Redis: the name
//! stays locked until the dead process's lock expires, then another gateway orders it, and
//! serves the certificate.

#[path = "../../gateway-runtime/tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use acme::testkit::{Pebble, free_port};
use cert_store::testkit::RedisServer;
use gateway_runtime::{GatewayBuilder, GatewayConfig};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

/// A configuration on Redis at `redis_port` wanting `name` by `http-01`, its answers on
/// `http_port`; a stalled process keeps the name for `lock_seconds`.
fn config(
    redis_port: u16,
    tls_port: u16,
    http_port: u16,
    pebble: &Pebble,
    name: &str,
) -> serde_json::Value {
    serde_json::json!({
        "listen_address": "127.0.0.1",
        "listen_port": tls_port,
        "secret": "fleet secret",
        "storage": {"type": "redis", "host": "127.0.0.1", "port": redis_port},
        "http_server_options": {
            "use_ssl": true,
            "acme": {
                "enabled": true,
                "directory": pebble.directory_url,
                "accept_terms": true,
                "domains": [name],
                "challenges": ["http-01"],
                "ca_root": pebble.https_root_path(),
                "http_port": http_port,
                "lock_ttl_seconds": 6,
            }
        }
    })
}

/// Waits (at most `limit`) until `done` holds.
async fn until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_mid_order_is_taken_over_once_its_lock_expires() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let name = "killed.certgate.test";
    let validation_port = free_port();
    let Some(pebble) = Pebble::start(validation_port, free_port()) else {
        return;
    };
    // Pebble's http-01 validation reaches a listener that accepts and never answers, so the
    // first process's order stays pending while it is killed.
    let silent = tokio::net::TcpListener::bind(("127.0.0.1", validation_port))
        .await
        .unwrap();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tyk.conf");
    let first = config(redis.port(), free_port(), free_port(), &pebble, name);
    std::fs::write(&file, first.to_string()).unwrap();
    let mut process = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .arg("--config")
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    until(
        Duration::from_secs(60),
        "the first process never got as far as a validation",
        || pebble.log().contains("Pulled a task from the Tasks queue"),
    )
    .await;
    process.kill().unwrap();
    process.wait().unwrap();
    let killed_at = Instant::now();
    silent.abort();
    let _ = silent.await;
    assert_eq!(pebble.orders_created(), 1);

    // A second gateway wants the same name: it waits for the dead process's lock to expire.
    let second = config(redis.port(), free_port(), validation_port, &pebble, name);
    let second = GatewayConfig::from_json(&second.to_string(), Path::new("tyk.conf"), []).unwrap();
    let gateway = GatewayBuilder::new(second).start().await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        pebble.orders_created(),
        1,
        "nobody orders while the lock lives"
    );
    let root = CertificateDer::from_pem_slice(pebble.issuing_root_pem().as_bytes()).unwrap();
    let started = Instant::now();
    let served = loop {
        let answer = support::https_get(
            gateway.local_addr(),
            name,
            support::client_config(std::slice::from_ref(&root), None),
            "/",
        )
        .await;
        if let Ok(answer) = answer {
            break answer.server_cert;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "never taken over: {}",
            pebble.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        killed_at.elapsed() >= Duration::from_secs(3),
        "taken over only once the lock expired"
    );
    assert_eq!(pebble.orders_created(), 2, "{}", pebble.log());
    let status = gateway.acme().unwrap().status(name).await;
    assert_eq!(
        status
            .cert_id
            .map(|id| id.parse::<tls_core::CertId>().unwrap().fingerprint()),
        Some(tls_core::Fingerprint::of(&served))
    );
    gateway.shutdown_within(Duration::from_secs(1)).await;
}
