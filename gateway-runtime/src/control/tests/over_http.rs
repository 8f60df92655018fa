//! The control API over a real HTTP/1.1 connection (hyper server, hyper-util client), and a
//! server for running schemathesis by hand.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use super::{Fixture, SECRET, fingerprint, vector};
use crate::control::ControlApi;

/// Serves `api` on a loopback port until the test ends.
async fn serve(api: Arc<ControlApi>, listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let api = api.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let api = api.clone();
                async move { Ok::<_, Infallible>(api.handle(req).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

pub(super) async fn start(api: Arc<ControlApi>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(api, listener));
    addr
}

pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) content_type: String,
    pub(super) text: String,
}

pub(super) async fn call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    body: &str,
    secret: bool,
) -> Reply {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    if secret {
        request = request.header("X-Tyk-Authorization", SECRET);
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let response = client.request(request).await.expect("the server answers");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        content_type,
        text: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

#[tokio::test]
async fn the_api_works_over_real_http() {
    let f = Fixture::new();
    let addr = start(f.api.clone()).await;

    let denied = call(addr, Method::GET, "/tyk/certs", "", false).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(
        denied.text,
        "{\"status\":\"error\",\"message\":\"Attempted administrative access with invalid or missing key!\"}\n"
    );

    let empty = call(addr, Method::GET, "/tyk/certs/", "", true).await;
    assert_eq!(empty.text, "{\"certs\":null}\n");
    assert_eq!(empty.content_type, "application/json");

    let sha = fingerprint("leaf-p256-traditional");
    let added = call(
        addr,
        Method::POST,
        "/tyk/certs?org_id=1",
        &vector("leaf-p256-traditional.bundle.pem"),
        true,
    )
    .await;
    assert_eq!(
        added.text,
        format!("{{\"id\":\"1{sha}\",\"status\":\"ok\",\"message\":\"Certificate added\"}}\n")
    );

    let one = call(addr, Method::GET, &format!("/tyk/certs/1{sha}"), "", true).await;
    assert_eq!(one.status, StatusCode::OK);
    assert!(one.text.starts_with(&format!(
        "{{\"id\":\"1{sha}\",\"fingerprint\":\"{sha}\",\"has_private\":true,"
    )));

    let list = call(addr, Method::GET, "/tyk/certs", "", true).await;
    assert_eq!(list.text, format!("{{\"certs\":[\"1{sha}\"]}}\n"));

    let not_allowed = call(addr, Method::DELETE, "/tyk/certs", "", true).await;
    assert_eq!(not_allowed.status, StatusCode::METHOD_NOT_ALLOWED);

    let removed = call(
        addr,
        Method::DELETE,
        &format!("/tyk/certs/1{sha}"),
        "",
        true,
    )
    .await;
    assert_eq!(
        removed.text,
        "{\"status\":\"ok\",\"message\":\"removed\"}\n"
    );
    let hello = call(addr, Method::GET, "/hello", "", false).await;
    assert_eq!(hello.status, StatusCode::OK);
    let metrics = call(addr, Method::GET, "/metrics", "", true).await;
    assert!(metrics.content_type.starts_with("text/plain"));
    assert!(metrics.text.contains(
        "certgate_control_api_requests_total{route=\"/tyk/certs/{certID}\",code=\"200\"} 2"
    ));
}

#[tokio::test]
async fn an_oversized_upload_over_http_is_413() {
    let f = Fixture::with(|c| c.max_request_body_bytes = 100);
    let addr = start(f.api.clone()).await;
    let reply = call(
        addr,
        Method::POST,
        "/tyk/certs",
        &vector("root-ca.pem"),
        true,
    )
    .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
}
