//! Tyk's first-listing index migration on a Redis Cluster (3 masters, 3 replicas, private
//! processes the tests start), where the index, the marker, the orgs set and the records live in
//! different hash slots: records planted the way old Tyk wrote them are listed after the first
//! listing with exactly Tyk's index and marker, older certgate's `cert--index` moves to
//! certgate's org-less index, `reindex` and `sample_records` work across the masters, and stores
//! migrating one org concurrently (with a `reindex` at the same time) leave each ID once.
#![cfg(feature = "redis")]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use cert_store::{CertStorage, CertStore, PageRequest, RedisConfig, RedisStorage};
use common::{store_over, vector};
use futures_util::future::join_all;
use redis::AsyncCommands as _;
use redis::cluster_async::ClusterConnection;
use test_support::redis::{RedisCluster, raw_cluster};
use tls_core::{CertId, OrgId};

async fn storage(cluster: &RedisCluster, replicas: u32) -> RedisStorage {
    RedisStorage::connect(
        RedisConfig::new(cluster.connection())
            .with_min_replicas_to_ack(replicas, Duration::from_secs(2)),
    )
    .await
    .expect("connect")
}

/// Stores connected before anything is planted: the start-up repair a store runs on a cluster
/// has finished with an empty keyspace by the time the records appear, so what indexes them
/// below is the listing's migration (checked: no index exists before the first listing).
async fn stores_before_planting(cluster: &RedisCluster, n: usize) -> Vec<Arc<RedisStorage>> {
    let mut stores = Vec::new();
    for i in 0..n {
        // Every other store waits for one replica (the migration's writes go through WAIT).
        stores.push(Arc::new(storage(cluster, u32::from(i % 2 == 1)).await));
    }
    // On a busy machine a background task may start late: leave it ample time.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stores
}

fn fake_id(org: &str, n: usize) -> CertId {
    format!("{org}{n:064x}").parse().unwrap()
}

/// Plants records as an old Tyk did: `cert-raw-<id>` only, no index, no marker.
async fn plant(redis: &ClusterConnection, ids: &[CertId]) {
    let text = vector("leaf-p256-traditional.tyk-stored.pem");
    for chunk in ids.chunks(200) {
        join_all(chunk.iter().map(|id| {
            let mut redis = redis.clone();
            let text = text.clone();
            async move {
                let _: () = redis.set(format!("cert-raw-{id}"), text).await.unwrap();
            }
        }))
        .await;
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

async fn exists(redis: &mut ClusterConnection, key: &str) -> bool {
    redis.exists(key).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_old_tyk_wrote_are_migrated_on_a_redis_cluster_with_tyks_index_and_marker() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let stores = stores_before_planting(&cluster, 2).await;
    let mut redis = raw_cluster(&cluster).await;
    let org = OrgId::new("5e9d9544a1dcd60001d0ed20").unwrap();
    // More than one batch, spread over every master.
    let ids: Vec<CertId> = (0..1_100).map(|n| fake_id(org.as_str(), n)).collect();
    plant(&redis, &ids).await;
    let longer = fake_id("5e9d9544a1dcd60001d0ed201", 1);
    plant(&redis, std::slice::from_ref(&longer)).await;
    assert!(!exists(&mut redis, "cert-5e9d9544a1dcd60001d0ed20-index").await);

    // The store that waits for a replica lists first.
    let store = store_over(Arc::clone(&stores[1]) as Arc<dyn CertStorage>);
    let listed = list_all_of(&store, Some(&org)).await;
    assert_eq!(listed, ids.iter().cloned().collect::<BTreeSet<_>>());
    let index: Vec<String> = redis
        .lrange("cert-5e9d9544a1dcd60001d0ed20-index", 0, -1)
        .await
        .unwrap();
    assert_eq!(index.len(), ids.len(), "each ID once");
    assert_eq!(
        index.into_iter().collect::<BTreeSet<_>>(),
        ids.iter().map(|id| format!("raw-{id}")).collect()
    );
    let marker: String = redis
        .get("cert-5e9d9544a1dcd60001d0ed20-index-migrated")
        .await
        .unwrap();
    assert_eq!(marker, "1");
    let orgs: Vec<String> = redis.smembers("cert-orgs").await.unwrap();
    assert_eq!(orgs, [org.as_str()]);
    assert!(!exists(&mut redis, "cert-5e9d9544a1dcd60001d0ed201-index").await);

    // Older certgate's org-less entries (one whose record is gone) move to certgate's key.
    let orgless: Vec<CertId> = (0..3).map(|n| fake_id("", n)).collect();
    plant(&redis, &orgless).await;
    for id in orgless.iter().chain([&fake_id("", 50)]) {
        let _: () = redis
            .rpush("cert--index", format!("raw-{id}"))
            .await
            .unwrap();
    }
    let _: () = redis.sadd("cert-orgs", "").await.unwrap();
    let other = store_over(Arc::clone(&stores[0]) as Arc<dyn CertStorage>);
    let everything = list_all_of(&other, None).await;
    assert!(orgless.iter().all(|id| everything.contains(id)));
    assert_eq!(everything.len(), ids.len() + orgless.len());
    assert!(!exists(&mut redis, "cert--index").await);
    let own: Vec<String> = redis.lrange("certgate-orgless-index", 0, -1).await.unwrap();
    assert_eq!(own.len(), 3);

    // A record planted after the migration: reindex (SCAN on every master) indexes it and
    // registers the other org.
    let late = fake_id(org.as_str(), 5_000);
    plant(&redis, std::slice::from_ref(&late)).await;
    let report = stores[0].reindex().await.unwrap();
    assert_eq!(report.added, 2, "{report:?}");
    assert_eq!(report.orgs, 3, "{report:?}");
    assert_eq!(report.records, ids.len() + orgless.len() + 2, "{report:?}");
    let everything = list_all_of(&other, None).await;
    assert!(everything.contains(&late) && everything.contains(&longer));
    let marker: String = redis
        .get("cert-5e9d9544a1dcd60001d0ed201-index-migrated")
        .await
        .unwrap();
    assert_eq!(marker, "1");
    assert_eq!(stores[1].reindex().await.unwrap().added, 0);

    // The start-up key-format sample reads records from the masters (no CROSSSLOT MGET).
    let sample = stores[0].sample_records(20).await.unwrap();
    assert_eq!(sample.len(), 20);
    let planted = vector("leaf-p256-traditional.tyk-stored.pem");
    assert!(sample.iter().all(|text| *text == planted));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_migrating_one_org_concurrently_on_a_cluster_leave_each_id_once() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    // One process reindexes while four list, three rounds (a store migrates an org once per
    // process, so each round has its own four), then one more for the race with deletes; all
    // connected before the records exist.
    let mut storages = stores_before_planting(&cluster, 1 + 3 * 4 + 1).await;
    let mut redis = raw_cluster(&cluster).await;
    let org = OrgId::new("race").unwrap();
    let ids: Vec<CertId> = (0..1_234).map(|n| fake_id("race", n)).collect();
    plant(&redis, &ids).await;
    let reindexer = storages.remove(0);
    let last = storages.pop().unwrap();
    for (round, listers) in storages.chunks(4).enumerate() {
        if round > 0 {
            let _: () = redis.del("cert-race-index").await.unwrap();
            let _: () = redis.del("cert-race-index-migrated").await.unwrap();
        }
        assert!(!exists(&mut redis, "cert-race-index").await);
        let stores: Vec<CertStore> = listers
            .iter()
            .map(|s| store_over(Arc::clone(s) as Arc<dyn CertStorage>))
            .collect();
        let page = PageRequest::first(10);
        let lists = join_all(
            stores
                .iter()
                .map(|store| async { store.list(Some(&org), &page).await.unwrap() }),
        );
        let reindex = async { reindexer.reindex().await.unwrap() };
        let (lists, _) = tokio::join!(lists, reindex);
        assert!(lists.iter().all(|page| page.items.len() == 10));
        let index: Vec<String> = redis.lrange("cert-race-index", 0, -1).await.unwrap();
        let unique: BTreeSet<&String> = index.iter().collect();
        assert_eq!(index.len(), ids.len(), "round {round}: duplicates or gaps");
        assert_eq!(unique.len(), ids.len(), "round {round}");
        let marker: String = redis.get("cert-race-index-migrated").await.unwrap();
        assert_eq!(marker, "1");
    }
    // A delete racing a migration leaves no entry behind for the deleted record.
    let _: () = redis.del("cert-race-index").await.unwrap();
    let _: () = redis.del("cert-race-index-migrated").await.unwrap();
    let fresh = store_over(last as Arc<dyn CertStorage>);
    let gone = &ids[..50];
    let deletes = join_all(gone.iter().map(|id| reindexer.delete(id)));
    let first = PageRequest::first(10);
    let listing = fresh.list(Some(&org), &first);
    let (deleted, listing) = tokio::join!(deletes, listing);
    assert!(deleted.into_iter().all(|d| d.unwrap()));
    listing.unwrap();
    let index: Vec<String> = redis.lrange("cert-race-index", 0, -1).await.unwrap();
    let expected: BTreeSet<String> = ids[50..].iter().map(|id| format!("raw-{id}")).collect();
    assert_eq!(index.len(), expected.len());
    assert_eq!(index.into_iter().collect::<BTreeSet<_>>(), expected);
}
