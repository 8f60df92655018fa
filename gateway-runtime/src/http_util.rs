//! HTTP plumbing shared by the proxy, the control API and the listener.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use rustls_pki_types::CertificateDer;

use crate::mtls::VerdictCache;

/// Errors carried by response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every response the gateway writes.
pub type Body = BoxBody<Bytes, BoxError>;

/// A request handler of the embedding service, for requests that match no API (see
/// [`GatewayBuilder::fallback`](crate::GatewayBuilder::fallback)).
pub type Fallback = Arc<
    dyn Fn(
            http::Request<hyper::body::Incoming>,
        ) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>>
        + Send
        + Sync,
>;

/// A complete body.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A JSON response; Tyk's bodies end with a newline (Go's `json.Encoder`), and so do ours.
pub(crate) fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut text = value.to_string();
    text.push('\n');
    let mut response = Response::new(full(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Tyk's error body: `{"status":"error","message":"..."}`.
pub(crate) fn json_error(status: StatusCode, message: &str) -> Response<Body> {
    // Written by hand to keep Tyk's key order (serde_json's map would sort the keys).
    let message = serde_json::Value::from(message);
    let mut response = Response::new(full(format!(
        "{{\"status\":\"error\",\"message\":{message}}}\n"
    )));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;

    use super::*;

    #[tokio::test]
    async fn error_bodies_keep_tyks_key_order_and_escape_the_message() {
        let response = json_error(StatusCode::FORBIDDEN, "a \"quoted\" word");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            &body[..],
            b"{\"status\":\"error\",\"message\":\"a \\\"quoted\\\" word\"}\n"
        );
    }
}

/// What the listener knows about a connection; attached to each request as an extension.
#[derive(Debug)]
pub(crate) struct ClientInfo {
    /// Whether the connection is TLS.
    pub(crate) tls: bool,
    /// The client's certificate chain (leaf first), when it sent one.
    pub(crate) peer_certs: Option<Arc<Vec<CertificateDer<'static>>>>,
    /// The peer's IP as a header value (IPv4-mapped IPv6 shown as IPv4), formatted once per
    /// connection for `X-Forwarded-For`.
    pub(crate) ip_header: HeaderValue,
    /// Client-certificate checks this connection passed, reused by its later requests.
    pub(crate) verdicts: VerdictCache,
}

impl ClientInfo {
    /// What is known of a connection from `remote_addr`.
    pub(crate) fn new(
        remote_addr: SocketAddr,
        tls: bool,
        peer_certs: Option<Arc<Vec<CertificateDer<'static>>>>,
    ) -> Self {
        let ip = remote_addr.ip().to_canonical().to_string();
        Self {
            tls,
            peer_certs,
            // An IP address is always a valid header value.
            ip_header: HeaderValue::from_str(&ip)
                .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
            verdicts: VerdictCache::default(),
        }
    }
}
