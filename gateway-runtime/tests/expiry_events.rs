//! The expiry monitor wired into the gateway: a certificate used in a handshake or by an mTLS
//! API raises its event once, delivered to a webhook.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::{api, client_config, echo_upstream, https_get, memory_store, start, tls_config};
use test_support::pki::TestCa;
use tls_core::OrgId;

/// A webhook receiver that keeps every body it is sent.
async fn webhook_receiver() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let sink = Arc::clone(&received);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let sink = Arc::clone(&sink);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let sink = Arc::clone(&sink);
                        async move {
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            sink.lock()
                                .unwrap()
                                .push(serde_json::from_slice(&body).unwrap());
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                Bytes::new(),
                            )))
                        }
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiring_server_and_client_certificates_reach_the_webhook_once() {
    let (url, received) = webhook_receiver().await;
    let pki = TestCa::root("expiry ca");
    let store = memory_store();
    let server = pki.server_expiring_in(&["soon.test"], 10);
    let allowed_client = pki.client_expiring_in("client-soon", 5);
    let mut config = tls_config();
    config.http_server_options.ssl_certificates = vec![
        store
            .add(&server.bundle(), &OrgId::EMPTY)
            .await
            .unwrap()
            .into(),
    ];
    let client_id = store
        .add(&allowed_client.cert_pem, &OrgId::EMPTY)
        .await
        .unwrap();
    let mut hook = gateway_runtime::WebhookConfig::default();
    hook.url = url;
    config.certificate_expiry_webhooks = vec![hook];
    let upstream = echo_upstream().await;
    let apis = vec![api(
        serde_json::json!({"api_id": "mtls-api", "use_mutual_tls_auth": true,
        "client_certificates": [client_id.to_string()],
        "proxy": {"listen_path": "/", "target_url": format!("http://{upstream}")}}),
    )];
    let gateway = start(config, store, apis).await;

    for _ in 0..5 {
        let answer = https_get(
            gateway.local_addr(),
            "soon.test",
            client_config(&[pki.ca_der()], Some(&allowed_client)),
            "/x",
        )
        .await
        .unwrap();
        assert_eq!(answer.status, Some(200));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.lock().unwrap().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "events: {:?}",
            received.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = received.lock().unwrap().clone();
    assert_eq!(
        events.len(),
        2,
        "one event per certificate within the cooldown: {events:?}"
    );
    let by_role = |role: &str| {
        events
            .iter()
            .find(|e| e["meta"]["cert_role"] == role)
            .cloned()
            .unwrap()
    };
    let server_event = by_role("server");
    assert_eq!(server_event["event"], "CertificateExpiringSoon");
    assert_eq!(server_event["meta"]["cert_name"], "soon.test");
    let client_event = by_role("client");
    assert_eq!(client_event["meta"]["api_id"], "mtls-api");
    assert_eq!(
        client_event["meta"]["cert_id"],
        client_id.fingerprint().to_hex(),
        "the bare fingerprint, as in Tyk"
    );
    assert!(
        client_event["meta"]["Message"]
            .as_str()
            .unwrap()
            .starts_with("Certificate client-soon is expiring in 4 days")
    );
    gateway.shutdown().await;
}
