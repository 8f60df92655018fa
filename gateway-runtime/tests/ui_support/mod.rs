//! Shared by the certificate page's tests: a gateway over a memory store with a manual clock at
//! the test vectors' `generated_at`, holding an expired, an expiring and a valid certificate,
//! an API that uses one, and an HTTP client that keeps the session cookie.
#![allow(dead_code, reason = "each test crate uses a different part")]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cert_store::{CertStore, ManualClock, MemoryStorage};
use gateway_runtime::{ApiDefinition, Gateway, GatewayBuilder, GatewayConfig};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use test_support::vectors::Vectors;
pub(crate) use test_support::vectors::{
    generated_at, private_key_lines as key_lines, read as vector,
};
use time::Duration;
use tls_core::{EncodingSecret, OrgId};

pub(crate) const SECRET: &str = "ui-test-control-secret";
pub(crate) const ORG: &str = "org1";

/// The manifest's expected ID of case `name`.
pub(crate) fn expected_id(name: &str) -> String {
    Vectors::load()
        .case(name)
        .expect_id
        .clone()
        .unwrap_or_else(|| panic!("vector case {name} has no expect_id"))
}

/// A running gateway with the page on, its store and clock.
pub(crate) struct UiGateway {
    pub(crate) gateway: Gateway,
    pub(crate) store: CertStore,
    pub(crate) clock: Arc<ManualClock>,
    /// The ID the `used-api` API serves.
    pub(crate) used_id: String,
}

impl UiGateway {
    pub(crate) fn addr(&self) -> SocketAddr {
        self.gateway.local_addr()
    }
}

/// Starts the gateway: the expired vector (added while it was valid), the expiring-10d one and
/// the p256 leaf (used by API `used-api` as its server certificate).
pub(crate) async fn start() -> UiGateway {
    start_with("").await
}

/// [`start`] with more top-level configuration fields (`, "field": ...`).
pub(crate) async fn start_with(extra: &str) -> UiGateway {
    let now = generated_at();
    let clock = Arc::new(ManualClock::new(now - Duration::days(10)));
    let store = CertStore::builder(Arc::new(MemoryStorage::new()))
        .encoding_secret(EncodingSecret::new(SECRET))
        .clock(clock.clone())
        .build();
    let org = OrgId::new(ORG).unwrap();
    store
        .add(&vector("expired.bundle.pem"), &org)
        .await
        .unwrap();
    clock.set(now);
    store
        .add(&vector("expiring-10d.bundle.pem"), &org)
        .await
        .unwrap();
    let used = store
        .add(&vector("leaf-p256-traditional.crt.pem"), &org)
        .await
        .unwrap();
    let config = GatewayConfig::from_json(
        &format!(
            r#"{{"listen_address": "127.0.0.1", "listen_port": 0, "secret": "{SECRET}",
                "certificate_ui": {{"enabled": true}}{extra}}}"#
        ),
        Path::new("ui-test.json"),
        Vec::new(),
    )
    .unwrap();
    let api = ApiDefinition::from_json(
        &serde_json::json!({
            "api_id": "used-api",
            "name": "Orders",
            "active": true,
            "domain": "orders.example",
            "proxy": {"listen_path": "/orders/", "target_url": "http://127.0.0.1:9"},
            "client_certificates": [used.to_string()],
            "use_mutual_tls_auth": true
        })
        .to_string(),
        Path::new("used-api.json"),
    )
    .unwrap();
    let gateway = GatewayBuilder::new(config)
        .store(store.clone())
        .apis(vec![api])
        .start()
        .await
        .unwrap();
    UiGateway {
        gateway,
        store,
        clock,
        used_id: used.to_string(),
    }
}

/// One answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Answer {
    pub(crate) fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// An HTTP client with a cookie and a record of every answer it got.
pub(crate) struct Browser {
    addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    pub(crate) cookie: Option<String>,
    pub(crate) seen: Mutex<Vec<String>>,
}

impl Browser {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            client: Client::builder(TokioExecutor::new()).build_http(),
            cookie: None,
            seen: Mutex::new(Vec::new()),
        }
    }

    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
        extra: &[(&str, &str)],
    ) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        let response = self
            .client
            .request(request.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8_lossy(&body).into_owned();
        let mut record = format!("{status}\n");
        for (name, value) in &headers {
            record.push_str(&format!("{name}: {}\n", value.to_str().unwrap_or("")));
        }
        record.push_str(&body);
        self.seen.lock().unwrap().push(record);
        Answer {
            status,
            headers,
            body,
        }
    }

    pub(crate) async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None, Vec::new(), &[]).await
    }

    /// A URL-encoded form post.
    pub(crate) async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.send(
            Method::POST,
            path,
            Some("application/x-www-form-urlencoded"),
            body.into_bytes(),
            &[],
        )
        .await
    }

    /// A multipart post, as the upload form's file pickers send it.
    pub(crate) async fn post_multipart(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let boundary = "----certgateTestBoundary7MA4YWxk";
        let mut body = String::new();
        for (name, value) in fields {
            let filename = if name.ends_with("_file") {
                format!("; filename=\"{name}.pem\"")
            } else {
                String::new()
            };
            body.push_str(&format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"{filename}\r\n\r\n{value}\r\n"
            ));
        }
        body.push_str(&format!("--{boundary}--\r\n"));
        self.send(
            Method::POST,
            path,
            Some(&format!("multipart/form-data; boundary={boundary}")),
            body.into_bytes(),
            &[],
        )
        .await
    }

    /// Signs in with `secret`; keeps the cookie on success.
    pub(crate) async fn sign_in(&mut self, secret: &str) -> Answer {
        let answer = self.post_form("/ui/signin", &[("secret", secret)]).await;
        if let Some(value) = answer.headers.get("set-cookie") {
            let cookie = value
                .to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_owned();
            self.cookie = Some(cookie);
        }
        answer
    }

    /// The CSRF token of a signed-in page.
    pub(crate) async fn csrf(&self) -> String {
        let page = self.get("/ui/upload").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let at = page.body.find("name=\"csrf\" value=\"").unwrap() + 19;
        page.body[at..].split('"').next().unwrap().to_owned()
    }

    /// Asserts that no answer carried private key material or Rust `Debug` text.
    pub(crate) fn assert_nothing_leaked(&self) {
        let lines = key_lines();
        assert!(!lines.is_empty());
        let seen = self.seen.lock().unwrap();
        assert!(!seen.is_empty());
        for answer in seen.iter() {
            assert!(!answer.contains("PRIVATE KEY"), "key marker in {answer}");
            for line in &lines {
                assert!(!answer.contains(line.as_str()), "key material in {answer}");
            }
            for debug in [
                "Some(",
                "None,",
                "Err(",
                "Ok(",
                "CertId(",
                "OrgId(",
                " { kind:",
                "Os {",
                "StoreError",
                "StorageError",
            ] {
                assert!(!answer.contains(debug), "Debug text {debug:?} in {answer}");
            }
            assert!(!answer.contains(SECRET), "the secret in {answer}");
        }
    }
}

/// Percent-encodes a form value.
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Text as the templates escape it.
pub(crate) fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}
