//! Test support, behind the `testkit` feature.
//!
//! - [`conformance`]: the behaviour every [`CertStorage`](crate::CertStorage) backend must
//!   have. Run it on your backend with one call: [`conformance::run_all`].
//! - [`RedisServer`]: a private `redis-server` on a free loopback port, stopped on drop.

pub mod conformance;
mod redis_server;

pub use redis_server::RedisServer;
