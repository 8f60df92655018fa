//! The certificate manager over the memory backend.

mod common;

use std::sync::Arc;

use cert_store::{
    CertRole, CertStorage, CertStore, Change, MemoryStorage, PageRequest, StoreError,
};
use common::{VECTOR_SECRET, generated_at, store_over, vector};
use tls_core::{CertId, EncodingSecret, KeyFormat, OrgId, Record, Upload};

fn org(name: &str) -> OrgId {
    OrgId::new(name).unwrap()
}

fn memory_store() -> (Arc<MemoryStorage>, CertStore) {
    let storage = Arc::new(MemoryStorage::new());
    let store = store_over(Arc::clone(&storage) as Arc<dyn CertStorage>);
    (storage, store)
}

#[tokio::test]
async fn add_returns_the_tyk_id_and_details_never_include_the_key() {
    let (storage, store) = memory_store();
    let id = store
        .add(
            &vector("leaf-p256-traditional.bundle.pem"),
            &org("5e9d9544a1dcd60001d0ed20"),
        )
        .await
        .unwrap();
    assert_eq!(
        id.to_string(),
        "5e9d9544a1dcd60001d0ed201b3c75cbd74b4f6a6feca5d0c43ded392bd7eef416560db708c7e3255bf8c150"
    );
    let meta = store.details(&id).await.unwrap();
    assert!(meta.has_private);
    assert_eq!(meta.chain_len, 2);
    assert_eq!(
        meta.subject.common_name.as_deref(),
        Some("p256-traditional.vectors.test")
    );
    // The stored text holds the key encrypted, in the modern format by default.
    let stored = storage.get(&id).await.unwrap().unwrap();
    assert!(stored.contains("-----BEGIN CERTGATE ENCRYPTED PRIVATE KEY-----"));
    assert!(!stored.contains("-----BEGIN EC PRIVATE KEY-----"));
}

#[tokio::test]
async fn a_repeated_identical_add_answers_the_id_and_a_different_record_is_refused_with_tyks_message()
 {
    let (storage, store) = memory_store();
    let pem = vector("leaf-p384-pkcs8.bundle.pem");
    let id = store.add(&pem, &org("org1")).await.unwrap();
    let stored = storage.get(&id).await.unwrap();
    // A retry of the same upload (same chain, same key) succeeds with the same ID, and
    // changes nothing.
    assert_eq!(store.add(&pem, &org("org1")).await.unwrap(), id);
    assert_eq!(storage.get(&id).await.unwrap(), stored);
    // The same certificate without its key is another record under the same ID: refused.
    let err = store
        .add(&vector("leaf-p384-pkcs8.crt.pem"), &org("org1"))
        .await
        .unwrap_err();
    assert!(matches!(&err, StoreError::AlreadyExists { id: existing } if *existing == id));
    assert_eq!(
        err.to_string(),
        format!("Certificate with {id} id already exists")
    );
    // The same certificate under another org is another ID.
    assert_ne!(store.add(&pem, &org("org2")).await.unwrap(), id);
}

#[tokio::test]
async fn a_refused_upload_stores_nothing() {
    let (storage, store) = memory_store();
    for bad in [
        "bad-key-mismatch.pem",
        "bad-two-keys.pem",
        "bad-garbage.pem",
        "expired.bundle.pem",
        "bad-empty.pem",
    ] {
        let err = store.add(&vector(bad), &org("org1")).await.unwrap_err();
        assert!(matches!(err, StoreError::Upload(_)), "{bad}: {err}");
    }
    let all = storage
        .list(cert_store::Scope::All, &PageRequest::first(100))
        .await
        .unwrap();
    assert!(all.items.is_empty());
}

#[tokio::test]
async fn listing_without_an_org_works_every_time() {
    // Tyk #4776: the second listing without org_id came back empty.
    let (_, store) = memory_store();
    let bare = store
        .add(&vector("client-good.crt.pem"), &OrgId::EMPTY)
        .await
        .unwrap();
    let other = store
        .add(&vector("root-ca.pem"), &org("org1"))
        .await
        .unwrap();
    for _ in 0..3 {
        let empty_org = store
            .list(Some(&OrgId::EMPTY), &PageRequest::first(10))
            .await
            .unwrap();
        assert_eq!(empty_org.items, std::slice::from_ref(&bare));
        let all = store.list(None, &PageRequest::first(10)).await.unwrap();
        assert_eq!(all.items, [bare.clone(), other.clone()]);
    }
}

#[tokio::test]
async fn detailed_listing_reports_undecryptable_and_corrupt_records() {
    // Tyk panics on a record that fails to decrypt; we list it with its problem.
    let (storage, store) = memory_store();
    let good = store
        .add(&vector("leaf-ed25519-pkcs8.bundle.pem"), &org("org1"))
        .await
        .unwrap();
    // A record whose key was encrypted with another secret.
    let upload = Upload::parse(&vector("leaf-rsa2048-pkcs8.bundle.pem"), generated_at()).unwrap();
    let foreign = upload.id(&org("org1"));
    let record = upload
        .seal(
            &foreign,
            &EncodingSecret::new("another secret"),
            KeyFormat::Modern,
        )
        .unwrap();
    storage.insert(&foreign, &record.encode()).await.unwrap();
    // A record that is not PEM at all.
    let corrupt: CertId = format!("org1{}", "c".repeat(64)).parse().unwrap();
    storage
        .insert(&corrupt, "this is not a record")
        .await
        .unwrap();

    let page = store
        .list_detailed(Some(&org("org1")), &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 3);
    let find = |id: &CertId| page.items.iter().find(|item| &item.id == id).unwrap();
    assert!(find(&good).problem.is_none());
    assert!(find(&good).metadata.is_some());
    let foreign_item = find(&foreign);
    assert!(foreign_item.metadata.is_some(), "metadata stays readable");
    assert!(matches!(foreign_item.problem, Some(StoreError::Key { .. })));
    assert!(find(&corrupt).metadata.is_none());
    assert!(matches!(
        find(&corrupt).problem,
        Some(StoreError::Record { .. })
    ));
}

#[tokio::test]
async fn details_many_answers_in_order_and_marks_missing_ones() {
    let (_, store) = memory_store();
    let a = store.add(&vector("root-ca.pem"), &org("o")).await.unwrap();
    let missing: CertId = format!("o{}", "d".repeat(64)).parse().unwrap();
    let b = store
        .add(&vector("client-ca.pem"), &org("o"))
        .await
        .unwrap();
    let answers = store
        .details_many(&[b.clone(), missing.clone(), a.clone()])
        .await;
    assert_eq!(answers[0].as_ref().unwrap().fingerprint, b.fingerprint());
    assert!(matches!(&answers[1], Err(StoreError::NotFound { id }) if *id == missing));
    assert_eq!(answers[2].as_ref().unwrap().fingerprint, a.fingerprint());
}

#[tokio::test]
async fn certified_keys_are_loaded_once_and_forgotten_on_delete() {
    let (_, store) = memory_store();
    let id = store
        .add(&vector("leaf-ed25519-pkcs8.bundle.pem"), &org("org1"))
        .await
        .unwrap();
    let first = store.certified_key(&id).await.unwrap();
    let second = store.certified_key(&id).await.unwrap();
    assert!(Arc::ptr_eq(&first, &second), "served from the cache");
    assert_eq!(first.cert.len(), 2);
    assert!(store.delete(&id).await.unwrap());
    assert!(!store.delete(&id).await.unwrap());
    assert!(matches!(
        store.certified_key(&id).await,
        Err(StoreError::NotFound { .. })
    ));
}

#[tokio::test]
async fn every_key_type_loads_for_tls() {
    let (_, store) = memory_store();
    for file in [
        "leaf-p256-traditional.bundle.pem",
        "leaf-p384-pkcs8.bundle.pem",
        "leaf-rsa2048-traditional.bundle.pem",
        "leaf-rsa2048-pkcs8.bundle.pem",
        "leaf-ed25519-pkcs8.bundle.pem",
    ] {
        let id = store.add(&vector(file), &org("org1")).await.unwrap();
        store
            .certified_key(&id)
            .await
            .unwrap_or_else(|e| panic!("{file}: {e}"));
    }
}

#[tokio::test]
async fn subscribers_hear_adds_and_deletes() {
    let (_, store) = memory_store();
    let mut changes = store.subscribe();
    let id = store
        .add(&vector("root-ca.pem"), &org("org1"))
        .await
        .unwrap();
    assert_eq!(changes.next().await, Some(Change::Added(id.clone())));
    store.delete(&id).await.unwrap();
    assert_eq!(changes.next().await, Some(Change::Removed(id)));
}

#[tokio::test]
async fn an_explicit_delete_of_an_absent_id_still_tells_this_processs_subscribers() {
    let (storage, store) = memory_store();
    let id = store
        .add(&vector("root-ca.pem"), &org("org1"))
        .await
        .unwrap();
    let mut changes = store.subscribe();
    // The record is lost behind the store's back (the memory backend still notifies; a flushed
    // Redis would not).
    assert!(storage.delete(&id).await.unwrap());
    // The add's notice may still be on its way.
    let mut notice = changes.next().await;
    if notice == Some(Change::Added(id.clone())) {
        notice = changes.next().await;
    }
    assert_eq!(notice, Some(Change::Removed(id.clone())));
    assert!(!store.delete(&id).await.unwrap(), "it was already gone");
    assert_eq!(
        changes.next().await,
        Some(Change::Removed(id)),
        "the explicit delete is heard all the same"
    );
}

#[tokio::test]
async fn pem_text_loads_once_per_text_with_the_empty_org() {
    let (_, store) = memory_store();
    let inline = vector("leaf-p256-traditional.bundle.pem");
    let collapsed = inline.replace('\n', " ");
    let first = store.load_pem(&inline, "inline PEM").await.unwrap();
    assert!(Arc::ptr_eq(
        &first,
        &store.load_pem(&inline, "inline PEM").await.unwrap()
    ));
    for text in [inline.as_str(), collapsed.as_str()] {
        let cert = store.load_pem(text, "inline PEM").await.unwrap();
        assert_eq!(
            cert.id().to_string(),
            "1b3c75cbd74b4f6a6feca5d0c43ded392bd7eef416560db708c7e3255bf8c150"
        );
        store.tls_key(&cert).unwrap();
    }
    assert!(matches!(
        store.load_pem("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----", "a.pem").await,
        Err(StoreError::Reference { reference, .. }) if reference == "a.pem"
    ));
}

#[tokio::test]
async fn the_usage_index_answers_which_apis_use_a_certificate() {
    let (_, store) = memory_store();
    let id = store
        .add(&vector("root-ca.pem"), &org("org1"))
        .await
        .unwrap();
    store
        .usage()
        .register(id.clone(), "api-b", CertRole::Client);
    store
        .usage()
        .register(id.clone(), "api-a", CertRole::Server);
    let uses: Vec<_> = store
        .apis_using(&id)
        .into_iter()
        .map(|u| (u.api_id, u.role))
        .collect();
    assert_eq!(
        uses,
        [
            ("api-a".to_owned(), CertRole::Server),
            ("api-b".to_owned(), CertRole::Client)
        ]
    );
}

#[tokio::test]
async fn import_answers_each_upload_in_order() {
    let (_, store) = memory_store();
    let existing = store.add(&vector("root-ca.pem"), &org("o")).await.unwrap();
    let uploads = vec![
        (org("o"), vector("client-ca.pem")),
        (org("o"), vector("root-ca.pem")),
        (org("o"), vector("bad-garbage.pem")),
        (org("p"), vector("root-ca.pem")),
    ];
    let results = store.import(&uploads).await;
    assert!(results[0].is_ok());
    assert_eq!(
        results[1].as_ref().unwrap(),
        &existing,
        "an identical upload answers the stored ID"
    );
    assert!(matches!(&results[2], Err(StoreError::Upload(_))));
    assert_eq!(results[3].as_ref().unwrap().org().as_str(), "p");
}

#[tokio::test]
async fn rekey_moves_every_key_to_the_new_secret_and_modern_format_and_can_resume() {
    let storage = Arc::new(MemoryStorage::new());
    let legacy_store = store_over(Arc::clone(&storage) as Arc<dyn CertStorage>);
    let legacy_store = CertStore::builder(Arc::clone(&storage) as Arc<dyn CertStorage>)
        .encoding_secret(EncodingSecret::new(VECTOR_SECRET))
        .key_format(KeyFormat::Legacy)
        .clock(Arc::clone(legacy_store.clock()))
        .build();
    let mut ids = Vec::new();
    for file in [
        "leaf-p256-traditional.bundle.pem",
        "leaf-rsa2048-pkcs8.bundle.pem",
        "leaf-ed25519-pkcs8.bundle.pem",
    ] {
        ids.push(legacy_store.add(&vector(file), &org("org1")).await.unwrap());
    }
    let public_only = legacy_store
        .add(&vector("root-ca.pem"), &org("org1"))
        .await
        .unwrap();
    assert!(
        storage
            .get(&ids[0])
            .await
            .unwrap()
            .unwrap()
            .contains("DEK-Info: AES-256-CBC,")
    );

    let store = store_over(Arc::clone(&storage) as Arc<dyn CertStorage>);
    let report = store
        .rekey(EncodingSecret::new("the new secret"))
        .await
        .unwrap();
    assert_eq!(
        (report.rekeyed, report.unchanged, report.failed.len()),
        (3, 1, 0)
    );
    for id in &ids {
        let text = storage.get(id).await.unwrap().unwrap();
        assert!(text.contains("CERTGATE ENCRYPTED PRIVATE KEY"));
        let record = Record::decode(&text).unwrap();
        record
            .private_key(id, &EncodingSecret::new("the new secret"))
            .unwrap();
        assert!(
            record
                .private_key(id, &EncodingSecret::new(VECTOR_SECRET))
                .is_err()
        );
        store.certified_key(id).await.unwrap();
    }
    assert!(storage.get(&public_only).await.unwrap().is_some());

    // Running it again (as after an interruption) changes nothing.
    let again = CertStore::builder(Arc::clone(&storage) as Arc<dyn CertStorage>)
        .encoding_secret(EncodingSecret::new("the new secret"))
        .previous_encoding_secret(EncodingSecret::new(VECTOR_SECRET))
        .build();
    let report = again
        .rekey(EncodingSecret::new("the new secret"))
        .await
        .unwrap();
    assert_eq!((report.rekeyed, report.unchanged), (0, 4));
}
