//! The example file backend passes the same conformance suite as the built-in backends, and a
//! `CertStore` works over it.

use std::sync::Arc;

use cert_store::testkit::conformance;
use cert_store::{CertStorage, CertStore};
use certgate_examples::FileStorage;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_storage_passes_the_conformance_suite() {
    let root = tempfile::tempdir().unwrap();
    let counter = std::sync::atomic::AtomicUsize::new(0);
    conformance::run_all(|| {
        let dir = root.path().join(
            counter
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                .to_string(),
        );
        async move { Arc::new(FileStorage::open(dir).await.unwrap()) as Arc<dyn CertStorage> }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cert_store_over_files_adds_lists_and_serves_tls_keys() {
    let root = tempfile::tempdir().unwrap();
    let storage = Arc::new(FileStorage::open(root.path()).await.unwrap());
    let store = CertStore::builder(storage)
        .encoding_secret(tls_core::EncodingSecret::new("s"))
        .build();
    let pem = include_str!("../../tls-core/tests/data/demo.pem");
    let org = tls_core::OrgId::new("..").unwrap();
    let id = store.add(pem, &org).await.unwrap();
    assert_eq!(
        store
            .list(Some(&org), &cert_store::PageRequest::first(10))
            .await
            .unwrap()
            .items,
        std::slice::from_ref(&id)
    );
    store.certified_key(&id).await.unwrap();
    // The odd org stayed inside the folder.
    assert!(
        std::fs::read_dir(root.path().join("index"))
            .unwrap()
            .count()
            == 1
    );
    assert!(
        !root
            .path()
            .join("records/..")
            .join(format!("{}.pem", id.fingerprint()))
            .exists()
    );
}
