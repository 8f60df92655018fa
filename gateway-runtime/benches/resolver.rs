//! The cost of finding the server certificate for a handshake, with 1, 1,000 and 100,000
//! certificates.
//!
//! - `sni resolver`: the gateway's own resolver (`ServerCerts` in `src/sni.rs`, reached through
//!   the unstable `internals` feature): exact name, then wildcard parent, then the default. One
//!   stored certificate is registered under N exact names and N wildcard names: what matters is
//!   the map size, not the number of distinct keys.
//! - `store cached`: `CertStore::cached(&id)`, the in-process cache in front of the storage (a
//!   `HashMap` behind a mutex), filled with N entries: one record stored under N org IDs. It is
//!   not on the handshake path (handshakes read the resolver's snapshot) but on the API and
//!   upstream paths.
//!
//! Lookups cycle through `PROBES` names in a scrambled order; `hot` uses 4,096 names (a busy
//! gateway's working set), `all` every one of the N names (each lookup likely misses the CPU
//! caches at 100k).
//!
//! Run: `cargo bench -p certgate-gateway-runtime --features internals --bench resolver -- --warm-up-time 1
//! --measurement-time 3`

mod common;
use common::probes;

use std::hint::black_box;
use std::sync::Arc;

use cert_store::{CertStorage, CertStore, MemoryStorage};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use gateway_runtime::internals::Resolver;
use rcgen::{CertificateParams, KeyPair};
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

/// Probe names of one length packed in one buffer, as an SNI arrives in a receive buffer:
/// a lookup's cost is then the resolver's, not a cache miss on a scattered `String`.
struct Packed {
    text: String,
    stride: usize,
    count: usize,
}

impl Packed {
    fn new(names: impl Iterator<Item = String>) -> Self {
        let mut packed = Self {
            text: String::new(),
            stride: 0,
            count: 0,
        };
        for name in names {
            packed.stride = name.len();
            packed.text.push_str(&name);
            packed.count += 1;
        }
        packed
    }

    fn get(&self, i: usize) -> &str {
        &self.text[i * self.stride..(i + 1) * self.stride]
    }
}

/// A one-certificate memory store and the certificate loaded from it.
fn store_with_one(runtime: &tokio::runtime::Runtime) -> (CertStore, Arc<cert_store::LoadedCert>) {
    let store = CertStore::builder(Arc::new(MemoryStorage::new()) as Arc<dyn CertStorage>)
        .encoding_secret(EncodingSecret::new("bench secret"))
        .build();
    let cert = runtime.block_on(async {
        let id = store
            .add(&bundle(), &OrgId::EMPTY)
            .await
            .expect("the bundle is stored");
        store.get(&id).await.expect("the certificate loads")
    });
    (store, cert)
}

fn sni_resolver(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a Tokio runtime");
    let (store, cert) = store_with_one(&runtime);
    let key = store.tls_key(&cert).expect("the key loads");
    let mut group = c.benchmark_group("sni resolver");
    for n in SIZES {
        // N exact names and N wildcard names, like N certificates with a name and a wildcard each.
        let mut resolver = Resolver::default();
        for i in 0..n {
            resolver.add(
                Arc::clone(&cert),
                Arc::clone(&key),
                &[
                    format!("h{i:06}.bench.example"),
                    format!("*.w{i:06}.bench.example"),
                ],
            );
        }
        for (set, count) in [("hot", PROBES), ("all", n.max(PROBES))] {
            if set == "all" && n <= PROBES {
                continue;
            }
            let exact = Packed::new(
                probes(n, count)
                    .into_iter()
                    .map(|i| format!("h{i:06}.bench.example")),
            );
            let wildcard = Packed::new(
                probes(n, count)
                    .into_iter()
                    .map(|i| format!("api.w{i:06}.bench.example")),
            );
            let mut next = 0usize;
            group.bench_with_input(
                BenchmarkId::new(format!("exact hit, {set}"), n),
                &exact,
                |b, names| {
                    b.iter(|| {
                        next = (next + 1) % names.count;
                        black_box(resolver.select(Some(black_box(names.get(next))))).is_some()
                    })
                },
            );
            group.bench_with_input(
                BenchmarkId::new(format!("wildcard hit, {set}"), n),
                &wildcard,
                |b, names| {
                    b.iter(|| {
                        next = (next + 1) % names.count;
                        black_box(resolver.select(Some(black_box(names.get(next))))).is_some()
                    })
                },
            );
        }
        group.bench_function(BenchmarkId::new("miss to default", n), |b| {
            b.iter(|| {
                black_box(resolver.select(Some(black_box("unknown.other.example")))).is_some()
            })
        });
    }
    group.finish();
}

/// The floor for any hash table: `HashMap<u64, u64>` with N entries and the same probe pattern.
/// If its lookup grows from 1 to 100k entries as much as the resolver's, the growth is the
/// memory hierarchy's, not the resolver's layout.
fn control_map(c: &mut Criterion) {
    let mut group = c.benchmark_group("control u64 map");
    for n in SIZES {
        let map: std::collections::HashMap<u64, u64> = (0..n as u64)
            .map(|i| (i.wrapping_mul(0x9e37_79b9), i))
            .collect();
        for (set, count) in [("hot", PROBES), ("all", n.max(PROBES))] {
            if set == "all" && n <= PROBES {
                continue;
            }
            let keys: Vec<u64> = probes(n, count)
                .into_iter()
                .map(|i| (i as u64).wrapping_mul(0x9e37_79b9))
                .collect();
            let mut next = 0usize;
            group.bench_with_input(
                BenchmarkId::new(format!("hit, {set}"), n),
                &keys,
                |b, keys| {
                    b.iter(|| {
                        next = (next + 1) % keys.len();
                        black_box(map.get(black_box(&keys[next]))).is_some()
                    })
                },
            );
        }
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
        let order: Vec<&CertId> = probes(n, PROBES).into_iter().map(|i| &ids[i]).collect();
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

criterion_group!(benches, sni_resolver, control_map, store_cached);
criterion_main!(benches);
