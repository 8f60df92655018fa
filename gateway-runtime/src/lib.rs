//! `gateway-runtime`: a minimal gateway over certgate's certificate store.
//!
//! TLS termination with SNI from an in-memory snapshot swapped atomically on store changes,
//! per-domain mutual TLS, a reverse proxy with upstream TLS (client certificates per host and
//! SPKI pinning on top of chain verification), the `/tyk/certs` management API, and the
//! expiry monitor wired to handshakes and upstream use.

mod api;
pub mod config;
mod connections;
mod control;
mod http_util;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals;
#[cfg(feature = "redis")]
mod key_format;
mod metrics;
mod monitor;
mod mtls;
mod observe;
mod proxy;
mod request_path;
mod retain;
mod runtime;
mod server;
mod sni;
mod state;
mod tls;
mod ui;

pub use config::{ApiDefinition, ConfigError, GatewayConfig, WebhookConfig};
pub use http_util::{Body, BoxError};
pub use metrics::GatewayMetrics;
pub use runtime::{Gateway, GatewayBuilder, GatewayError, store_from_config};
pub use tls::cipher_suites;
pub use ui::CertificateUiConfig;

// What the fallback's signature names, so an embedder needs no crate of its own for them.
pub use http;
pub use hyper::body::Incoming;
pub use tower_service;
