//! Redis failovers under a running gateway pair, on a private Redis Cluster (3 masters, 3
//! replicas) and a private Sentinel setup (master, replica, 3 sentinels): the master holding
//! the served records is killed while handshakes and control API adds run; handshakes keep
//! succeeding from the cache, adds fail cleanly (503) during the election and succeed after it
//! without restarting anything, with `min_replicas_to_ack = 1` every add that was answered 200
//! is listed afterwards, and the second gateway sees the changes made after the failover.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cert_store::RedisConfig;
use gateway_runtime::GatewayConfig;
use support::{HandshakeLoad, STORE_SECRET, redis_store, start, tls_config, tls_control};
use test_support::pki::TestCa;
use test_support::redis::{Failover, RedisCluster, RedisSentinels};
use tls_core::OrgId;

const SECRET: &str = "control-secret";

/// The status and body of a control API request over TLS on `a.test`.
async fn control(
    addr: SocketAddr,
    pki: &TestCa,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<(u16, String), String> {
    tls_control(addr, "a.test", pki, SECRET, (method, path, body)).await
}

/// The `storage` section of `tyk.conf` for a deployment, in Tyk's field names.
trait TykStorage: Failover {
    fn storage_json(&self) -> serde_json::Value;
}

impl TykStorage for RedisCluster {
    fn storage_json(&self) -> serde_json::Value {
        serde_json::json!({"type": "redis", "enable_cluster": true, "addrs": self.addrs(),
            "min_replicas_to_ack": 1, "min_replicas_timeout_ms": 1000})
    }
}

impl TykStorage for RedisSentinels {
    fn storage_json(&self) -> serde_json::Value {
        serde_json::json!({"type": "redis", "master_name": RedisSentinels::MASTER_NAME,
            "addrs": self.sentinel_addrs(), "min_replicas_to_ack": 1})
    }
}

async fn failover_under_a_gateway_pair(topology: &mut impl TykStorage) {
    let pki = Arc::new(TestCa::root("failover ca"));
    let org = "failover-org";
    let store_a = redis_store(
        RedisConfig::new(topology.connection()).with_min_replicas_to_ack(1, Duration::from_secs(1)),
    )
    .await;
    let mut config = tls_config();
    let mut served = Vec::new();
    for name in ["a.test", "b.test", "c.test"] {
        let id = store_a
            .add(&pki.server(&[name]).bundle(), &OrgId::new(org).unwrap())
            .await
            .unwrap()
            .to_string();
        config
            .http_server_options
            .ssl_certificates
            .push(id.parse().unwrap());
        served.push(id);
    }
    let gateway_a = start(config.clone(), store_a, Vec::new()).await;
    // B's store comes from a tyk.conf `storage` section, as the gateway binary builds it.
    let conf = serde_json::json!({"storage": topology.storage_json(),
        "security": {"private_certificate_encoding_secret": STORE_SECRET}});
    let parsed = GatewayConfig::from_json(
        &conf.to_string(),
        std::path::Path::new("tyk.conf"),
        Vec::new(),
    )
    .unwrap();
    let store_b = gateway_runtime::store_from_config(&parsed).await.unwrap();
    let gateway_b = start(config, store_b, Vec::new()).await;
    let (addr_a, addr_b) = (gateway_a.local_addr(), gateway_b.local_addr());

    // Handshake load on A: fresh clients on every served name, all along.
    let handshakes = HandshakeLoad::start(addr_a, &["a.test", "b.test", "c.test"], pki.ca_der());
    let stop = Arc::new(AtomicBool::new(false));
    // Control API adds on A: each a new certificate; 200 or 503, nothing else.
    let adds = {
        let stop = Arc::clone(&stop);
        let pki = Arc::clone(&pki);
        tokio::spawn(async move {
            let (mut acknowledged, mut refused, mut after_refusal) = (Vec::new(), 0, 0);
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let pem = pki.server(&[&format!("n{n}.test")]).bundle();
                let path = format!("/tyk/certs?org_id={org}");
                match control(addr_a, &pki, "POST", &path, pem.as_bytes()).await {
                    Ok((200, body)) => {
                        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
                        acknowledged.push(answer["id"].as_str().unwrap().to_owned());
                        if refused > 0 {
                            after_refusal += 1;
                        }
                    }
                    Ok((503, _)) => {
                        refused += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    other => panic!("an add was answered {other:?}"),
                }
            }
            (acknowledged, refused, after_refusal)
        })
    };

    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed = topology.kill_master_of(&format!("cert-raw-{}", served[0]));
    tokio::time::sleep(Duration::from_secs(3)).await;
    topology.recover(killed);
    // Adds come back by themselves: wait for some to succeed after the recovery.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let probe = pki.server(&["probe.test"]).bundle();
        let path = format!("/tyk/certs?org_id={org}");
        match control(addr_a, &pki, "POST", &path, probe.as_bytes()).await {
            Ok((200, _)) => break,
            Ok((503, _)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            other => panic!("adds did not come back: {other:?}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let (acknowledged, refused, after_refusal) = adds.await.unwrap();
    let (handshakes_ok, handshakes_failed) = handshakes.stop().await;
    eprintln!(
        "adds answered 200: {}, answered 503: {refused}, 200 after a 503: {after_refusal}; handshakes ok {handshakes_ok}, failed {handshakes_failed}",
        acknowledged.len()
    );
    assert_eq!(handshakes_failed, 0, "a handshake failed");
    assert!(refused > 0, "no add was refused during the election");
    assert!(after_refusal > 0, "no add succeeded after the election");

    // Every add answered 200 is listed, by the second gateway. (Its first request after the
    // failover may still meet the old topology: a 503, then 200.)
    let deadline = Instant::now() + Duration::from_secs(30);
    let listed = loop {
        let (status, listed) = control(
            addr_b,
            &pki,
            "GET",
            &format!("/tyk/certs?org_id={org}"),
            b"",
        )
        .await
        .unwrap();
        match status {
            200 => break listed,
            503 if Instant::now() < deadline => {
                eprintln!("listing on B after the failover: 503 {listed}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            _ => panic!("listing on B: {status} {listed}"),
        }
    };
    for id in acknowledged.iter().chain(&served) {
        assert!(
            listed.contains(id.as_str()),
            "{id} was acknowledged and lost"
        );
    }

    // After the failover, B sees A's changes: a certificate B has cached and A deletes is gone
    // from B at once.
    let victim = &acknowledged[0];
    let path = format!("/tyk/certs/{victim}");
    assert_eq!(
        control(addr_b, &pki, "GET", &path, b"").await.unwrap().0,
        200
    );
    assert_eq!(
        control(addr_a, &pki, "DELETE", &path, b"").await.unwrap().0,
        200
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while control(addr_b, &pki, "GET", &path, b"").await.unwrap().0 != 404 {
        assert!(
            Instant::now() < deadline,
            "B still serves a deleted certificate"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gateway_a.shutdown().await;
    gateway_b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_master_failover_under_a_gateway_pair_loses_no_acknowledged_add() {
    let Some(mut cluster) = RedisCluster::start() else {
        return;
    };
    failover_under_a_gateway_pair(&mut cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_under_a_gateway_pair_loses_no_acknowledged_add() {
    let Some(mut sentinels) = RedisSentinels::start() else {
        return;
    };
    failover_under_a_gateway_pair(&mut sentinels).await;
}
