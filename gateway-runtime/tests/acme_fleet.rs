//! Automatic certificates in a fleet: two gateways on one Redis (store and coordination) in
//! front of Pebble. Exactly one order is placed (counted by Pebble itself), the gateway that did
//! not order serves the certificate without a restart, and a lock holder that died blocks the
//! name only until its lock expires; its late result is refused. (A `gateway` process killed
//! while its order is being validated: `gateway/tests/acme_takeover.rs`.)

#![cfg(all(feature = "acme", feature = "redis"))]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use acme::testkit::{Pebble, free_port};
use acme::{Commit, Coordinator as _, RedisCoordinator};
use cert_store::testkit::RedisServer;
use gateway_runtime::{Gateway, GatewayBuilder};
use rustls::pki_types::CertificateDer;
use tls_core::Fingerprint;

/// A gateway on Redis at `redis_port`, listening on `tls_port`, wanting a certificate for `name`.
async fn gateway(redis_port: u16, tls_port: u16, pebble: &Pebble, name: &str) -> Gateway {
    let mut config =
        support::acme_gateway_json(tls_port, pebble.acme_block(&[name], &["tls-alpn-01"]));
    config["storage"] =
        serde_json::json!({"type": "redis", "host": "127.0.0.1", "port": redis_port});
    GatewayBuilder::new(support::config_from_json(&config))
        .start()
        .await
        .unwrap()
}

/// The fingerprint served for `name` at `addr` to a client trusting `root`, once it verifies
/// (at most 60 s).
async fn served(addr: SocketAddr, name: &str, root: &CertificateDer<'static>) -> Fingerprint {
    support::until_served(addr, name, root, None, String::new).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_wanting_the_same_name_place_one_order_and_both_serve_it() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let name = "fleet.certgate.test";
    let (tls_a, tls_b) = (free_port(), free_port());
    // Pebble validates against gateway A only: when B orders, A answers from the shared store.
    let Some(pebble) = Pebble::start(free_port(), tls_a) else {
        return;
    };
    let (a, b) = tokio::join!(
        gateway(redis.port(), tls_a, &pebble, name),
        gateway(redis.port(), tls_b, &pebble, name)
    );
    let root = pebble.issuing_root();
    let (served_a, served_b) = tokio::join!(
        served(a.local_addr(), name, &root),
        served(b.local_addr(), name, &root)
    );
    assert_eq!(served_a, served_b, "both serve the one certificate");
    // Past the loser's next look (2 s while the other orders): still one order.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(pebble.orders_created(), 1, "{}", pebble.log());
    for gateway in [&a, &b] {
        let status = gateway.acme().unwrap().status(name).await;
        assert_eq!(
            status
                .cert_id
                .map(|id| id.parse::<tls_core::CertId>().unwrap().fingerprint()),
            Some(served_a)
        );
    }
    a.shutdown_within(Duration::from_secs(1)).await;
    b.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lock_holder_blocks_the_name_until_its_lock_expires_and_its_late_commit_is_refused()
{
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let name = "takeover.certgate.test";
    let tls_port = free_port();
    let Some(pebble) = Pebble::start(free_port(), tls_port) else {
        return;
    };
    // A process took the lock and died: it never extends nor releases it.
    let coordinator = RedisCoordinator::connect(&redis.url()).await.unwrap();
    let dead = coordinator
        .acquire(name, Duration::from_secs(4))
        .await
        .unwrap()
        .expect("the lock is free");
    let started = Instant::now();
    let gateway = gateway(redis.port(), tls_port, &pebble, name).await;
    let root = pebble.issuing_root();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        pebble.orders_created(),
        0,
        "nobody orders while the lock lives"
    );
    let fingerprint = served(gateway.local_addr(), name, &root).await;
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "taken over only after the lock expired"
    );
    assert_eq!(pebble.orders_created(), 1, "{}", pebble.log());
    // The dead holder wakes up late: its certificate would be refused, and releasing its old
    // lock changes nothing.
    assert_eq!(
        coordinator.commit(&dead, "stale").await.unwrap(),
        Commit::Superseded
    );
    coordinator.release(&dead).await.unwrap();
    let current = coordinator.current(name).await.unwrap().unwrap();
    assert_eq!(
        current.parse::<tls_core::CertId>().unwrap().fingerprint(),
        fingerprint
    );
    gateway.shutdown_within(Duration::from_secs(1)).await;
}
