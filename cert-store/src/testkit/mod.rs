//! Test support, behind the `testkit` feature.
//!
//! - [`conformance`]: the behaviour every [`CertStorage`](crate::CertStorage) backend must
//!   have. Run it on your backend with one call: [`conformance::run_all`].
//! - [`RedisServer`]: a private `redis-server` on a free loopback port, stopped on drop, which
//!   a test can [`pause`](RedisServer::pause);
//!   `RedisCluster` (3 masters, 3 replicas) and `RedisSentinels` (master, replica, three
//!   sentinels) the same for the distributed topologies, which a test can fail over
//!   (`Failover`; feature `redis`).

pub mod conformance;
mod redis_server;
#[cfg(feature = "redis")]
mod redis_topologies;

pub use redis_server::{Paused, RedisServer};
#[cfg(feature = "redis")]
pub use redis_topologies::{Failover, RedisCluster, RedisSentinels};
