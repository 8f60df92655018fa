//! Losing the store's data must not take TLS down (issue 12, finding 3): a certificate the
//! configuration references keeps being served from the last good snapshot when Redis comes
//! back empty or is flushed, `/hello` says `warn` with the missing IDs, a gauge counts them,
//! and only an explicit delete through the API (or the configuration) drops them.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cert_store::{CertStore, RedisConfig};
use gateway_runtime::Gateway;
use support::{
    api, client_config, echo_upstream, https_get, redis_command, redis_storage, start,
    store_builder, tls_config, tls_control,
};
use test_support::pki::{Leaf, TestCa};
use test_support::redis::RedisServer;
use tls_core::OrgId;

const SECRET: &str = "control-secret";

/// Status and body of a control API request over TLS on `open.test` (0 when nothing answered).
async fn control(
    addr: SocketAddr,
    pki: &TestCa,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, String) {
    tls_control(addr, "open.test", pki, SECRET, (method, path, body))
        .await
        .unwrap_or_else(|e| (0, e))
}

/// A store over `server` whose cache entries expire quickly, as they do after minutes in
/// production: the attack waited that long between the flush and the next add.
async fn redis_store(server: &RedisServer) -> CertStore {
    store_builder(redis_storage(RedisConfig::new(server.connection())).await)
        .cache_ttl(Duration::from_millis(300))
        .build()
}

/// Waits until `check` is true, for at most 20 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not within 20 s: {what}");
}

/// A gateway over Redis serving one server certificate (for `open.test` and `mtls.test`) and
/// an mTLS API on `mtls.test` whose clients must chain to a stored CA.
struct Setup {
    server: RedisServer,
    pki: TestCa,
    clients: TestCa,
    good_client: Leaf,
    server_cert: Leaf,
    server_id: String,
    ca_id: String,
    gateway: Gateway,
}

async fn setup() -> Option<Setup> {
    let server = RedisServer::start()?;
    let pki = TestCa::root("loss server ca");
    let clients = TestCa::root("loss client ca");
    let good_client = clients.client("good client");
    let server_cert = pki.server(&["open.test", "mtls.test"]);
    let store = redis_store(&server).await;
    let org = OrgId::new("loss-org").unwrap();
    let server_id = store
        .add(&server_cert.bundle(), &org)
        .await
        .unwrap()
        .to_string();
    let ca_id = store
        .add(&clients.cert_pem, &org)
        .await
        .unwrap()
        .to_string();
    let mut config = tls_config();
    config.http_server_options.ssl_certificates = vec![server_id.parse().unwrap()];
    let target = format!("http://{}", echo_upstream().await);
    let apis = vec![api(serde_json::json!({
        "api_id": "secure", "domain": "mtls.test", "use_mutual_tls_auth": true,
        "client_certificates": [ca_id], "proxy": {"listen_path": "/secure/", "target_url": target}
    }))];
    let gateway = start(config, store, apis).await;
    let setup = Setup {
        server,
        pki,
        clients,
        good_client,
        server_cert,
        server_id,
        ca_id,
        gateway,
    };
    setup.assert_serving().await;
    Some(setup)
}

impl Setup {
    fn addr(&self) -> SocketAddr {
        self.gateway.local_addr()
    }

    /// A fresh handshake on `open.test` gets the server certificate, and the mTLS API admits
    /// the good client and refuses a stranger.
    async fn assert_serving(&self) {
        let roots = [self.pki.ca_der()];
        let answer = https_get(
            self.addr(),
            "open.test",
            client_config(&roots, None),
            "/hello",
        )
        .await
        .expect("the server certificate is served");
        assert_eq!(answer.server_cert, self.server_cert.der());
        let admitted = https_get(
            self.addr(),
            "mtls.test",
            client_config(&roots, Some(&self.good_client)),
            "/secure/x",
        )
        .await
        .expect("the good client is admitted");
        assert_eq!(admitted.status, Some(200), "{}", admitted.body);
        assert!(
            admitted.body.contains("upstream says /secure/x"),
            "{}",
            admitted.body
        );
        let stranger = TestCa::root("stranger").client("stranger");
        let refused = https_get(
            self.addr(),
            "mtls.test",
            client_config(&roots, Some(&stranger)),
            "/secure/x",
        )
        .await;
        assert!(
            refused.is_err() || refused.as_ref().is_ok_and(|a| a.status != Some(200)),
            "a stranger is refused: {refused:?}"
        );
    }

    async fn hello(&self) -> (u16, serde_json::Value) {
        let (status, body) = control(self.addr(), &self.pki, "GET", "/hello", b"").await;
        (status, serde_json::from_str(&body).unwrap_or_default())
    }

    /// The IDs `/hello` reports missing (empty when it says `pass`).
    async fn missing(&self) -> Vec<String> {
        let (_, hello) = self.hello().await;
        hello["details"]["certificates"]["missing"]
            .as_array()
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| id.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn gauge(&self) -> String {
        let (status, metrics) = control(self.addr(), &self.pki, "GET", "/metrics", b"").await;
        assert_eq!(status, 200);
        metrics
            .lines()
            .find(|l| l.starts_with("certgate_referenced_certificates_missing "))
            .unwrap_or_default()
            .to_owned()
    }

    fn both_sorted(&self) -> Vec<String> {
        let mut ids = vec![self.server_id.clone(), self.ca_id.clone()];
        ids.sort();
        ids
    }

    /// Serving goes on from the last good snapshot, reported as missing; then explicit API
    /// deletes drop the copies.
    async fn assert_lost_but_served_until_deleted(self) {
        let wanted = self.both_sorted();
        eventually("/hello reports both certificates missing", || async {
            self.missing().await == wanted
        })
        .await;
        self.assert_serving().await;
        let (status, hello) = self.hello().await;
        assert_eq!(status, 200, "{hello}");
        assert_eq!(hello["status"], "warn", "{hello}");
        assert_eq!(hello["details"]["storage"]["status"], "pass", "{hello}");
        assert_eq!(
            hello["details"]["certificates"]["status"], "warn",
            "{hello}"
        );
        let output = hello["details"]["certificates"]["output"].as_str().unwrap();
        assert!(
            output.contains(&self.server_id) && output.contains(&self.ca_id),
            "{output}"
        );
        assert_eq!(
            self.gauge().await,
            "certgate_referenced_certificates_missing 2"
        );
        // Several rebuilds later (unrelated adds), still served and still reported once.
        for n in 0..3 {
            let other = self.pki.server(&[&format!("other{n}.test")]);
            let (status, body) = control(
                self.addr(),
                &self.pki,
                "POST",
                "/tyk/certs?org_id=loss-org",
                other.bundle().as_bytes(),
            )
            .await;
            assert_eq!(status, 200, "{body}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.assert_serving().await;
        assert_eq!(self.missing().await, wanted);

        // An explicit delete of the CA through the API ends it: the good client is refused.
        let (status, body) = control(
            self.addr(),
            &self.pki,
            "DELETE",
            &format!("/tyk/certs/{}", self.ca_id),
            b"",
        )
        .await;
        assert_eq!(status, 200, "{body}");
        eventually("the deleted CA is no longer reported", || async {
            self.missing().await == vec![self.server_id.clone()]
        })
        .await;
        let roots = [self.pki.ca_der()];
        eventually("the CA deleted through the API admits nobody", || async {
            let after = https_get(
                self.addr(),
                "mtls.test",
                client_config(&roots, Some(&self.good_client)),
                "/secure/x",
            )
            .await;
            after.is_err() || after.as_ref().is_ok_and(|a| a.status != Some(200))
        })
        .await;
        assert_eq!(
            self.gauge().await,
            "certgate_referenced_certificates_missing 1"
        );

        // Uploading the server certificate again ends its "missing" state.
        let (status, body) = control(
            self.addr(),
            &self.pki,
            "POST",
            "/tyk/certs?org_id=loss-org",
            self.server_cert.bundle().as_bytes(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        eventually(
            "the re-uploaded certificate is no longer missing",
            || async { self.missing().await.is_empty() },
        )
        .await;
        let (status, hello) = self.hello().await;
        assert_eq!((status, hello["status"].as_str()), (200, Some("pass")));
        let _ = &self.clients;
        self.gateway.shutdown().await;
        drop(self.server);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_empty_keeps_tls_serving_from_the_last_good_snapshot() {
    let Some(mut setup) = setup().await else {
        return;
    };
    // The attack: stop Redis, delete its data, start it again.
    setup.server.restart_empty();
    setup.assert_lost_but_served_until_deleted().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushall_then_an_unrelated_add_keeps_tls_serving_from_the_last_good_snapshot() {
    let Some(setup) = setup().await else {
        return;
    };
    assert_eq!(
        redis_command(setup.server.port(), &[b"FLUSHALL"]).await,
        "+OK\r\n"
    );
    // Past the cache lifetime, as minutes are in production; then an unrelated add rebuilds.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let unrelated = setup.pki.server(&["unrelated.test"]);
    let (status, body) = control(
        setup.addr(),
        &setup.pki,
        "POST",
        "/tyk/certs?org_id=loss-org",
        unrelated.bundle().as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    setup.assert_lost_but_served_until_deleted().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_through_another_gateways_api_is_honoured() {
    let Some(setup) = setup().await else {
        return;
    };
    // Another node deletes the server certificate: its Removed notice reaches this gateway.
    let other_node = redis_store(&setup.server).await;
    assert!(
        other_node
            .delete(&setup.server_id.parse().unwrap())
            .await
            .unwrap()
    );
    let roots = [setup.pki.ca_der()];
    eventually(
        "the deleted server certificate is no longer served",
        || async {
            https_get(
                setup.addr(),
                "mtls.test",
                client_config(&roots, Some(&setup.good_client)),
                "/secure/x",
            )
            .await
            .is_err()
        },
    )
    .await;
    assert!(
        setup.gateway.metrics().missing_certificates().is_empty(),
        "a delete is not a loss"
    );
    setup.gateway.shutdown().await;
}
