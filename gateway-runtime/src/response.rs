//! The responses the gateway writes itself: the body type, and JSON written the way Go's
//! `json.Encoder` writes it, so that the bytes are Tyk's: fields in declaration order, `<`, `>`,
//! `&`, U+2028 and U+2029 escaped as Go escapes them, and a trailing newline. Every JSON body
//! the gateway answers with goes through [`respond`]: the control API's shapes
//! ([`control::shapes`](crate::control::shapes)), Tyk's `{"status":"error","message":...}`
//! ([`error`]) and the `{"error":...}` of a request refused on an API's path ([`api_error`]).

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full};
use serde::Serialize;

use crate::control::shapes::StatusMessage;

/// Errors carried by response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every response the gateway writes. `Send` but not `Sync`, so that any
/// service's body (axum's included) can be carried without copying.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A complete body.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A JSON response with Tyk's byte-for-byte encoding: fields in declaration order, `<`, `>`
/// and `&` escaped as Go does, and a trailing newline. A value that cannot be encoded is
/// answered with a 500 saying so.
pub(crate) fn respond<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let (status, bytes) = match go_json(value) {
        Ok(bytes) => (status, bytes),
        Err(e) => {
            let message = StatusMessage {
                status: "error",
                message: format!("cannot encode the response: {e}"),
            };
            // A struct of two strings always encodes.
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                go_json(&message).unwrap_or_default(),
            )
        }
    };
    let mut response = Response::new(full(Bytes::from(bytes)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Tyk's `{"status":"error","message":...}`.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    respond(
        status,
        &StatusMessage {
            status: "error",
            message: message.into(),
        },
    )
}

/// Tyk's `{"status":"ok","message":...}`.
pub(crate) fn ok(message: impl Into<String>) -> Response<Body> {
    respond(
        StatusCode::OK,
        &StatusMessage {
            status: "ok",
            message: message.into(),
        },
    )
}

/// `{"error":...}`: a request refused on an API's path (no API matches, a refused client
/// certificate, an ambiguous host or unclean path, an upstream that failed), as Tyk's proxy
/// answers.
pub(crate) fn api_error(status: StatusCode, message: &str) -> Response<Body> {
    respond(status, &ApiError { error: message })
}

/// The body of [`api_error`].
#[derive(Serialize)]
struct ApiError<'a> {
    error: &'a str,
}

/// Serialises like Go's `json.Encoder.Encode`.
fn go_json<T: Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(256);
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    value.serialize(&mut serializer)?;
    out.push(b'\n');
    Ok(out)
}

/// serde_json's compact output plus Go's HTML-safe escaping.
struct GoFormatter;

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut start = 0;
        for (at, ch) in fragment.char_indices() {
            let escaped = match ch {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..at])?;
            writer.write_all(escaped.as_bytes())?;
            start = at + ch.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;

    use super::*;

    async fn body(response: Response<Body>) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn go_escapes_html_characters_and_ends_with_a_newline() {
        let bytes = go_json(&StatusMessage {
            status: "error",
            message: "a<b>&c\u{2028}".into(),
        })
        .unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "{\"status\":\"error\",\"message\":\"a\\u003cb\\u003e\\u0026c\\u2028\"}\n"
        );
    }

    #[tokio::test]
    async fn error_bodies_keep_tyks_key_order_and_escape_the_message() {
        let response = error(StatusCode::FORBIDDEN, "a \"quoted\" word");
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(
            body(response).await,
            "{\"status\":\"error\",\"message\":\"a \\\"quoted\\\" word\"}\n"
        );
    }

    #[tokio::test]
    async fn api_errors_are_one_error_field_escaped_as_go_does() {
        let response = api_error(StatusCode::BAD_GATEWAY, "upstream <a> & \"b\"");
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(
            body(response).await,
            "{\"error\":\"upstream \\u003ca\\u003e \\u0026 \\\"b\\\"\"}\n"
        );
    }
}
