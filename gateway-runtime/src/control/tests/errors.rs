//! Every error answer: authentication, methods, bodies, parameters, storage failures.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use bytes::Bytes;
use cert_store::{
    CertStorage, CertStore, Changes, Inserted, ManualClock, Page, PageRequest, Scope, StorageError,
    StorageErrorKind,
};
use http::{Request, StatusCode};
use http_body_util::Full;
use tls_core::CertId;

use super::{Answer, Fixture, SECRET, generated_at, vector};
use crate::control::AUTH_FAILED;

const NOT_SUPPORTED: &str = "Method not supported";

fn request(method: &str, uri: &str, secret: Option<&str>) -> Request<Full<Bytes>> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(secret) = secret {
        builder = builder.header("X-Tyk-Authorization", secret);
    }
    builder.body(Full::new(Bytes::new())).unwrap()
}

#[tokio::test]
async fn a_missing_or_wrong_secret_is_403_before_anything_else() {
    let f = Fixture::new();
    for (method, uri) in [
        ("GET", "/tyk/certs"),
        ("POST", "/tyk/certs"),
        ("GET", "/tyk/certs/abc"),
        ("DELETE", "/tyk/certs/abc"),
        // Checked before the method and the route.
        ("DELETE", "/tyk/certs"),
        ("PUT", "/tyk/certs/abc"),
        ("GET", "/tyk/unknown"),
        ("GET", "/metrics"),
    ] {
        for secret in [
            None,
            Some(""),
            Some("wrong"),
            Some("control-secret-123"),
            Some("control-secret-12345"),
        ] {
            f.raw(request(method, uri, secret))
                .await
                .assert_error(StatusCode::FORBIDDEN, AUTH_FAILED);
        }
    }
    // The right one passes.
    let ok = f.raw(request("GET", "/tyk/certs", Some(SECRET))).await;
    assert_eq!(ok.status, StatusCode::OK);
}

#[tokio::test]
async fn an_empty_configured_secret_refuses_everything() {
    let f = Fixture::with(|config| config.secret.clear());
    for secret in [None, Some(""), Some(" "), Some(SECRET)] {
        f.raw(request("GET", "/tyk/certs", secret))
            .await
            .assert_error(StatusCode::FORBIDDEN, AUTH_FAILED);
    }
    // /hello needs no secret, as in Tyk.
    let hello = f.raw(request("GET", "/hello", None)).await;
    assert_eq!(hello.status, StatusCode::OK);
}

#[tokio::test]
async fn unsupported_methods_are_405_with_tyks_message() {
    let f = Fixture::new();
    let id = format!("1{}", "0".repeat(64));
    for (method, uri, allow) in [
        ("DELETE", "/tyk/certs".to_owned(), "GET, POST"),
        ("DELETE", "/tyk/certs/".to_owned(), "GET, POST"),
        ("PUT", "/tyk/certs".to_owned(), "GET, POST"),
        ("PATCH", format!("/tyk/certs/{id}"), "GET, POST, DELETE"),
        ("PUT", format!("/tyk/certs/{id}"), "GET, POST, DELETE"),
        ("HEAD", format!("/tyk/certs/{id}"), "GET, POST, DELETE"),
        ("OPTIONS", "/tyk/certs".to_owned(), "GET, POST"),
        ("POST", format!("/tyk/certs/{id}/apis"), "GET"),
        ("DELETE", format!("/tyk/certs/{id}/apis"), "GET"),
        ("POST", "/metrics".to_owned(), "GET"),
        ("POST", "/hello".to_owned(), "GET"),
    ] {
        let answer = f.send(method, &uri, "").await;
        answer.assert_error(StatusCode::METHOD_NOT_ALLOWED, NOT_SUPPORTED);
        assert_eq!(answer.headers["allow"], allow, "{method} {uri}");
    }
}

#[tokio::test]
async fn unknown_control_paths_are_404() {
    let f = Fixture::new();
    for uri in [
        "/tyk/",
        "/tyk/keys",
        "/tyk/certs/a/b",
        "/tyk/certs//x",
        "/tyk/certs/a/apis/b",
    ] {
        f.get(uri)
            .await
            .assert_error(StatusCode::NOT_FOUND, "Not found");
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_whether_or_not_it_declares_its_length() {
    let f = Fixture::with(|config| config.max_request_body_bytes = 1024);
    let big = "x".repeat(2000);
    let answer = f.send("POST", "/tyk/certs", &big).await;
    answer.assert_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "the request body is larger than 1024 bytes (max_request_body_bytes)",
    );
    let declared = Request::builder()
        .method("POST")
        .uri("/tyk/certs")
        .header("X-Tyk-Authorization", SECRET)
        .header("Content-Length", "5000000")
        .body(Full::new(Bytes::from_static(b"short")))
        .unwrap();
    assert_eq!(f.raw(declared).await.status, StatusCode::PAYLOAD_TOO_LARGE);
    // A real certificate within the limit is fine.
    let f = Fixture::with(|config| config.max_request_body_bytes = 64 * 1024);
    f.add("", "root-ca.pem").await;
}

/// A body whose stream breaks.
struct BrokenBody;

impl hyper::body::Body for BrokenBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        Poll::Ready(Some(Err(std::io::Error::other("connection reset"))))
    }
}

#[tokio::test]
async fn a_body_that_cannot_be_read_is_405_malformed() {
    let f = Fixture::new();
    let request = Request::builder()
        .method("POST")
        .uri("/tyk/certs")
        .header("X-Tyk-Authorization", SECRET)
        .body(BrokenBody)
        .unwrap();
    let answer = Answer::read(f.api.handle(request).await).await;
    answer.assert_error(StatusCode::METHOD_NOT_ALLOWED, "Malformed request body");
}

#[tokio::test]
async fn an_invalid_org_id_is_400_with_what_is_wrong() {
    let f = Fixture::new();
    let long = "o".repeat(300);
    for (method, uri, needle) in [
        ("POST", "/tyk/certs?org_id=a%2Fb".to_owned(), "'/'"),
        ("POST", format!("/tyk/certs?org_id={long}"), "300 bytes"),
        ("GET", "/tyk/certs?org_id=a+b".to_owned(), "' '"),
        ("GET", "/tyk/certs?org_id=%C3%A9".to_owned(), "'é'"),
        ("DELETE", "/tyk/certs/abc?org_id=a,b".to_owned(), "','"),
    ] {
        let answer = f.send(method, &uri, &vector("root-ca.pem")).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{uri}");
        let message = answer.json["message"].as_str().unwrap();
        assert!(
            message.contains("org ID") && message.contains(needle),
            "{uri}: {message}"
        );
    }
    assert_eq!(f.get("/tyk/certs").await.text, "{\"certs\":null}\n");
}

#[tokio::test]
async fn invalid_listing_parameters_are_400() {
    let f = Fixture::new();
    for uri in [
        "/tyk/certs?sort=subject",
        "/tyk/certs?mode=detailed&sort=NOT_AFTER",
        "/tyk/certs?expiring_within_days=-1",
        "/tyk/certs?expiring_within_days=ten",
        "/tyk/certs?expiring_within_days=36501",
        "/tyk/certs?limit=0",
        "/tyk/certs?limit=10001",
        "/tyk/certs?limit=x",
        "/tyk/certs?cursor=not-a-cursor",
        "/tyk/certs?mode=detailed&limit=5&cursor=%00",
    ] {
        let answer = f.get(uri).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{uri}: {}",
            answer.text
        );
    }
}

/// A storage that always fails with `kind`.
struct FailingStorage(StorageErrorKind);

impl FailingStorage {
    fn error(&self) -> StorageError {
        StorageError::new(self.0, "the backend is down for the test")
    }
}

#[async_trait]
impl CertStorage for FailingStorage {
    async fn insert(&self, _id: &CertId, _record: &str) -> Result<Inserted, StorageError> {
        Err(self.error())
    }
    async fn get(&self, _id: &CertId) -> Result<Option<String>, StorageError> {
        Err(self.error())
    }
    async fn replace(&self, _: &CertId, _: &str, _: &str) -> Result<bool, StorageError> {
        Err(self.error())
    }
    async fn delete(&self, _id: &CertId) -> Result<bool, StorageError> {
        Err(self.error())
    }
    async fn list(
        &self,
        _scope: Scope<'_>,
        _page: &PageRequest,
    ) -> Result<Page<CertId>, StorageError> {
        Err(self.error())
    }
    fn watch(&self) -> Option<Changes> {
        None
    }
    async fn ping(&self) -> Result<(), StorageError> {
        Err(self.error())
    }
}

fn failing(kind: StorageErrorKind) -> Fixture {
    let clock = Arc::new(ManualClock::new(generated_at()));
    let store = CertStore::builder(Arc::new(FailingStorage(kind)))
        .clock(clock.clone())
        .build();
    Fixture::over(store, clock, |_| {})
}

#[tokio::test]
async fn unreachable_storage_is_503_and_hello_fails() {
    let f = failing(StorageErrorKind::Unavailable);
    let id = format!("1{}", "0".repeat(64));
    for (method, uri, body) in [
        ("POST", "/tyk/certs".to_owned(), vector("root-ca.pem")),
        ("GET", "/tyk/certs".to_owned(), String::new()),
        ("GET", "/tyk/certs?mode=detailed".to_owned(), String::new()),
        ("GET", format!("/tyk/certs/{id}"), String::new()),
        ("GET", format!("/tyk/certs/{id},{id}"), String::new()),
        ("DELETE", format!("/tyk/certs/{id}"), String::new()),
    ] {
        let answer = f.send(method, &uri, &body).await;
        assert_eq!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {uri}"
        );
        let message = answer.json["message"].as_str().unwrap();
        assert!(
            message.starts_with("certificate storage is unavailable"),
            "{message}"
        );
        assert!(
            !message.contains("down for the test"),
            "the backend's own words stay in the log: {message}"
        );
        if method == "POST" {
            assert!(
                message.contains("the outcome is unknown")
                    && message.contains("retrying the same upload is safe"),
                "{message}"
            );
        }
    }
    // A refused upload is still refused for what it is, before storage is touched.
    let refused = f.send("POST", "/tyk/certs", "not pem").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let hello = f.raw(request("GET", "/hello", None)).await;
    assert_eq!(hello.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(hello.json["status"], "fail");
    assert_eq!(hello.json["details"]["storage"]["status"], "fail");
    assert_eq!(
        hello.json["details"]["storage"]["output"], "storage unavailable",
        "plain words on the open route; the details are in the log"
    );
}

#[tokio::test]
async fn storage_that_refuses_is_500() {
    let f = failing(StorageErrorKind::Rejected);
    let answer = f.get("/tyk/certs").await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        answer.json["message"]
            .as_str()
            .unwrap()
            .starts_with("certificate storage refused the operation")
    );
    assert!(
        !answer.text.contains("down for the test"),
        "{}",
        answer.text
    );
}
