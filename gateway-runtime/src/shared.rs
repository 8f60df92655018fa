//! What every connection task shares: the running gateway's configuration, store, TLS snapshot,
//! APIs, proxy, control API and counters, and which listener a connection came through. The
//! runtime builds it; the listener reads it.

use std::sync::Arc;

use arc_swap::ArcSwap;
use cert_store::CertStore;

use crate::api::ApiTable;
use crate::config::GatewayConfig;
use crate::control::ControlApi;
use crate::metrics::GatewayMetrics;
use crate::observe::CertObserver;
use crate::proxy::Proxy;
use crate::state::{TlsShared, TlsState};
use crate::ui::GatewayView;

/// Which listener a connection came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ListenerRole {
    /// The gateway port (APIs, and the control API unless it has its own port).
    Gateway,
    /// A dedicated control API port.
    Control,
}

/// Everything connection tasks share.
pub(crate) struct Shared {
    pub(crate) config: Arc<GatewayConfig>,
    pub(crate) store: CertStore,
    pub(crate) apis: ArcSwap<ApiTable>,
    pub(crate) tls: ArcSwap<TlsState>,
    pub(crate) tls_shared: TlsShared,
    pub(crate) proxy: Proxy,
    pub(crate) control: ControlApi,
    pub(crate) ui: Option<crate::ui::CertificateUi>,
    pub(crate) metrics: Arc<GatewayMetrics>,
    pub(crate) observer: Arc<dyn CertObserver>,
    pub(crate) fallback: Option<crate::fallback::Fallback>,
    /// Server certificates added at run time ([`Gateway::add_server_certificate`](crate::Gateway::add_server_certificate)), served like
    /// `ssl_certificates`.
    pub(crate) runtime_certs: std::sync::Mutex<Vec<crate::config::CertificateRef>>,
    /// Open client connections against their caps.
    pub(crate) admission: Arc<crate::connections::Admission>,
    /// The gateway listener's port (the real one when configured as 0).
    pub(crate) gateway_port: u16,
    /// Automatic certificates, when ACME is on (it answers `tls-alpn-01`).
    #[cfg_attr(
        not(feature = "acme"),
        allow(dead_code, reason = "only the acme feature answers tls-alpn-01")
    )]
    pub(crate) acme: crate::acme::Manager,
}

impl Shared {
    /// The server certificates added at run time, locked.
    pub(crate) fn runtime_certs(
        &self,
    ) -> std::sync::MutexGuard<'_, Vec<crate::config::CertificateRef>> {
        self.runtime_certs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The control API is served on the gateway port (no dedicated port configured).
    pub(crate) fn control_on_gateway_port(&self) -> bool {
        self.config.control_api_port == 0
    }

    /// Whether a TLS connection is for the control API (Tyk: hostname empty or equal to the
    /// SNI, and the control port).
    pub(crate) fn is_control_connection(&self, role: ListenerRole, sni: Option<&str>) -> bool {
        let host_ok = self.config.control_api_hostname.is_empty()
            || sni.is_some_and(|s| s.eq_ignore_ascii_case(&self.config.control_api_hostname));
        let port_ok = role == ListenerRole::Control || self.control_on_gateway_port();
        host_ok && port_ok
    }

    /// What the certificate page reads of the gateway.
    pub(crate) fn page_view(&self) -> GatewayView<'_> {
        GatewayView {
            store: &self.store,
            control: &self.control,
            apis: &self.apis,
        }
    }
}
