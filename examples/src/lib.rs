//! certgate examples that are libraries rather than binaries.
//!
//! - [`FileStorage`]: a [`cert_store::CertStorage`] backend over a directory, showing how to
//!   write your own backend and check it with the conformance suite (`cert-store`'s `testkit`
//!   feature): `cargo test -p certgate-examples --test file_storage`.

mod file_storage;

pub use file_storage::FileStorage;
