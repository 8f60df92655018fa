//! Issue 12's path and header attacks, made as they were: real `curl --path-as-is` (HTTP/1.1
//! and HTTP/2) against a running gateway with an open API at `/pub/` and a mutual-TLS API at
//! `/pub/admin/`, in front of an upstream that resolves paths itself; ambiguous `Host` and
//! `x-tyk-authorization` headers sent raw over TLS.

mod support;

use std::net::SocketAddr;
use std::process::Command;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use support::{api, client_config, memory_store, start, tls_config};
use test_support::pki::TestCa;
use tls_core::OrgId;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const ADMIN_CONTENT: &str = "ADMIN CONTENT";

/// How many upstreams (nginx, Go's mux, Express, ...) read a path: every escape decoded,
/// `\` as `/`, dot segments resolved, repeated slashes merged.
fn resolve(path: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .replace('\\', "/");
    let mut kept: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment.split(';').next().unwrap_or_default() {
            "" | "." => {}
            ".." => {
                kept.pop();
            }
            _ => kept.push(segment),
        }
    }
    format!("/{}", kept.join("/"))
}

/// An upstream that serves the admin content for any path it resolves under `/pub/admin`.
async fn resolving_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let raw = req.uri().path().to_owned();
                        let resolved = resolve(&raw);
                        let body = if resolved.starts_with("/pub/admin") {
                            format!("{ADMIN_CONTENT} at {resolved}")
                        } else {
                            format!("public content: raw {raw}")
                        };
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from(body),
                        )))
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

struct Setup {
    pki: TestCa,
    client_pki: TestCa,
    gateway: gateway_runtime::Gateway,
    dir: tempfile::TempDir,
}

async fn setup(skip_url_cleaning: bool) -> Setup {
    let pki = TestCa::root("server ca");
    let client_pki = TestCa::root("client ca");
    let store = memory_store();
    let mut config = tls_config();
    config.http_server_options.skip_url_cleaning = skip_url_cleaning;
    let server = store
        .add(&pki.server(&["gw.test"]).bundle(), &OrgId::EMPTY)
        .await
        .unwrap();
    config.http_server_options.ssl_certificates = vec![server.into()];
    let ca = store
        .add(&client_pki.cert_pem, &OrgId::EMPTY)
        .await
        .unwrap();
    let target = format!("http://{}", resolving_upstream().await);
    let apis = vec![
        api(serde_json::json!({"api_id": "open",
            "proxy": {"listen_path": "/pub/", "target_url": target, "strip_listen_path": false}})),
        api(
            serde_json::json!({"api_id": "admin", "use_mutual_tls_auth": true,
            "client_certificates": [ca.to_string()],
            "proxy": {"listen_path": "/pub/admin/", "target_url": target, "strip_listen_path": false}}),
        ),
    ];
    let gateway = start(config, store, apis).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), &pki.cert_pem).unwrap();
    Setup {
        pki,
        client_pki,
        gateway,
        dir,
    }
}

/// `curl --path-as-is` without a client certificate; (status, body).
async fn curl(setup: &Setup, version: &str, path: &str, extra: &[&str]) -> (u16, String) {
    let port = setup.gateway.local_addr().port();
    let mut command = Command::new("curl");
    command
        .args(["-sS", "--path-as-is", version, "--cacert"])
        .arg(setup.dir.path().join("ca.pem"))
        .args(["--resolve", &format!("gw.test:{port}:127.0.0.1")])
        .args(extra)
        .args(["-w", "\n%{http_code}"])
        .arg(format!("https://gw.test:{port}{path}"));
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("curl is installed");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_tricks_never_reach_the_mutual_tls_api_without_a_certificate() {
    let s = setup(false).await;
    for version in ["--http1.1", "--http2"] {
        let (status, body) = curl(&s, version, "/pub/hello", &[]).await;
        assert_eq!(
            (status, body.as_str()),
            (200, "public content: raw /pub/hello")
        );
        let (status, body) = curl(&s, version, "/pub/admin/secret", &[]).await;
        assert_eq!(
            status, 403,
            "{version}: the mTLS API without a certificate: {body}"
        );

        // Cleaned, then routed to the mTLS API, which refuses an anonymous client.
        for path in [
            "/pub/x/../admin/secret",
            "/pub//admin/secret",
            "//pub/admin/secret",
            "/pub/./admin/secret",
            "/pub/%61dmin/secret",
            "/pub/%2e/admin/secret",
            "/pub/x/%2E%2e/admin/secret",
            "/pub/x/y/../../admin/secret",
        ] {
            let (status, body) = curl(&s, version, path, &[]).await;
            assert!(!body.contains(ADMIN_CONTENT), "{version} {path}: {body}");
            assert_eq!(status, 403, "{version} {path}: {body}");
        }
        // Refused before routing.
        for (path, word) in [
            ("/pub/admin%2fsecret", "encoded slashes"),
            ("/pub/admin%2Fsecret", "encoded slashes"),
            ("/pub/x/..%2fadmin/secret", "encoded slashes"),
            ("/pub/x/..%5cadmin/secret", "backslashes"),
            ("/pub/x/..;/admin/secret", "dot segments with parameters"),
            ("/pub/%00/../admin/secret", "NUL"),
            ("/pub/../../pub/admin/secret", "above the root"),
        ] {
            let (status, body) = curl(&s, version, path, &[]).await;
            assert_eq!(status, 400, "{version} {path}: {body}");
            let json: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert!(
                json["error"].as_str().unwrap().contains(word),
                "{version} {path}: {body}"
            );
        }
        // With a client certificate the cleaned path reaches the admin API, as routed.
        let client = s.client_pki.client("good");
        std::fs::write(s.dir.path().join("client.pem"), &client.cert_pem).unwrap();
        std::fs::write(s.dir.path().join("client.key"), &client.key_pem).unwrap();
        let cert = s.dir.path().join("client.pem");
        let key = s.dir.path().join("client.key");
        let (status, body) = curl(
            &s,
            version,
            "/pub/x/../%61dmin//secret?q=/../x",
            &[
                "--cert",
                cert.to_str().unwrap(),
                "--key",
                key.to_str().unwrap(),
            ],
        )
        .await;
        assert_eq!(
            (status, body.as_str()),
            (200, "ADMIN CONTENT at /pub/admin/secret"),
            "{version}"
        );
    }
    // The control API sees the cleaned path: `/pub/../tyk/certs` is `/tyk/certs`, behind the
    // control API's own secret; it never reaches the upstream as `/../tyk/certs`.
    let (status, body) = curl(&s, "--http1.1", "/pub/../tyk/certs", &[]).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("Attempted administrative access"), "{body}");
    let (status, body) = curl(
        &s,
        "--http1.1",
        "/pub/../tyk/certs",
        &["-H", "x-tyk-authorization: control-secret"],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("certs"), "{body}");
    drop(s.pki);
    s.gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_url_cleaning_routes_and_forwards_the_raw_path() {
    let s = setup(true).await;
    // Tyk's raw mode: routed on the raw path (the open API) and forwarded as is; the
    // upstream resolves it. This is the documented risk of the option.
    let (status, body) = curl(&s, "--http1.1", "/pub/x/../admin/secret", &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(ADMIN_CONTENT), "{body}");
    let (status, body) = curl(&s, "--http1.1", "/pub/a%2Fb", &[]).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "public content: raw /pub/a%2Fb")
    );
    s.gateway.shutdown().await;
}

/// Sends `head` (request line and headers, without the final empty line) over TLS to `gw.test`
/// and returns the status and body of the answer.
async fn raw_request(s: &Setup, head: &str) -> (u16, String) {
    let tcp = tokio::net::TcpStream::connect(s.gateway.local_addr())
        .await
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(client_config(&[s.pki.ca_der()], None));
    let mut tls = connector
        .connect(ServerName::try_from("gw.test").unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(format!("{head}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_hosts_and_secrets_are_refused() {
    let s = setup(false).await;
    let (status, _) = raw_request(&s, "GET /pub/a HTTP/1.1\r\nHost: gw.test").await;
    assert_eq!(status, 200);
    let (status, body) = raw_request(
        &s,
        "GET /pub/a HTTP/1.1\r\nHost: gw.test\r\nHost: other.test",
    )
    .await;
    assert_eq!(status, 400, "two Host headers: {body}");
    assert!(body.contains("more than one host"), "{body}");
    let (status, body) =
        raw_request(&s, "GET https://gw.test/pub/a HTTP/1.1\r\nHost: other.test").await;
    assert_eq!(status, 400, "absolute form naming another host: {body}");

    let secret = "x-tyk-authorization: control-secret";
    let (status, _) = raw_request(
        &s,
        &format!("GET /tyk/certs HTTP/1.1\r\nHost: gw.test\r\n{secret}"),
    )
    .await;
    assert_eq!(status, 200);
    for second in ["x-tyk-authorization: wrong", secret] {
        let (status, body) = raw_request(
            &s,
            &format!("GET /tyk/certs HTTP/1.1\r\nHost: gw.test\r\n{secret}\r\n{second}"),
        )
        .await;
        assert_eq!(status, 403, "two secrets ({second}): {body}");
        assert_eq!(
            body,
            "{\"status\":\"error\",\"message\":\"Attempted administrative access with invalid or missing key!\"}\n"
        );
    }
    s.gateway.shutdown().await;
}

/// One HTTP/2 request with `:authority` from `uri` and, when given, a `host` header.
async fn h2_request(s: &Setup, uri: &str, host: Option<&str>) -> u16 {
    let tcp = tokio::net::TcpStream::connect(s.gateway.local_addr())
        .await
        .unwrap();
    let mut config = (*client_config(&[s.pki.ca_der()], None)).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(ServerName::try_from("gw.test").unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(connection);
    let mut request = hyper::Request::builder().uri(uri);
    if let Some(host) = host {
        request = request.header("host", host);
    }
    let request = request.body(http_body_util::Empty::<Bytes>::new()).unwrap();
    sender
        .send_request(request)
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_authority_and_a_conflicting_host_header_are_refused() {
    let s = setup(false).await;
    assert_eq!(h2_request(&s, "https://gw.test/pub/a", None).await, 200);
    assert_eq!(
        h2_request(&s, "https://gw.test/pub/a", Some("gw.test")).await,
        200,
        "the same host twice is not ambiguous"
    );
    assert_eq!(
        h2_request(&s, "https://gw.test/pub/a", Some("other.test")).await,
        400
    );
    s.gateway.shutdown().await;
}
