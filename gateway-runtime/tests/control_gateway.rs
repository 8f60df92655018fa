//! The control API through a running gateway (plain HTTP, memory store): routing by path, by
//! `control_api_hostname` and by `control_api_port`, with the shared vectors
//! (`testdata/vectors` in the repository, or `$CERTGATE_VECTORS`).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use cert_store::{CertStore, ManualClock, MemoryStorage};
use gateway_runtime::{Gateway, GatewayBuilder, GatewayConfig};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use test_support::vectors::{generated_at, read as vector};

const SECRET: &str = "control-secret-gateway";

async fn start(extra: &str) -> Gateway {
    let config = GatewayConfig::from_json(
        &format!(
            r#"{{"listen_address": "127.0.0.1", "listen_port": 0, "secret": "{SECRET}"{extra}}}"#
        ),
        Path::new("control-gateway-test.json"),
        Vec::new(),
    )
    .unwrap();
    let store = CertStore::builder(Arc::new(MemoryStorage::new()))
        .clock(Arc::new(ManualClock::new(generated_at())))
        .build();
    GatewayBuilder::new(config)
        .store(store)
        .apis(Vec::new())
        .start()
        .await
        .unwrap()
}

async fn call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    host: Option<&str>,
    body: &str,
    secret: bool,
) -> (StatusCode, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    if let Some(host) = host {
        request = request.header("host", host);
    }
    if secret {
        request = request.header("X-Tyk-Authorization", SECRET);
    }
    let response = client
        .request(
            request
                .body(Full::new(Bytes::from(body.to_owned())))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn the_gateway_serves_the_control_api_on_its_port() {
    let gateway = start("").await;
    let addr = gateway.local_addr();
    let (status, body) = call(addr, Method::GET, "/hello", None, "", false).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.starts_with("{\"status\":\"pass\""), "{body}");
    let (status, _) = call(addr, Method::GET, "/tyk/certs", None, "", false).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = call(
        addr,
        Method::POST,
        "/tyk/certs?org_id=1",
        None,
        &vector("root-ca.pem"),
        true,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = call(addr, Method::GET, "/tyk/certs/", None, "", true).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("{\"certs\":[\"1"), "{body}");
    let (status, body) = call(addr, Method::GET, "/metrics", None, "", true).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("certgate_control_api_requests_total"),
        "{body}"
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn with_a_control_hostname_other_hosts_do_not_reach_the_control_api() {
    let gateway = start(r#", "control_api_hostname": "control.test""#).await;
    let addr = gateway.local_addr();
    let (status, body) = call(
        addr,
        Method::GET,
        "/tyk/certs",
        Some("control.test"),
        "",
        true,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "{\"certs\":null}\n");
    let (status, body) = call(
        addr,
        Method::GET,
        "/tyk/certs",
        Some("other.test"),
        "",
        true,
    )
    .await;
    assert_ne!(status, StatusCode::OK, "{body}");
    assert!(!body.contains("certs"), "{body}");
    gateway.shutdown().await;
}

#[tokio::test]
async fn with_a_control_port_the_control_api_lives_there_only() {
    // Port 0 means "on the gateway port" (Tyk), so pick a free one.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gateway = start(&format!(r#", "control_api_port": {free}"#)).await;
    let control = gateway.control_addr().expect("a control listener");
    let (status, body) = call(control, Method::GET, "/tyk/certs", None, "", true).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = call(
        gateway.local_addr(),
        Method::GET,
        "/tyk/certs",
        None,
        "",
        true,
    )
    .await;
    assert_ne!(status, StatusCode::OK, "{body}");
    gateway.shutdown().await;
}
