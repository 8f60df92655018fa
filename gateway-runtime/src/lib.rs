//! `gateway-runtime`: a minimal gateway over certgate's certificate store.
//!
//! TLS termination with SNI from an in-memory snapshot swapped atomically on store changes,
//! per-domain mutual TLS, a reverse proxy with upstream TLS (client certificates per host and
//! SPKI pinning on top of chain verification), the `/tyk/certs` management API, and the
//! expiry monitor wired to handshakes and upstream use.

mod api;
pub mod config;
mod control;
mod http_util;
mod metrics;
mod observe;
mod proxy;
mod tls;

pub use config::{ApiDefinition, ConfigError, GatewayConfig};
pub use metrics::GatewayMetrics;
pub use tls::cipher_suites;
