//! Shared test helpers: the shared test vectors and a store over memory.
#![allow(dead_code, reason = "each test crate uses a different part")]

use std::path::PathBuf;
use std::sync::Arc;

use cert_store::{CertStorage, CertStore, ManualClock};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tls_core::EncodingSecret;

/// The vectors' `generated_at`: every time-dependent expectation holds at this instant.
pub(crate) const GENERATED_AT: &str = "2026-11-29T04:57:32Z";
/// The secret of the vectors' `*.tyk-stored.pem` records.
pub(crate) const VECTOR_SECRET: &str = "vector-secret-7f3a";

fn vectors_dir() -> PathBuf {
    std::env::var_os("CERTGATE_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors"))
        })
}

/// The text of vector file `name`; panics with a clear message when the vectors are missing.
pub(crate) fn vector(name: &str) -> String {
    let path = vectors_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the shared test vectors are missing: cannot read {} ({e}); set CERTGATE_VECTORS",
            path.display()
        )
    })
}

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
