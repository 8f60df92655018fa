//! Handler tests: Tyk's `TestCertificateHandlerTLS` contract, every route and error, the Tyk
//! defects we fix, the OpenAPI document kept true, a real HTTP/1.1 round trip, and a property
//! run over random requests.
//!
//! Certificates come from the shared vectors (`testdata/vectors` in the repository, or
//! `$CERTGATE_VECTORS`) with the store's clock at the manifest's `generated_at`.

mod contract;
mod defects;
mod errors;
mod openapi;
mod over_http;
mod property;
mod renewals;
mod routes;
mod tyk_messages;
mod undecryptable;

use std::sync::Arc;

use ::http::{Method, Request, StatusCode};
use bytes::Bytes;
use cert_store::{CertStore, ManualClock, MemoryStorage};
use http_body_util::{BodyExt as _, Full};
use serde_json::Value;
use tls_core::EncodingSecret;

use test_support::vectors::Vectors;
pub(super) use test_support::vectors::{dir as vectors_dir, generated_at, read as vector};

use super::{AUTH_HEADER, ControlApi, ROUTES, route};
use crate::config::GatewayConfig;
use crate::metrics::GatewayMetrics;

/// The control API secret of the fixtures.
pub(super) const SECRET: &str = "control-secret-1234";

/// The leaf fingerprint of a manifest case.
pub(super) fn fingerprint(case: &str) -> String {
    let vectors = Vectors::load();
    let id = vectors.case(case).expect_id.as_deref().expect("expect_id");
    id[id.len() - 64..].to_owned()
}

/// A control API over a memory store whose clock stands at `generated_at`.
pub(super) struct Fixture {
    pub(super) api: Arc<ControlApi>,
    pub(super) store: CertStore,
    pub(super) clock: Arc<ManualClock>,
}

impl Fixture {
    pub(super) fn new() -> Self {
        Self::with(|_| {})
    }

    pub(super) fn with(configure: impl FnOnce(&mut GatewayConfig)) -> Self {
        let clock = Arc::new(ManualClock::new(generated_at()));
        let store = CertStore::builder(Arc::new(MemoryStorage::new()))
            .encoding_secret(EncodingSecret::new("encoding-secret"))
            .clock(clock.clone())
            .build();
        Self::over(store, clock, configure)
    }

    pub(super) fn over(
        store: CertStore,
        clock: Arc<ManualClock>,
        configure: impl FnOnce(&mut GatewayConfig),
    ) -> Self {
        Self::over_with_acme(store, clock, configure, crate::acme::no_manager())
    }

    /// A fixture whose control API shows `acme`'s state.
    pub(super) fn over_with_acme(
        store: CertStore,
        clock: Arc<ManualClock>,
        configure: impl FnOnce(&mut GatewayConfig),
        acme: crate::acme::Manager,
    ) -> Self {
        let mut config = GatewayConfig::default();
        config.secret = SECRET.to_owned();
        configure(&mut config);
        let api = ControlApi::new(
            Arc::new(config),
            store.clone(),
            Arc::new(GatewayMetrics::default()),
            Arc::new(|| "# extra\ncertgate_extra_total 7\n".to_owned()),
            acme,
        );
        Self {
            api: Arc::new(api),
            store,
            clock,
        }
    }

    /// Sends an authenticated request.
    pub(super) async fn send(&self, method: &str, uri: &str, body: &str) -> Answer {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(AUTH_HEADER, SECRET)
            .body(Full::new(Bytes::from(body.to_owned())))
            .expect("a valid request");
        self.raw(request).await
    }

    pub(super) async fn get(&self, uri: &str) -> Answer {
        self.send("GET", uri, "").await
    }

    /// Adds a vector file under `org` through the API and returns the ID.
    pub(super) async fn add(&self, org: &str, file: &str) -> String {
        let answer = self
            .send("POST", &format!("/tyk/certs?org_id={org}"), &vector(file))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{file}: {}", answer.text);
        answer.json["id"].as_str().expect("id").to_owned()
    }

    /// Sends any request and checks the answer against the OpenAPI document.
    pub(super) async fn raw(&self, request: Request<Full<Bytes>>) -> Answer {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let response = self.api.handle(request).await;
        let answer = Answer::read(response).await;
        openapi::check_documented(&method, &path, &answer);
        answer
    }
}

/// A response, read.
#[derive(Debug)]
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) content_type: String,
    pub(super) headers: ::http::HeaderMap,
    pub(super) text: String,
    /// The body as JSON (`Null` when it is not JSON).
    pub(super) json: Value,
}

impl Answer {
    pub(super) async fn read(response: ::http::Response<crate::response::Body>) -> Self {
        let status = response.status();
        let content_type = response
            .headers()
            .get(::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("the body reads")
            .to_bytes();
        let text = String::from_utf8(bytes.to_vec()).expect("the body is UTF-8");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Self {
            status,
            content_type,
            headers,
            text,
            json,
        }
    }

    /// Asserts Tyk's error body exactly.
    #[track_caller]
    pub(super) fn assert_error(&self, status: StatusCode, message: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(
            self.text,
            format!(
                "{{\"status\":\"error\",\"message\":{}}}\n",
                serde_json::to_string(message).expect("a string")
            )
        );
        assert_eq!(self.content_type, "application/json");
    }
}

/// The template and method of a request, if the router serves them.
pub(super) fn served(method: &Method, path: &str) -> Option<&'static str> {
    let matched = route(super::strip_trailing_slashes(path))?;
    ROUTES
        .iter()
        .any(|(m, t)| *m == method.as_str() && *t == matched.template)
        .then_some(matched.template)
}
