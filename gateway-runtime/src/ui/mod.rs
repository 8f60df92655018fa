//! The certificate page: the Dashboard's TLS/SSL Certificates screen, served by the gateway on
//! the control API's listener under a path of its own (`certificate_ui.path`, `/ui/` by
//! default).
//!
//! Server-rendered HTML (askama templates, checked at compile time), with the stylesheet and a
//! small script embedded in the binary; nothing is fetched from elsewhere. Every listing,
//! detail, upload and delete goes through the control API's own handlers ([`api`]), so the page
//! shows exactly what the API answers. The overview and the search read an in-memory [`index`]
//! kept up to date from the store's change notices, which also feed the page's live updates
//! (server-sent events).
//!
//! Security: the control API secret is exchanged for a random session token in an
//! `HttpOnly; Secure; SameSite=Strict` cookie scoped to the page's path; sign-in failures are
//! limited per client; sessions expire; every change is a POST carrying the session's CSRF
//! token; every answer carries a `Content-Security-Policy` without inline script and with
//! `frame-ancestors 'none'`. No private key is ever read into a page.

mod api;
mod chart;
mod events;
mod form;
mod index;
mod pages;
mod recent;
mod session;

use std::sync::Arc;

use bytes::Bytes;
use cert_store::CertStore;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use ring::hmac;
use tokio::sync::watch;

use crate::config::GatewayConfig;
use crate::http_util::{Body, BoxError, full};
use crate::runtime::Shared;

pub(crate) use self::recent::RecentEvents;

use self::index::Index;
use self::session::{Session, Sessions};

/// The session cookie's name.
const COOKIE: &str = "certgate_ui_session";

/// The stylesheet, embedded.
const CSS: &str = include_str!("static/ui.css");
/// The page's only script, embedded: live updates and copy buttons.
const JS: &str = include_str!("static/ui.js");

/// Every answer's `Content-Security-Policy`: our own stylesheet and script only, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The certificate page. Built when `certificate_ui.enabled` is set.
pub(crate) struct CertificateUi {
    /// `certificate_ui.path`, e.g. `/ui/`.
    base: String,
    /// The page's root without its trailing slash, redirected to `base`.
    bare: String,
    hostname: String,
    secret: String,
    secret_tag: Option<hmac::Tag>,
    auth_key: hmac::Key,
    sessions: Sessions,
    index: Arc<Index>,
    recent: Option<Arc<RecentEvents>>,
    warning: time::Duration,
    body_limit: usize,
    read_timeout: std::time::Duration,
    stop: watch::Receiver<bool>,
}

impl core::fmt::Debug for CertificateUi {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CertificateUi")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// What a request carries about the signed-in operator.
struct Signed {
    token: String,
    session: Session,
}

impl CertificateUi {
    /// The page for `config`, when enabled; starts the index that follows `store` until `stop`.
    /// `recent` holds the expiry monitor's events, when it delivers them there.
    pub(crate) fn new(
        config: &GatewayConfig,
        store: &CertStore,
        recent: Option<Arc<RecentEvents>>,
        stop: watch::Receiver<bool>,
    ) -> Option<Self> {
        let ui = &config.certificate_ui;
        if !ui.enabled {
            return None;
        }
        let rng = ring::rand::SystemRandom::new();
        let auth_key = hmac::Key::generate(hmac::HMAC_SHA256, &rng)
            .unwrap_or_else(|_| hmac::Key::new(hmac::HMAC_SHA256, b"certgate certificate page"));
        let secret_tag =
            (!config.secret.is_empty()).then(|| hmac::sign(&auth_key, config.secret.as_bytes()));
        let index = Arc::new(Index::new());
        tokio::spawn(Arc::clone(&index).follow(store.clone(), stop.clone()));
        let ttl = i64::try_from(ui.session_ttl_seconds).unwrap_or(3600);
        tracing::info!(path = %ui.path, "certificate page enabled");
        Some(Self {
            bare: ui.path.trim_end_matches('/').to_owned(),
            base: ui.path.clone(),
            hostname: config.control_api_hostname.trim().to_owned(),
            secret: config.secret.clone(),
            secret_tag,
            auth_key,
            sessions: Sessions::new(time::Duration::seconds(ttl)),
            index,
            recent,
            warning: config
                .security
                .certificate_expiry_monitor
                .warning_threshold(),
            body_limit: config.max_request_body_bytes,
            read_timeout: std::time::Duration::from_secs(config.request_read_timeout_seconds),
            stop,
        })
    }

    /// True when `req` is for the page: its path is under the page's path and the host is the
    /// control API's (when `control_api_hostname` is set).
    pub(crate) fn matches<B>(&self, req: &Request<B>) -> bool {
        let path = req.uri().path();
        (path == self.bare || path.starts_with(&self.base)) && self.host_matches(req)
    }

    fn host_matches<B>(&self, req: &Request<B>) -> bool {
        if self.hostname.is_empty() {
            return true;
        }
        let host = req
            .uri()
            .host()
            .or_else(|| req.headers().get(header::HOST)?.to_str().ok())
            .unwrap_or_default();
        let host = match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        };
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .eq_ignore_ascii_case(&self.hostname)
    }

    /// Answers a request for the page. `client` names the peer for the sign-in limit.
    pub(crate) async fn handle<B>(
        &self,
        shared: &Shared,
        req: Request<B>,
        client: &str,
    ) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let response = self.route(shared, req, client).await;
        secure(response)
    }

    async fn route<B>(&self, shared: &Shared, req: Request<B>, client: &str) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = req.into_parts();
        let path = parts.uri.path();
        if path == self.bare {
            return redirect(&self.base);
        }
        let rest = path.strip_prefix(&self.base).unwrap_or("").to_owned();
        let query = form::Form::urlencoded(parts.uri.query().unwrap_or(""));
        let method = parts.method.clone();
        match (&method, rest.as_str()) {
            (&Method::GET, "static/ui.css") => return asset(CSS, "text/css; charset=utf-8"),
            (&Method::GET, "static/ui.js") => {
                return asset(JS, "text/javascript; charset=utf-8");
            }
            (&Method::GET, "signin") => {
                let notice = query.get("signed_out").map(|_| "You are signed out.");
                return self.sign_in_page_with(None, notice, StatusCode::OK);
            }
            (&Method::POST, "signin") => {
                let form = match self.read_form(&parts.headers, body).await {
                    Ok(form) => form,
                    Err(response) => return response,
                };
                return self.sign_in(shared, &form, client);
            }
            _ => {}
        }
        let now = shared.store.clock().now();
        let signed = cookie_token(&parts.headers).and_then(|token| {
            let session = self.sessions.find(&token, now)?;
            Some(Signed { token, session })
        });
        let Some(signed) = signed else {
            return if method == Method::GET || method == Method::HEAD {
                redirect(&format!("{}signin", self.base))
            } else {
                self.message_page(
                    None,
                    StatusCode::FORBIDDEN,
                    "Signed out",
                    "Your session has ended or was never started. Sign in again; nothing was changed.",
                )
            };
        };
        if method == Method::POST {
            let form = match self.read_form(&parts.headers, body).await {
                Ok(form) => form,
                Err(response) => return response,
            };
            let given = form.get("csrf").unwrap_or("");
            if given.is_empty() || !session::same_token(given, &signed.session.csrf) {
                tracing::info!(path = %parts.uri.path(), "certificate page: change refused without a valid CSRF token");
                return self.message_page(
                    Some(&signed),
                    StatusCode::FORBIDDEN,
                    "Change refused",
                    "The form did not carry this session's security token (CSRF), so nothing was changed. Reload the page and try again.",
                );
            }
            return self.post(shared, &signed, &rest, &query, &form).await;
        }
        if method != Method::GET {
            let mut response = self.message_page(
                Some(&signed),
                StatusCode::METHOD_NOT_ALLOWED,
                "Method not supported",
                "The certificate page answers GET and POST only.",
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
            return response;
        }
        self.get(shared, &signed, &rest, &query).await
    }

    /// Checks `given` against the control API secret in constant time (HMAC tags, as the
    /// control API does); an empty configured secret admits nobody.
    fn secret_matches(&self, given: &str) -> bool {
        let Some(tag) = &self.secret_tag else {
            return false;
        };
        hmac::verify(&self.auth_key, given.as_bytes(), tag.as_ref()).is_ok()
    }

    /// Reads a form body under the control API's size and time limits.
    async fn read_form<B>(&self, headers: &HeaderMap, body: B) -> Result<form::Form, Response<Body>>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let too_large = || {
            self.message_page(
                None,
                StatusCode::PAYLOAD_TOO_LARGE,
                "Too large",
                &format!(
                    "The form is larger than {} bytes (max_request_body_bytes); nothing was changed.",
                    self.body_limit
                ),
            )
        };
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|len| len > u64::try_from(self.body_limit).unwrap_or(u64::MAX)) {
            return Err(too_large());
        }
        let collected = tokio::time::timeout(
            self.read_timeout,
            Limited::new(body, self.body_limit).collect(),
        )
        .await;
        let bytes = match collected {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
                return Err(too_large());
            }
            _ => {
                return Err(self.message_page(
                    None,
                    StatusCode::BAD_REQUEST,
                    "Incomplete form",
                    "The form did not arrive complete; nothing was changed.",
                ));
            }
        };
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        form::Form::parse(content_type, &bytes).ok_or_else(|| {
            self.message_page(
                None,
                StatusCode::BAD_REQUEST,
                "Not a form",
                "The request is not a form the page sent (URL-encoded or multipart); nothing was changed.",
            )
        })
    }

    fn sign_in(&self, shared: &Shared, form: &form::Form, client: &str) -> Response<Body> {
        let now = shared.store.clock().now();
        if let Some(wait) = self.sessions.sign_in_blocked(client, now) {
            let mut response = self.sign_in_page(
                Some(format!(
                    "Too many failed sign-ins. Try again in {wait} seconds."
                )),
                StatusCode::TOO_MANY_REQUESTS,
            );
            if let Ok(value) = HeaderValue::from_str(&wait.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return response;
        }
        if !self.secret_matches(form.get("secret").unwrap_or("")) {
            self.sessions.sign_in_failed(client, now);
            tracing::info!(client, "certificate page: sign-in refused (wrong secret)");
            return self.sign_in_page(
                Some("That is not the control API secret. Nothing was signed in.".into()),
                StatusCode::FORBIDDEN,
            );
        }
        let Some((token, session)) = self.sessions.create(now) else {
            return self.sign_in_page(
                Some("The gateway cannot start a session right now; try again.".into()),
                StatusCode::SERVICE_UNAVAILABLE,
            );
        };
        let max_age = (session.expires - now).whole_seconds().max(0);
        let mut response = redirect(&self.base);
        let cookie = format!(
            "{COOKIE}={token}; Path={}; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict",
            self.base
        );
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
        response
    }

    fn sign_out(&self, signed: &Signed) -> Response<Body> {
        self.sessions.end(&signed.token);
        let mut response = redirect(&format!("{}signin?signed_out=1", self.base));
        let cookie = format!(
            "{COOKIE}=; Path={}; Max-Age=0; HttpOnly; Secure; SameSite=Strict",
            self.base
        );
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
        response
    }

    async fn call(
        &self,
        shared: &Shared,
        method: Method,
        path_and_query: &str,
        body: Bytes,
    ) -> api::Answer {
        api::call(&shared.control, &self.secret, method, path_and_query, body).await
    }
}

/// The session token of the request's cookie, if any.
fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|value| !value.is_empty())
}

/// A `303 See Other` to `location`.
fn redirect(location: &str) -> Response<Body> {
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn asset(text: &'static str, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(full(Bytes::from_static(text.as_bytes())));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// An HTML answer.
fn html(status: StatusCode, text: String) -> Response<Body> {
    let mut response = Response::new(full(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// Adds the headers every answer of the page carries.
fn secure(mut response: Response<Body>) -> Response<Body> {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; certgate_ui_session=tok; b=2"),
        );
        assert_eq!(cookie_token(&headers).as_deref(), Some("tok"));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("certgate_ui_session="),
        );
        assert_eq!(cookie_token(&headers), None);
    }
}
