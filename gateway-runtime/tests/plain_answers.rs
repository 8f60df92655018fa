//! No answer shows internals (issue 12, finding 6): every control API route is driven with bad
//! inputs, with a corrupted record, with Redis out of memory and with Redis down, and every
//! string in every answer is scanned for Rust `Debug` text, OS errors, addresses and script
//! hashes.

mod support;

#[path = "common/upstream.rs"]
mod upstream;

use std::net::SocketAddr;
use std::time::Duration;

use cert_store::RedisConfig;
use rustls::pki_types::ServerName;
use support::{client_config, redis_command, redis_store, start, tls_config};
use test_support::pki::TestCa;
use test_support::redis::RedisServer;
use tls_core::OrgId;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const SECRET: &str = "control-secret";

/// Status and body of a request over TLS; `secret` adds the control API header.
async fn call(
    addr: SocketAddr,
    pki: &TestCa,
    method: &str,
    path: &str,
    body: &[u8],
    secret: bool,
) -> (u16, String) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(client_config(&[pki.ca_der()], None));
    let name = ServerName::try_from("api.test").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let auth = if secret {
        format!("x-tyk-authorization: {SECRET}\r\n")
    } else {
        String::new()
    };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: api.test\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    let _ = tls.write_all(body).await;
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

/// Every string in a JSON answer (the body itself when it is not JSON).
fn strings(body: &str) -> Vec<String> {
    fn walk(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            serde_json::Value::Object(map) => map.values().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(value) => walk(&value, &mut out),
        Err(_) => out.push(body.to_owned()),
    }
    out
}

/// What in `text` looks like internals, if anything.
fn internals(text: &str) -> Option<String> {
    for needle in [
        "os error",
        "127.0.0.1",
        "localhost:",
        "redis:",
        "NomError",
        "Der(",
        "Some(",
        "None",
        "{ ",
        " }",
        "..",
        "\\\"",
        "NOSCRIPT",
        "OOM command",
    ] {
        if text.contains(needle) {
            return Some(format!("{needle:?}"));
        }
    }
    // `Name(`: a Rust enum variant or tuple struct printed with Debug.
    let bytes = text.as_bytes();
    for (at, _) in text.match_indices('(') {
        let word: Vec<u8> = bytes[..at]
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
            .copied()
            .collect();
        if word.len() >= 2 && word.last().is_some_and(u8::is_ascii_uppercase) {
            return Some(format!("a Debug-style call at {at}"));
        }
    }
    // A run of exactly 40 hex digits: a SHA-1 (Redis script hash). Certificate IDs and
    // fingerprints are 64.
    for run in text.split(|c: char| !c.is_ascii_hexdigit()) {
        if run.len() == 40 {
            return Some("a 40-hex-digit hash".to_owned());
        }
    }
    None
}

/// Requests every route with bad inputs; each answer must be free of internals.
struct Scan<'a> {
    addr: SocketAddr,
    pki: &'a TestCa,
    checked: usize,
}

impl Scan<'_> {
    async fn check(&mut self, method: &str, path: &str, body: &[u8], secret: bool) -> u16 {
        let (status, answer) = call(self.addr, self.pki, method, path, body, secret).await;
        assert!(status != 0, "{method} {path}: no answer");
        for text in strings(&answer) {
            if let Some(found) = internals(&text) {
                panic!("{method} {path} -> {status}: {found} in {text:?}");
            }
        }
        self.checked += 1;
        status
    }

    /// Every route, with bad and good inputs.
    async fn every_route(&mut self, id: &str) {
        let long = "9".repeat(5000);
        let bad_ids = [
            "zzz",
            "..%2f..%2fetc%2fpasswd",
            "%zz",
            "%ff%fe",
            "a,b,,",
            &long,
            "%22%7B%7D%5C",
        ];
        self.check("GET", "/hello", b"", false).await;
        self.check("GET", "/tyk/certs", b"", false).await;
        self.check("GET", "/metrics", b"", false).await;
        for query in [
            "",
            "?cursor=zzz",
            "?cursor=zzz&limit=5",
            "?mode=detailed&cursor=zzz",
            "?org_id=o&cursor=-1",
            "?org_id=o&cursor=99999999999999999999999",
            "?cursor=%22%7B%7D",
            "?limit=abc",
            "?limit=0",
            "?limit=99999999999999999999",
            "?org_id=%00",
            "?org_id=a%2Fb",
            "?org_id=%ff",
            "?sort=zzz",
            "?sort=not_after&expiring_within_days=-1",
            "?expiring_within_days=1e9",
            "?mode=detailed",
            "?mode=detailed&sort=not_after",
        ] {
            self.check("GET", &format!("/tyk/certs{query}"), b"", true)
                .await;
        }
        for bad in bad_ids.iter().chain(&[id]) {
            self.check("GET", &format!("/tyk/certs/{bad}"), b"", true)
                .await;
            self.check("GET", &format!("/tyk/certs/{bad}/apis"), b"", true)
                .await;
            self.check("DELETE", &format!("/tyk/certs/{bad}?org_id=%ff"), b"", true)
                .await;
        }
        self.check("GET", &format!("/tyk/certs/{id},zzz,{id}"), b"", true)
            .await;
        self.check("PUT", "/tyk/certs", b"", true).await;
        self.check("PATCH", &format!("/tyk/certs/{id}"), b"", true)
            .await;
        self.check("GET", "/tyk/nothing", b"", true).await;
        self.check("POST", "/tyk/certs?org_id=%ff", b"x", true)
            .await;
        self.check("POST", "/tyk/certs?org_id=a%2Fb", b"x", true)
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_shows_internals_with_bad_inputs_a_corrupted_record_oom_or_redis_down() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let pki = TestCa::root("plain ca");
    let store = redis_store(RedisConfig::new(server.connection())).await;
    let org = OrgId::new("o").unwrap();
    let served = store
        .add(&pki.server(&["api.test"]).bundle(), &org)
        .await
        .unwrap()
        .to_string();
    let corrupt = store
        .add(&pki.server(&["corrupt.test"]).bundle(), &org)
        .await
        .unwrap()
        .to_string();
    let mut config = tls_config();
    config.http_server_options.ssl_certificates = vec![served.parse().unwrap()];
    let gateway = start(config, store, Vec::new()).await;
    let mut scan = Scan {
        addr: gateway.local_addr(),
        pki: &pki,
        checked: 0,
    };

    // Bad inputs with the storage up.
    scan.every_route(&served).await;

    // A record corrupted in storage (the detailed listing reports it, in plain words).
    let key = format!("cert-raw-{corrupt}");
    for garbage in [
        "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n",
        "-----BEGIN CERTIFICATE-----\nMIIBkTCB+wIBADANBgkqhkiG9w0BAQsFADA=\n-----END CERTIFICATE-----\n",
        "not pem at all",
    ] {
        let reply =
            redis_command(server.port(), &[b"SET", key.as_bytes(), garbage.as_bytes()]).await;
        assert_eq!(reply, "+OK\r\n");
        scan.check("GET", "/tyk/certs?mode=detailed", b"", true)
            .await;
        scan.check("GET", &format!("/tyk/certs/{corrupt}"), b"", true)
            .await;
        scan.check("GET", &format!("/tyk/certs/{corrupt},{served}"), b"", true)
            .await;
    }

    // Out of memory: writes fail (Lua scripts included).
    let reply = redis_command(server.port(), &[b"CONFIG", b"SET", b"maxmemory", b"1"]).await;
    assert_eq!(reply, "+OK\r\n");
    let upload = pki.server(&["oom.test"]).bundle();
    let status = scan
        .check("POST", "/tyk/certs?org_id=o", upload.as_bytes(), true)
        .await;
    assert_eq!(status, 500, "an add refused by an out-of-memory Redis");
    scan.every_route(&served).await;
    let reply = redis_command(server.port(), &[b"CONFIG", b"SET", b"maxmemory", b"0"]).await;
    assert_eq!(reply, "+OK\r\n");

    // Redis down: the open /hello says so in plain words.
    server.stop();
    let (status, hello) = call(scan.addr, &pki, "GET", "/hello", b"", false).await;
    assert_eq!(status, 503, "{hello}");
    let hello: serde_json::Value = serde_json::from_str(&hello).unwrap();
    assert_eq!(hello["details"]["storage"]["output"], "storage unavailable");
    let status = scan
        .check("POST", "/tyk/certs?org_id=o", upload.as_bytes(), true)
        .await;
    assert_eq!(status, 503);
    scan.every_route(&served).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    eprintln!("answers scanned: {}", scan.checked);
    gateway.shutdown().await;
}

#[test]
fn the_scan_catches_the_leaks_the_attack_found_and_passes_plain_messages() {
    for leaked in [
        "the cursor is not one this listing issued: invalid listing cursor Cursor(\"zzz\")",
        "certificate storage is unavailable: redis: Connection refused (os error 111)",
        "failed to parse: NomError(Eof)",
        "Der(DerConstraintFailed(IndefiniteLength))",
        "ERR Error running script (call to f_0123456789abcdef0123456789abcdef01234567): OOM",
        "Listed { id: x, metadata: None }",
        "connection to 127.0.0.1:6379 lost",
    ] {
        assert!(internals(leaked).is_some(), "{leaked}");
    }
    for plain in [
        "Certificate with given SHA256 fingerprint not found",
        "certificate storage is unavailable; try again",
        &format!("Certificate with o{} id already exists", "ab".repeat(32)),
        "limit=\"abc\" must be a number from 1 to 10000",
        "PEM block 1 (PRIVATE KEY): the key does not match the certificate",
    ] {
        assert_eq!(internals(plain), None, "{plain}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_failures_are_in_plain_words() {
    use http_body_util::BodyExt as _;
    use upstream::{TestCa, TestUpstream, UpstreamOptions, Usage};

    let trusted = TestCa::root("trusted upstream ca");
    let stranger = TestCa::root("unknown upstream ca");
    let untrusted = TestUpstream::start(UpstreamOptions::tls(
        &stranger.leaf(&["localhost"], Usage::Server),
    ))
    .await;
    let misnamed = TestUpstream::start(UpstreamOptions::tls(
        &trusted.leaf(&["other.test"], Usage::Server),
    ))
    .await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let api = |id: &str, target: String| {
        support::api(serde_json::json!({
            "api_id": id, "proxy": {"listen_path": format!("/{id}/"), "target_url": target}
        }))
    };
    let apis = vec![
        api("closed", format!("http://{closed}")),
        api("untrusted", untrusted.url("https", "localhost")),
        api("misnamed", misnamed.url("https", "localhost")),
    ];
    let mut config = gateway_runtime::GatewayConfig::default();
    config.listen_address = "127.0.0.1".into();
    config.listen_port = 0;
    let gateway = gateway_runtime::GatewayBuilder::new(config)
        .store(support::memory_store())
        .apis(apis)
        .upstream_root(trusted.cert.clone())
        .start()
        .await
        .unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    for (id, expected) in [
        ("closed", "upstream connection error: connection refused"),
        (
            "untrusted",
            "upstream TLS error: the upstream's certificate is issued by an authority this gateway does not trust",
        ),
        (
            "misnamed",
            "upstream TLS error: the upstream's certificate is not valid for the upstream's host name",
        ),
    ] {
        let uri = format!("http://{}/{id}/x", gateway.local_addr());
        let response = client
            .request(
                http::Request::get(uri)
                    .body(http_body_util::Full::default())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), 502, "{id}");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8_lossy(&body).into_owned();
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["error"], expected, "{id}: {body}");
        for text in strings(&body) {
            assert_eq!(internals(&text), None, "{id}: {text}");
        }
    }
    gateway.shutdown().await;
}
