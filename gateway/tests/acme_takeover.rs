//! A `gateway` process killed in the middle of an ACME order, in a fleet on one Redis: the name
//! stays locked until the dead process's lock expires, then another gateway orders it, and
//! serves the certificate.

#[path = "../../gateway-runtime/tests/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use acme::testkit::{Pebble, free_port};
use cert_store::testkit::RedisServer;
use gateway_runtime::GatewayBuilder;

/// A configuration on Redis at `redis_port` wanting `name` by `http-01`, its answers on
/// `http_port`; a stalled process keeps the name for 6 seconds.
fn config(
    redis_port: u16,
    tls_port: u16,
    http_port: u16,
    pebble: &Pebble,
    name: &str,
) -> serde_json::Value {
    let mut acme = pebble.acme_block(&[name], &["http-01"]);
    acme["http_port"] = http_port.into();
    acme["lock_ttl_seconds"] = 6.into();
    let mut config = support::acme_gateway_json(tls_port, acme);
    config["storage"] =
        serde_json::json!({"type": "redis", "host": "127.0.0.1", "port": redis_port});
    config
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
    let gateway = GatewayBuilder::new(support::config_from_json(&second))
        .start()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        pebble.orders_created(),
        1,
        "nobody orders while the lock lives"
    );
    let served = support::until_served(
        gateway.local_addr(),
        name,
        &pebble.issuing_root(),
        None,
        || format!("never taken over: {}", pebble.log()),
    )
    .await;
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
        Some(served)
    );
    gateway.shutdown_within(Duration::from_secs(1)).await;
}
