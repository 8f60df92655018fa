//! Issue 12's idle-connection exhaustion, made as it was: real TLS connections that handshake
//! and stay silent, keep-alive connections left idle, idle HTTP/2 connections; connections over
//! the caps; and long responses that must not be cut by the idle timer.

mod support;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway_runtime::{Gateway, GatewayConfig};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use support::{api, client_config, echo_upstream, memory_store, start, tls_config};
use test_support::pki::TestCa;
use tls_core::OrgId;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::client::TlsStream;

/// The idle timeout of these tests.
const IDLE: Duration = Duration::from_secs(1);
/// Longer than the idle timeout.
const PAUSE: Duration = Duration::from_millis(2500);

struct Setup {
    pki: TestCa,
    gateway: Gateway,
}

async fn setup(tune: impl FnOnce(&mut GatewayConfig)) -> Setup {
    let pki = TestCa::root("idle ca");
    let store = memory_store();
    let mut config = tls_config();
    config.http_server_options.idle_timeout = 1;
    tune(&mut config);
    let server = store
        .add(&pki.server(&["gw.test"]).bundle(), &OrgId::EMPTY)
        .await
        .unwrap();
    config.http_server_options.ssl_certificates = vec![server.into()];
    let echo = format!("http://{}", echo_upstream().await);
    let slow = format!("http://{}", slow_upstream().await);
    let apis = vec![
        api(
            serde_json::json!({"api_id": "echo", "proxy": {"listen_path": "/echo/", "target_url": echo}}),
        ),
        api(
            serde_json::json!({"api_id": "slow", "proxy": {"listen_path": "/slow/", "target_url": slow}}),
        ),
    ];
    let gateway = start(config, store, apis).await;
    Setup { pki, gateway }
}

/// A TLS connection to the gateway from `source` (an address on this host), offering `alpn`.
async fn connect_from(
    s: &Setup,
    source: &str,
    alpn: &[&[u8]],
) -> std::io::Result<TlsStream<TcpStream>> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(format!("{source}:0").parse().unwrap())?;
    let tcp = socket.connect(s.gateway.local_addr()).await?;
    let mut config = (*client_config(&[s.pki.ca_der()], None)).clone();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut tls = connector
        .connect(ServerName::try_from("gw.test").unwrap(), tcp)
        .await?;
    // TLS 1.3: the server's refusal or close shows on the first read; a short read proves the
    // connection is up (nothing is expected yet).
    let mut byte = [0u8; 1];
    match tokio::time::timeout(Duration::from_millis(200), tls.read(&mut byte)).await {
        Err(_) => Ok(tls),
        Ok(Ok(0)) => Err(std::io::Error::other("closed by the server")),
        Ok(Ok(_)) => Err(std::io::Error::other("unexpected data")),
        Ok(Err(e)) => Err(e),
    }
}

async fn connect(s: &Setup, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
    connect_from(s, "127.0.0.1", alpn).await.unwrap()
}

/// Reads until the server closes; how long that took.
async fn closed_after<R: AsyncRead + Unpin>(stream: &mut R) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("the idle connection is still open after 10 s"),
        }
    }
}

/// Sends one keep-alive HTTP/1.1 GET and reads its answer (content-length or chunked).
async fn get(tls: &mut TlsStream<TcpStream>, path: &str) -> (u16, String) {
    tls.write_all(format!("GET {path} HTTP/1.1\r\nHost: gw.test\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tls.read(&mut buf).await.unwrap();
        assert_ne!(n, 0, "closed mid-answer: {}", String::from_utf8_lossy(&raw));
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        let head = head.to_ascii_lowercase();
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse::<usize>().unwrap());
        match length {
            Some(length) if body.len() >= length => return (status, body.to_owned()),
            None if body.ends_with("0\r\n\r\n") => return (status, body.to_owned()),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_after_the_handshake_is_closed() {
    let s = setup(|_| {}).await;
    let mut tls = connect(&s, &[b"http/1.1"]).await;
    let after = closed_after(&mut tls).await;
    assert!(after >= IDLE / 2, "{after:?}");
    let metrics = s.gateway.metrics().render();
    assert!(
        metrics.contains("certgate_idle_connections_closed_total 1"),
        "{metrics}"
    );
    s.gateway.shutdown().await;
}

/// An idle connection holds no HTTP state until its first bytes arrive, so the gateway waits on
/// the socket. A request that came in the same TCP segment as the client's Finished is already
/// decrypted inside rustls and the socket stays quiet: it must be answered all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_sent_with_the_clients_finished_is_answered() {
    use std::io::{Read as _, Write as _};
    let s = setup(|_| {}).await;
    let (address, config) = (
        s.gateway.local_addr(),
        client_config(&[s.pki.ca_der()], None),
    );
    let answer = tokio::task::spawn_blocking(move || {
        let mut tcp = std::net::TcpStream::connect(address).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let name = ServerName::try_from("gw.test").unwrap();
        let mut tls = rustls::ClientConnection::new(config, name).unwrap();
        // Queued before the handshake ends: rustls sends it in the same write as its Finished.
        tls.writer()
            .write_all(b"GET /echo/early HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n")
            .unwrap();
        // Both leave in one write (rustls writes its queued records with one `writev`).
        while tls.is_handshaking() {
            tls.complete_io(&mut tcp).unwrap();
        }
        while tls.wants_write() {
            tls.write_tls(&mut tcp).unwrap();
        }
        let mut answer = Vec::new();
        let mut stream = rustls::Stream::new(&mut tls, &mut tcp);
        match stream.read_to_end(&mut answer) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
            Err(e) => panic!("no answer to a request sent with the Finished: {e}"),
        }
        String::from_utf8_lossy(&answer).into_owned()
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    s.gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_connection_is_closed_when_idle_between_requests() {
    let s = setup(|_| {}).await;
    let mut tls = connect(&s, &[b"http/1.1"]).await;
    for n in 0..3 {
        // Pauses shorter than the timeout between requests keep the connection.
        if n > 0 {
            tokio::time::sleep(IDLE * 3 / 4).await;
        }
        let (status, body) = get(&mut tls, &format!("/echo/{n}")).await;
        assert_eq!(status, 200, "{body}");
    }
    let started = Instant::now();
    let after = closed_after(&mut tls).await;
    assert!(after >= IDLE / 2, "{after:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    s.gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_gets_goaway_and_is_closed() {
    let s = setup(|_| {}).await;
    let mut tls = connect(&s, &[b"h2"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let started = Instant::now();
    // The client preface and an empty SETTINGS frame.
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let mut frames = Vec::new();
    loop {
        let mut header = [0u8; 9];
        match tokio::time::timeout(Duration::from_secs(10), tls.read_exact(&mut header)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => break,
            Err(_) => panic!("the idle h2 connection is still open; frames: {frames:?}"),
        }
        let length =
            usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
        let mut payload = vec![0u8; length];
        tls.read_exact(&mut payload).await.unwrap();
        let (kind, flags) = (header[3], header[4]);
        frames.push(kind);
        if kind == 4 && flags & 1 == 0 {
            tls.write_all(b"\0\0\0\x04\x01\0\0\0\0").await.unwrap();
        }
        if kind == 7 {
            assert!(started.elapsed() >= IDLE / 2);
        }
    }
    assert!(
        frames.contains(&7),
        "a GOAWAY frame before the close: {frames:?}"
    );
    s.gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_requests_and_paused_streaming_answers_are_not_cut() {
    let s = setup(|_| {}).await;
    let mut tls = connect(&s, &[b"http/1.1"]).await;
    // The upstream answers after PAUSE, then streams with a PAUSE between two chunks.
    let (status, body) = get(&mut tls, "/slow/x").await;
    assert_eq!(status, 200);
    assert!(body.contains("first") && body.contains("second"), "{body}");
    // And the connection is still usable, then closed when idle.
    let (status, _) = get(&mut tls, "/echo/after").await;
    assert_eq!(status, 200);
    closed_after(&mut tls).await;

    // The same over HTTP/2, with curl: the stream in flight keeps the connection.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), &s.pki.cert_pem).unwrap();
    let port = s.gateway.local_addr().port();
    let mut curl = std::process::Command::new("curl");
    curl.args(["-sS", "--http2", "--cacert"])
        .arg(dir.path().join("ca.pem"))
        .args(["--resolve", &format!("gw.test:{port}:127.0.0.1")])
        .args(["-w", "\n%{http_version} %{http_code}"])
        .arg(format!("https://gw.test:{port}/slow/h2"));
    let output = tokio::task::spawn_blocking(move || curl.output())
        .await
        .unwrap()
        .expect("curl is installed");
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        text,
        "first second\n2 200",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    s.gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_caps_are_closed_at_accept() {
    let s = setup(|config| {
        config.http_server_options.idle_timeout = 60;
        config.http_server_options.max_connections = 3;
        config.http_server_options.max_connections_per_ip = 2;
    })
    .await;
    let first = connect_from(&s, "127.0.0.1", &[b"http/1.1"]).await.unwrap();
    let _second = connect_from(&s, "127.0.0.1", &[b"http/1.1"]).await.unwrap();
    assert!(
        connect_from(&s, "127.0.0.1", &[b"http/1.1"]).await.is_err(),
        "a third connection from one IP"
    );
    // Another address (all of 127/8 is loopback on Linux) still gets in, up to the global cap.
    let _third = connect_from(&s, "127.0.0.2", &[b"http/1.1"]).await.unwrap();
    assert!(
        connect_from(&s, "127.0.0.3", &[b"http/1.1"]).await.is_err(),
        "a fourth connection in all"
    );
    // A closed connection frees its place.
    drop(first);
    let started = Instant::now();
    while connect_from(&s, "127.0.0.1", &[b"http/1.1"]).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the place was not freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = s.gateway.metrics().render();
    let refused: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("certgate_connections_refused_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(refused >= 2, "{metrics}");
    s.gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_soft_open_file_limit_is_raised_to_the_hard_limit() {
    let s = setup(|_| {}).await;
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[3], fields[4], "soft and hard: {line}");
    s.gateway.shutdown().await;
}

/// A body fed through a channel.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}

/// An upstream that answers after [`PAUSE`] and pauses again between two chunks.
async fn slow_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |_req: hyper::Request<hyper::body::Incoming>| async move {
                        tokio::time::sleep(PAUSE).await;
                        let (tx, rx) = mpsc::channel(1);
                        tokio::spawn(async move {
                            let _ = tx.send(Bytes::from_static(b"first ")).await;
                            tokio::time::sleep(PAUSE).await;
                            let _ = tx.send(Bytes::from_static(b"second")).await;
                        });
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(ChannelBody(rx)))
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}
