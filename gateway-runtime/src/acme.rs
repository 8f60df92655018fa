//! Automatic certificates (feature `acme`): the gateway's side of [`acme`]. The TLS listener
//! answers `tls-alpn-01` for ClientHellos offering `acme-tls/1` (and only those: every other
//! handshake is untouched and reads no storage), a plain-HTTP listener answers `http-01` and
//! redirects everything else to HTTPS, and issued certificates are served from the store by SNI
//! (`certificates_from_store` is turned on for the ACME org).

use std::sync::Arc;

use acme::{
    AcmeManager, AcmeSettings, ChallengeKind, ChallengeResponder, Coordinator, HTTP01_PREFIX,
};
use cert_store::CertStore;
use expiry_monitor::{EventSink, TracingSink};
use http::{Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::CertificateDer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{ApiDefinition, GatewayConfig, StorageTarget};
use crate::control::renewals::{AcmeNameStatus, AcmeRenewal, AcmeStatus, wire_time};
use crate::error::GatewayError;
use crate::monitor::WebhookSink;
use crate::response::{Body, full};

/// The ACME manager of a running gateway, when ACME is on.
pub(crate) type Manager = Option<Arc<AcmeManager>>;

/// No manager: ACME is off (for handlers built without a gateway).
#[cfg(any(test, feature = "internals"))]
pub(crate) fn no_manager() -> Manager {
    None
}

/// What [`prepare`] found: the settings, when ACME is on.
pub(crate) type Settings = Option<AcmeSettings>;

/// The names [`domains_without_certificates`] found.
pub(crate) type Domains = Vec<String>;

/// What [`GatewayBuilder::acme`](crate::GatewayBuilder::acme) was given.
#[derive(Default)]
pub(crate) struct AcmeOptions {
    pub(crate) settings: Option<AcmeSettings>,
    pub(crate) coordinator: Option<Arc<dyn Coordinator>>,
    pub(crate) dns01: Option<Arc<dyn acme::Dns01Solver>>,
}

/// Validates the ACME settings (given in code, or `http_server_options.acme`) and turns on
/// serving the ACME org's stored certificates.
pub(crate) fn prepare(
    config: &mut GatewayConfig,
    options: &AcmeOptions,
) -> Result<Settings, String> {
    let settings = match &options.settings {
        Some(settings) => settings.clone(),
        None if config.http_server_options.acme.enabled => {
            for field in config.http_server_options.acme.unknown_fields() {
                tracing::warn!(field, "unknown field in http_server_options.acme: ignored");
            }
            config
                .http_server_options
                .acme
                .validate()
                .map_err(|e| e.to_string())?
        }
        None => return Ok(None),
    };
    let serving = &mut config.http_server_options.certificates_from_store;
    let org = settings.org.as_str().to_owned();
    if !serving.enabled {
        serving.enabled = true;
        serving.orgs = vec![org];
    } else if !serving.orgs.is_empty() && !serving.orgs.contains(&org) {
        serving.orgs.push(org);
    }
    Ok(Some(settings))
}

/// The manager, when ACME is on, delivering renewal events to the gateway's sinks: the log,
/// the configured webhooks (trusting `webhook_roots` too) and `extra_sinks`.
#[allow(
    clippy::too_many_arguments,
    reason = "the parts of the starting gateway ACME is built from, each used once"
)]
pub(crate) async fn start(
    settings: Settings,
    options: AcmeOptions,
    config: &GatewayConfig,
    storage: &StorageTarget,
    api_domains: Domains,
    store: &CertStore,
    extra_sinks: Vec<Arc<dyn EventSink>>,
    webhook_roots: &[CertificateDer<'static>],
) -> Result<Manager, GatewayError> {
    let Some(settings) = settings else {
        return Ok(None);
    };
    build(
        settings,
        options,
        config,
        storage,
        api_domains,
        store,
        extra_sinks,
        webhook_roots,
    )
    .await
    .map(Some)
    .map_err(GatewayError::Acme)
}

/// The control API's answer when there is no manager.
pub(crate) const OFF: &str = "ACME is not configured on this gateway (http_server_options.acme.enabled is false): no certificate is obtained automatically";

/// Each managed name's status and the counts since start, for `GET /tyk/acme`; `None` when
/// ACME is off.
pub(crate) async fn status_report(manager: &Manager) -> Option<AcmeStatus> {
    let manager = manager.as_ref()?;
    let figures = manager.figures();
    let names = manager.statuses().await.iter().map(wire_status).collect();
    Some(AcmeStatus {
        names,
        issued: figures.issued,
        renewed: figures.renewed,
        failed: figures.failed,
    })
}

/// The renewal state of certificate `id`, when ACME manages it.
pub(crate) async fn renewal_of(manager: &Manager, id: &tls_core::CertId) -> Option<AcmeRenewal> {
    let status = manager.as_ref()?.status_of_certificate(id).await?;
    Some(wire_status(&status).renewal())
}

fn wire_status(status: &acme::NameStatus) -> AcmeNameStatus {
    AcmeNameStatus {
        name: status.name.clone(),
        cert_id: status.cert_id.clone(),
        not_after: wire_time(status.not_after),
        next_renewal: wire_time(status.next_renewal),
        failures: status.failures,
        last_error: status.last_error.clone(),
        local_only: status.local_only,
    }
}

/// The manager's figures on `/metrics`.
pub(crate) fn render(manager: &Manager, out: &mut crate::prometheus::Exposition) {
    if let Some(manager) = manager {
        out.acme(&manager.figures());
    }
}

#[allow(
    clippy::too_many_arguments,
    reason = "the parts of the starting gateway ACME is built from, each used once"
)]
async fn build(
    settings: AcmeSettings,
    options: AcmeOptions,
    config: &GatewayConfig,
    storage: &StorageTarget,
    api_domains: Vec<String>,
    store: &CertStore,
    extra_sinks: Vec<Arc<dyn EventSink>>,
    webhook_roots: &[CertificateDer<'static>],
) -> Result<Arc<AcmeManager>, String> {
    let from_apis = settings.domains_from_apis;
    let mut builder = AcmeManager::builder(settings, store.clone())
        .encoding_secret(tls_core::EncodingSecret::new(config.encoding_secret()))
        .event_sink(Arc::new(TracingSink));
    for sink in extra_sinks {
        builder = builder.event_sink(sink);
    }
    for hook in &config.certificate_expiry_webhooks {
        builder = builder.event_sink(Arc::new(
            WebhookSink::new(hook, webhook_roots).map_err(|e| e.to_string())?,
        ));
    }
    if let Some(solver) = options.dns01 {
        builder = builder.dns01(solver);
    }
    if let Some(coordinator) = options.coordinator {
        builder = builder.coordinator(coordinator);
    } else {
        // Without Redis support, the store is in memory: no fleet to coordinate.
        #[cfg(not(feature = "redis"))]
        let StorageTarget::Memory = storage;
        #[cfg(feature = "redis")]
        if let Some(redis) = storage.redis() {
            builder = builder.coordinator(redis_coordinator(redis).await?);
        }
    }
    let manager = Arc::new(builder.build());
    if from_apis {
        manager.add_names(api_domains);
    }
    Ok(manager)
}

/// The fleet's coordinator in the store's Redis (one plain node for now), from the connection
/// the configuration's validation parsed.
#[cfg(feature = "redis")]
async fn redis_coordinator(
    redis: &cert_store::RedisConfig,
) -> Result<Arc<dyn Coordinator>, String> {
    let connection = &redis.connection;
    if !matches!(
        connection.topology,
        cert_store::RedisTopology::Single { .. }
    ) || connection.tls.is_some()
    {
        return Err("ACME coordinates a fleet through the store's Redis, which must be one plain (non-TLS) node for now: Redis Cluster, Sentinel and TLS are not supported for it yet (or pass a coordinator with GatewayBuilder::acme_coordinator)".to_owned());
    }
    let coordinator = acme::RedisCoordinator::connect_to(connection)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(coordinator))
}

/// Starts the manager's checks (and the `http-01` listener when that challenge is enabled).
pub(crate) async fn spawn(
    manager: &Manager,
    listen_host: &str,
    stop: watch::Receiver<bool>,
) -> Result<Vec<JoinHandle<()>>, GatewayError> {
    let Some(manager) = manager else {
        return Ok(Vec::new());
    };
    let settings = manager.settings();
    let mut tasks = Vec::new();
    if settings.challenges.contains(&ChallengeKind::Http01) {
        let address = format!("{listen_host}:{}", settings.http_port);
        let listener = TcpListener::bind(&address)
            .await
            .map_err(|source| GatewayError::Bind { address, source })?;
        tasks.push(tokio::spawn(serve_http01_listener(
            listener,
            manager.responder().clone(),
            stop.clone(),
        )));
    }
    tracing::info!(names = ?manager.names(), "ACME certificates managed");
    tasks.push(Arc::clone(manager).spawn(stop));
    Ok(tasks)
}

/// The `domain` of every API that names no certificate of its own.
pub(crate) fn domains_without_certificates(apis: &[ApiDefinition]) -> Domains {
    apis.iter()
        .filter(|api| api.certificates.is_empty() && !api.domain.is_empty())
        .map(|api| api.domain.clone())
        .collect()
}

/// The TLS configuration answering a `tls-alpn-01` ClientHello, if it is one and a challenge
/// for its name is pending.
pub(crate) async fn tls_alpn01_config(
    manager: Option<&AcmeManager>,
    hello: &rustls::server::ClientHello<'_>,
) -> Option<(Arc<rustls::ServerConfig>, String)> {
    let responder = manager?.responder();
    if !ChallengeResponder::is_tls_alpn01(hello) {
        return None;
    }
    let name = hello.server_name()?.to_ascii_lowercase();
    responder
        .tls_alpn01_config(&name)
        .await
        .map(|config| (config, name))
}

async fn serve_http01_listener(
    listener: TcpListener,
    responder: ChallengeResponder,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                let responder = responder.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: http::Request<Incoming>| {
                        let responder = responder.clone();
                        async move { Ok::<_, std::convert::Infallible>(answer_http01(&responder, &req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .http1_only()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            _ = stop.changed() => return,
        }
    }
}

/// `GET /.well-known/acme-challenge/<token>` (or `HEAD`): the pending answer, else 404 (a path
/// that is no token, e.g. with `..` or escapes, is not looked up); another method there: 405;
/// anything else: a permanent redirect to the same URL over HTTPS (400 without a usable `Host`).
/// Every refusal has an empty body.
async fn answer_http01<B>(
    responder: &ChallengeResponder,
    req: &http::Request<B>,
) -> Response<Body> {
    let path = req.uri().path();
    if let Some(token) = path.strip_prefix(HTTP01_PREFIX) {
        if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
            let mut refused = status(StatusCode::METHOD_NOT_ALLOWED);
            refused
                .headers_mut()
                .insert(header::ALLOW, http::HeaderValue::from_static("GET, HEAD"));
            return refused;
        }
        return match responder.http01(token).await {
            Some(answer) => Response::builder()
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .body(full(answer))
                .unwrap_or_default(),
            None => status(StatusCode::NOT_FOUND),
        };
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| {
            h.rsplit_once(':').map_or(h, |(host, port)| {
                if port.bytes().all(|b| b.is_ascii_digit()) {
                    host
                } else {
                    h
                }
            })
        })
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b))
        });
    let Some(host) = host else {
        return status(StatusCode::BAD_REQUEST);
    };
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    Response::builder()
        .status(StatusCode::PERMANENT_REDIRECT)
        .header(header::LOCATION, format!("https://{host}{target}"))
        .body(full(""))
        .unwrap_or_default()
}

fn status(code: StatusCode) -> Response<Body> {
    Response::builder()
        .status(code)
        .body(full(""))
        .unwrap_or_default()
}
