//! `gateway-runtime`: a minimal gateway over certgate's certificate store.
//!
//! TLS termination with SNI from an in-memory snapshot swapped atomically on store changes,
//! per-domain mutual TLS, a reverse proxy with upstream TLS (client certificates per host and
//! SPKI pinning on top of chain verification), the `/tyk/certs` management API, and the
//! expiry monitor wired to handshakes and upstream use.
//!
//! A gateway in front of a service's own router (any `tower::Service`; an axum `Router` here),
//! on a free port, with the control API beside it:
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! use gateway_runtime::{GatewayBuilder, GatewayConfig};
//! use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
//!
//! let router = axum::Router::new().route("/status", axum::routing::get(|| async { "up" }));
//! let config = GatewayConfig::default()
//!     .listen("127.0.0.1", 0)
//!     .control_secret("a long control API secret");
//! // With `.with_tls()` and a server certificate in the store, the same over TLS.
//! let gateway = GatewayBuilder::new(config).fallback(router).start().await?;
//!
//! let mut tcp = tokio::net::TcpStream::connect(gateway.local_addr()).await?;
//! tcp.write_all(b"GET /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
//!     .await?;
//! let mut answer = String::new();
//! tcp.read_to_string(&mut answer).await?;
//! assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("up"), "{answer}");
//!
//! gateway.shutdown().await;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

#[cfg(feature = "acme")]
mod acme;
#[cfg(not(feature = "acme"))]
#[path = "acme_off.rs"]
mod acme;
mod api;
pub mod config;
mod connections;
mod control;
mod error;
mod fallback;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals;
#[cfg(feature = "redis")]
mod key_format;
mod metrics;
mod monitor;
mod mtls;
mod observe;
mod prometheus;
mod proxy;
mod request_path;
mod resolve;
mod response;
mod retain;
mod runtime;
mod server;
mod shared;
mod sni;
mod state;
mod tls;
mod ui;
pub mod wire;

pub use config::{
    ApiDefinition, CertificateRef, CertificateUiConfig, CipherSuiteError, ConfigError,
    GatewayConfig, TlsVersion, WebhookConfig, cipher_suites,
};
pub use error::{GatewayError, MonitorSetupError, TlsError, WebhookError};
pub use metrics::GatewayMetrics;
pub use response::{Body, BoxError};
pub use runtime::{Gateway, GatewayBuilder, store_from_config};

// What the fallback's signature names, so an embedder needs no crate of its own for them.
pub use http;
pub use hyper::body::Incoming;
pub use tower_service;
