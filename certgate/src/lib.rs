//! `certgate`: TLS certificates for Rust services, compatible with the Tyk API gateway's
//! certificate store.
//!
//! One dependency for the whole stack; each layer is also its own crate:
//!
//! | module | crate | what it is |
//! | --- | --- | --- |
//! | [`core`] | `tls-core` | certificate IDs, uploads with clear errors, metadata, keys encrypted at rest, rustls conversions; no I/O |
//! | [`store`] | `cert-store` | the [`CertStorage`] trait for your backend, [`MemoryStorage`], `RedisStorage` (feature `redis`), the [`CertStore`] manager |
//! | [`expiry`] | `expiry-monitor` | `CertificateExpiringSoon` / `CertificateExpired` events with fleet-wide cooldowns |
//! | `gateway` (feature `gateway`) | `gateway-runtime` | TLS termination with SNI, mutual TLS, a reverse proxy, the `/tyk/certs` API |
//! | `acme` (feature `acme`) | `certgate-acme` | certificates obtained and renewed by ACME (Let's Encrypt), coordinated across a fleet |
//!
//! Features: `redis` (the Redis backend and shared cooldowns), `gateway`, `acme` (automatic
//! certificates; in the gateway too with `gateway`), `testkit` (the
//! conformance suite for your own [`CertStorage`], and a private `redis-server` for tests).
//! [`macro@async_trait`] is re-exported: [`CertStorage`] and [`expiry::EventSink`] are implemented
//! with it.
//!
//! ```
//! use certgate::prelude::*;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let store = CertStore::builder(std::sync::Arc::new(MemoryStorage::new()))
//!     .encoding_secret(EncodingSecret::new("encrypts private keys at rest"))
//!     .build();
//! let org = OrgId::new("org1")?;
//! // PEM text: a certificate with its private key (and chain), as Tyk takes it.
//! let pem = include_str!("../../tls-core/tests/data/demo.pem");
//! let id: CertId = store.add(pem, &org).await?;
//! assert!(id.to_string().starts_with("org1"));
//!
//! let meta = store.details(&id).await?;
//! assert_eq!(meta.subject.common_name.as_deref(), Some("demo.certgate.test"));
//! assert!(meta.has_private);
//! // Ready for rustls: the chain and the decrypted key, cached.
//! let certified = store.certified_key(&id).await?;
//! assert_eq!(certified.cert.len(), 1);
//!
//! // An upload that is not acceptable is refused with the reason, and nothing is stored.
//! let refused = store.add("not a certificate", &org).await.unwrap_err();
//! println!("{refused}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! Your own storage backend implements [`CertStorage`] with [`macro@async_trait`] and proves
//! itself with the conformance suite (`certgate::store::testkit::run_all`, feature `testkit`);
//! the repository's `examples/src/file_storage.rs` is a complete one.

// The README's snippets are compiled as doc tests of this crate: they use nothing but `certgate`.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

#[cfg(feature = "acme")]
pub use acme;
pub use async_trait::async_trait;
pub use cert_store as store;
pub use expiry_monitor as expiry;
#[cfg(feature = "gateway")]
pub use gateway_runtime as gateway;
pub use tls_core as core;

pub use cert_store::{CertStorage, CertStore, MemoryStorage};
pub use tls_core::{CertId, EncodingSecret, Fingerprint, OrgId, SpkiPin};

/// The names most programs need, for `use certgate::prelude::*`.
pub mod prelude {
    pub use async_trait::async_trait;
    pub use cert_store::{
        CertStorage, CertStore, Clock, ManualClock, MemoryStorage, StoreError, SystemClock,
    };
    pub use expiry_monitor::{EventSink, ExpiryEvent, ExpiryMonitor, ExpiryMonitorConfig};
    #[cfg(feature = "gateway")]
    pub use gateway_runtime::{ApiDefinition, Gateway, GatewayBuilder, GatewayConfig};
    pub use tls_core::{CertId, EncodingSecret, Fingerprint, OrgId, SpkiPin, Upload};
}
