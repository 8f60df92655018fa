//! HTTP plumbing shared by the proxy, the control API and the listener.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use rustls_pki_types::CertificateDer;
use tower_service::Service;

use crate::mtls::VerdictCache;

/// Errors carried by response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every response the gateway writes. `Send` but not `Sync`, so that any
/// service's body (axum's included) can be carried without copying.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// The embedding service's handler for requests that match no API, type-erased (see
/// [`GatewayBuilder::fallback`](crate::GatewayBuilder::fallback)).
pub(crate) type Fallback =
    Arc<dyn Fn(http::Request<Incoming>) -> BoxFuture<Response<Body>> + Send + Sync>;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Wraps a `tower::Service` (an axum `Router`, a `tower::ServiceBuilder` stack, ...) as a
/// [`Fallback`]. Each request gets a clone of the service, made ready first; a service error
/// is logged and answered with a plain 500 (its text never reaches the client).
pub(crate) fn fallback_from_service<S, B>(service: S) -> Fallback
where
    S: Service<http::Request<Incoming>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    Arc::new(move |request| Box::pin(answer_with(service.clone(), request)))
}

/// One request through a `tower::Service`, made ready first.
async fn answer_with<S, R, B>(mut service: S, request: http::Request<R>) -> Response<Body>
where
    S: Service<http::Request<R>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    // Errors become `BoxError` at once: a service's own error type need not be `Send`.
    let ready: Result<(), BoxError> = std::future::poll_fn(|cx| service.poll_ready(cx))
        .await
        .map_err(Into::into);
    let answer = match ready {
        Ok(()) => service.call(request).await.map_err(Into::into),
        Err(e) => Err(e),
    };
    match answer {
        Ok(response) => response.map(|body| body.map_err(Into::into).boxed_unsync()),
        Err(error) => {
            tracing::error!(error = %error, "the fallback service failed");
            json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

/// A complete body.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
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

    /// A service that fails with an error naming an internal detail.
    #[derive(Clone)]
    struct Failing;

    impl Service<http::Request<()>> for Failing {
        type Response = Response<Full<Bytes>>;
        type Error = std::io::Error;
        type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            std::future::ready(Err(std::io::Error::other("db at 10.0.0.7:5432 refused")))
        }
    }

    #[tokio::test]
    async fn a_failing_fallback_service_is_a_plain_500() {
        let response = answer_with(Failing, http::Request::new(())).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&body);
        assert!(
            !text.contains("10.0.0.7") && text.contains("internal error"),
            "{text}"
        );
    }

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
