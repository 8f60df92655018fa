//! Automatic certificates in a fleet: two gateways on one Redis (store and coordination) in
//! front of Pebble. Exactly one order is placed (counted by Pebble itself), the gateway that did
//! not order serves the certificate without a restart, and a lock holder that died blocks the
//! name only until its lock expires; its late result is refused. A name that fails on the
//! ordering gateway shows its failures and last error on the other gateway's `GET /tyk/acme`
//! (the fleet's record in Redis), and the other does not order it again before the fleet's
//! retry; with Redis gone the route still answers, from the gateway's own view, flagged. Pebble
//! validates `tls-alpn-01` through a gateway that did not order (its lookups in Redis counted),
//! so the bounded lookups of `acme-tls/1` hellos keep another process's challenge answerable. (A `gateway` process killed
//! while its order is being validated: `gateway/tests/acme_takeover.rs`.)

#![cfg(all(feature = "acme", feature = "redis"))]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use acme::testkit::{CountingCoordinator, Pebble, free_port};
use acme::{Commit, Coordinator, RedisCoordinator};
use cert_store::testkit::RedisServer;
use gateway_runtime::wire::AcmeStatus;
use gateway_runtime::{Gateway, GatewayBuilder};
use rustls::pki_types::CertificateDer;
use test_support::pki::TestCa;
use tls_core::{Fingerprint, OrgId};

/// A gateway on Redis at `redis_port`, listening on `tls_port`, wanting a certificate for `name`.
async fn gateway(redis_port: u16, tls_port: u16, pebble: &Pebble, name: &str) -> Gateway {
    gateway_coordinated(redis_port, tls_port, pebble, name, None).await
}

/// [`gateway`], coordinating through `coordinator` when given (else the store's Redis).
async fn gateway_coordinated(
    redis_port: u16,
    tls_port: u16,
    pebble: &Pebble,
    name: &str,
    coordinator: Option<Arc<dyn Coordinator>>,
) -> Gateway {
    let mut config =
        support::acme_gateway_json(tls_port, pebble.acme_block(&[name], &["tls-alpn-01"]));
    config["storage"] =
        serde_json::json!({"type": "redis", "host": "127.0.0.1", "port": redis_port});
    let mut builder = GatewayBuilder::new(support::config_from_json(&config));
    if let Some(coordinator) = coordinator {
        builder = builder.acme_coordinator(coordinator);
    }
    builder.start().await.unwrap()
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

/// `GET /tyk/acme` on `gateway`, over TLS for `localhost` (a certificate from `ca` that the
/// test uploads and serves), within 10 s.
async fn acme_status(gateway: &Gateway, ca: &TestCa) -> AcmeStatus {
    let (status, body) = tokio::time::timeout(
        Duration::from_secs(10),
        support::tls_control(
            gateway.local_addr(),
            "localhost",
            ca,
            "acme test secret",
            ("GET", "/tyk/acme", b""),
        ),
    )
    .await
    .expect("the route answers within 10 s")
    .unwrap();
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_failing_on_the_ordering_gateway_shows_its_failures_on_the_other_gateway() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let name = "failing-fleet.certgate.test";
    let (tls_a, tls_b) = (free_port(), free_port());
    let Some(pebble) = Pebble::start(free_port(), tls_a) else {
        return;
    };
    // Pebble validates the name at an address where nothing listens: every order fails.
    pebble.set_a(name, "127.0.0.2");
    let (a, b) = tokio::join!(
        gateway(redis.port(), tls_a, &pebble, name),
        gateway(redis.port(), tls_b, &pebble, name)
    );
    let failed = |g: &Gateway| g.acme().unwrap().figures().failed;
    let started = Instant::now();
    let (orderer, other) = loop {
        match (failed(&a), failed(&b)) {
            (0, 0) => {}
            (_, 0) => break (&a, &b),
            (0, _) => break (&b, &a),
            both => panic!("both gateways ordered: {both:?}\n{}", pebble.log()),
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no order failed: {}",
            pebble.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Past the other's next looks (every 2 s while the orderer held the lock): it waits for the
    // fleet's retry instead of ordering again.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(pebble.orders_created(), 1, "{}", pebble.log());
    assert_eq!(failed(other), 0, "the other gateway did not order");

    let ca = TestCa::root("acme fleet control CA");
    let localhost = ca.server(&["localhost"]);
    let id = other
        .store()
        .add(&localhost.bundle(), &OrgId::default())
        .await
        .unwrap();
    for gateway in [&a, &b] {
        gateway.add_server_certificate(&id).await.unwrap();
    }

    let own = orderer.acme().unwrap().status(name).await;
    let status = acme_status(other, &ca).await;
    assert_eq!(
        (status.issued, status.failed),
        (0, 0),
        "the counts are the answering gateway's own"
    );
    let [shown] = <[_; 1]>::try_from(status.names).expect("one name");
    assert_eq!(shown.name, name);
    assert_eq!(shown.failures, 1, "the orderer's failure: {shown:?}");
    let last_error = shown.last_error.clone().expect("the orderer's error");
    assert_eq!(Some(&last_error), own.last_error.as_ref());
    assert!(last_error.contains(name), "{last_error}");
    assert!(
        !last_error.contains("127.0.0.2"),
        "no address: {last_error}"
    );
    let now = other.store().clock().now();
    let retry = shown.next_renewal.expect("the fleet's next retry");
    assert!(
        retry > now + time::Duration::seconds(30) && retry < now + time::Duration::seconds(120),
        "the first retry, about a minute after the failure: {retry}"
    );
    assert!(!shown.local_only, "{shown:?}");

    // Redis goes away: the route still answers, from this gateway's own view (it never
    // attempted the name), and says so.
    redis.stop();
    let status = acme_status(other, &ca).await;
    let [shown] = <[_; 1]>::try_from(status.names).expect("one name");
    assert!(shown.local_only, "{shown:?}");
    assert_eq!((shown.failures, shown.last_error), (0, None));
    let status = acme_status(orderer, &ca).await;
    let [shown] = <[_; 1]>::try_from(status.names).expect("one name");
    assert!(shown.local_only, "{shown:?}");
    assert_eq!(shown.failures, 1, "the orderer's own failure: {shown:?}");
    a.shutdown_within(Duration::from_secs(1)).await;
    b.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pebble_validates_through_the_gateway_that_did_not_order() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let name = "answered.certgate.test";
    let (tls_a, tls_b) = (free_port(), free_port());
    // Pebble validates against A only; B orders.
    let Some(pebble) = Pebble::start(free_port(), tls_a) else {
        return;
    };
    let b = gateway(redis.port(), tls_b, &pebble, name).await;
    let lock_key = format!("certgate-acme-lock-{{{name}}}");
    let started = Instant::now();
    while support::redis_command(redis.port(), &[b"EXISTS", lock_key.as_bytes()]).await != ":1\r\n"
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "B never took the lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A wants the same name too, but B holds the lock: A answers B's challenge from Redis.
    let counting = Arc::new(CountingCoordinator::new(Arc::new(
        RedisCoordinator::connect(&redis.url()).await.unwrap(),
    )));
    let a = gateway_coordinated(redis.port(), tls_a, &pebble, name, Some(counting.clone())).await;
    let root = pebble.issuing_root();
    let (served_a, served_b) = tokio::join!(
        served(a.local_addr(), name, &root),
        served(b.local_addr(), name, &root)
    );
    assert_eq!(served_a, served_b, "both serve the one certificate");
    assert_eq!(pebble.orders_created(), 1, "{}", pebble.log());
    let issued = |g: &Gateway| g.acme().unwrap().figures().issued;
    assert_eq!((issued(&a), issued(&b)), (0, 1), "B ordered, A answered");
    assert!(
        counting.tls_alpn01_lookups() >= 1,
        "A looked the challenge up in Redis"
    );
    a.shutdown_within(Duration::from_secs(1)).await;
    b.shutdown_within(Duration::from_secs(1)).await;
}
