//! Without the `acme` feature: nothing to prepare, start, spawn or render. The same names as in
//! `acme.rs`, so that `GatewayBuilder::start` reads the same with the feature and without.

use std::sync::Arc;

use cert_store::CertStore;
use expiry_monitor::EventSink;
use rustls_pki_types::CertificateDer;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{ApiDefinition, GatewayConfig, StorageTarget};
use crate::control::renewals::{AcmeRenewal, AcmeStatus};
use crate::error::GatewayError;
use crate::prometheus::Exposition;

/// No ACME options.
#[derive(Default)]
pub(crate) struct AcmeOptions {}

/// No settings.
pub(crate) struct Settings;

/// No names.
pub(crate) struct Domains;

/// No manager.
#[derive(Clone)]
pub(crate) struct Manager;

#[cfg(any(test, feature = "internals"))]
pub(crate) fn no_manager() -> Manager {
    Manager
}

/// The control API's answer for the ACME state.
pub(crate) const OFF: &str = "this gateway is built without ACME (the acme feature): no certificate is obtained automatically";

pub(crate) async fn status_report(_manager: &Manager) -> Option<AcmeStatus> {
    None
}

pub(crate) async fn renewal_of(_manager: &Manager, _id: &tls_core::CertId) -> Option<AcmeRenewal> {
    None
}

pub(crate) fn prepare(
    _config: &mut GatewayConfig,
    _options: &AcmeOptions,
) -> Result<Settings, String> {
    Ok(Settings)
}

pub(crate) fn domains_without_certificates(_apis: &[ApiDefinition]) -> Domains {
    Domains
}

#[allow(
    clippy::too_many_arguments,
    reason = "the same signature as acme.rs's start"
)]
pub(crate) async fn start(
    _settings: Settings,
    _options: AcmeOptions,
    _config: &GatewayConfig,
    _storage: &StorageTarget,
    _api_domains: Domains,
    _store: &CertStore,
    _extra_sinks: Vec<Arc<dyn EventSink>>,
    _webhook_roots: &[CertificateDer<'static>],
) -> Result<Manager, GatewayError> {
    Ok(Manager)
}

pub(crate) fn render(_manager: &Manager, _out: &mut Exposition) {}

pub(crate) async fn spawn(
    _manager: &Manager,
    _listen_host: &str,
    _stop: watch::Receiver<bool>,
) -> Result<Vec<JoinHandle<()>>, GatewayError> {
    Ok(Vec::new())
}
