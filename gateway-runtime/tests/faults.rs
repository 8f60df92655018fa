//! Fault injection against a running gateway: Redis stopped and restarted under handshake and
//! control API load, a record corrupted in Redis, oversized and stalled control API requests,
//! and a client stalling in the middle of its ClientHello.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cert_store::RedisConfig;
use rustls::pki_types::ServerName;
use support::{
    HandshakeLoad, client_config, https_get, memory_store, redis_command, redis_store, start,
    tls_config, tls_control,
};
use test_support::pki::TestCa;
use test_support::redis::RedisServer;
use tls_core::OrgId;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const SECRET: &str = "control-secret";

/// The status and body of a control API request over TLS to `sni`, with the secret.
async fn control(
    addr: SocketAddr,
    sni: &str,
    roots: &TestCa,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<(u16, String), String> {
    tls_control(addr, sni, roots, SECRET, (method, path, body)).await
}

/// Waits until `check` is true, for at most `limit`.
async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_keeps_handshakes_working_answers_503_and_recovers_without_restart() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let pki = TestCa::root("outage ca");
    let store = redis_store(RedisConfig::new(server.connection())).await;
    let org = OrgId::new("outage-org").unwrap();
    let mut config = tls_config();
    let mut ids = Vec::new();
    for name in ["a.test", "b.test", "c.test"] {
        let id = store
            .add(&pki.server(&[name]).bundle(), &org)
            .await
            .unwrap()
            .to_string();
        config
            .http_server_options
            .ssl_certificates
            .push(id.parse().unwrap());
        ids.push(id);
    }
    let gateway = start(config, store, Vec::new()).await;
    let addr = gateway.local_addr();
    let list_path = "/tyk/certs?org_id=outage-org";
    let (status, listed) = control(addr, "a.test", &pki, "GET", list_path, b"")
        .await
        .unwrap();
    assert_eq!(status, 200, "{listed}");

    // Handshake load: fresh clients (no resumption) on every served name, all along.
    let load = HandshakeLoad::start(addr, &["a.test", "b.test", "c.test"], pki.ca_der());
    tokio::time::sleep(Duration::from_millis(300)).await;

    server.stop();
    let outage_started = load.succeeded();
    for (method, path, body) in [
        ("GET", list_path.to_owned(), Vec::new()),
        ("GET", format!("/tyk/certs/{}", ids[0]), Vec::new()),
        (
            "POST",
            "/tyk/certs?org_id=outage-org".to_owned(),
            pki.server(&["d.test"]).bundle().into_bytes(),
        ),
        ("DELETE", format!("/tyk/certs/{}", ids[2]), Vec::new()),
        ("GET", "/hello".to_owned(), Vec::new()),
    ] {
        let (status, answer) = control(addr, "a.test", &pki, method, &path, &body)
            .await
            .unwrap();
        eprintln!("during the outage: {method} {path} -> {status} {answer}");
        // A GET of one certificate may be answered from the cache; anything else needs Redis.
        if method == "GET" && path.starts_with("/tyk/certs/") && status == 200 {
            continue;
        }
        assert_eq!(status, 503, "{method} {path}: {answer}");
        assert!(
            answer.contains("unavailable") || answer.contains("fail"),
            "{method} {path}: the 503 says what is wrong: {answer}"
        );
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let during = load.succeeded() - outage_started;
    assert!(
        during >= 5,
        "handshakes kept succeeding during the outage ({during})"
    );

    server.restart();
    let recovered = eventually(Duration::from_secs(15), || async {
        matches!(
            control(addr, "a.test", &pki, "GET", list_path, b"").await,
            Ok((200, _))
        )
    })
    .await;
    assert!(
        recovered,
        "the control API recovers without a gateway restart"
    );
    let (_, failed) = load.stop().await;
    assert_eq!(
        failed, 0,
        "no handshake failed before, during or after the outage"
    );

    let (_, listed) = control(addr, "a.test", &pki, "GET", list_path, b"")
        .await
        .unwrap();
    for id in &ids {
        assert!(listed.contains(id.as_str()), "{id} was lost: {listed}");
    }
    let (status, added) = control(
        addr,
        "a.test",
        &pki,
        "POST",
        "/tyk/certs?org_id=outage-org",
        pki.server(&["e.test"]).bundle().as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "writes work again: {added}");
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_corrupted_in_redis_is_not_served_and_the_others_are() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let pki = TestCa::root("corrupt ca");
    let store = redis_store(RedisConfig::new(server.connection())).await;
    let (broken_cert, healthy_cert) = (pki.server(&["broken.test"]), pki.server(&["ok.test"]));
    let broken = store
        .add(&broken_cert.bundle(), &OrgId::EMPTY)
        .await
        .unwrap();
    let healthy = store
        .add(&healthy_cert.bundle(), &OrgId::EMPTY)
        .await
        .unwrap();
    let reply = redis_command(
        server.port(),
        &[
            b"SET",
            format!("cert-raw-{broken}").as_bytes(),
            b"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n",
        ],
    )
    .await;
    assert_eq!(reply, "+OK\r\n");

    // A gateway over a fresh store: the corrupted record was never cached.
    let mut config = tls_config();
    config.http_server_options.ssl_certificates = vec![(&healthy).into(), (&broken).into()];
    let gateway = start(
        config,
        redis_store(RedisConfig::new(server.connection())).await,
        Vec::new(),
    )
    .await;
    let addr = gateway.local_addr();
    let client = || client_config(&[pki.ca_der()], None);
    let served = https_get(addr, "ok.test", client(), "/").await.unwrap();
    assert_eq!(served.server_cert, healthy_cert.der());
    match https_get(addr, "broken.test", client(), "/").await {
        Ok(answer) => assert_ne!(
            answer.server_cert,
            broken_cert.der(),
            "a corrupted record cannot be served"
        ),
        Err(e) => assert!(e.contains("handshake"), "{e}"),
    }

    let (status, body) = control(
        addr,
        "ok.test",
        &pki,
        "GET",
        &format!("/tyk/certs/{broken}"),
        b"",
    )
    .await
    .unwrap();
    eprintln!("GET of the corrupted record: {status} {body}");
    assert!(status >= 400, "{status} {body}");
    let (status, body) = control(
        addr,
        "ok.test",
        &pki,
        "GET",
        "/tyk/certs?mode=detailed",
        b"",
    )
    .await
    .unwrap();
    eprintln!("detailed listing: {status} {body}");
    assert_eq!(
        status, 200,
        "one bad record does not fail the listing: {body}"
    );
    assert!(body.contains(&healthy.to_string()), "{body}");
    gateway.shutdown().await;
}

/// A gateway over memory with one certificate for `api.test` and a small body limit.
async fn small_gateway(pki: &TestCa) -> gateway_runtime::Gateway {
    let store = memory_store();
    let mut config = tls_config();
    config.max_request_body_bytes = 4096;
    config.tls_handshake_timeout_seconds = 1;
    config.http_server_options.ssl_certificates = vec![
        store
            .add(&pki.server(&["api.test"]).bundle(), &OrgId::EMPTY)
            .await
            .unwrap()
            .into(),
    ];
    start(config, store, Vec::new()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_api_body_over_the_limit_is_refused_with_413() {
    let pki = TestCa::root("limit ca");
    let gateway = small_gateway(&pki).await;
    let addr = gateway.local_addr();
    let big = vec![b'A'; 64 * 1024];
    let (status, body) = control(addr, "api.test", &pki, "POST", "/tyk/certs", &big)
        .await
        .unwrap();
    assert_eq!(status, 413, "{body}");

    // Without Content-Length (chunked), the limit still holds.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(client_config(&[pki.ca_der()], None));
    let mut tls = connector
        .connect(ServerName::try_from("api.test").unwrap(), tcp)
        .await
        .unwrap();
    let head = format!(
        "POST /tyk/certs HTTP/1.1\r\nHost: api.test\r\nx-tyk-authorization: {SECRET}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..16 {
        if tls.write_all(b"400\r\n").await.is_err() || tls.write_all(&[b'B'; 0x400]).await.is_err()
        {
            break;
        }
        let _ = tls.write_all(b"\r\n").await;
    }
    let _ = tls.write_all(b"0\r\n\r\n").await;
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    gateway.shutdown().await;
}

/// Opens a TLS connection to `api.test` and sends `bytes`, then leaves it open.
async fn stall_after(
    addr: SocketAddr,
    pki: &TestCa,
    bytes: &[u8],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(client_config(&[pki.ca_der()], None));
    let mut tls = connector
        .connect(ServerName::try_from("api.test").unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(bytes).await.unwrap();
    tls.flush().await.unwrap();
    tls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_stalling_in_headers_or_body_do_not_block_other_clients() {
    let pki = TestCa::root("slow ca");
    let gateway = small_gateway(&pki).await;
    let addr = gateway.local_addr();
    let mut stalled = Vec::new();
    for _ in 0..8 {
        stalled.push(stall_after(addr, &pki, b"GET /tyk/certs HTTP/1.1\r\nHost: api.te").await);
        let head = format!(
            "POST /tyk/certs HTTP/1.1\r\nHost: api.test\r\nx-tyk-authorization: {SECRET}\r\n\
             Content-Length: 2000\r\n\r\n-----BEGIN"
        );
        stalled.push(stall_after(addr, &pki, head.as_bytes()).await);
    }
    // Byte by byte, slowly, on one more connection while another client is served.
    let mut trickle = stall_after(addr, &pki, b"G").await;
    let started = Instant::now();
    let (status, body) = control(addr, "api.test", &pki, "GET", "/tyk/certs", b"")
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert!(
        elapsed < Duration::from_secs(2),
        "another client was served in {elapsed:?} despite 17 stalled ones"
    );
    for byte in b"ET /hello HTTP/1.1\r\n" {
        trickle.write_all(&[*byte]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, _) = control(addr, "api.test", &pki, "GET", "/hello", b"")
        .await
        .unwrap();
    assert_eq!(status, 200);
    drop(stalled);
    drop(trickle);
    gateway.shutdown().await;
}

/// A client that stalls in its request headers is disconnected after
/// `request_read_timeout_seconds` (a slowloris defence), and so is one that stalls in a control
/// API body (408).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_stalling_in_their_request_headers_or_body_are_dropped() {
    let pki = TestCa::root("slowloris ca");
    let store = memory_store();
    let mut config = tls_config();
    config.request_read_timeout_seconds = 1;
    config.http_server_options.ssl_certificates = vec![
        store
            .add(&pki.server(&["api.test"]).bundle(), &OrgId::EMPTY)
            .await
            .unwrap()
            .into(),
    ];
    let gateway = start(config, store, Vec::new()).await;
    let addr = gateway.local_addr();
    for partial in [
        &b"GET /hello HTTP/1.1\r\nHost: api.te"[..],
        &b"POST /tyk/certs HTTP/1.1\r\nHost: api.test\r\nX-Tyk-Authorization: control-secret\r\nContent-Length: 1000\r\n\r\n-----BEGIN"[..],
    ] {
        let mut stalled = stall_after(addr, &pki, partial).await;
        let started = Instant::now();
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), stalled.read_to_end(&mut answer)).await;
        assert!(read.is_ok(), "a stalled client is still connected after 10 s");
        assert!(started.elapsed() >= Duration::from_millis(900), "dropped too early: {:?}", started.elapsed());
        let text = String::from_utf8_lossy(&answer);
        assert!(text.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    }
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_stalling_in_the_middle_of_its_client_hello_is_dropped_after_the_timeout() {
    let pki = TestCa::root("partial hello ca");
    let gateway = small_gateway(&pki).await;
    let addr = gateway.local_addr();

    // A real ClientHello, of which only the first half is sent.
    let mut client = rustls::ClientConnection::new(
        client_config(&[pki.ca_der()], None),
        ServerName::try_from("api.test").unwrap(),
    )
    .unwrap();
    let mut hello = Vec::new();
    client.write_tls(&mut hello).unwrap();
    assert!(hello.len() > 100, "a ClientHello record");
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled.write_all(&hello[..hello.len() / 2]).await.unwrap();
    let started = Instant::now();

    // Meanwhile other clients complete their handshakes.
    let answer = https_get(addr, "api.test", client_config(&[pki.ca_der()], None), "/")
        .await
        .unwrap();
    assert!(answer.status.is_some());

    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), stalled.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the server closed the half-hello connection: {read:?}"
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(3),
        "dropped after the 1 s handshake timeout, not before and not much later: {elapsed:?}"
    );
    gateway.shutdown().await;
}
