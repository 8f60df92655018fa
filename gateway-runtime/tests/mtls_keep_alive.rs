//! Mutual TLS on keep-alive connections: the verdict on a connection's client certificate is
//! reused by its later requests, but never past a change of the API's policy nor past the
//! expiry of a certificate involved.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use cert_store::{CertStore, Clock as _, ManualClock, MemoryStorage, SystemClock};
use http_body_util::{BodyExt as _, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use support::{api, client_config, echo_upstream, start, store_builder, tls_config};
use test_support::pki::{Leaf, TestCa};
use tls_core::OrgId;

async fn add(store: &CertStore, pem: &str) -> String {
    store.add(pem, &OrgId::EMPTY).await.unwrap().to_string()
}

/// One HTTP/1.1 connection over TLS to `addr`, presenting `identity`, kept open across
/// requests.
async fn keep_alive(
    addr: SocketAddr,
    host: &str,
    roots: &TestCa,
    identity: &Leaf,
) -> SendRequest<Empty<Bytes>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(client_config(&[roots.ca_der()], Some(identity)))
        .connect(ServerName::try_from(host.to_owned()).unwrap(), tcp)
        .await
        .unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

/// `GET path` on the open connection: status and body.
async fn get(sender: &mut SendRequest<Empty<Bytes>>, host: &str, path: &str) -> (u16, String) {
    sender.ready().await.expect("the connection is still open");
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, host)
        .body(Empty::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A counter of the gateway's metrics.
fn counter(gateway: &gateway_runtime::Gateway, name: &str) -> u64 {
    gateway
        .metrics()
        .render()
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in the metrics"))
}

/// An mTLS API accepting clients of the CA `ca_id`, alone on its domain (so the handshake
/// requires a client certificate too).
fn secure_api(ca_id: &str, upstream: SocketAddr) -> gateway_runtime::ApiDefinition {
    api(
        serde_json::json!({"api_id": "secure", "domain": "keep.test",
        "use_mutual_tls_auth": true, "client_certificates": [ca_id],
        "proxy": {"listen_path": "/", "target_url": format!("http://{upstream}")}}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_client_policy_applies_to_the_next_request_of_an_open_connection() {
    let (server_pki, client_pki, other_pki) = (
        TestCa::root("server ca"),
        TestCa::root("client ca"),
        TestCa::root("other ca"),
    );
    let upstream = echo_upstream().await;
    let store = support::memory_store();
    let mut config = tls_config();
    config.http_server_options.ssl_certificates = vec![
        add(&store, &server_pki.server(&["keep.test"]).bundle())
            .await
            .parse()
            .unwrap(),
    ];
    let client_ca = add(&store, &client_pki.cert_pem).await;
    let other_ca = add(&store, &other_pki.cert_pem).await;
    let gateway = start(config, store, vec![secure_api(&client_ca, upstream)]).await;
    let addr = gateway.local_addr();
    let mut connection = keep_alive(addr, "keep.test", &server_pki, &client_pki.client("c")).await;

    for i in 0..5 {
        let (status, body) = get(&mut connection, "keep.test", &format!("/r{i}")).await;
        assert_eq!(status, 200, "request {i}: {body}");
    }

    // The same definitions again: a new snapshot, new policies, the same verdict.
    gateway
        .reload_apis(vec![secure_api(&client_ca, upstream)])
        .await
        .unwrap();
    assert_eq!(get(&mut connection, "keep.test", "/same").await.0, 200);

    // The client's CA is no longer accepted: the next request is refused, on the same
    // connection, with the message and the count a fresh check gives.
    let refusals = counter(&gateway, "certgate_mtls_refusals_total");
    gateway
        .reload_apis(vec![secure_api(&other_ca, upstream)])
        .await
        .unwrap();
    for attempt in 0..2 {
        let (status, body) = get(&mut connection, "keep.test", "/after").await;
        assert_eq!(status, 403, "attempt {attempt}: {body}");
        assert!(body.contains("not allowed"), "{body}");
    }
    assert_eq!(
        counter(&gateway, "certgate_mtls_refusals_total"),
        refusals + 2,
        "every refused request counts"
    );

    // Refusals are not remembered: accepted again as soon as the CA is.
    gateway
        .reload_apis(vec![secure_api(&client_ca, upstream)])
        .await
        .unwrap();
    assert_eq!(get(&mut connection, "keep.test", "/back").await.0, 200);
    assert_eq!(
        counter(&gateway, "certgate_tls_handshakes_total"),
        1,
        "every request went through the one connection"
    );
    drop(connection);
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_connection_is_refused_once_its_client_certificate_expires() {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let store = store_builder(Arc::new(MemoryStorage::new()))
        .clock(Arc::clone(&clock) as Arc<dyn cert_store::Clock>)
        .build();
    let (server_pki, client_pki) = (TestCa::root("server ca"), TestCa::root("client ca"));
    let upstream = echo_upstream().await;
    let mut config = tls_config();
    config.http_server_options.ssl_certificates = vec![
        add(&store, &server_pki.server(&["keep.test"]).bundle())
            .await
            .parse()
            .unwrap(),
    ];
    let client_ca = add(&store, &client_pki.cert_pem).await;
    let gateway = start(config, store, vec![secure_api(&client_ca, upstream)]).await;
    let identity = client_pki.client_expiring_in("short-lived", 1);
    let mut connection =
        keep_alive(gateway.local_addr(), "keep.test", &server_pki, &identity).await;

    for path in ["/a", "/b", "/c"] {
        assert_eq!(get(&mut connection, "keep.test", path).await.0, 200);
    }
    clock.advance(time::Duration::hours(12));
    assert_eq!(get(&mut connection, "keep.test", "/d").await.0, 200);

    clock.advance(time::Duration::days(2));
    let (status, body) = get(&mut connection, "keep.test", "/expired").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("not allowed"), "{body}");
    drop(connection);
    gateway.shutdown().await;
}
