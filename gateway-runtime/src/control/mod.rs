//! The control API: Tyk's `/tyk/certs` certificate management, plus `/hello`, `/metrics` and
//! the automatic certificates' state (`/tyk/acme`, see [`renewals`]).
//!
//! The listener asks [`ControlApi::matches`] whether a request is for the control API (it
//! decides ports and handles control-API mutual TLS at the handshake) and passes it to
//! [`ControlApi::handle`]. Shapes, status codes and messages are Tyk's (its code, not its
//! swagger); where we go beyond Tyk (413, 400 for a bad `org_id`, 503 when storage is down,
//! `error` in detailed listings, sorting, expiry filters, paging, `/apis`) the routes and
//! fields are documented in `docs/control-api.openapi.json`, which a test keeps in step with
//! [`ROUTES`].
//!
//! Tyk defects fixed here: listing without `org_id` lists every org every time; a detailed
//! listing reports a record it cannot read instead of panicking; `fingerprint` is the leaf's
//! hash; an `{id}` is only ever a certificate ID, never a file path.

mod certs;
pub(crate) mod query;
pub(crate) mod renewals;
pub(crate) mod shapes;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cert_store::CertStore;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use ring::hmac;

use crate::config::GatewayConfig;
use crate::metrics::GatewayMetrics;
use crate::prometheus::{self, Exposition, Kind};
use crate::response::{Body, BoxError, error, full, respond};

use self::query::{Query, strip_trailing_slashes};
use self::shapes::{Health, HealthCheck, HealthDetails};

/// The liveness route (Tyk's; no authentication).
pub(crate) const HELLO: &str = "/hello";
/// Prometheus metrics.
pub(crate) const METRICS: &str = "/metrics";
/// The certificate collection.
pub(crate) const CERTS: &str = "/tyk/certs";
/// One certificate, or a comma-separated list of them.
pub(crate) const CERT: &str = "/tyk/certs/{certID}";
/// The APIs that use a certificate.
pub(crate) const CERT_APIS: &str = "/tyk/certs/{certID}/apis";
/// The automatic certificates' state (certgate's; see [`renewals`] for the choice of path).
pub(crate) const ACME: &str = "/tyk/acme";

/// Every route served: method and path template (OpenAPI's notation). Drives the
/// "Method not supported" answers, and a test checks it against the OpenAPI document.
pub(crate) const ROUTES: &[(&str, &str)] = &[
    ("GET", HELLO),
    ("GET", METRICS),
    ("GET", CERTS),
    ("POST", CERTS),
    ("GET", CERT),
    ("POST", CERT),
    ("DELETE", CERT),
    ("GET", CERT_APIS),
    ("GET", ACME),
];

/// Most missing certificate IDs `/hello` lists (the count is always complete).
const HELLO_MISSING_SHOWN: usize = 100;

/// The header that carries the control API secret.
pub(crate) const AUTH_HEADER: &str = "x-tyk-authorization";

/// Tyk's answer to a missing or wrong secret.
pub(crate) const AUTH_FAILED: &str = "Attempted administrative access with invalid or missing key!";

/// The control API handler. Cheap to share behind an `Arc`.
pub(crate) struct ControlApi {
    config: Arc<GatewayConfig>,
    store: CertStore,
    metrics: Arc<GatewayMetrics>,
    extra_metrics: Arc<dyn Fn() -> String + Send + Sync>,
    /// The automatic certificates' manager, when ACME is on.
    acme: crate::acme::Manager,
    /// The configured secret as an HMAC tag under `auth_key`; `None` when the secret is empty,
    /// which refuses every request.
    secret_tag: Option<hmac::Tag>,
    auth_key: hmac::Key,
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
}

impl core::fmt::Debug for ControlApi {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ControlApi")
            .field("store", &self.store)
            .field("secret_configured", &self.secret_tag.is_some())
            .finish_non_exhaustive()
    }
}

/// A matched route: its template and the raw (still percent-encoded) `{certID}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Matched<'a> {
    template: &'static str,
    cert_id: Option<&'a str>,
}

/// Whether `path` is one the control API answers: it starts with `/tyk/` or is `/hello` or
/// `/metrics` (trailing slashes ignored).
pub(crate) fn is_control_path(path: &str) -> bool {
    let path = strip_trailing_slashes(path);
    path.starts_with("/tyk/") || path == HELLO || path == METRICS
}

/// The route of `path` (trailing slashes already removed), if any.
fn route(path: &str) -> Option<Matched<'_>> {
    let rest = path.strip_prefix('/')?;
    let segments: Vec<&str> = rest.split('/').collect();
    let (template, cert_id) = match segments.as_slice() {
        ["hello"] => (HELLO, None),
        ["metrics"] => (METRICS, None),
        ["tyk", "certs"] => (CERTS, None),
        ["tyk", "certs", id] => (CERT, Some(*id)),
        ["tyk", "certs", id, "apis"] => (CERT_APIS, Some(*id)),
        ["tyk", "acme"] => (ACME, None),
        _ => return None,
    };
    Some(Matched { template, cert_id })
}

impl ControlApi {
    /// A handler over `store`. `extra_metrics` is appended to `/metrics` (e.g. the expiry
    /// monitor's counters); `acme` answers `/tyk/acme` and the certificates' renewal state.
    pub(crate) fn new(
        config: Arc<GatewayConfig>,
        store: CertStore,
        metrics: Arc<GatewayMetrics>,
        extra_metrics: Arc<dyn Fn() -> String + Send + Sync>,
        acme: crate::acme::Manager,
    ) -> Self {
        let rng = ring::rand::SystemRandom::new();
        let auth_key = hmac::Key::generate(hmac::HMAC_SHA256, &rng)
            .unwrap_or_else(|_| hmac::Key::new(hmac::HMAC_SHA256, b"certgate control api"));
        let secret_tag =
            (!config.secret.is_empty()).then(|| hmac::sign(&auth_key, config.secret.as_bytes()));
        if secret_tag.is_none() {
            tracing::warn!(
                "the control API secret is empty: every /tyk/ and /metrics request is refused"
            );
        }
        Self {
            config,
            store,
            metrics,
            extra_metrics,
            acme,
            secret_tag,
            auth_key,
            requests: Mutex::new(BTreeMap::new()),
        }
    }

    /// True when `req` is for the control API: its path starts with `/tyk/` or is `/hello` or
    /// `/metrics` (trailing slashes ignored), and `control_api_hostname` is empty or equal to
    /// its host (case-insensitive, port ignored).
    pub(crate) fn matches<B>(&self, req: &Request<B>) -> bool {
        self.matches_parts(req.uri(), req.headers())
    }

    /// [`ControlApi::matches`] for a request split into parts.
    pub(crate) fn matches_parts(&self, uri: &http::Uri, headers: &HeaderMap) -> bool {
        is_control_path(uri.path()) && self.host_matches(uri, headers)
    }

    fn host_matches(&self, uri: &http::Uri, headers: &HeaderMap) -> bool {
        let wanted = self.config.control_api_hostname.trim();
        if wanted.is_empty() {
            return true;
        }
        let host = uri
            .host()
            .map(str::to_owned)
            .or_else(|| {
                headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        bare_host(&host).eq_ignore_ascii_case(bare_host(wanted))
    }

    /// Answers a control API request. Never panics; every answer is JSON (but `/metrics`).
    pub(crate) async fn handle<B>(&self, req: Request<B>) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = req.into_parts();
        let path = strip_trailing_slashes(parts.uri.path());
        let matched = route(path);
        let label = matched.map_or("unmatched", |m| m.template);
        let response = self.dispatch(&parts, matched, body).await;
        self.count(label, response.status());
        response
    }

    async fn dispatch<B>(
        &self,
        parts: &http::request::Parts,
        matched: Option<Matched<'_>>,
        body: B,
    ) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let is_hello = matched.is_some_and(|m| m.template == HELLO);
        // Tyk checks the secret before anything else, method included.
        if !is_hello && !self.authorised(&parts.headers) {
            tracing::debug!(
                method = %parts.method,
                path = %parts.uri.path(),
                "control API request refused: invalid or missing secret"
            );
            return error(StatusCode::FORBIDDEN, AUTH_FAILED);
        }
        let Some(matched) = matched else {
            return error(StatusCode::NOT_FOUND, "Not found");
        };
        let method = parts.method.as_str();
        if !ROUTES
            .iter()
            .any(|(m, t)| *m == method && *t == matched.template)
        {
            return method_not_supported(matched.template);
        }
        let query = Query::parse(parts.uri.query());
        let id = matched.cert_id.unwrap_or("");
        match (&parts.method, matched.template) {
            (&Method::GET, HELLO) => self.hello().await,
            (&Method::GET, METRICS) => self.render_metrics(),
            (&Method::GET, CERTS) => self.list(&query).await,
            (&Method::POST, CERTS | CERT) => self.add(&query, &parts.headers, body).await,
            (&Method::GET, CERT) => self.get(id).await,
            (&Method::DELETE, CERT) => self.delete(id, &query).await,
            (&Method::GET, CERT_APIS) => self.apis(id),
            (&Method::GET, ACME) => self.acme_status().await,
            _ => method_not_supported(matched.template),
        }
    }

    /// Compares the header with the secret in constant time (HMAC tags, `ring`'s verify).
    fn authorised(&self, headers: &HeaderMap) -> bool {
        let Some(tag) = &self.secret_tag else {
            return false;
        };
        // Two secrets are an ambiguous request: refused, whichever of them is right.
        let mut values = headers.get_all(AUTH_HEADER).iter();
        let (Some(given), None) = (values.next(), values.next()) else {
            return false;
        };
        hmac::verify(&self.auth_key, given.as_bytes(), tag.as_ref()).is_ok()
    }

    /// Tyk's `/hello`: 200 when the storage answers, 503 when it does not; status `warn` (still
    /// 200) when certificates the configuration references are missing from storage and served
    /// from the last good snapshot, with their IDs. Open to anyone: the storage's failure is
    /// described in plain words (details in the log).
    async fn hello(&self) -> Response<Body> {
        let storage = match self.store.ping().await {
            Ok(()) => None,
            Err(e) => {
                tracing::warn!(error = %e, "/hello: the certificate storage does not answer");
                Some(if e.is_temporary() {
                    "storage unavailable"
                } else {
                    "storage error"
                })
            }
        };
        let mut missing = self.metrics.missing_certificates();
        let count = missing.len();
        missing.truncate(HELLO_MISSING_SHOWN);
        let more = match count - missing.len() {
            0 => String::new(),
            n => format!(" and {n} more (see the log)"),
        };
        let now = shapes::go_time(Some(self.store.clock().now()));
        let certificates = (count > 0).then(|| HealthCheck {
            status: "warn",
            output: Some(format!(
                "{count} {} referenced by the configuration {} missing from storage and served from the last good snapshot: {}{more}",
                if count == 1 { "certificate" } else { "certificates" },
                if count == 1 { "is" } else { "are" },
                missing.join(", ")
            )),
            component_type: "system",
            time: now.clone(),
            missing: Some(missing),
        });
        let (status, result) = match (storage, &certificates) {
            (Some(_), _) => (StatusCode::SERVICE_UNAVAILABLE, "fail"),
            (None, Some(_)) => (StatusCode::OK, "warn"),
            (None, None) => (StatusCode::OK, "pass"),
        };
        respond(
            status,
            &Health {
                status: result,
                version: env!("CARGO_PKG_VERSION"),
                description: "certgate gateway",
                details: HealthDetails {
                    storage: HealthCheck {
                        status: if storage.is_some() { "fail" } else { "pass" },
                        output: storage.map(str::to_owned),
                        component_type: "datastore",
                        time: now,
                        missing: None,
                    },
                    certificates,
                },
            },
        )
    }

    /// Prometheus text: the gateway's counters, the extra ones, and the control API's own.
    fn render_metrics(&self) -> Response<Body> {
        let mut out = Exposition::new();
        self.metrics.write(&mut out);
        out.append(&(self.extra_metrics)());
        out.single(
            "certgate_undecryptable_private_keys",
            "Certificates seen since start whose private key does not decrypt with this node's encoding secret.",
            Kind::Gauge,
            self.store.undecryptable_keys(),
        );
        let name = "certgate_control_api_requests_total";
        out.family(
            name,
            "Control API requests by route template and status code.",
            Kind::Counter,
        );
        let requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        for ((route, code), count) in requests.iter() {
            out.sample(
                name,
                &[("route", route), ("code", &code.to_string())],
                count,
            );
        }
        drop(requests);
        let mut response = Response::new(full(out.finish()));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(prometheus::CONTENT_TYPE),
        );
        response
    }

    fn count(&self, route: &'static str, status: StatusCode) {
        let mut requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *requests.entry((route, status.as_u16())).or_insert(0) += 1;
    }
}

/// Tyk's 405, with the `Allow` header RFC 9110 asks for.
fn method_not_supported(template: &str) -> Response<Body> {
    let allowed: Vec<&str> = ROUTES
        .iter()
        .filter(|(_, t)| *t == template)
        .map(|(m, _)| *m)
        .collect();
    let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "Method not supported");
    if let Ok(value) = HeaderValue::from_str(&allowed.join(", ")) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

/// A host without its port and IPv6 brackets.
fn bare_host(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        // One colon: host:port. More: a bare IPv6 address.
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}
