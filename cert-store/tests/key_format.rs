//! The store's key format applies wherever the store writes: add, bulk import and rekey; rekey
//! converts in both directions under one secret, and a second run has nothing to do.

mod common;

use std::sync::Arc;

use cert_store::{CertStorage, CertStore, ManualClock, MemoryStorage};
use common::{VECTOR_SECRET, generated_at, vector};
use tls_core::{EncodingSecret, KeyFormat, LEGACY_LABEL, MODERN_LABEL, OrgId};

fn store(storage: &Arc<MemoryStorage>, format: KeyFormat) -> CertStore {
    CertStore::builder(Arc::clone(storage) as Arc<dyn CertStorage>)
        .encoding_secret(EncodingSecret::new(VECTOR_SECRET))
        .key_format(format)
        .clock(Arc::new(ManualClock::new(generated_at())))
        .build()
}

/// The label of the key block of every stored record with a key.
async fn labels(storage: &MemoryStorage, ids: &[tls_core::CertId]) -> Vec<&'static str> {
    let mut out = Vec::new();
    for id in ids {
        let text = storage.get(id).await.unwrap().unwrap();
        out.push(
            if text.contains(&format!("-----BEGIN {MODERN_LABEL}-----")) {
                "modern"
            } else if text.contains(&format!(
                "-----BEGIN {LEGACY_LABEL}-----\nProc-Type: 4,ENCRYPTED\n"
            )) {
                "legacy"
            } else {
                "other"
            },
        );
    }
    out
}

#[tokio::test]
async fn add_import_and_rekey_write_the_configured_format_both_ways() {
    let storage = Arc::new(MemoryStorage::new());
    let legacy = store(&storage, KeyFormat::Legacy);
    let org = OrgId::new("o").unwrap();
    let added = legacy
        .add(&vector("leaf-p256-traditional.bundle.pem"), &org)
        .await
        .unwrap();
    let imported: Vec<_> = legacy
        .import(&[
            (org.clone(), vector("leaf-rsa2048-pkcs8.bundle.pem")),
            (org.clone(), vector("leaf-p384-pkcs8.bundle.pem")),
        ])
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let mut ids = vec![added];
    ids.extend(imported);
    assert_eq!(labels(&storage, &ids).await, ["legacy"; 3]);

    // To modern under the same secret, then back.
    let modern = store(&storage, KeyFormat::Modern);
    let report = modern
        .rekey(EncodingSecret::new(VECTOR_SECRET))
        .await
        .unwrap();
    assert_eq!((report.rekeyed, report.unchanged), (3, 0));
    assert_eq!(labels(&storage, &ids).await, ["modern"; 3]);
    let again = modern
        .rekey(EncodingSecret::new(VECTOR_SECRET))
        .await
        .unwrap();
    assert_eq!(
        (again.rekeyed, again.unchanged),
        (0, 3),
        "nothing left to do"
    );

    let back = store(&storage, KeyFormat::Legacy);
    let report = back
        .rekey(EncodingSecret::new(VECTOR_SECRET))
        .await
        .unwrap();
    assert_eq!((report.rekeyed, report.failed.len()), (3, 0));
    assert_eq!(labels(&storage, &ids).await, ["legacy"; 3]);
    for id in &ids {
        back.certified_key(id).await.expect("the key still loads");
    }
}
