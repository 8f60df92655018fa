//! Sharing a Redis with Tyk nodes: Tyk's first-listing index migration (records planted the way
//! old Tyk wrote them are listed, and the index and marker are what Tyk leaves), concurrent
//! migrations leaving each ID once, org-less uploads writing only Tyk's record key, the move of
//! older certgate's `cert--index`, and `reindex`.
#![cfg(feature = "redis")]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use cert_store::{CertStorage, CertStore, PageRequest, RedisConfig, RedisStorage};
use common::{store_over, vector};
use redis::AsyncCommands as _;
use test_support::redis::{RedisServer, raw};
use tls_core::{CertId, OrgId};

async fn storage(server: &RedisServer) -> RedisStorage {
    RedisStorage::connect(RedisConfig::new(server.connection()))
        .await
        .expect("connect")
}

async fn redis_store(server: &RedisServer) -> CertStore {
    store_over(Arc::new(storage(server).await) as Arc<dyn CertStorage>)
}

/// A made-up ID of `org`, the `n`th.
fn fake_id(org: &str, n: usize) -> CertId {
    format!("{org}{n:064x}").parse().unwrap()
}

/// Plants records as an old Tyk did: `cert-raw-<id>` only, no index, no marker.
async fn plant(redis: &mut redis::aio::MultiplexedConnection, ids: &[CertId]) {
    let text = vector("leaf-p256-traditional.tyk-stored.pem");
    for id in ids {
        let _: () = redis.set(format!("cert-raw-{id}"), &text).await.unwrap();
    }
}

async fn list_all_of(store: &CertStore, org: Option<&OrgId>) -> BTreeSet<CertId> {
    let mut out = BTreeSet::new();
    let mut page = PageRequest::first(100);
    loop {
        let got = store.list(org, &page).await.unwrap();
        out.extend(got.items);
        match got.next {
            Some(next) => page = PageRequest::after(next, 100),
            None => return out,
        }
    }
}

async fn keys(redis: &mut redis::aio::MultiplexedConnection) -> BTreeSet<String> {
    let all: Vec<String> = redis.keys("*").await.unwrap();
    all.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_old_tyk_wrote_are_listed_after_the_first_listing_with_tyks_index_and_marker() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut redis = raw(&server).await;
    let org = OrgId::new("5e9d9544a1dcd60001d0ed20").unwrap();
    let ids: Vec<CertId> = (0..7).map(|n| fake_id(org.as_str(), n)).collect();
    plant(&mut redis, &ids).await;
    // An org whose name starts with this org's: Tyk's pattern would take its records too.
    let longer = fake_id("5e9d9544a1dcd60001d0ed201", 1);
    plant(&mut redis, std::slice::from_ref(&longer)).await;

    let store = redis_store(&server).await;
    let listed = list_all_of(&store, Some(&org)).await;
    assert_eq!(listed, ids.iter().cloned().collect::<BTreeSet<_>>());

    // What Tyk leaves: the index holds `raw-<id>` once per record, the marker is "1".
    let index: Vec<String> = redis
        .lrange("cert-5e9d9544a1dcd60001d0ed20-index", 0, -1)
        .await
        .unwrap();
    let expected: BTreeSet<String> = ids.iter().map(|id| format!("raw-{id}")).collect();
    assert_eq!(index.len(), ids.len(), "{index:?}");
    assert_eq!(index.into_iter().collect::<BTreeSet<_>>(), expected);
    let marker: String = redis
        .get("cert-5e9d9544a1dcd60001d0ed20-index-migrated")
        .await
        .unwrap();
    assert_eq!(marker, "1");
    // Nothing else of Tyk's was written (the other org untouched).
    let exists: bool = redis
        .exists("cert-5e9d9544a1dcd60001d0ed201-index")
        .await
        .unwrap();
    assert!(!exists);

    // A record planted after the migration is not picked up by a listing (as in Tyk) ...
    let late = fake_id(org.as_str(), 99);
    plant(&mut redis, std::slice::from_ref(&late)).await;
    let other_process = redis_store(&server).await;
    assert!(
        !list_all_of(&other_process, Some(&org))
            .await
            .contains(&late)
    );
    // ... but by reindex, which also registers the other org.
    let report = storage(&server).await.reindex().await.unwrap();
    assert_eq!(report.added, 2, "{report:?}");
    assert_eq!(report.orgs, 2, "{report:?}");
    let listed = list_all_of(&other_process, Some(&org)).await;
    assert!(listed.contains(&late));
    let everything = list_all_of(&other_process, None).await;
    assert!(everything.contains(&longer) && everything.contains(&late));
    assert_eq!(everything.len(), ids.len() + 2);
    // Run again: nothing to add.
    let again = storage(&server).await.reindex().await.unwrap();
    assert_eq!(again.added, 0, "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_org_with_an_index_but_no_marker_gets_the_marker_as_tyk_sets_it() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = redis_store(&server).await;
    let org = OrgId::new("org7").unwrap();
    let id = store
        .add(&vector("leaf-p384-pkcs8.bundle.pem"), &org)
        .await
        .unwrap();
    let mut redis = raw(&server).await;
    let exists: bool = redis.exists("cert-org7-index-migrated").await.unwrap();
    assert!(
        !exists,
        "an add does not set the marker (Tyk's add does not)"
    );
    assert_eq!(list_all_of(&store, Some(&org)).await, BTreeSet::from([id]));
    let marker: String = redis.get("cert-org7-index-migrated").await.unwrap();
    assert_eq!(marker, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_of_one_org_leave_each_id_once() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut redis = raw(&server).await;
    let org = OrgId::new("race").unwrap();
    // More than one batch of the migration script.
    let ids: Vec<CertId> = (0..1_234).map(|n| fake_id("race", n)).collect();
    plant(&mut redis, &ids).await;
    for round in 0..3 {
        if round > 0 {
            let _: () = redis
                .del(&["cert-race-index", "cert-race-index-migrated"])
                .await
                .unwrap();
        }
        let mut stores = Vec::new();
        for _ in 0..4 {
            stores.push(redis_store(&server).await);
        }
        let page = PageRequest::first(10);
        let lists = futures_util::future::join_all(
            stores
                .iter()
                .map(|store| async { store.list(Some(&org), &page).await.unwrap() }),
        );
        let reindex = async { storage(&server).await.reindex().await.unwrap() };
        let (lists, _) = tokio::join!(lists, reindex);
        assert!(lists.iter().all(|page| page.items.len() == 10));
        let index: Vec<String> = redis.lrange("cert-race-index", 0, -1).await.unwrap();
        let unique: BTreeSet<&String> = index.iter().collect();
        assert_eq!(index.len(), ids.len(), "round {round}: duplicates or gaps");
        assert_eq!(unique.len(), ids.len(), "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_less_uploads_write_only_tyks_record_key_and_are_listed_through_certgates_own() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = redis_store(&server).await;
    let id = store
        .add(&vector("root-ca.pem"), &OrgId::EMPTY)
        .await
        .unwrap();
    let mut redis = raw(&server).await;
    let all = keys(&mut redis).await;
    // Keys a Tyk node reads: `cert-raw-*`, `cert-<org>-index`, `cert-<org>-index-migrated`.
    let tyk_visible: BTreeSet<&String> = all
        .iter()
        .filter(|k| {
            k.starts_with("cert-raw-") || k.ends_with("-index") || k.ends_with("-index-migrated")
        })
        .filter(|k| k.starts_with("cert-"))
        .collect();
    assert_eq!(
        tyk_visible,
        BTreeSet::from([&format!("cert-raw-{id}")]),
        "{all:?}"
    );
    let own: Vec<String> = redis.lrange("certgate-orgless-index", 0, -1).await.unwrap();
    assert_eq!(own, [format!("raw-{id}")]);
    assert_eq!(
        list_all_of(&store, None).await,
        BTreeSet::from([id.clone()])
    );
    assert!(store.delete(&id).await.unwrap());
    let all = keys(&mut redis).await;
    assert!(all.is_empty(), "{all:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_less_ids_older_certgate_kept_in_cert_dash_dash_index_move_to_certgates_key() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut redis = raw(&server).await;
    // What an older certgate left: records, their entries on `cert--index`, "" in the orgs set,
    // and an entry whose record is gone.
    let ids: Vec<CertId> = (0..3).map(|n| fake_id("", n)).collect();
    plant(&mut redis, &ids).await;
    let stale = fake_id("", 50);
    for id in ids.iter().chain([&stale]) {
        let _: () = redis
            .rpush("cert--index", format!("raw-{id}"))
            .await
            .unwrap();
    }
    let _: () = redis.sadd("cert-orgs", "").await.unwrap();

    let store = redis_store(&server).await;
    let listed = list_all_of(&store, None).await;
    assert_eq!(listed, ids.iter().cloned().collect::<BTreeSet<_>>());
    let exists: bool = redis.exists("cert--index").await.unwrap();
    assert!(!exists, "cert--index, which only certgate wrote, is gone");
    let own: Vec<String> = redis.lrange("certgate-orgless-index", 0, -1).await.unwrap();
    assert_eq!(own.len(), 3);
    // Org-less records Tyk wrote are indexed by reindex, without Tyk's org-less marker.
    let tyk_written = fake_id("", 7);
    plant(&mut redis, std::slice::from_ref(&tyk_written)).await;
    let report = storage(&server).await.reindex().await.unwrap();
    assert_eq!(report.added, 1, "{report:?}");
    assert!(list_all_of(&store, None).await.contains(&tyk_written));
    let marker: bool = redis.exists("cert--index-migrated").await.unwrap();
    assert!(!marker, "Tyk's org-less marker is Tyk's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sample_of_records_finds_those_tyk_wrote_without_scanning_everything() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut redis = raw(&server).await;
    let ids: Vec<CertId> = (0..30).map(|n| fake_id("tykorg", n)).collect();
    plant(&mut redis, &ids).await;
    let _: () = redis.set("unrelated", "x").await.unwrap();
    let sample = storage(&server).await.sample_records(20).await.unwrap();
    assert_eq!(sample.len(), 20);
    let planted = vector("leaf-p256-traditional.tyk-stored.pem");
    assert!(sample.iter().all(|text| *text == planted));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sample_of_one_record_is_read_too() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut redis = raw(&server).await;
    plant(&mut redis, &[fake_id("one", 1)]).await;
    let sample = storage(&server).await.sample_records(20).await.unwrap();
    assert_eq!(sample, [vector("leaf-p256-traditional.tyk-stored.pem")]);
    let empty = RedisServer::start().unwrap();
    assert!(
        storage(&empty)
            .await
            .sample_records(20)
            .await
            .unwrap()
            .is_empty()
    );
}
