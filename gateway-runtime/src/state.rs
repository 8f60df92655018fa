//! The TLS snapshot: server certificates by name, client-certificate policies, and one rustls
//! `ServerConfig` per client-auth situation. Built from the configuration and the store, swapped
//! whole when either changes, so a handshake never waits on storage.

use std::collections::HashMap;
use std::sync::Arc;

use cert_store::{CertStore, LoadedCert, PageWalk, StoreError};
use rustls::crypto::CryptoProvider;
use rustls::server::{ProducesTickets, ServerConfig, StoresServerSessions};
use tls_core::OrgId;

use crate::api::ApiTable;
use crate::config::{CertificateRef, CertificatesFromStore, GatewayConfig, ServerTls};
use crate::error::TlsError;
use crate::metrics::GatewayMetrics;
use crate::mtls::{ClientAuth, ClientPolicy, CrlOptions, HandshakeVerifier, check_crls};
use crate::retain::Retained;
use crate::sni::{Served, ServerCerts};

/// Long-lived TLS parts shared by every snapshot: resumption must survive rebuilds.
pub(crate) struct TlsShared {
    pub(crate) provider: Arc<CryptoProvider>,
    /// `http_server_options`' versions and cipher suites, parsed once.
    pub(crate) server_tls: ServerTls,
    pub(crate) ticketer: Arc<dyn ProducesTickets>,
    pub(crate) sessions: Arc<dyn StoresServerSessions>,
    pub(crate) metrics: Arc<GatewayMetrics>,
    /// Last good copies of referenced certificates, for when the store loses them.
    pub(crate) retained: Arc<Retained>,
    /// CRLs reported past their `nextUpdate` (API ID, CRL), so each is logged once.
    pub(crate) crls_past: std::sync::Mutex<Vec<(String, String)>>,
    /// The certificates served from the store (`certificates_from_store`) at the last build.
    pub(crate) stored: StoredCerts,
}

/// The certificates `http_server_options.certificates_from_store` serves, as found at the last
/// snapshot build: kept when the store cannot be listed, so a store outage does not take them
/// out of TLS.
#[derive(Default)]
pub(crate) struct StoredCerts {
    last: std::sync::Mutex<Vec<Served>>,
}

/// IDs per listing page when collecting stored certificates.
const STORED_PAGE: usize = 1000;

impl StoredCerts {
    /// Every stored certificate of `options.orgs` (all orgs when empty) that can be served,
    /// the one that expires last first (see [`CertificatesFromStore`]).
    async fn serving(&self, store: &CertStore, options: &CertificatesFromStore) -> Vec<Served> {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        match collect_stored(store, options).await {
            Ok(found) => last = found,
            Err(e) => tracing::warn!(
                error = %e,
                kept = last.len(),
                "cannot list the store's certificates; serving the ones found before"
            ),
        }
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = last.clone();
        last
    }
}

async fn collect_stored(
    store: &CertStore,
    options: &CertificatesFromStore,
) -> Result<Vec<Served>, StoreError> {
    let orgs: Vec<Option<OrgId>> = if options.orgs.is_empty() {
        vec![None]
    } else {
        // Validated with the configuration.
        options
            .orgs
            .iter()
            .filter_map(|org| OrgId::new(org.as_str()).ok())
            .map(Some)
            .collect()
    };
    let now = store.clock().now();
    let mut found = Vec::new();
    for org in &orgs {
        let mut walk = PageWalk::new(STORED_PAGE);
        while let Some(page) = walk.request() {
            let listed = store.list(org.as_ref(), page).await?;
            for id in &walk.advance(listed) {
                let cert = match store.get(id).await {
                    Ok(cert) => cert,
                    Err(e) if e.is_temporary() => return Err(e),
                    // Gone since the listing, or unreadable: not served.
                    Err(_) => continue,
                };
                let meta = cert.metadata();
                let expired = meta.not_after.is_none_or(|end| end <= now);
                if meta.is_ca || !meta.has_private || expired {
                    continue;
                }
                if let Ok(key) = store.tls_key(&cert) {
                    found.push(Served { key, cert });
                }
            }
        }
    }
    found.sort_by(|a, b| {
        b.cert
            .metadata()
            .not_after
            .cmp(&a.cert.metadata().not_after)
    });
    Ok(found)
}

impl TlsShared {
    /// Parts for a new gateway: ring's provider, the listener's parsed versions and cipher
    /// suites, a new ticketer, a session cache of 8192 entries, no CRL reported yet.
    pub(crate) fn new(
        server_tls: ServerTls,
        metrics: Arc<GatewayMetrics>,
        retained: Arc<Retained>,
    ) -> Result<Self, TlsError> {
        Ok(Self {
            provider: tls_core::default_provider(),
            server_tls,
            ticketer: tls_core::crypto::Ticketer::new().map_err(TlsError::Tickets)?,
            sessions: rustls::server::ServerSessionMemoryCache::new(8192),
            metrics,
            retained,
            crls_past: std::sync::Mutex::default(),
            stored: StoredCerts::default(),
        })
    }

    /// Logs the CRLs newly past their `nextUpdate` and sets the gauge.
    fn report_crls_past(&self, now: Vec<(String, String)>) {
        let mut reported = self
            .crls_past
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (api_id, crl) in now.iter().filter(|c| !reported.contains(c)) {
            tracing::warn!(
                api_id,
                crl,
                "a client certificate CRL is past its nextUpdate: revocations published since are not known; replace it (client_certificate_crls_strict refuses such CRLs)"
            );
        }
        self.metrics.crls_past_next_update.store(
            u64::try_from(now.len()).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
        *reported = now;
    }
}

/// One immutable snapshot.
pub(crate) struct TlsState {
    pub(crate) certs: Arc<ServerCerts>,
    /// Client policies of mTLS APIs, by API ID.
    pub(crate) api_policies: HashMap<String, Arc<ClientPolicy>>,
    /// The control API's policy when `control_api_use_mutual_tls` is on.
    pub(crate) control_policy: Option<Arc<ClientPolicy>>,
    /// Configs for domains with mTLS APIs (lowercase domain; `""` for APIs without a domain).
    domain_configs: HashMap<String, Arc<ServerConfig>>,
    /// The config without client authentication.
    plain: Arc<ServerConfig>,
    /// The config of control API connections when they require client certificates.
    control: Option<Arc<ServerConfig>>,
}

impl TlsState {
    /// Builds a snapshot. References that cannot be resolved now (not yet added, wrong secret)
    /// are logged and left out, unless a good copy was seen before ([`Retained`]), which is
    /// used instead; a later store change rebuilds the snapshot.
    ///
    /// `load` when the configuration or the APIs were just (re)loaded: a CRL that fails its
    /// checks then refuses the whole build. On rebuilds after store changes it only takes its
    /// API out of service (clients refused), with an error in the log.
    pub(crate) async fn build(
        config: &GatewayConfig,
        apis: &ApiTable,
        store: &CertStore,
        shared: &TlsShared,
        load: bool,
    ) -> Result<Self, TlsError> {
        prefetch(config, apis, store).await;
        shared.retained.retain_only(config, apis);
        let certs = Arc::new(server_certs(config, apis, store, shared).await);
        let api_policies = api_policies(config, apis, store, shared, load).await?;
        let domain_configs = domain_configs(config, apis, shared, &certs, &api_policies)?;
        let (control_policy, control) = control_api_auth(config, store, shared, &certs).await?;
        let plain = server_config(config, shared, &certs, None)?;
        Ok(Self {
            certs,
            api_policies,
            control_policy,
            domain_configs,
            plain,
            control,
        })
    }

    /// The rustls config for a handshake with `sni`; `is_control` when the connection is for
    /// the control API (its host and port).
    pub(crate) fn config_for(&self, sni: Option<&str>, is_control: bool) -> Arc<ServerConfig> {
        if is_control && let Some(control) = &self.control {
            return Arc::clone(control);
        }
        let by_domain = sni
            .and_then(|name| self.domain_configs.get(name))
            .or_else(|| self.domain_configs.get(""));
        Arc::clone(by_domain.unwrap_or(&self.plain))
    }
}

/// The server certificates by name: `ssl_certificates`, then each API's `certificates` (also
/// under its domain), then, when enabled, the store's own for names still free.
async fn server_certs(
    config: &GatewayConfig,
    apis: &ApiTable,
    store: &CertStore,
    shared: &TlsShared,
) -> ServerCerts {
    let retained = &*shared.retained;
    let mut certs = ServerCerts::default();
    for reference in &config.http_server_options.ssl_certificates {
        if let Some(served) = server_cert(
            store,
            retained,
            reference,
            "http_server_options.ssl_certificates",
        )
        .await
        {
            certs.add(served, &[]);
        }
    }
    for route in apis.iter() {
        for reference in &route.def.certificates {
            if let Some(served) = server_cert(store, retained, reference, &route.def.api_id).await {
                certs.add(served, std::slice::from_ref(&route.def.domain));
            }
        }
    }
    let from_store = &config.http_server_options.certificates_from_store;
    if from_store.enabled {
        for served in shared.stored.serving(store, from_store).await {
            certs.add_unclaimed(served);
        }
    }
    certs
}

/// The client policy of each API with `use_mutual_tls_auth`, by API ID: its
/// `client_certificates` and `security.certificates.apis`, with its CRLs checked (see
/// [`TlsState::build`] for `load`). Reports the CRLs past their `nextUpdate`.
async fn api_policies(
    config: &GatewayConfig,
    apis: &ApiTable,
    store: &CertStore,
    shared: &TlsShared,
    load: bool,
) -> Result<HashMap<String, Arc<ClientPolicy>>, TlsError> {
    let retained = &*shared.retained;
    let global_clients = resolve_all(
        store,
        retained,
        &config.security.certificates.apis,
        "security.certificates.apis",
    )
    .await;
    let mut api_policies = HashMap::new();
    let mut crls_past = Vec::new();
    for route in apis.iter().filter(|r| r.def.use_mutual_tls_auth) {
        let mut entries = resolve_all(
            store,
            retained,
            &route.def.client_certificates,
            &route.def.api_id,
        )
        .await;
        entries.extend(global_clients.iter().cloned());
        let crls = route.def.crls()?;
        let crl_options = route
            .def
            .crl_options()
            .map_err(|source| TlsError::CrlOption {
                api_id: route.def.api_id.clone(),
                source,
            })?;
        let now = store.clock().now();
        let checked = check_crls(&crls, &entries, crl_options, load, now, &shared.provider);
        let past = match checked {
            Ok(past) => past,
            Err(reason) if load => {
                return Err(TlsError::Crls {
                    api_id: route.def.api_id.clone(),
                    reason,
                });
            }
            Err(e) => {
                // A rebuild after a store change: the other APIs must not wait on this one.
                tracing::error!(api_id = %route.def.api_id, error = %e, "the API's CRLs cannot be used: its clients are refused until its definition is fixed");
                continue;
            }
        };
        crls_past.extend(past.into_iter().map(|crl| (route.def.api_id.clone(), crl)));
        let policy =
            ClientPolicy::new(&entries, crls, crl_options, &shared.provider).map_err(|reason| {
                TlsError::ClientCertificates {
                    api_id: route.def.api_id.clone(),
                    reason,
                }
            })?;
        api_policies.insert(route.def.api_id.clone(), Arc::new(policy));
    }
    shared.report_crls_past(crls_past);
    Ok(api_policies)
}

/// A rustls config per domain with mutual-TLS APIs (lowercase; `""` for APIs without a
/// domain): client certificates required when every API of the domain requires them, only
/// requested when some do; verified against the union of their policies.
fn domain_configs(
    config: &GatewayConfig,
    apis: &ApiTable,
    shared: &TlsShared,
    certs: &Arc<ServerCerts>,
    api_policies: &HashMap<String, Arc<ClientPolicy>>,
) -> Result<HashMap<String, Arc<ServerConfig>>, TlsError> {
    // Per domain: every API requires a client certificate, or only some do.
    let mut domains: HashMap<String, (usize, usize)> = HashMap::new();
    for route in apis.iter() {
        let counts = domains
            .entry(route.def.domain.to_ascii_lowercase())
            .or_default();
        counts.0 += 1;
        if route.def.use_mutual_tls_auth {
            counts.1 += 1;
        }
    }
    let announce = !config.http_server_options.skip_client_ca_announcement;
    let mut domain_configs = HashMap::new();
    for (domain, (total, mtls)) in domains {
        if mtls == 0 {
            continue;
        }
        let mode = if mtls == total {
            ClientAuth::Required
        } else {
            ClientAuth::Requested
        };
        let policies: Vec<&Arc<ClientPolicy>> = apis
            .iter()
            .filter(|r| r.def.use_mutual_tls_auth && r.def.domain.eq_ignore_ascii_case(&domain))
            .filter_map(|r| api_policies.get(&r.def.api_id))
            .collect();
        let policy = match policies.as_slice() {
            // The API's own policy: a chain verified at the handshake is then known to it, and
            // the API's check of the connection's first request does not verify it again.
            [only] => Arc::clone(only),
            _ => {
                let members: Vec<&ClientPolicy> = policies.iter().map(|p| p.as_ref()).collect();
                Arc::new(
                    ClientPolicy::union(&members, &shared.provider)
                        .map_err(|reason| TlsError::ClientPolicy { reason })?,
                )
            }
        };
        let verifier = HandshakeVerifier::new(
            policy,
            mode,
            announce,
            Arc::clone(&shared.provider),
            Arc::clone(&shared.metrics),
        );
        domain_configs.insert(
            domain,
            server_config(config, shared, certs, Some(Arc::new(verifier)))?,
        );
    }
    Ok(domain_configs)
}

/// With `control_api_use_mutual_tls`: the control API's client policy
/// (`security.certificates.control_api`) and the rustls config that requires it.
async fn control_api_auth(
    config: &GatewayConfig,
    store: &CertStore,
    shared: &TlsShared,
    certs: &Arc<ServerCerts>,
) -> Result<(Option<Arc<ClientPolicy>>, Option<Arc<ServerConfig>>), TlsError> {
    if !config.security.control_api_use_mutual_tls {
        return Ok((None, None));
    }
    let entries = resolve_all(
        store,
        &shared.retained,
        &config.security.certificates.control_api,
        "security.certificates.control_api",
    )
    .await;
    let policy = Arc::new(
        ClientPolicy::new(
            &entries,
            Vec::new(),
            CrlOptions::default(),
            &shared.provider,
        )
        .map_err(|reason| TlsError::ClientPolicy { reason })?,
    );
    let verifier = HandshakeVerifier::new(
        Arc::clone(&policy),
        ClientAuth::Required,
        !config.http_server_options.skip_client_ca_announcement,
        Arc::clone(&shared.provider),
        Arc::clone(&shared.metrics),
    );
    let control = server_config(config, shared, certs, Some(Arc::new(verifier)))?;
    Ok((Some(policy), Some(control)))
}

fn server_config(
    config: &GatewayConfig,
    shared: &TlsShared,
    certs: &Arc<ServerCerts>,
    verifier: Option<Arc<HandshakeVerifier>>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let options = &config.http_server_options;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&shared.server_tls.provider))
        .with_protocol_versions(&shared.server_tls.versions)
        .map_err(TlsError::ServerConfig)?;
    let builder = match verifier {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut server = builder
        .with_cert_resolver(Arc::clone(certs) as Arc<dyn rustls::server::ResolvesServerCert>);
    server.alpn_protocols = if options.enable_http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    server.ticketer = Arc::clone(&shared.ticketer);
    server.session_storage = Arc::clone(&shared.sessions);
    server.ignore_client_order = true;
    Ok(Arc::new(server))
}

/// How many references are resolved at once while prefetching.
const PREFETCH_LANES: usize = 32;

/// Resolves every certificate reference of `config` and `apis` into the store's cache, up to
/// [`PREFETCH_LANES`] at a time, and loads the server certificates' keys: with Redis a cold start
/// then waits for about 1/32 of the round trips, and on several CPUs the keys load in parallel.
/// Failures are left to the sequential pass that follows, which logs them.
async fn prefetch(config: &GatewayConfig, apis: &ApiTable, store: &CertStore) {
    let security = &config.security.certificates;
    let mut server: Vec<&CertificateRef> =
        config.http_server_options.ssl_certificates.iter().collect();
    let mut others: Vec<&CertificateRef> =
        security.apis.iter().chain(&security.control_api).collect();
    for route in apis.iter() {
        server.extend(&route.def.certificates);
        others.extend(&route.def.client_certificates);
    }
    let references: Vec<(CertificateRef, bool)> = server
        .into_iter()
        .map(|r| (r.clone(), true))
        .chain(others.into_iter().map(|r| (r.clone(), false)))
        .collect();
    if references.len() < 2 {
        return;
    }
    let mut lanes = tokio::task::JoinSet::new();
    for lane in 0..PREFETCH_LANES.min(references.len()) {
        let mine: Vec<(CertificateRef, bool)> = references
            .iter()
            .skip(lane)
            .step_by(PREFETCH_LANES)
            .cloned()
            .collect();
        let store = store.clone();
        let allow_files = config.allow_certificate_files;
        lanes.spawn(async move {
            for (reference, is_server) in mine {
                if let Ok(cert) = crate::resolve::resolve(&store, &reference, allow_files).await
                    && is_server
                {
                    let _ = store.tls_key(&cert);
                }
            }
        });
    }
    while lanes.join_next().await.is_some() {}
}

async fn server_cert(
    store: &CertStore,
    retained: &Retained,
    reference: &CertificateRef,
    owner: &str,
) -> Option<Served> {
    let cert = match retained.resolve(store, reference, owner).await {
        Ok(cert) => cert,
        Err(e) => {
            log_unresolved(owner, &e);
            return None;
        }
    };
    match store.tls_key(&cert) {
        Ok(key) => Some(Served { key, cert }),
        Err(e) => {
            tracing::warn!(owner, id = %cert.id(), error = %e, "server certificate has no usable private key; not served");
            None
        }
    }
}

async fn resolve_all(
    store: &CertStore,
    retained: &Retained,
    references: &[CertificateRef],
    owner: &str,
) -> Vec<Arc<LoadedCert>> {
    let mut out = Vec::with_capacity(references.len());
    for reference in references {
        match retained.resolve(store, reference, owner).await {
            Ok(cert) => out.push(cert),
            Err(e) => log_unresolved(owner, &e),
        }
    }
    out
}

fn log_unresolved(owner: &str, error: &StoreError) {
    tracing::warn!(owner, error = %error, "certificate reference not resolved; left out until the store changes");
}
