//! The reverse proxy and upstream TLS.
//!
//! # Interface
//!
//! ```text
//! // At start-up (`extra_roots` are trusted in addition to the system's roots):
//! let proxy = Proxy::new(&config, store, observer, metrics, extra_roots)?;
//! // After loading or reloading APIs, and on every certificate store change notice:
//! proxy.reload(&api_table).await;
//! // For each request, after routing and any per-API mTLS check (any body type):
//! let response = proxy.forward(&route, request, &client_info).await;
//! ```
//!
//! `forward` never fails: upstream problems become a `502` with Tyk's proxy error body
//! `{"error": "..."}` naming the class of problem, a warn line naming the API and the upstream,
//! and the `upstream_failures` counter.
//!
//! # Design
//!
//! - [`Proxy::reload`] prepares one [`Upstream`] per API: the client certificate (§6.4
//!   precedence, [`select::select`]), the pins ([`pins::resolve_pins`]), TLS versions and
//!   suites, verification. Store references are resolved there, never per request or per
//!   handshake.
//! - APIs whose TLS settings are equal share one hyper-util pooled client (keep-alive, HTTP/2
//!   multiplexing when the upstream agrees to ALPN `h2`). Clients survive reloads while some
//!   API still uses their settings.
//! - An API with a plain-HTTP target owns a lean pool of HTTP/1.1 connections
//!   ([`pool::Http1Pool`]): no pool key to hash per request. It survives reloads that keep
//!   the API's target.
//! - Pins add to chain and host-name verification ([`pins::PinningVerifier`]); skipping
//!   verification, and pins as the only check, live in [`danger`].
//! - Bodies stream both ways. Hop-by-hop headers are removed both ways; `X-Forwarded-For`,
//!   `-Proto` and `-Host` are set; `Host` becomes the upstream's authority.
//! - Timeouts: TCP and TLS set-up 10 s, response headers 60 s ([`ProxyOptions`]).

pub(crate) mod connector;
pub(crate) mod danger;
mod pins;
mod pool;
mod select;
pub(crate) mod upstream_tls;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use cert_store::{CertRole, CertStore, LoadedCert};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Extensions, Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt as _;
use http_body_util::combinators::UnsyncBoxBody;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::CertificateDer;
use rustls::sign::CertifiedKey;
use tls_core::SpkiPin;

use self::connector::{ConnectError, UpstreamConnector};
#[cfg(test)]
use self::pins::resolve_pins;
use self::pins::{PinList, PinMismatch, PinSet, resolve_pins_keeping};
use self::pool::Http1Pool;
use self::select::{UpstreamHost, select, select_value};
use self::upstream_tls::{TlsSettings, Trust, UpstreamTlsError, client_config};
use crate::api::{ApiRoute, ApiTable};
use crate::config::{
    ApiDefinition, CertificateRef, CipherSuites, ConfigError, GatewayConfig, TlsVersion,
};
use crate::metrics::GatewayMetrics;
use crate::mtls::ClientInfo;
use crate::observe::CertObserver;
use crate::response::{Body, BoxError, api_error};
use crate::retain::Retained;

/// The body of requests sent upstream.
type UpstreamBody = UnsyncBoxBody<Bytes, BoxError>;
/// One pooled upstream client.
type HttpClient = Client<UpstreamConnector, UpstreamBody>;

/// How long an idle pooled upstream connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Settings of the proxy that do not come from `tyk.conf`.
#[derive(Clone, Debug)]
pub(crate) struct ProxyOptions {
    /// Roots trusted for upstream TLS in addition to the system's.
    pub(crate) extra_roots: Vec<CertificateDer<'static>>,
    /// Trust the system's roots (`rustls-native-certs`).
    pub(crate) system_roots: bool,
    /// Limit for TCP connect plus TLS handshake.
    pub(crate) connect_timeout: Duration,
    /// Limit from sending the request to receiving the response headers.
    pub(crate) response_timeout: Duration,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        Self {
            extra_roots: Vec::new(),
            system_roots: true,
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(60),
        }
    }
}

/// The gateway-wide upstream settings of `tyk.conf`.
#[derive(Debug)]
struct GlobalUpstream {
    /// `security.certificates.upstream`.
    certificates: HashMap<String, Option<CertificateRef>>,
    /// `security.pinned_public_keys`.
    pins: HashMap<String, String>,
    /// `proxy_ssl_insecure_skip_verify`.
    skip_verify: bool,
    /// `proxy_ssl_min_version`, defaulted.
    min_version: TlsVersion,
}

/// How requests reach an API's upstream.
#[derive(Clone)]
enum UpstreamClient {
    /// hyper-util's pooled client, shared by APIs with equal TLS settings (`https`).
    Tls(Box<HttpClient>),
    /// The API's own pool of HTTP/1.1 connections (`http`).
    Plain(Http1Pool),
}

/// What an API's upstream needs per request, prepared by [`Proxy::reload`].
struct Upstream {
    /// The target URL this was prepared for.
    target: Uri,
    /// Its host, for logs.
    host: UpstreamHost,
    /// The client, or the 502 message saying why the API's upstream settings are unusable.
    client: Result<UpstreamClient, String>,
    /// The client certificate presented to the upstream, reported to the observer per request.
    client_cert: Option<Arc<LoadedCert>>,
}

/// The reverse proxy (see the module docs).
pub(crate) struct Proxy {
    store: CertStore,
    /// Last good copies of upstream client certificates, for when the store loses them.
    retained: Arc<Retained>,
    observer: Arc<dyn CertObserver>,
    metrics: Arc<GatewayMetrics>,
    global: GlobalUpstream,
    trust: Trust,
    options: ProxyOptions,
    /// API ID → prepared upstream; swapped whole by `reload`.
    upstreams: ArcSwap<HashMap<String, Arc<Upstream>>>,
    /// Clients by TLS settings, shared by APIs with equal settings.
    clients: Mutex<HashMap<TlsSettings, HttpClient>>,
    /// Serializes reloads.
    reloading: tokio::sync::Mutex<()>,
}

impl Proxy {
    /// A proxy for `config`'s global upstream settings, trusting `extra_roots` in addition to
    /// the system's roots. Call [`Proxy::reload`] with the APIs before serving (an API that was
    /// not prepared is prepared on its first request).
    pub(crate) fn new(
        config: &GatewayConfig,
        store: CertStore,
        observer: Arc<dyn CertObserver>,
        metrics: Arc<GatewayMetrics>,
        extra_roots: Vec<CertificateDer<'static>>,
    ) -> Result<Self, ConfigError> {
        let options = ProxyOptions {
            extra_roots,
            ..ProxyOptions::default()
        };
        Self::with_options(config, store, observer, metrics, options)
    }

    /// [`Proxy::new`] with every option.
    pub(crate) fn with_options(
        config: &GatewayConfig,
        store: CertStore,
        observer: Arc<dyn CertObserver>,
        metrics: Arc<GatewayMetrics>,
        options: ProxyOptions,
    ) -> Result<Self, ConfigError> {
        let min_version = config.proxy_min_version()?;
        if config.proxy_ssl_insecure_skip_verify {
            tracing::warn!(
                "proxy_ssl_insecure_skip_verify: upstream certificates are not verified for any API (pins, where configured, are the only check)"
            );
        }
        Ok(Self {
            global: GlobalUpstream {
                certificates: config.security.certificates.upstream.clone(),
                pins: config.security.pinned_public_keys.clone(),
                skip_verify: config.proxy_ssl_insecure_skip_verify,
                min_version,
            },
            trust: Trust::new(options.extra_roots.clone(), options.system_roots),
            store,
            retained: Arc::new(Retained::new(
                Arc::clone(&metrics),
                config.allow_certificate_files,
            )),
            observer,
            metrics,
            options,
            upstreams: ArcSwap::from_pointee(HashMap::new()),
            clients: Mutex::new(HashMap::new()),
            reloading: tokio::sync::Mutex::new(()),
        })
    }

    /// Shares `retained` (the TLS snapshot's last good copies) instead of a set of its own.
    pub(crate) fn with_retained(mut self, retained: Arc<Retained>) -> Self {
        self.retained = retained;
        self
    }

    /// Prepares every API's upstream again: client certificates, pins and TLS settings are
    /// resolved from the store now. Connection pools whose settings did not change are kept.
    pub(crate) async fn reload(&self, apis: &ApiTable) {
        let _serial = self.reloading.lock().await;
        let mut prepared = HashMap::new();
        let mut in_use = Vec::new();
        for route in apis.iter() {
            let (upstream, settings) = self.prepare(route).await;
            in_use.extend(settings);
            prepared.insert(route.def.api_id.clone(), Arc::new(upstream));
        }
        self.upstreams.store(Arc::new(prepared));
        self.lock_clients()
            .retain(|settings, _| in_use.contains(settings));
    }

    /// Sends `request` to `route`'s upstream and returns its response, streaming both bodies;
    /// any failure is a 502 with a JSON error body.
    pub(crate) async fn forward<B>(
        &self,
        route: &ApiRoute,
        request: Request<B>,
        client: &ClientInfo,
    ) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        GatewayMetrics::inc(&self.metrics.proxied_requests);
        let upstream = self.upstream_for(route).await;
        let api_id = route.def.api_id.as_str();
        let via = match &upstream.client {
            Ok(via) => via,
            Err(message) => {
                return self.fail(api_id, &upstream.host, Failure::plain(message.clone()));
            }
        };
        let request = match upstream_request(route, request, client) {
            Ok(request) => request,
            Err(reason) => {
                return self.fail(
                    api_id,
                    &upstream.host,
                    Failure::plain(format!("upstream request error: {reason}")),
                );
            }
        };
        if let Some(cert) = &upstream.client_cert {
            self.observer.observe(cert, CertRole::Upstream, api_id);
        }
        let sent = async {
            match via {
                UpstreamClient::Tls(http) => match http.request(request).await {
                    Ok(response) => Ok(downstream_response(response)),
                    Err(error) => Err(Failure::classify(&error)),
                },
                UpstreamClient::Plain(pool) => match pool.send(request).await {
                    Ok(response) => Ok(downstream_response(response)),
                    Err(error) => Err(Failure::classify(&*error)),
                },
            }
        };
        match tokio::time::timeout(self.options.response_timeout, sent).await {
            Ok(Ok(response)) => response,
            Ok(Err(failure)) => self.fail(api_id, &upstream.host, failure),
            Err(_) => self.fail(
                api_id,
                &upstream.host,
                Failure::plain(format!(
                    "upstream timeout: no response within {}s",
                    self.options.response_timeout.as_secs_f64()
                )),
            ),
        }
    }

    /// The prepared upstream of `route`; prepared now if `reload` has not seen this API (or
    /// saw another target URL for it).
    async fn upstream_for(&self, route: &ApiRoute) -> Arc<Upstream> {
        if let Some(upstream) = self.upstreams.load().get(&route.def.api_id)
            && upstream.target == route.target
        {
            return Arc::clone(upstream);
        }
        let (upstream, _) = self.prepare(route).await;
        let upstream = Arc::new(upstream);
        self.upstreams.rcu(|current| {
            let mut next = HashMap::clone(current);
            next.insert(route.def.api_id.clone(), Arc::clone(&upstream));
            next
        });
        upstream
    }

    /// Prepares one API's upstream; also returns the TLS settings whose client it uses.
    async fn prepare(&self, route: &ApiRoute) -> (Upstream, Option<TlsSettings>) {
        let def = &route.def;
        let host = UpstreamHost::of(&route.target);
        if route.target.scheme_str() != Some("https") {
            let upstream = Upstream {
                target: route.target.clone(),
                host,
                client: self.plain_client(route),
                client_cert: None,
            };
            return (upstream, None);
        }
        let client_cert = self.client_certificate(def, &host).await;
        let pins = self.pins_for(def, &host).await;
        let transport = &def.proxy.transport;
        let settings = transport
            .min_version("proxy.transport.ssl_min_version", self.global.min_version)
            .map_err(UpstreamTlsError::Version)
            .and_then(|min_version| {
                let ciphers = CipherSuites::from_names(&transport.ssl_ciphers)
                    .map_err(UpstreamTlsError::Ciphers)?;
                Ok(TlsSettings {
                    client_cert: client_cert.as_ref().map(|(cert, _)| cert.id().clone()),
                    pins,
                    skip_verify: transport.ssl_insecure_skip_verify || self.global.skip_verify,
                    min_version,
                    ciphers,
                })
            });
        let key = client_cert.as_ref().map(|(_, key)| Arc::clone(key));
        // The reason is kept as the 502 message.
        let client = settings
            .as_ref()
            .map_err(ToString::to_string)
            .and_then(|settings| {
                self.client_for(settings, key, &def.api_id, &host)
                    .map_err(|error| error.to_string())
            });
        if let Err(reason) = &client {
            tracing::error!(
                api_id = %def.api_id,
                upstream = %host.authority(),
                %reason,
                "upstream TLS settings are unusable: requests to this API get 502"
            );
        }
        let upstream = Upstream {
            target: route.target.clone(),
            host,
            client: client
                .map(|client| UpstreamClient::Tls(Box::new(client)))
                .map_err(|reason| format!("upstream TLS configuration error: {reason}")),
            client_cert: client_cert.map(|(cert, _)| cert),
        };
        (upstream, settings.ok())
    }

    /// The plain-HTTP pool of `route`'s API: the one prepared before for the same target, or
    /// a new one.
    fn plain_client(&self, route: &ApiRoute) -> Result<UpstreamClient, String> {
        if let Some(upstream) = self.upstreams.load().get(&route.def.api_id)
            && upstream.target == route.target
            && let Ok(client @ UpstreamClient::Plain(_)) = &upstream.client
        {
            return Ok(client.clone());
        }
        let connector = UpstreamConnector::new(None, self.options.connect_timeout);
        Http1Pool::new(connector, &route.target, POOL_IDLE_TIMEOUT)
            .map(UpstreamClient::Plain)
            .map_err(|reason| format!("upstream request error: {reason}"))
    }

    /// The pooled client for `settings`, built if no API uses these settings yet.
    fn client_for(
        &self,
        settings: &TlsSettings,
        key: Option<Arc<CertifiedKey>>,
        api_id: &str,
        host: &UpstreamHost,
    ) -> Result<HttpClient, UpstreamTlsError> {
        if let Some(client) = self.lock_clients().get(settings) {
            return Ok(client.clone());
        }
        let config = client_config(settings, key, &self.trust, api_id, &host.authority())?;
        let client = http_client(UpstreamConnector::new(
            Some(Arc::new(config)),
            self.options.connect_timeout,
        ));
        Ok(self
            .lock_clients()
            .entry(settings.clone())
            .or_insert(client)
            .clone())
    }

    fn lock_clients(&self) -> std::sync::MutexGuard<'_, HashMap<TlsSettings, HttpClient>> {
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The client certificate for `host` (§6.4): global map, then the API's, unless
    /// `upstream_certificates_disabled` (which disables both). `None` when nothing matches, the
    /// reference does not resolve, or the certificate has no private key.
    async fn client_certificate(
        &self,
        def: &ApiDefinition,
        host: &UpstreamHost,
    ) -> Option<(Arc<LoadedCert>, Arc<CertifiedKey>)> {
        if def.upstream_certificates_disabled {
            return None;
        }
        let maps = [&self.global.certificates, &def.upstream_certificates];
        let reference = select_value(&maps, host)?.as_ref()?;
        let warn = |problem: &str, error: &dyn std::fmt::Display| {
            tracing::warn!(
                api_id = %def.api_id,
                upstream = %host.authority(),
                %error,
                "{problem}: no client certificate is presented to this upstream"
            );
        };
        let cert = match self
            .retained
            .resolve(&self.store, reference, &def.api_id)
            .await
        {
            Ok(cert) => cert,
            Err(error) => {
                warn("the upstream client certificate cannot be loaded", &error);
                return None;
            }
        };
        if !cert.metadata().has_private {
            warn(
                "the upstream client certificate has no private key",
                cert.id(),
            );
            return None;
        }
        match self.store.tls_key(&cert) {
            Ok(key) => Some((cert, key)),
            Err(error) => {
                warn(
                    "the upstream client certificate's key cannot be used",
                    &error,
                );
                None
            }
        }
    }

    /// The pins for `host` (§6.5): global map, then the API's, unless
    /// `certificate_pinning_disabled` (which disables both).
    async fn pins_for(&self, def: &ApiDefinition, host: &UpstreamHost) -> Option<Arc<PinSet>> {
        if def.certificate_pinning_disabled {
            return None;
        }
        let maps = [&self.global.pins, &def.pinned_public_keys];
        let value = select(&maps, host)?;
        if value.trim().is_empty() {
            return None;
        }
        let pins = resolve_pins_keeping(
            &self.store,
            &self.retained,
            value,
            &def.api_id,
            &host.authority(),
        )
        .await;
        Some(Arc::new(pins))
    }

    /// Logs and counts a failure; the client's 502.
    fn fail(&self, api_id: &str, host: &UpstreamHost, failure: Failure) -> Response<Body> {
        GatewayMetrics::inc(&self.metrics.upstream_failures);
        let upstream = host.authority();
        match &failure.pins {
            Some((expected, presented)) => tracing::warn!(
                api_id,
                upstream,
                expected_pins = %PinList(expected),
                presented_pins = %PinList(presented),
                "upstream refused: no presented public key matches the pins"
            ),
            None => tracing::warn!(
                api_id,
                upstream,
                error = %failure.detail,
                "upstream request failed"
            ),
        }
        api_error(StatusCode::BAD_GATEWAY, &failure.message)
    }
}

fn http_client(connector: UpstreamConnector) -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector)
}

/// An upstream failure: what the client is told, what the log says.
#[derive(Debug)]
struct Failure {
    /// The `error` of the 502 body: the class of problem and a short reason.
    message: String,
    /// The whole error chain, for the log.
    detail: String,
    /// Expected and presented pins, for a pinning failure.
    pins: Option<(Vec<SpkiPin>, Vec<SpkiPin>)>,
}

impl Failure {
    fn plain(message: String) -> Self {
        Self {
            detail: message.clone(),
            message,
            pins: None,
        }
    }

    /// Finds the class of an upstream client error (legacy client, [`ConnectError`] or
    /// [`hyper::Error`]) in its source chain.
    fn classify(error: &(dyn std::error::Error + 'static)) -> Self {
        let detail = error_chain(error);
        let mut message = None;
        let mut pins = None;
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(current) = source {
            if let Some(connect) = current.downcast_ref::<ConnectError>() {
                message = Some(match connect {
                    ConnectError::Tls { source, .. } => tls_message(source, &mut pins),
                    ConnectError::TlsIo { source, .. } => format!(
                        "upstream TLS error: the connection failed during the handshake ({})",
                        source.kind()
                    ),
                    ConnectError::Timeout { after, .. } => format!(
                        "upstream timeout: no connection within {}s",
                        after.as_secs_f64()
                    ),
                    ConnectError::ServerName { .. } => {
                        "upstream TLS error: the upstream host is not a valid TLS server name"
                            .to_owned()
                    }
                    ConnectError::NoTls { .. } => {
                        "upstream TLS error: no TLS settings for this upstream".to_owned()
                    }
                    ConnectError::Tcp { source, .. } => {
                        format!("upstream connection error: {}", plain(source.as_ref()))
                    }
                });
                break;
            }
            let rustls_error = current.downcast_ref::<rustls::Error>().or_else(|| {
                current
                    .downcast_ref::<std::io::Error>()
                    .and_then(|io| io.get_ref())
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            });
            if let Some(rustls_error) = rustls_error {
                message = Some(tls_message(rustls_error, &mut pins));
                break;
            }
            source = current.source();
        }
        Self {
            message: message.unwrap_or_else(|| format!("upstream error: {}", plain(error))),
            detail,
            pins,
        }
    }
}

/// The client message for a rustls error; a pin mismatch also fills `pins`.
fn tls_message(error: &rustls::Error, pins: &mut Option<(Vec<SpkiPin>, Vec<SpkiPin>)>) -> String {
    if let rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) = error
        && let Some(mismatch) = other.0.downcast_ref::<PinMismatch>()
    {
        *pins = Some((mismatch.expected.clone(), mismatch.presented.clone()));
        return "upstream certificate public key pinning error: public keys do not match"
            .to_owned();
    }
    let reason = match error {
        rustls::Error::InvalidCertificate(problem) => {
            use rustls::CertificateError as E;
            let what = match problem {
                E::Expired | E::ExpiredContext { .. } => "has expired",
                E::NotValidYet | E::NotValidYetContext { .. } => "is not valid yet",
                E::UnknownIssuer => "is issued by an authority this gateway does not trust",
                E::NotValidForName | E::NotValidForNameContext { .. } => {
                    "is not valid for the upstream's host name"
                }
                E::Revoked => "is revoked",
                E::InvalidPurpose | E::InvalidPurposeContext { .. } => {
                    "is not for server authentication"
                }
                E::BadSignature | E::UnsupportedSignatureAlgorithmContext { .. } => {
                    "has a signature that does not verify"
                }
                _ => "is refused",
            };
            format!("the upstream's certificate {what}")
        }
        rustls::Error::AlertReceived(_) => "the upstream refused the handshake".to_owned(),
        rustls::Error::PeerIncompatible(_) | rustls::Error::NoApplicationProtocol => {
            "the upstream supports no TLS version, cipher suite or protocol in common".to_owned()
        }
        _ => "the handshake failed".to_owned(),
    };
    format!("upstream TLS error: {reason}")
}

/// The deepest error of a chain in plain words: an I/O error by its kind (never the OS error
/// text or an address); the details are in the log (`Failure::detail`).
fn plain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    match current.downcast_ref::<std::io::Error>() {
        Some(io) => io.kind().to_string(),
        None => innermost(current),
    }
}

/// Every message of an error chain, joined with `": "`.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(current) = source {
        text.push_str(": ");
        text.push_str(&current.to_string());
        source = current.source();
    }
    text
}

/// The message of the deepest error of a chain.
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// Headers that describe one connection, never forwarded (RFC 9110 §7.6.1), besides those
/// that `Connection` names and every `Proxy-*`.
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<&str> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim_ascii)
        .collect();
    // One pass over the (few) names present: most messages have nothing to remove, and then
    // nothing more is allocated.
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let name = name.as_str();
            HOP_BY_HOP.contains(&name)
                || name.starts_with("proxy-")
                || named.iter().any(|token| token.eq_ignore_ascii_case(name))
        })
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// Removes the API's listen path from `path`, keeping a leading `/`; borrows unless a `/` must
/// be added.
pub(crate) fn strip_listen_path<'a>(path: &'a str, listen_path: &str) -> Cow<'a, str> {
    match path.strip_prefix(listen_path) {
        Some(rest) if rest.starts_with('/') => Cow::Borrowed(rest),
        // The listen path's own trailing `/` leads the rest.
        Some(_) if listen_path.ends_with('/') => Cow::Borrowed(&path[listen_path.len() - 1..]),
        Some(rest) => Cow::Owned(format!("/{rest}")),
        None => Cow::Borrowed(path),
    }
}

/// Appends a request path to the target's path with exactly one `/` between them (Go's
/// `singleJoiningSlash`), into one buffer with room for a query.
fn join_paths(base: &str, path: &str) -> String {
    let mut joined = String::with_capacity(base.len() + path.len() + 2);
    joined.push_str(base);
    match (base.ends_with('/'), path.starts_with('/')) {
        (true, true) => joined.push_str(&path[1..]),
        (false, false) => joined.extend(["/", path]),
        _ => joined.push_str(path),
    }
    if !joined.starts_with('/') {
        joined.insert(0, '/');
    }
    joined
}

/// Appends `?`, the target's query and the request's (joined by `&`), when either is not
/// empty.
fn append_queries(path: &mut String, target: Option<&str>, request: Option<&str>) {
    match (
        target.filter(|q| !q.is_empty()),
        request.filter(|q| !q.is_empty()),
    ) {
        (Some(t), Some(r)) => path.extend(["?", t, "&", r]),
        (Some(q), None) | (None, Some(q)) => path.extend(["?", q]),
        (None, None) => {}
    }
}

/// The request to send upstream: URL rewritten, headers cleaned and `X-Forwarded-*` set.
pub(crate) fn upstream_request<B>(
    route: &ApiRoute,
    request: Request<B>,
    client: &ClientInfo,
) -> Result<Request<UpstreamBody>, String>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = request.into_parts();
    let target = &route.target;
    let proxy = &route.def.proxy;
    let original_host = parts.headers.get(header::HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|authority| HeaderValue::from_str(authority.as_str()).ok())
    });
    let path = if proxy.strip_listen_path {
        strip_listen_path(parts.uri.path(), &proxy.listen_path)
    } else {
        Cow::Borrowed(parts.uri.path())
    };
    let mut path_and_query = join_paths(target.path(), &path);
    append_queries(&mut path_and_query, target.query(), parts.uri.query());
    let mut uri = Uri::builder();
    if let Some(scheme) = target.scheme() {
        uri = uri.scheme(scheme.clone());
    }
    if let Some(authority) = target.authority() {
        uri = uri.authority(authority.clone());
    }
    parts.uri = uri
        .path_and_query(path_and_query)
        .build()
        .map_err(|e| format!("cannot build the upstream URL: {e}"))?;
    parts.version = Version::HTTP_11;
    parts.extensions = Extensions::new();

    let headers = &mut parts.headers;
    remove_hop_by_hop(headers);
    headers.remove(header::HOST);
    let prior: Vec<&str> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    let forwarded_for = if prior.is_empty() {
        client.ip_header.clone()
    } else {
        let ip = client.ip_header.to_str().unwrap_or_default();
        HeaderValue::from_str(&format!("{}, {ip}", prior.join(", ")))
            .map_err(|_| "X-Forwarded-For is not a valid header value".to_owned())?
    };
    headers.insert(X_FORWARDED_FOR, forwarded_for);
    headers.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(if client.tls { "https" } else { "http" }),
    );
    match original_host {
        Some(host) => headers.insert(X_FORWARDED_HOST, host),
        None => headers.remove(X_FORWARDED_HOST),
    };
    Ok(Request::from_parts(
        parts,
        body.map_err(Into::into).boxed_unsync(),
    ))
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The upstream's response for the client: hop-by-hop headers removed, body streamed.
fn downstream_response<B>(response: Response<B>) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes, Error = hyper::Error> + Send + Sync + 'static,
{
    let (mut parts, body) = response.into_parts();
    remove_hop_by_hop(&mut parts.headers);
    parts.version = Version::HTTP_11;
    parts.extensions = Extensions::new();
    Response::from_parts(
        parts,
        body.map_err(|error| -> BoxError { Box::new(error) })
            .boxed_unsync(),
    )
}
