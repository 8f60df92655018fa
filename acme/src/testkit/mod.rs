//! Test helpers for ACME (feature `testkit`):
//!
//! - [`Pebble`]: `pebble` (a test ACME CA) and `pebble-challtestsrv` (a DNS server answering
//!   every name with 127.0.0.1) on private loopback ports, stopped on drop.
//! - [`CountingCoordinator`]: any [`Coordinator`](crate::Coordinator), counting the challenge
//!   lookups, to show which requests reach the coordination storage.

mod counting;
mod pebble;

pub use counting::CountingCoordinator;
pub use pebble::{Pebble, free_port};
