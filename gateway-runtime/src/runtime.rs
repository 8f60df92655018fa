//! The runtime: a builder that composes configuration, store, APIs, observer and upstream trust;
//! a running [`Gateway`] with its listeners; reloads when APIs or certificates change.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use cert_store::{CertStore, Change, MemoryStorage};
use rustls_pki_types::CertificateDer;
use tls_core::EncodingSecret;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::ApiTable;
use crate::config::{
    ApiDefinition, CertificateRef, ConfigError, GatewayConfig, SERVER_API_ID, StorageTarget,
};
use crate::connections::Admission;
use crate::control::ControlApi;
use crate::error::{GatewayError, TlsError};
use crate::metrics::GatewayMetrics;
use crate::monitor::{MonitorObserver, start_monitor};
use crate::observe::CertObserver;
use crate::proxy::Proxy;
use crate::retain::Retained;
use crate::server::{Tracker, accept_loop};
use crate::shared::{ListenerRole, Shared};
use crate::state::{TlsShared, TlsState};
use crate::ui::RecentEvents;

/// Rebuilds, which the runtime runs on reloads and store changes (kept here, beside the
/// [`GatewayError`] they return).
impl Shared {
    /// Rebuilds TLS and upstream settings; `load` after the APIs were reloaded (see
    /// [`TlsState::build`]).
    async fn rebuild(&self, load: bool) -> Result<(), GatewayError> {
        let apis = self.apis.load_full();
        let added = self.runtime_certs().clone();
        let config = if added.is_empty() {
            std::borrow::Cow::Borrowed(&*self.config)
        } else {
            let mut config = (*self.config).clone();
            config.http_server_options.ssl_certificates.extend(added);
            std::borrow::Cow::Owned(config)
        };
        let state = TlsState::build(&config, &apis, &self.store, &self.tls_shared, load)
            .await
            .map_err(GatewayError::Tls)?;
        self.tls.store(Arc::new(state));
        self.proxy.reload(&apis).await;
        Ok(())
    }
}

/// Composes a gateway.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use gateway_runtime::{GatewayBuilder, GatewayConfig};
/// let gateway = GatewayBuilder::new(GatewayConfig::default()).start().await?;
/// println!("listening on {}", gateway.local_addr());
/// gateway.shutdown().await;
/// # Ok(()) }
/// ```
pub struct GatewayBuilder {
    config: GatewayConfig,
    store: Option<CertStore>,
    apis: Option<Vec<ApiDefinition>>,
    sinks: Vec<Arc<dyn expiry_monitor::EventSink>>,
    upstream_roots: Vec<CertificateDer<'static>>,
    fallback: Option<crate::fallback::Fallback>,
    acme: crate::acme::AcmeOptions,
}

impl GatewayBuilder {
    /// A builder for `config`.
    pub fn new(config: GatewayConfig) -> Self {
        Self {
            config,
            store: None,
            apis: None,
            sinks: Vec::new(),
            upstream_roots: Vec::new(),
            fallback: None,
            acme: crate::acme::AcmeOptions::default(),
        }
    }

    /// Uses `store` instead of the one `storage` in the configuration describes.
    pub fn store(mut self, store: CertStore) -> Self {
        self.store = Some(store);
        self
    }

    /// Serves `apis` instead of the definitions in `app_path`.
    pub fn apis(mut self, apis: Vec<ApiDefinition>) -> Self {
        self.apis = Some(apis);
        self
    }

    /// Trusts `root` for upstream TLS, in addition to the system's roots.
    pub fn upstream_root(mut self, root: CertificateDer<'static>) -> Self {
        self.upstream_roots.push(root);
        self
    }

    /// Sends requests that match no API to `service`, the embedding service's own router (any
    /// `tower::Service`: an `axum::Router` plugs in as it is), instead of answering 404. They
    /// pass through the same TLS termination (and mutual TLS policy of the domain); the
    /// request's path has been cleaned (see `http_server_options.skip_url_cleaning`).
    ///
    /// Reserved paths: on the gateway's port the control API answers `/tyk/...`, `/hello` and
    /// `/metrics` before any API or the fallback. Give the control API a port of its own
    /// (`control_api_port`) and the gateway port has no reserved path; or a host name of its
    /// own (`control_api_hostname`) and only requests for that host are the control API's.
    ///
    /// A service error is logged and answered with a plain 500.
    pub fn fallback<S, B>(mut self, service: S) -> Self
    where
        S: tower_service::Service<
                http::Request<hyper::body::Incoming>,
                Response = http::Response<B>,
            > + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<crate::BoxError>,
        B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<crate::BoxError>,
    {
        self.fallback = Some(crate::fallback::fallback_from_service(service));
        self
    }

    /// Serves every stored certificate of `orgs` (every org when empty) that has a usable
    /// private key, for its names, besides the configured ones: "store it, and it is served".
    /// The same as `http_server_options.certificates_from_store`; the selection rules are on
    /// [`CertificatesFromStore`](crate::config::CertificatesFromStore).
    pub fn serve_certificates_from_store(
        mut self,
        orgs: impl IntoIterator<Item = tls_core::OrgId>,
    ) -> Self {
        let options = &mut self.config.http_server_options.certificates_from_store;
        options.enabled = true;
        options.orgs = orgs
            .into_iter()
            .map(|org| org.as_str().to_owned())
            .collect();
        self
    }

    /// Obtains and renews certificates for `settings`' names by ACME (instead of
    /// `http_server_options.acme`), and serves them from the store by SNI.
    #[cfg(feature = "acme")]
    pub fn acme(mut self, settings: ::acme::AcmeSettings) -> Self {
        self.acme.settings = Some(settings);
        self
    }

    /// Shares ACME locks, challenges and the account through `coordinator` (a fleet); default:
    /// this process only.
    #[cfg(feature = "acme")]
    pub fn acme_coordinator(mut self, coordinator: Arc<dyn ::acme::Coordinator>) -> Self {
        self.acme.coordinator = Some(coordinator);
        self
    }

    /// Answers `dns-01` challenges (list `dns-01` among the ACME challenges) through your DNS
    /// provider.
    #[cfg(feature = "acme")]
    pub fn acme_dns01(mut self, solver: Arc<dyn ::acme::Dns01Solver>) -> Self {
        self.acme.dns01 = Some(solver);
        self
    }

    /// Also delivers expiry events to `sink` (besides the log and the configured webhooks).
    pub fn event_sink(mut self, sink: Arc<dyn expiry_monitor::EventSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Connects the store, loads APIs, builds TLS, binds the listeners and starts serving.
    ///
    /// The first gateway of a process raises the process's soft open-file limit
    /// (`RLIMIT_NOFILE`) to its hard limit, as Go programs do at start-up.
    pub async fn start(self) -> Result<Gateway, GatewayError> {
        let mut config = self.config;
        let acme_settings =
            crate::acme::prepare(&mut config, &self.acme).map_err(GatewayError::Acme)?;
        let config = Arc::new(config);
        let storage = config.validated()?;
        let store = match self.store {
            Some(store) => store,
            None => store_for(&config, &storage).await?,
        };
        let apis = load_apis(self.apis, &config)?;
        // Subscribed before the first TLS build: a change made at any moment from here on,
        // even before `start` returns, reaches the rebuild loop.
        let changes = store.subscribe();
        register_usage(&store, &config, &apis);
        let metrics = Arc::new(GatewayMetrics::default());
        let retained = Arc::new(Retained::new(
            Arc::clone(&metrics),
            config.allow_certificate_files,
        ));
        let tls_shared = TlsShared::new(
            config.http_server_options.tls()?,
            Arc::clone(&metrics),
            Arc::clone(&retained),
        )?;
        let recent_events = page_events(&config, &store);
        let sinks = event_sinks(self.sinks, recent_events.clone());
        let monitor = start_expiry_monitor(
            &config,
            &storage,
            &store,
            sinks.clone(),
            &self.upstream_roots,
        )
        .await?;
        let observer: Arc<dyn CertObserver> = monitor.clone();
        let api_domains = crate::acme::domains_without_certificates(&apis);
        let table = Arc::new(ApiTable::new(apis));
        let acme = crate::acme::start(
            acme_settings,
            self.acme,
            &config,
            &storage,
            api_domains,
            &store,
            sinks,
            &self.upstream_roots,
        )
        .await?;
        let tls = TlsState::build(&config, &table, &store, &tls_shared, true).await?;
        let proxy = start_proxy(
            &config,
            &store,
            &observer,
            &metrics,
            self.upstream_roots,
            retained,
            &table,
        )
        .await?;
        let control = control_api(&config, &store, &metrics, monitor, acme.clone());
        let listeners = Listeners::bind(&config).await?;
        let admission = admission(&config);
        let (stop_tx, stop_rx) = watch::channel(false);
        let acme_tasks =
            crate::acme::spawn(&acme, listen_host(&config.listen_address), stop_rx.clone()).await?;
        let ui = crate::ui::CertificateUi::new(
            page_settings(&config),
            &store,
            recent_events,
            stop_rx.clone(),
        );
        let shared = Arc::new(Shared {
            config: Arc::clone(&config),
            store,
            apis: ArcSwap::new(table),
            tls: ArcSwap::from_pointee(tls),
            tls_shared,
            proxy,
            control,
            ui,
            metrics,
            observer,
            fallback: self.fallback,
            runtime_certs: std::sync::Mutex::default(),
            admission,
            gateway_port: listeners.local_addr.port(),
            acme,
        });
        let (local_addr, control_addr) = (listeners.local_addr, listeners.control_addr);
        let tracker = Arc::new(Tracker::default());
        let mut tasks = serve(&shared, listeners, &tracker, changes, stop_rx);
        tasks.extend(acme_tasks);
        tracing::info!(address = %local_addr, tls = config.http_server_options.use_ssl, "gateway listening");
        Ok(Gateway {
            shared,
            local_addr,
            control_addr,
            stop: stop_tx,
            tracker,
            tasks,
        })
    }
}

/// The APIs to serve: those given to the builder, else the definitions in `app_path`.
fn load_apis(
    given: Option<Vec<ApiDefinition>>,
    config: &GatewayConfig,
) -> Result<Vec<ApiDefinition>, ConfigError> {
    Ok(match given {
        Some(apis) => apis,
        None => match &config.app_path {
            Some(dir) => ApiDefinition::load_dir(dir)?,
            None => Vec::new(),
        },
    })
}

/// Where the expiry monitor also delivers its events when the certificate page is enabled:
/// the page shows each certificate's recent ones.
fn page_events(config: &GatewayConfig, store: &CertStore) -> Option<Arc<RecentEvents>> {
    config
        .certificate_ui
        .enabled
        .then(|| RecentEvents::new(Arc::clone(store.clock())))
}

/// Where expiry events go: the builder's `sinks`, and the certificate page's `recent_events`
/// (the monitor adds the log and the configured webhooks).
fn event_sinks(
    mut sinks: Vec<Arc<dyn expiry_monitor::EventSink>>,
    recent_events: Option<Arc<RecentEvents>>,
) -> Vec<Arc<dyn expiry_monitor::EventSink>> {
    sinks.extend(recent_events.map(|r| r as Arc<dyn expiry_monitor::EventSink>));
    sinks
}

/// Starts the expiry monitor, delivering to the configured webhooks and `sinks`.
async fn start_expiry_monitor(
    config: &GatewayConfig,
    storage: &StorageTarget,
    store: &CertStore,
    sinks: Vec<Arc<dyn expiry_monitor::EventSink>>,
    upstream_roots: &[CertificateDer<'static>],
) -> Result<Arc<MonitorObserver>, GatewayError> {
    let monitor = start_monitor(config, storage, store, sinks, upstream_roots)
        .await
        .map_err(GatewayError::Monitor)?;
    Ok(Arc::new(monitor))
}

/// The reverse proxy with every API's upstream prepared.
async fn start_proxy(
    config: &GatewayConfig,
    store: &CertStore,
    observer: &Arc<dyn CertObserver>,
    metrics: &Arc<GatewayMetrics>,
    upstream_roots: Vec<CertificateDer<'static>>,
    retained: Arc<Retained>,
    apis: &ApiTable,
) -> Result<Proxy, GatewayError> {
    let proxy = Proxy::new(
        config,
        store.clone(),
        Arc::clone(observer),
        Arc::clone(metrics),
        upstream_roots,
    )
    .map_err(TlsError::Upstream)?
    .with_retained(retained);
    proxy.reload(apis).await;
    Ok(proxy)
}

/// The control API, whose `/metrics` also shows the expiry monitor's figures and ACME's, and
/// whose `/tyk/acme` shows ACME's state.
fn control_api(
    config: &Arc<GatewayConfig>,
    store: &CertStore,
    metrics: &Arc<GatewayMetrics>,
    monitor: Arc<MonitorObserver>,
    acme: crate::acme::Manager,
) -> ControlApi {
    let manager = acme.clone();
    let extra_metrics: Arc<dyn Fn() -> String + Send + Sync> = Arc::new(move || {
        let mut out = crate::prometheus::Exposition::new();
        out.expiry(&monitor.figures());
        crate::acme::render(&manager, &mut out);
        out.finish()
    });
    ControlApi::new(
        Arc::clone(config),
        store.clone(),
        Arc::clone(metrics),
        extra_metrics,
        acme,
    )
}

/// The caps on open client connections (`http_server_options.max_connections` and
/// `max_connections_per_ip`, within the open-file limit).
fn admission(config: &GatewayConfig) -> Arc<Admission> {
    let admission = Arc::new(Admission::new(
        &config.http_server_options,
        crate::connections::open_file_limit(),
    ));
    tracing::debug!(
        max_connections = admission.max_total(),
        "client connection cap"
    );
    admission
}

/// The bound listeners: the gateway's, and the control API's when it has a port of its own.
struct Listeners {
    gateway: TcpListener,
    local_addr: SocketAddr,
    control: Option<TcpListener>,
    control_addr: Option<SocketAddr>,
}

impl Listeners {
    /// Binds `listen_address:listen_port`, and `control_api_port` unless it is 0.
    async fn bind(config: &GatewayConfig) -> Result<Self, GatewayError> {
        let host = listen_host(&config.listen_address);
        let gateway_address = format!("{host}:{}", config.listen_port);
        let gateway = bind(&gateway_address).await?;
        let local_addr = gateway.local_addr().map_err(|source| GatewayError::Bind {
            address: gateway_address,
            source,
        })?;
        let control = match config.control_api_port {
            0 => None,
            port => Some(bind(&format!("{host}:{port}")).await?),
        };
        let control_addr = control.as_ref().and_then(|l| l.local_addr().ok());
        Ok(Self {
            gateway,
            local_addr,
            control,
            control_addr,
        })
    }
}

/// Starts the accept loops of `listeners` and the task that rebuilds TLS on store `changes`;
/// all stop when `stop` turns true.
fn serve(
    shared: &Arc<Shared>,
    listeners: Listeners,
    tracker: &Arc<Tracker>,
    changes: cert_store::Changes,
    stop: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let accept = |listener, role| {
        tokio::spawn(accept_loop(
            listener,
            role,
            Arc::clone(shared),
            Arc::clone(tracker),
            stop.clone(),
        ))
    };
    let mut tasks = vec![accept(listeners.gateway, ListenerRole::Gateway)];
    if let Some(listener) = listeners.control {
        tasks.push(accept(listener, ListenerRole::Control));
    }
    tasks.push(tokio::spawn(follow_store(
        Arc::downgrade(shared),
        changes,
        stop,
    )));
    tasks
}

/// What the certificate page takes from `config`.
fn page_settings(config: &GatewayConfig) -> crate::ui::PageSettings {
    crate::ui::PageSettings {
        page: config.certificate_ui.clone(),
        secret: config.secret.clone(),
        hostname: config.control_api_hostname.clone(),
        warning: config
            .security
            .certificate_expiry_monitor
            .warning_threshold(),
        body_limit: config.max_request_body_bytes,
        read_timeout: Duration::from_secs(config.request_read_timeout_seconds),
    }
}

fn listen_host(address: &str) -> &str {
    if address.is_empty() {
        "0.0.0.0"
    } else {
        address
    }
}

async fn bind(address: &str) -> Result<TcpListener, GatewayError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| GatewayError::Bind {
            address: address.to_owned(),
            source,
        })
}

/// The store `storage` describes, with the encoding secret (falling back to `secret`).
pub async fn store_from_config(config: &GatewayConfig) -> Result<CertStore, GatewayError> {
    if config.storage.kind == "redis" && cfg!(not(feature = "redis")) {
        return Err(GatewayError::NoRedisSupport);
    }
    let storage = config
        .storage
        .parse()
        .map_err(GatewayError::StorageConfig)?;
    store_for(config, &storage).await
}

/// The store over `storage` (parsed from `config.storage`), with the encoding secret.
async fn store_for(
    config: &GatewayConfig,
    storage: &StorageTarget,
) -> Result<CertStore, GatewayError> {
    let storage: Arc<dyn cert_store::CertStorage> = match storage {
        #[cfg(feature = "redis")]
        StorageTarget::Redis(redis_config) => {
            let redis = cert_store::RedisStorage::connect(redis_config.as_ref().clone())
                .await
                .map_err(GatewayError::Storage)?;
            crate::key_format::warn_on_foreign_format(&redis, config.key_format()).await;
            Arc::new(redis)
        }
        StorageTarget::Memory => Arc::new(MemoryStorage::new()),
    };
    if config.encoding_secret().is_empty() {
        tracing::warn!(
            "no private_certificate_encoding_secret nor secret: private keys are stored with an empty secret"
        );
    }
    Ok(CertStore::builder(storage)
        .encoding_secret(EncodingSecret::new(config.encoding_secret()))
        .key_format(config.key_format())
        .build())
}

/// Registers which API uses which stored certificate (Tyk's usage tracker; inline PEM skipped).
fn register_usage(store: &CertStore, config: &GatewayConfig, apis: &[ApiDefinition]) {
    use cert_store::CertRole;
    let mut uses = Vec::new();
    let mut add = |reference: &CertificateRef, api: &str, role: CertRole| {
        if let Some(id) = reference.id() {
            uses.push((id.clone(), api.to_owned(), role));
        }
    };
    for reference in &config.http_server_options.ssl_certificates {
        add(reference, SERVER_API_ID, CertRole::Server);
    }
    for api in apis {
        for reference in &api.certificates {
            add(reference, &api.api_id, CertRole::Server);
        }
        for reference in &api.client_certificates {
            add(reference, &api.api_id, CertRole::Client);
        }
        for reference in api.upstream_certificates.values().flatten() {
            add(reference, &api.api_id, CertRole::Upstream);
        }
        for list in api.pinned_public_keys.values() {
            for entry in list.split(',') {
                if let Ok(reference) = entry.parse() {
                    add(&reference, &api.api_id, CertRole::Pin);
                }
            }
        }
    }
    store.usage().replace_all(uses);
}

/// How often TLS is rebuilt without a change notice, to notice certificates the store lost
/// without saying so (a `FLUSHALL`): they are then reported missing (see `retain`).
const RECHECK: Duration = Duration::from_secs(60);
/// The same while some certificate is served from its last good copy.
const RECHECK_DEGRADED: Duration = Duration::from_secs(5);

/// Rebuilds TLS and upstream settings when the store changes (several notices arriving
/// together give one rebuild), and every [`RECHECK`].
async fn follow_store(
    shared: std::sync::Weak<Shared>,
    mut changes: cert_store::Changes,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let recheck = match shared.upgrade() {
            Some(shared) if shared.tls_shared.retained.degraded() => RECHECK_DEGRADED,
            Some(_) => RECHECK,
            None => return,
        };
        tokio::select! {
            () = tokio::time::sleep(recheck) => {
                let Some(shared) = shared.upgrade() else { return };
                if let Err(e) = shared.rebuild(false).await {
                    tracing::error!(error = %e, "cannot rebuild TLS; keeping the previous settings");
                }
            }
            change = changes.next() => {
                let Some(change) = change else {
                    return;
                };
                let Some(shared) = shared.upgrade() else { return };
                // A delete through a store API (here or on another gateway) ends the last good
                // copy; data loss sends no such notice (a Redis restart only a `Resync`).
                let forget = |change: &Change| {
                    if let Change::Removed(id) = change {
                        shared.tls_shared.retained.forget(id);
                    }
                };
                forget(&change);
                // Coalesce a burst (a bulk import) into one rebuild.
                while let Ok(Some(change)) = tokio::time::timeout(Duration::from_millis(5), changes.next()).await {
                    forget(&change);
                }
                if let Err(e) = shared.rebuild(false).await {
                    tracing::error!(error = %e, "cannot rebuild TLS after a certificate change; keeping the previous settings");
                }
            }
            _ = stop.changed() => return,
        }
    }
}

/// A running gateway.
pub struct Gateway {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    control_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tracker: Arc<Tracker>,
    tasks: Vec<JoinHandle<()>>,
}

impl Gateway {
    /// The automatic certificates' manager, when ACME is on: status, and checks on demand.
    #[cfg(feature = "acme")]
    pub fn acme(&self) -> Option<&Arc<::acme::AcmeManager>> {
        self.shared.acme.as_ref()
    }

    /// Where the gateway listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where the control API listens, when it has its own port.
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.control_addr
    }

    /// The certificate store.
    pub fn store(&self) -> &CertStore {
        &self.shared.store
    }

    /// The gateway's counters.
    pub fn metrics(&self) -> &GatewayMetrics {
        &self.shared.metrics
    }

    /// Serves the stored certificate `id` from now on, as if `http_server_options.
    /// ssl_certificates` named it: by SNI for its DNS names (its subject CN when it has none),
    /// taking those names from earlier certificates, and as the default when no other server
    /// certificate is configured. Like configured certificates it keeps serving from its last
    /// good copy if the store loses it. New handshakes use it when this returns. Refused when
    /// the certificate is not stored or has no usable private key.
    pub async fn add_server_certificate(&self, id: &tls_core::CertId) -> Result<(), GatewayError> {
        let refused = |source| GatewayError::Certificate {
            id: id.clone(),
            source,
        };
        self.shared.store.certified_key(id).await.map_err(refused)?;
        {
            let mut added = self.shared.runtime_certs();
            let id = CertificateRef::from(id);
            if !added.contains(&id) {
                added.push(id);
            }
        }
        self.shared.rebuild(false).await
    }

    /// Stops serving a certificate [`Gateway::add_server_certificate`] added (the configuration's
    /// certificates stay); false when it was not added. New handshakes no longer get it when
    /// this returns; the store keeps it.
    pub async fn remove_server_certificate(
        &self,
        id: &tls_core::CertId,
    ) -> Result<bool, GatewayError> {
        let removed = {
            let mut added = self.shared.runtime_certs();
            let before = added.len();
            let id = CertificateRef::from(id);
            added.retain(|other| *other != id);
            added.len() != before
        };
        if removed {
            self.shared.rebuild(false).await?;
        }
        Ok(removed)
    }

    /// Replaces the served APIs (e.g. on SIGHUP) and rebuilds TLS and upstream settings.
    pub async fn reload_apis(&self, apis: Vec<ApiDefinition>) -> Result<(), GatewayError> {
        register_usage(&self.shared.store, &self.shared.config, &apis);
        self.shared.apis.store(Arc::new(ApiTable::new(apis)));
        self.shared.rebuild(true).await
    }

    /// Stops accepting, lets open connections finish their requests (at most `grace`), then
    /// stops.
    pub async fn shutdown_within(self, grace: Duration) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(grace, self.tracker.drained())
            .await
            .is_err()
        {
            tracing::warn!("connections still open after the grace period; closing them");
        }
        for task in self.tasks {
            task.abort();
        }
        tracing::info!(port = self.shared.gateway_port, "gateway stopped");
    }

    /// [`Gateway::shutdown_within`] 30 seconds.
    pub async fn shutdown(self) {
        self.shutdown_within(Duration::from_secs(30)).await;
    }
}
