//! Unstable internals for this crate's own benches and for the fuzz targets (feature
//! `internals`). Not part of the public API: anything here may change in any release.
//!
//! Each item wraps the crate-private piece the gateway itself uses, so what a bench measures or
//! a fuzz target feeds is the production code path, not a copy of it.

use std::sync::Arc;

use bytes::Bytes;
use cert_store::{CertStore, LoadedCert};
use http::{Request, Response};
use rustls::server::{ClientHello, ResolvesServerCert, ServerConfig};
use rustls::sign::CertifiedKey;

use crate::api::ApiTable;
use crate::config::{ApiDefinition, GatewayConfig};
use crate::control::ControlApi;
use crate::metrics::GatewayMetrics;
use crate::response::{Body, BoxError};
use crate::sni::{Served, ServerCerts};
use crate::state::{TlsShared, TlsState};

/// The gateway's SNI resolver (`ServerCerts`): exact name, then wildcard parent, then default.
#[derive(Debug, Default)]
pub struct Resolver(ServerCerts);

impl Resolver {
    /// Adds `cert` with its loaded `key` under its DNS names and `extra_names`, as the gateway
    /// does for `ssl_certificates` and API certificates.
    pub fn add(&mut self, cert: Arc<LoadedCert>, key: Arc<CertifiedKey>, extra_names: &[String]) {
        self.0.add(Served { key, cert }, extra_names);
    }

    /// The key served for `sni`.
    pub fn select(&self, sni: Option<&str>) -> Option<&Arc<CertifiedKey>> {
        self.0.select(sni).map(|served| &served.key)
    }
}

/// Resolves as the gateway's listener does, so a bench can put the resolver in a rustls config.
impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.resolve(hello)
    }
}

/// The rustls `ServerConfig` the gateway would use for a handshake with `sni` on its main
/// listener, built from `config`, `apis` and `store` exactly as at start-up.
pub async fn server_config(
    config: &GatewayConfig,
    apis: Vec<ApiDefinition>,
    store: &CertStore,
    sni: Option<&str>,
) -> Result<Arc<ServerConfig>, crate::GatewayError> {
    let metrics = Arc::new(GatewayMetrics::default());
    let retained = Arc::new(crate::retain::Retained::new(
        Arc::clone(&metrics),
        config.allow_certificate_files,
    ));
    let shared = TlsShared::new(config.http_server_options.tls()?, metrics, retained)?;
    let state = TlsState::build(config, &ApiTable::new(apis), store, &shared, true).await?;
    Ok(state.config_for(sni, false))
}

/// The control API handler (`/tyk/certs`, `/hello`, `/metrics`) over `store`.
#[derive(Debug)]
pub struct Control(ControlApi);

impl Control {
    /// A handler configured by `config` (its `secret` and control API settings).
    pub fn new(config: GatewayConfig, store: CertStore) -> Self {
        Self(ControlApi::new(
            Arc::new(config),
            store,
            Arc::new(GatewayMetrics::default()),
            Arc::new(String::new),
            crate::acme::no_manager(),
        ))
    }

    /// Answers one request, as the gateway's listener does once `matches` holds.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.0.handle(req).await
    }
}

/// The listener's request path handling and routing, up to the upstream request
/// (the `request_path` module): for the path fuzz target.
#[derive(Debug)]
pub struct PathRouter(ApiTable);

impl PathRouter {
    /// Routes over `apis`, as the gateway does.
    pub fn new(apis: Vec<ApiDefinition>) -> Self {
        Self(ApiTable::new(apis))
    }

    /// Handles `GET target` with `Host: host` as the listener does, and checks the invariant:
    /// the request is refused, or the API chosen and the path sent upstream agree about which
    /// listen path contains it (with `skip_url_cleaning`: the upstream gets the path routed).
    /// `Ok` says what happened (`refused`, `control <path>`, `unrouted`, `<api> <upstream>`);
    /// `Err` says how the invariant broke.
    pub fn check(
        &self,
        host: &str,
        target: &str,
        skip_url_cleaning: bool,
    ) -> Result<String, String> {
        use crate::request_path::{Routed, check_invariant};
        check_invariant(&self.0, host, target, skip_url_cleaning).map(|routed| match routed {
            Routed::Refused => "refused".to_owned(),
            Routed::Control(path) => format!("control {path}"),
            Routed::Unrouted => "unrouted".to_owned(),
            Routed::Api {
                api_id, upstream, ..
            } => format!("{api_id} {upstream}"),
        })
    }
}
