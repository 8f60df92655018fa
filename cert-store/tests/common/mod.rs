//! Shared test helpers: the shared test vectors (from `certgate-test-support`) and a store over
//! memory.
#![allow(dead_code, reason = "each test crate uses a different part")]

use std::sync::Arc;

use cert_store::{CertStorage, CertStore, ManualClock};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tls_core::EncodingSecret;

pub(crate) use test_support::vectors::read as vector;

/// The vectors' `generated_at`: every time-dependent expectation holds at this instant.
pub(crate) const GENERATED_AT: &str = "2026-11-29T04:57:32Z";
/// The secret of the vectors' `*.tyk-stored.pem` records.
pub(crate) const VECTOR_SECRET: &str = "vector-secret-7f3a";

/// `generated_at` as a time.
pub(crate) fn generated_at() -> OffsetDateTime {
    OffsetDateTime::parse(GENERATED_AT, &Rfc3339).unwrap()
}

/// A store over `storage` with the vectors' secret and a clock at `generated_at`.
pub(crate) fn store_over(storage: Arc<dyn CertStorage>) -> CertStore {
    CertStore::builder(storage)
        .encoding_secret(EncodingSecret::new(VECTOR_SECRET))
        .clock(Arc::new(ManualClock::new(generated_at())))
        .build()
}
