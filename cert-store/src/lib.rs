//! `cert-store`: where certgate keeps certificates.
//!
//! - [`CertStorage`]: a small, object-safe async trait over record text, which you implement
//!   for your own backend. [`MemoryStorage`] is the default; `RedisStorage` (feature `redis`)
//!   uses Tyk's key layout and pushes change notices across processes, on one Redis node, a
//!   Redis Cluster or behind Redis Sentinel (`RedisConnection` describes which, with
//!   credentials and TLS; `RedisLink` shares the same connection handling with other crates).
//! - [`CertStore`]: the manager. It validates uploads with `tls-core` (clock injected), encrypts
//!   private keys at rest, stores atomically, lists without scanning, caches decoded
//!   certificates for TLS (one load per ID however many callers miss at once), invalidates the
//!   cache on change notices, loads certificates given as PEM text, keeps the usage index, and
//!   rekeys.
//! - `testkit` (feature): the conformance suite every backend must pass, and a private
//!   `redis-server` harness for tests.
//!
//! ```
//! use std::sync::Arc;
//!
//! use cert_store::{CertStore, MemoryStorage, PageRequest};
//! use tls_core::{EncodingSecret, OrgId};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let store = CertStore::builder(Arc::new(MemoryStorage::new()))
//!     .encoding_secret(EncodingSecret::new("encrypts private keys at rest"))
//!     .build();
//! let org = OrgId::new("org1")?;
//! let pem = include_str!("../../tls-core/tests/data/demo.pem"); // certificate + key
//! let id = store.add(pem, &org).await?;
//!
//! // Listed under its org, described without decrypting anything, loaded for rustls on demand.
//! let page = store.list(Some(&org), &PageRequest::first(100)).await?;
//! assert_eq!(page.items, vec![id.clone()]);
//! assert!(store.details(&id).await?.has_private);
//! let for_tls = store.certified_key(&id).await?;
//! assert_eq!(for_tls.key.algorithm(), rustls::SignatureAlgorithm::ECDSA);
//!
//! assert!(store.delete(&id).await?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod cache;
mod clock;
mod error;
mod manager;
mod memory;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
mod redis_migrate;
mod storage;
#[cfg(feature = "testkit")]
pub mod testkit;
mod usage;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{StorageError, StorageErrorKind, StoreError};
pub use manager::{
    CertStore, CertStoreBuilder, DEFAULT_CACHE_TTL_NOTIFIED, DEFAULT_CACHE_TTL_UNNOTIFIED, Listed,
    LoadedCert, RekeyReport,
};
pub use memory::MemoryStorage;
#[cfg(feature = "redis")]
pub use redis::{
    KeyClaim, RedisConfig, RedisConnection, RedisLink, RedisStorage, RedisTls, RedisTopology,
    RepairReport,
};
#[cfg(feature = "redis")]
pub use redis_migrate::ReindexReport;
pub use storage::{
    CertStorage, Change, Changes, Cursor, Inserted, Page, PageRequest, PageWalk, Scope,
};
pub use usage::{CertRole, CertUse, UsageIndex};
