//! The reverse proxy through a running gateway: upstream client certificates, pinning,
//! HTTP/2 upstreams and streamed bodies, with real upstreams and real handshakes.

#[path = "common/upstream.rs"]
mod upstream;

use bytes::Bytes;
use cert_store::{CertStore, MemoryStorage};
use gateway_runtime::{ApiDefinition, Gateway, GatewayBuilder, GatewayConfig};
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::sync::Arc;
use tls_core::{EncodingSecret, OrgId};
use upstream::{TestCa, TestUpstream, UpstreamOptions, Usage, seen};

fn store() -> CertStore {
    CertStore::builder(Arc::new(MemoryStorage::new()))
        .encoding_secret(EncodingSecret::new("proxy gateway test"))
        .build()
}

fn api(json: Value) -> ApiDefinition {
    ApiDefinition::from_json(&json.to_string(), std::path::Path::new("api.json")).unwrap()
}

async fn start(store: CertStore, apis: Vec<ApiDefinition>, root: &TestCa) -> Gateway {
    let mut config = GatewayConfig::default();
    config.listen_address = "127.0.0.1".into();
    config.listen_port = 0;
    config.secret = "control-secret".into();
    GatewayBuilder::new(config)
        .store(store)
        .apis(apis)
        .upstream_root(root.cert.clone())
        .start()
        .await
        .unwrap()
}

struct Reply {
    status: StatusCode,
    seen: Value,
    body: Bytes,
}

async fn send(gateway: &Gateway, method: &str, path: &str, body: Bytes) -> Reply {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", gateway.local_addr()))
        .body(Full::new(body))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status();
    let seen = seen(response.headers());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply { status, seen, body }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_presents_upstream_client_certificates_and_enforces_pins() {
    let server_ca = TestCa::root("upstream ca");
    let client_ca = TestCa::root("client ca");
    let server = server_ca.leaf(&["localhost"], Usage::Server);
    let upstream = TestUpstream::start(UpstreamOptions {
        client_ca: Some(client_ca.cert.clone()),
        h2: true,
        ..UpstreamOptions::tls(&server)
    })
    .await;
    let client = client_ca.leaf(&["gateway"], Usage::Client);
    let store = store();
    let client_id = store
        .add(&client.bundle(), &OrgId::new("org1").unwrap())
        .await
        .unwrap()
        .to_string();
    let target = upstream.url("https", "localhost");
    let stranger = TestCa::root("stranger");
    let apis = vec![
        api(json!({
            "api_id": "mtls-up",
            "proxy": { "listen_path": "/up/", "target_url": target, "strip_listen_path": true },
            "upstream_certificates": { "localhost": client_id },
            "pinned_public_keys": { "localhost": server.pin.to_string() },
        })),
        api(json!({
            "api_id": "no-cert",
            "proxy": { "listen_path": "/nocert/", "target_url": target, "strip_listen_path": true },
        })),
        api(json!({
            "api_id": "bad-pin",
            "proxy": { "listen_path": "/badpin/", "target_url": target, "strip_listen_path": true },
            "upstream_certificates": { "*": client_id },
            "pinned_public_keys": { "*": stranger.pin.to_string() },
        })),
    ];
    let gateway = start(store, apis, &server_ca).await;

    let body = Bytes::from(vec![b'x'; 1 << 20]);
    let reply = send(&gateway, "POST", "/up/echo?a=1", body.clone()).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.seen["path"], "/echo?a=1");
    assert_eq!(reply.seen["version"], "HTTP/2.0");
    assert_eq!(reply.seen["client_cert"], client.fingerprint());
    assert_eq!(reply.seen["headers"]["x-forwarded-proto"], "http");
    assert_eq!(reply.body, body, "1 MiB echoed");

    let reply = send(&gateway, "GET", "/nocert/", Bytes::new()).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);

    let reply = send(&gateway, "GET", "/badpin/", Bytes::new()).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    let error: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(
        error,
        json!({ "error": "upstream certificate public key pinning error: public keys do not match" })
    );

    let metrics = gateway.metrics().render();
    assert!(
        metrics.contains("certgate_proxied_requests_total 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("certgate_upstream_failures_total 2"),
        "{metrics}"
    );
    gateway.shutdown().await;
}
