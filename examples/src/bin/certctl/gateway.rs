//! A small client of a gateway's control API (`/tyk/certs`) over plain HTTP/1.1.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A gateway's control API.
pub(crate) struct Gateway {
    base: String,
    secret: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Gateway {
    /// A client of the control API at `base` (e.g. `http://127.0.0.1:8080`).
    pub(crate) fn new(base: &str, secret: &str) -> Result<Self, String> {
        let uri: Uri = base
            .parse()
            .map_err(|e| format!("--url {base:?} is not a URL: {e}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(format!(
                    "--url {base:?}: certctl speaks plain HTTP only; reach a TLS control API through a local tunnel, or use --redis"
                ));
            }
            _ => return Err(format!("--url {base:?} must start with http://")),
        }
        if uri.host().is_none() {
            return Err(format!("--url {base:?} has no host"));
        }
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            secret: secret.to_owned(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    /// Sends a request; returns the status and the body as JSON (`Null` if it is not JSON).
    pub(crate) async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Value), String> {
        let url = format!("{}{path_and_query}", self.base);
        let request = Request::builder()
            .method(method.clone())
            .uri(&url)
            .header("X-Tyk-Authorization", &self.secret)
            .header("Content-Type", "text/plain")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("cannot make a request to {url}: {e}"))?;
        let exchange = async {
            let response =
                self.client.request(request).await.map_err(|e| {
                    format!("cannot reach the gateway at {}: {}", self.base, chain(&e))
                })?;
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("the gateway's answer broke off: {e}"))?
                .to_bytes();
            Ok::<_, String>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| format!("{method} {url}: no answer within {} s", TIMEOUT.as_secs()))??;
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, json))
    }

    /// Like [`Gateway::call`], but any status other than 200 is an error with the gateway's
    /// message.
    pub(crate) async fn call_ok(
        &self,
        method: Method,
        path_and_query: &str,
        body: Vec<u8>,
    ) -> Result<Value, String> {
        let (status, json) = self.call(method, path_and_query, body).await?;
        if status == StatusCode::OK {
            Ok(json)
        } else {
            Err(failure(status, &json))
        }
    }
}

/// The gateway's error as a sentence.
pub(crate) fn failure(status: StatusCode, json: &Value) -> String {
    match json["message"].as_str() {
        Some(message) => format!("the gateway answered {status}: {message}"),
        None => format!("the gateway answered {status}"),
    }
}

/// An error and its sources, so that "connection refused" is not hidden behind "client error".
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// Percent-encodes a path segment or query value (everything but unreserved characters).
pub(crate) fn encode(text: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}
