//! Fault injection against the Redis backend: a record corrupted behind the store's back, a
//! store configured with the wrong encoding secret, and a race of two stores adding the same
//! certificate.
#![cfg(feature = "redis")]

mod common;

use std::sync::Arc;

use cert_store::StoreError;
use cert_store::{CertStorage, CertStore, ManualClock, PageRequest, RedisConfig, RedisStorage};
use common::{VECTOR_SECRET, generated_at, store_over, vector};
use redis::AsyncCommands as _;
use test_support::redis::{RedisServer, raw};
use tls_core::{EncodingSecret, OrgId};

async fn storage(server: &RedisServer) -> Arc<dyn CertStorage> {
    Arc::new(
        RedisStorage::connect(RedisConfig::new(server.connection()))
            .await
            .expect("connect"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_corrupted_in_redis_fails_cleanly_and_the_others_still_load() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = store_over(storage(&server).await);
    let org = OrgId::new("org1").unwrap();
    let broken = store
        .add(&vector("leaf-p384-pkcs8.bundle.pem"), &org)
        .await
        .unwrap();
    let healthy = store
        .add(&vector("leaf-ed25519-pkcs8.bundle.pem"), &org)
        .await
        .unwrap();
    let _: () = raw(&server)
        .await
        .set(
            format!("cert-raw-{broken}"),
            "garbage\x00\u{fffd}-----BEGIN CERTIFICATE-----\nnot base64\n",
        )
        .await
        .unwrap();

    // A fresh store: nothing cached from before the corruption.
    let reader = store_over(storage(&server).await);
    let err = reader.certified_key(&broken).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Record { .. }),
        "a corrupted record is a record error: {err:?}"
    );
    assert!(
        !err.is_temporary(),
        "retrying cannot fix a corrupted record"
    );
    assert!(err.to_string().contains(&broken.to_string()), "{err}");
    reader.certified_key(&healthy).await.unwrap();

    let listing = reader
        .list_detailed(Some(&org), &PageRequest::first(10))
        .await
        .expect("a corrupted record never fails the listing");
    assert_eq!(listing.items.len(), 2);
    for item in &listing.items {
        if item.id == broken {
            assert!(item.metadata.is_none());
            assert!(matches!(item.problem, Some(StoreError::Record { .. })));
        } else {
            assert_eq!(item.id, healthy);
            assert!(item.problem.is_none(), "{:?}", item.problem);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_with_the_wrong_secret_reads_metadata_but_cannot_open_keys() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let writer = store_over(storage(&server).await);
    let org = OrgId::new("org1").unwrap();
    let id = writer
        .add(&vector("leaf-p256-traditional.bundle.pem"), &org)
        .await
        .unwrap();
    let wrong = CertStore::builder(storage(&server).await)
        .encoding_secret(EncodingSecret::new(format!("not {VECTOR_SECRET}")))
        .clock(Arc::new(ManualClock::new(generated_at())))
        .build();

    let meta = wrong.details(&id).await.expect("metadata needs no secret");
    assert_eq!(meta, writer.details(&id).await.unwrap());
    let err = wrong.certified_key(&id).await.unwrap_err();
    assert!(matches!(err, StoreError::Key { .. }), "{err:?}");
    assert!(!err.is_temporary());

    let listing = wrong
        .list_detailed(Some(&org), &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(listing.items.len(), 1);
    assert!(listing.items[0].metadata.is_some());
    assert!(
        matches!(listing.items[0].problem, Some(StoreError::Key { .. })),
        "the detailed listing reports the key problem: {:?}",
        listing.items[0].problem
    );
    // The right secret still opens it: the wrong store changed nothing.
    writer.certified_key(&id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_concurrent_identical_adds_through_two_stores_answer_one_id_and_leave_one_index_entry()
 {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let stores = [
        store_over(storage(&server).await),
        store_over(storage(&server).await),
    ];
    let org = OrgId::new("race-org").unwrap();
    let pem = vector("leaf-rsa2048-pkcs8.bundle.pem");
    let start = Arc::new(tokio::sync::Barrier::new(16));
    let tasks: Vec<_> = (0..16)
        .map(|n| {
            let (store, org, pem, start) = (
                stores[n % 2].clone(),
                org.clone(),
                pem.clone(),
                Arc::clone(&start),
            );
            tokio::spawn(async move {
                start.wait().await;
                store.add(&pem, &org).await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(id) => winners.push(id),
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    // Identical adds are idempotent: every one answers the same ID, and one record is stored.
    assert_eq!(winners.len(), 16);
    winners.dedup();
    assert_eq!(winners.len(), 1, "one ID for every add: {winners:?}");
    let index: Vec<String> = raw(&server)
        .await
        .lrange("cert-race-org-index", 0, -1)
        .await
        .unwrap();
    assert_eq!(index, [format!("raw-{}", winners[0])]);
    for store in &stores {
        store.certified_key(&winners[0]).await.unwrap();
    }
}
