//! The cost of the mutual-TLS allow-list check for a presented client leaf, with 1 and 10,000
//! allow-listed certificates.
//!
//! The gateway's `ClientPolicy` (`src/mtls.rs`) is crate-private, so this measures its
//! equivalent through public types: `Fingerprint::of` the presented leaf DER, then a lookup in a
//! `HashMap<Fingerprint, Arc<LoadedCert>>`, the map `ClientPolicy` holds. Entries other than the
//! presented leaf are synthetic fingerprints sharing one `LoadedCert`.
//!
//! Run: `cargo bench -p certgate-gateway-runtime --bench allow_list -- --warm-up-time 1 --measurement-time 3`

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use cert_store::{CertStore, LoadedCert, MemoryStorage};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rcgen::{CertificateParams, KeyPair};
use tls_core::{EncodingSecret, Fingerprint, OrgId};

fn client_certificate() -> (Vec<u8>, String) {
    let key = KeyPair::generate().expect("a P-256 key");
    let params = CertificateParams::new(Vec::<String>::new()).expect("certificate params");
    let cert = params.self_signed(&key).expect("a certificate");
    (
        cert.der().to_vec(),
        format!("{}{}", cert.pem(), key.serialize_pem()),
    )
}

fn allow_list(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let (leaf, bundle) = client_certificate();
    let store = CertStore::builder(Arc::new(MemoryStorage::new()))
        .encoding_secret(EncodingSecret::new("bench secret"))
        .build();
    let entry: Arc<LoadedCert> = runtime.block_on(async {
        let id = store
            .add(&bundle, &OrgId::new("org1").expect("an org ID"))
            .await
            .expect("added");
        store.get(&id).await.expect("loads")
    });
    let presented = Fingerprint::of(&leaf);
    let mut group = c.benchmark_group("allow-list");
    for n in [1usize, 10_000] {
        let mut allowed: HashMap<Fingerprint, Arc<LoadedCert>> = (1..n as u32)
            .map(|i| (Fingerprint::of(&i.to_le_bytes()), Arc::clone(&entry)))
            .collect();
        allowed.insert(presented, Arc::clone(&entry));
        assert_eq!(allowed.len(), n);
        group.bench_function(BenchmarkId::new("lookup", n), |b| {
            b.iter(|| allowed.get(black_box(&presented)))
        });
        group.bench_function(
            BenchmarkId::new(
                format!("Fingerprint::of ({} B leaf) + lookup", leaf.len()),
                n,
            ),
            |b| b.iter(|| allowed.get(&Fingerprint::of(black_box(&leaf)))),
        );
    }
    group.finish();
}

criterion_group!(benches, allow_list);
criterion_main!(benches);
