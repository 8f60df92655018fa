//! The page's calls into the control API: every listing, detail, upload and delete goes through
//! [`ControlApi::handle`] with the configured secret, so that the page shows exactly what the
//! API answers, refusal messages included.

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use serde_json::Value;

use crate::control::{AUTH_HEADER, ControlApi};

/// An answer of the control API: status and parsed JSON body.
#[derive(Debug)]
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) body: Value,
}

impl Answer {
    /// The API's `message`, or a plain statement of the status.
    pub(super) fn message(&self) -> String {
        self.body
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(
                || format!("the control API answered {}", self.status),
                str::to_owned,
            )
    }
}

/// Calls the control API as an authorised client would.
pub(super) async fn call(
    control: &ControlApi,
    secret: &str,
    method: Method,
    path_and_query: &str,
    body: Bytes,
) -> Answer {
    let request = Request::builder()
        .method(method)
        .uri(path_and_query)
        .header(AUTH_HEADER, secret)
        .header(http::header::CONTENT_LENGTH, body.len())
        .body(Full::new(body));
    let Ok(request) = request else {
        return Answer {
            status: StatusCode::BAD_REQUEST,
            body: Value::Null,
        };
    };
    let response = control.handle(request).await;
    let status = response.status();
    let body = match response.into_body().collect().await {
        Ok(collected) => serde_json::from_slice(&collected.to_bytes()).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    Answer { status, body }
}

/// Percent-encodes a query or path value (everything but unreserved characters).
pub(super) use crate::control::query::encode_component as encode;
