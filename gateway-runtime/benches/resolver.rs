//! The cost of finding the server certificate for a handshake, with 1, 1,000 and 100,000
//! certificates.
//!
//! The gateway's resolver (`ServerCerts` in `src/sni.rs`) is crate-private, so this measures the
//! two public-API equivalents:
//!
//! - `sni map`: the same structure `ServerCerts` uses, rebuilt here line for line: an exact-name
//!   `HashMap<String, _>` and a wildcard `HashMap<String, _>` keyed by the parent name, with the
//!   same `select` (lowercase if needed, exact, then wildcard parent, then default). Values are
//!   `Arc<CertifiedKey>`. One key and certificate are registered under N synthetic names: what
//!   matters is the map size, not the number of distinct keys.
//! - `store cached`: `CertStore::cached(&id)`, the in-process cache in front of the storage (a
//!   `HashMap` behind a mutex), filled with N entries: one record stored under N org IDs.
//!
//! Run: `cargo bench -p gateway-runtime --bench resolver -- --warm-up-time 1 --measurement-time 3`

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use cert_store::{CertStorage, CertStore, MemoryStorage};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rcgen::{CertificateParams, KeyPair};
use rustls::sign::CertifiedKey;
use tls_core::{CertId, EncodingSecret, KeyFormat, OrgId, Upload};

/// rcgen's default validity covers any date of interest.
const NOW: time::OffsetDateTime = time::macros::datetime!(2026-11-29 04:57:32 UTC);
const SIZES: [usize; 3] = [1, 1_000, 100_000];
/// Lookups cycle through this many precomputed names, in a scrambled order, so that successive
/// lookups do not touch neighbouring buckets.
const PROBES: usize = 4096;

/// One ECDSA P-256 certificate and key as a PEM bundle.
fn bundle() -> String {
    let key = KeyPair::generate().expect("a P-256 key");
    let params =
        CertificateParams::new(vec!["bench.example".to_owned()]).expect("certificate params");
    let cert = params.self_signed(&key).expect("a certificate");
    format!("{}{}", cert.pem(), key.serialize_pem())
}

/// Indices `0..n` visited in a scrambled order (a fixed linear congruential sequence).
fn probes(n: usize) -> Vec<usize> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..PROBES)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize % n
        })
        .collect()
}

/// `ServerCerts` from `src/sni.rs`, with `Arc<CertifiedKey>` values.
#[derive(Default)]
struct NameMap {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl NameMap {
    fn add(&mut self, key: &Arc<CertifiedKey>, names: &[String]) {
        for name in names {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            match name.strip_prefix("*.") {
                Some(suffix) => self.wildcard.insert(suffix.to_owned(), Arc::clone(key)),
                None => self.exact.insert(name, Arc::clone(key)),
            };
        }
        if self.default.is_none() {
            self.default = Some(Arc::clone(key));
        }
    }

    fn select(&self, sni: Option<&str>) -> Option<&Arc<CertifiedKey>> {
        let lowered;
        let sni = match sni {
            Some(name) if name.bytes().any(|b| b.is_ascii_uppercase()) => {
                lowered = name.to_ascii_lowercase();
                Some(lowered.as_str())
            }
            other => other,
        };
        let found = sni.and_then(|name| {
            self.exact.get(name).or_else(|| {
                name.split_once('.')
                    .and_then(|(_, parent)| self.wildcard.get(parent))
            })
        });
        found.or(self.default.as_ref())
    }
}

fn sni_map(c: &mut Criterion) {
    let upload = Upload::parse(&bundle(), NOW).expect("the bundle parses");
    let key = Arc::new(
        upload
            .certified_key(&tls_core::default_provider())
            .expect("the key loads"),
    );
    let mut group = c.benchmark_group("sni map");
    for n in SIZES {
        // N exact names and N wildcard names, like N certificates with a name and a wildcard each.
        let mut map = NameMap::default();
        for i in 0..n {
            map.add(
                &key,
                &[
                    format!("h{i:06}.bench.example"),
                    format!("*.w{i:06}.bench.example"),
                ],
            );
        }
        let exact: Vec<String> = probes(n)
            .into_iter()
            .map(|i| format!("h{i:06}.bench.example"))
            .collect();
        let wildcard: Vec<String> = probes(n)
            .into_iter()
            .map(|i| format!("api.w{i:06}.bench.example"))
            .collect();
        let mut next = 0usize;
        group.bench_with_input(BenchmarkId::new("exact hit", n), &exact, |b, names| {
            b.iter(|| {
                next = (next + 1) % PROBES;
                black_box(map.select(Some(black_box(&names[next])))).is_some()
            })
        });
        group.bench_with_input(
            BenchmarkId::new("wildcard hit", n),
            &wildcard,
            |b, names| {
                b.iter(|| {
                    next = (next + 1) % PROBES;
                    black_box(map.select(Some(black_box(&names[next])))).is_some()
                })
            },
        );
        group.bench_function(BenchmarkId::new("miss to default", n), |b| {
            b.iter(|| black_box(map.select(Some(black_box("unknown.other.example")))).is_some())
        });
    }
    group.finish();
}

fn store_cached(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let pem = bundle();
    let secret = EncodingSecret::new("bench secret");
    let mut group = c.benchmark_group("store cached");
    for n in SIZES {
        let storage = Arc::new(MemoryStorage::new());
        let store = CertStore::builder(Arc::clone(&storage) as Arc<dyn CertStorage>)
            .encoding_secret(EncodingSecret::new("bench secret"))
            .cache_ttl(std::time::Duration::from_secs(24 * 3600))
            .build();
        // One record stored under N org IDs: N cache entries of the real size.
        let upload = Upload::parse(&pem, NOW).expect("the bundle parses");
        let ids: Vec<CertId> = (0..n)
            .map(|i| upload.id(&OrgId::new(format!("org{i:06}")).expect("an org ID")))
            .collect();
        let record = upload
            .seal(&ids[0], &secret, KeyFormat::Modern)
            .expect("the key seals")
            .encode();
        runtime.block_on(async {
            let batch: Vec<(CertId, String)> =
                ids.iter().map(|id| (id.clone(), record.clone())).collect();
            for outcome in storage.insert_many(&batch).await {
                outcome.expect("inserted");
            }
            for id in &ids {
                store.get(id).await.expect("loads into the cache");
            }
        });
        let order: Vec<&CertId> = probes(n).into_iter().map(|i| &ids[i]).collect();
        let mut next = 0usize;
        group.bench_function(BenchmarkId::new("hit", n), |b| {
            b.iter(|| {
                next = (next + 1) % PROBES;
                store.cached(black_box(order[next])).is_some()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, sni_map, store_cached);
criterion_main!(benches);
