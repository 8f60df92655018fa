//! `acme`: certificates obtained and renewed by ACME (RFC 8555: Let's Encrypt or any CA), for
//! certgate's store, so that every process of a fleet (and a Tyk node sharing the store) serves
//! them.
//!
//! - [`AcmeConfig`] is the `http_server_options.acme` block; [`AcmeSettings`] its validated form.
//! - [`AcmeManager`] decides which names are due (a third of the lifetime left, by default),
//!   orders them one at a time per name across the fleet, and retries failures with growing,
//!   jittered delays. Issued certificates and keys go into the [`CertStore`](cert_store::CertStore)
//!   like any upload; the old certificate keeps serving until the new one is stored, and is
//!   deleted after.
//! - A [`Coordinator`] shares ordering locks (with fencing tokens), pending challenge answers,
//!   the ACME account (sealed with the store's encoding secret) and each name's status:
//!   [`MemoryCoordinator`] in one process, `RedisCoordinator` for a fleet.
//! - [`ChallengeResponder`] answers `tls-alpn-01` and `http-01` for the gateway's listeners, from
//!   the coordinator, so that any process answers for the one that ordered. `dns-01` goes through
//!   a [`Dns01Solver`] the user plugs in.
//!
//! The gateway (`gateway-runtime`, feature `acme`) composes all of this from its configuration.

mod challenge;
mod config;
mod coordinator;
mod error;
mod issuer;
mod manager;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use challenge::{ACME_TLS_ALPN, ChallengeResponder, Dns01Solver, HTTP01_PREFIX};
pub use config::{
    AcmeConfig, AcmeSettings, ChallengeKind, ExternalAccountConfig, KeyType, LETSENCRYPT,
    LETSENCRYPT_STAGING,
};
pub use coordinator::{Commit, Coordinator, Lock, MemoryCoordinator};
pub use error::AcmeError;
pub use manager::{AcmeFigures, AcmeManager, AcmeManagerBuilder, NameStatus, Outcome};
#[cfg(feature = "redis")]
pub use redis::RedisCoordinator;
