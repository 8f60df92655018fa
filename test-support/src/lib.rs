//! Test support shared by every certgate crate's tests and benches and by the fuzz targets; not
//! published.
//!
//! - [`vectors`]: the shared test vectors (`testdata/vectors` in the repository, or the folder
//!   named by `$CERTGATE_VECTORS`) and their manifest. A missing folder fails the test: it never
//!   skips it.
//! - [`pki`]: a test PKI made with rcgen: root and intermediate CAs, server and client
//!   certificates at chosen validities, CRLs.
//! - [`redis`] (feature `redis`): private `redis-server` instances, single node, Cluster and
//!   Sentinel, stopped on drop. They are cert-store's `testkit` ones, which users' conformance
//!   runs use too; with `CI=true` a test that cannot start one fails instead of skipping.

pub mod pki;
pub mod vectors;

#[cfg(feature = "redis")]
pub mod redis;
