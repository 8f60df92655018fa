//! The embedding service's router behind the gateway: a `tower::Service` (an axum `Router`, a
//! `tower::ServiceBuilder` stack, ...) type-erased into the handler of requests that match no
//! API (see [`GatewayBuilder::fallback`](crate::GatewayBuilder::fallback)).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use tower_service::Service;

use crate::response::{Body, BoxError, error};

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
        Err(failure) => {
            tracing::error!(error = %failure, "the fallback service failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::Full;

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
}
