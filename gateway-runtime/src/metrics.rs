//! Gateway counters, rendered as Prometheus text.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::prometheus::{Exposition, Kind};

/// Counters the listener and proxy update.
#[derive(Debug, Default)]
pub struct GatewayMetrics {
    /// Completed TLS handshakes.
    pub(crate) handshakes: AtomicU64,
    /// TLS handshakes that failed (including timeouts).
    pub(crate) handshake_failures: AtomicU64,
    /// Client certificates refused (at the handshake or per request).
    pub(crate) mtls_refusals: AtomicU64,
    /// Requests proxied to upstreams.
    pub(crate) proxied_requests: AtomicU64,
    /// Upstream requests that failed (connection, TLS, pinning).
    pub(crate) upstream_failures: AtomicU64,
    /// Client connections closed at accept by a connection cap.
    pub(crate) connections_refused: AtomicU64,
    /// Client connections closed by the idle timeout.
    pub(crate) idle_connections_closed: AtomicU64,
    /// Referenced certificates missing from storage, served from the last good snapshot
    /// (gauge; the IDs, sorted, for `/hello`).
    missing_certificates: Mutex<Vec<String>>,
    /// Configured CRLs past their `nextUpdate` at the last TLS rebuild (gauge).
    pub(crate) crls_past_next_update: AtomicU64,
}

impl GatewayMetrics {
    pub(crate) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn set_missing_certificates(&self, ids: Vec<String>) {
        *self
            .missing_certificates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = ids;
    }

    /// The IDs of referenced certificates that storage no longer has (served from the last
    /// good snapshot), sorted.
    pub fn missing_certificates(&self) -> Vec<String> {
        self.missing_certificates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Prometheus text exposition of the counters and gauges.
    pub fn render(&self) -> String {
        let mut out = Exposition::new();
        self.write(&mut out);
        out.finish()
    }

    /// Appends the counters and gauges to `out`.
    pub(crate) fn write(&self, out: &mut Exposition) {
        for (name, help, counter) in [
            (
                "certgate_tls_handshakes_total",
                "Completed TLS handshakes.",
                &self.handshakes,
            ),
            (
                "certgate_tls_handshake_failures_total",
                "Failed TLS handshakes.",
                &self.handshake_failures,
            ),
            (
                "certgate_mtls_refusals_total",
                "Client certificates refused.",
                &self.mtls_refusals,
            ),
            (
                "certgate_proxied_requests_total",
                "Requests proxied to upstreams.",
                &self.proxied_requests,
            ),
            (
                "certgate_upstream_failures_total",
                "Upstream requests that failed.",
                &self.upstream_failures,
            ),
            (
                "certgate_connections_refused_total",
                "Client connections closed at accept by a connection cap.",
                &self.connections_refused,
            ),
            (
                "certgate_idle_connections_closed_total",
                "Client connections closed by the idle timeout.",
                &self.idle_connections_closed,
            ),
        ] {
            out.single(name, help, Kind::Counter, counter.load(Ordering::Relaxed));
        }
        for (name, help, value) in [
            (
                "certgate_referenced_certificates_missing",
                "Certificates the configuration references that storage no longer has; served from the last good snapshot.",
                self.missing_certificates().len() as u64,
            ),
            (
                "certgate_crls_past_next_update",
                "Configured client certificate CRLs past their nextUpdate.",
                self.crls_past_next_update.load(Ordering::Relaxed),
            ),
        ] {
            out.single(name, help, Kind::Gauge, value);
        }
    }
}
