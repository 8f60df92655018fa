//! The Redis backend on a Redis Cluster (3 masters, 3 replicas) and behind Redis Sentinel
//! (master, replica, 3 sentinels), all private processes the tests start: the cross-slot write
//! protocol cut short by a crash and healed by the repair, replica acknowledgements (`WAIT`),
//! and failovers under load (nothing acknowledged lost, cached certificates keep serving, writes
//! fail as temporary during the election and succeed after it, a second store hears every
//! change afterwards), concurrent inserts of one ID (one winner, one index entry) and a record
//! corrupted behind the store's back.
#![cfg(feature = "redis")]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cert_store::{
    CertStorage, Change, Inserted, PageRequest, RedisConfig, RedisConnection, RedisStorage, Scope,
    StoreError,
};
use common::{store_over, vector};
use test_support::redis::{Failover, RedisCluster, RedisSentinels, RedisServer, raw_cluster};
use tls_core::{CertId, OrgId};

fn synthetic_id(org: &str, n: u64) -> CertId {
    format!("{org}{n:064x}").parse().unwrap()
}

async fn storage(connection: RedisConnection, prefix: &str, replicas: u32) -> RedisStorage {
    RedisStorage::connect(
        RedisConfig::new(connection)
            .with_key_prefix(prefix)
            .with_min_replicas_to_ack(replicas, Duration::from_secs(1)),
    )
    .await
    .expect("connect")
}

async fn listed(storage: &dyn CertStorage, org: &OrgId) -> Vec<CertId> {
    let mut all = Vec::new();
    let mut page = PageRequest::first(1000);
    loop {
        let got = storage.list(Scope::Org(org), &page).await.unwrap();
        all.extend(got.items);
        match got.next {
            Some(next) => page = PageRequest::after(next, 1000),
            None => return all,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_record_and_index_on_a_cluster_is_never_listed_half_and_the_repair_finishes_it()
 {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let org = OrgId::new("crashorg").unwrap();
    let store = storage(cluster.connection(), "crash-cert-", 1).await;
    let kept = synthetic_id("crashorg", 1);
    let deleted = synthetic_id("crashorg", 2);
    let added = synthetic_id("crashorg", 3);
    let retried = synthetic_id("crashorg", 4);
    for id in [&kept, &deleted] {
        assert_eq!(store.insert(id, "record").await.unwrap(), Inserted::Added);
    }

    store.stop_after_record_write(true);
    // An insert cut short after its record: not acknowledged, whole record, not listed yet.
    let err = store.insert(&added, "record 3").await.unwrap_err();
    assert!(err.is_temporary(), "{err}");
    assert_eq!(
        store.get(&added).await.unwrap().as_deref(),
        Some("record 3")
    );
    // A delete cut short after its record: gone at once, its dangling index entry not listed.
    assert!(store.delete(&deleted).await.unwrap_err().is_temporary());
    assert_eq!(store.get(&deleted).await.unwrap(), None);
    assert!(store.insert(&retried, "record 4").await.is_err());
    assert_eq!(listed(&store, &org).await, std::slice::from_ref(&kept));
    store.stop_after_record_write(false);

    // A retried insert finds the record and finishes the index.
    assert_eq!(
        store.insert(&retried, "record 4").await.unwrap(),
        Inserted::AlreadyExists
    );
    assert_eq!(listed(&store, &org).await, [kept.clone(), retried.clone()]);

    // A new process's start-up repair finishes the rest, without anyone asking.
    let fresh = storage(cluster.connection(), "crash-cert-", 1).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while listed(&fresh, &org).await.len() != 3 {
        assert!(Instant::now() < deadline, "the start-up repair did not run");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        listed(&fresh, &org).await,
        [kept.clone(), retried.clone(), added.clone()]
    );
    // Nothing is left to repair, and the raw index holds exactly the live records.
    let report = fresh.repair().await.unwrap();
    assert_eq!((report.records, report.indexed, report.dropped), (3, 0, 0));
    let mut raw = raw_cluster(&cluster).await;
    let index: Vec<String> = redis::cmd("LRANGE")
        .arg("crash-cert-crashorg-index")
        .arg(0)
        .arg(-1)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(
        index,
        [
            format!("raw-{kept}"),
            format!("raw-{retried}"),
            format!("raw-{added}")
        ]
    );

    // A delete cut short, then the same ID added again: the re-add finds the entry the crash
    // left (near the tail), so it is indexed and listed once, with nothing left to repair.
    fresh.stop_after_record_write(true);
    assert!(fresh.delete(&kept).await.is_err());
    fresh.stop_after_record_write(false);
    assert_eq!(fresh.insert(&kept, "again").await.unwrap(), Inserted::Added);
    let now = listed(&fresh, &org).await;
    assert_eq!(now.iter().filter(|id| **id == kept).count(), 1, "{now:?}");
    let report = fresh.repair().await.unwrap();
    assert_eq!((report.indexed, report.dropped), (0, 0));
    let index: Vec<String> = redis::cmd("LRANGE")
        .arg("crash-cert-crashorg-index")
        .arg(0)
        .arg(-1)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(
        index
            .iter()
            .filter(|e| **e == format!("raw-{kept}"))
            .count(),
        1,
        "{index:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_does_not_reach_its_replicas_fails_as_temporary() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    // A lone node has no replica: WAIT 1 can never be satisfied.
    let lone = RedisStorage::connect(
        RedisConfig::new(server.connection())
            .with_min_replicas_to_ack(1, Duration::from_millis(100)),
    )
    .await
    .unwrap();
    let err = lone
        .insert(&synthetic_id("org1", 1), "record")
        .await
        .unwrap_err();
    assert!(err.is_temporary(), "{err}");
    assert!(err.to_string().contains("replicas"), "{err}");
    let store = store_over(Arc::new(lone));
    let err = store
        .add(&vector("leaf-p256-traditional.bundle.pem"), &OrgId::EMPTY)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Storage(e) if e.is_temporary()),
        "{err:?}"
    );

    // With its replica in sync, the same setting acknowledges writes.
    let Some(sentinels) = RedisSentinels::start() else {
        return;
    };
    let replicated = storage(sentinels.connection(), "cert-", 1).await;
    assert_eq!(
        replicated
            .insert(&synthetic_id("org1", 1), "record")
            .await
            .unwrap(),
        Inserted::Added
    );
}

/// Kills the master holding a cached certificate while one store writes (and deletes); checks
/// that the cache keeps serving, writes fail as temporary and come back, every acknowledged
/// write is present afterwards, and a second store hears every change after the failover.
async fn failover_under_load(topology: &mut impl Failover) {
    let org = OrgId::new("fail").unwrap();
    let a = Arc::new(storage(topology.connection(), "cert-", 1).await);
    let b = Arc::new(storage(topology.connection(), "cert-", 1).await);
    let store_a = store_over(Arc::clone(&a) as Arc<dyn CertStorage>);
    let store_b = store_over(Arc::clone(&b) as Arc<dyn CertStorage>);
    let (mut heard_a, mut heard_b) = (store_a.subscribe(), store_b.subscribe());
    let served = store_a
        .add(&vector("leaf-p384-pkcs8.bundle.pem"), &org)
        .await
        .unwrap();
    // The add's own notice drops what was cached before it arrives: let it arrive first.
    for heard in [&mut heard_a, &mut heard_b] {
        wait_for(heard, &Change::Added(served.clone())).await;
    }
    store_a.certified_key(&served).await.unwrap();
    store_b.certified_key(&served).await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let a = Arc::clone(&a);
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut present = BTreeSet::new();
            let mut deleted = BTreeSet::new();
            let mut failures = 0usize;
            let mut successes_after_failure = 0usize;
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let id = synthetic_id("fail", n);
                match a.insert(&id, &format!("record {n}")).await {
                    Ok(Inserted::Added) => {
                        present.insert(id.clone());
                        if failures > 0 {
                            successes_after_failure += 1;
                        }
                    }
                    Ok(Inserted::AlreadyExists) => panic!("{id} existed"),
                    Err(e) => {
                        assert!(e.is_temporary(), "a write failed for good: {e}");
                        failures += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                // Every fifth acknowledged record is deleted again.
                if n.is_multiple_of(5) && present.contains(&id) {
                    match a.delete(&id).await {
                        Ok(true) => {
                            present.remove(&id);
                            deleted.insert(id);
                        }
                        Ok(false) => panic!("{id} vanished before its delete"),
                        // Not acknowledged: it may or may not have happened, so it is checked
                        // neither way.
                        Err(e) => {
                            assert!(e.is_temporary(), "a delete failed for good: {e}");
                            present.remove(&id);
                        }
                    }
                }
            }
            (present, deleted, failures, successes_after_failure)
        })
    };

    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed = topology.kill_master_of(&format!("cert-raw-{served}"));
    // While the election runs, the cached certificate keeps serving, on both stores.
    let election = Instant::now();
    while election.elapsed() < Duration::from_secs(3) {
        store_a.certified_key(&served).await.unwrap();
        store_b.certified_key(&served).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    topology.recover(killed);
    // Writes come back by themselves (same stores, no restart).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match a.insert(&synthetic_id("fail", u64::MAX), "probe").await {
            Ok(_) => break,
            Err(e) => {
                assert!(e.is_temporary(), "{e}");
                assert!(Instant::now() < deadline, "writes did not come back: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let (present, deleted, failures, after) = writer.await.unwrap();
    eprintln!(
        "acknowledged inserts kept {}, acknowledged deletes {}, temporary failures {failures}, successes after the first failure {after}",
        present.len(),
        deleted.len()
    );
    assert!(failures > 0, "the kill caused no failed write");
    assert!(after > 0, "no write succeeded after the failover");
    // Nothing acknowledged was lost, nothing deleted came back; the second store agrees.
    for id in &present {
        assert!(
            b.get(id).await.unwrap().is_some(),
            "{id} was acknowledged and lost"
        );
    }
    for id in &deleted {
        assert_eq!(b.get(id).await.unwrap(), None, "{id} came back");
    }
    let listing: BTreeSet<CertId> = listed(b.as_ref(), &org).await.into_iter().collect();
    for id in &present {
        assert!(listing.contains(id), "{id} is not listed");
    }
    for id in &deleted {
        assert!(!listing.contains(id), "{id} is still listed");
    }

    // After the failover the second store hears changes again: a delete on A leaves B's cache
    // at once (through the notice or the resync), and an add on A is announced to B.
    let mut notices = store_b.subscribe();
    store_a.delete(&served).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while store_b.cached(&served).is_some() {
        assert!(
            Instant::now() < deadline,
            "B still caches a deleted certificate"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let added = store_a
        .add(&vector("leaf-ed25519-pkcs8.bundle.pem"), &org)
        .await
        .unwrap();
    wait_for(&mut notices, &Change::Added(added)).await;
}

/// Waits (at most 10 s) until `notices` carries `expected`.
async fn wait_for(notices: &mut cert_store::Changes, expected: &Change) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, notices.next()).await {
            Ok(Some(change)) if &change == expected => return,
            Ok(Some(_)) => {}
            other => panic!("{expected:?} was not heard: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_master_failover_loses_no_acknowledged_write() {
    let Some(mut cluster) = RedisCluster::start() else {
        return;
    };
    failover_under_load(&mut cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_loses_no_acknowledged_write() {
    let Some(mut sentinels) = RedisSentinels::start() else {
        return;
    };
    failover_under_load(&mut sentinels).await;
}

/// A plain redis-rs connection to the node (or cluster) behind `connection`, to change keys
/// behind the store's back.
enum Raw {
    Cluster(redis::cluster_async::ClusterConnection),
    One(redis::aio::MultiplexedConnection),
}

impl Raw {
    async fn cluster(cluster: &RedisCluster) -> Self {
        let nodes: Vec<String> = cluster
            .addrs()
            .iter()
            .map(|a| format!("redis://{a}"))
            .collect();
        Self::Cluster(
            redis::cluster::ClusterClient::new(nodes)
                .unwrap()
                .get_async_connection()
                .await
                .unwrap(),
        )
    }

    async fn master(sentinels: &RedisSentinels) -> Self {
        Self::One(
            redis::Client::open(format!("redis://127.0.0.1:{}/", sentinels.master_port()))
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap(),
        )
    }

    async fn query<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> T {
        match self {
            Self::Cluster(c) => cmd.query_async(c).await.unwrap(),
            Self::One(c) => cmd.query_async(c).await.unwrap(),
        }
    }
}

/// Sixteen concurrent inserts of one ID through two stores: one wins, one index entry; then a
/// record corrupted behind the stores' back fails cleanly while the others still load.
async fn races_and_corruption(connection: RedisConnection, mut raw: Raw) {
    let stores = [
        Arc::new(storage(connection.clone(), "race-cert-", 1).await),
        Arc::new(storage(connection.clone(), "race-cert-", 1).await),
    ];
    let org = OrgId::new("race-org").unwrap();
    let id = synthetic_id("race-org", 7);
    let start = Arc::new(tokio::sync::Barrier::new(16));
    let tasks: Vec<_> = (0..16)
        .map(|n| {
            let (storage, id, start) = (Arc::clone(&stores[n % 2]), id.clone(), Arc::clone(&start));
            tokio::spawn(async move {
                start.wait().await;
                storage.insert(&id, &format!("writer {n}")).await.unwrap()
            })
        })
        .collect();
    let mut added = 0;
    for task in tasks {
        if task.await.unwrap() == Inserted::Added {
            added += 1;
        }
    }
    assert_eq!(added, 1, "exactly one insert wins");
    let index: Vec<String> = raw
        .query(
            redis::cmd("LRANGE")
                .arg("race-cert-race-org-index")
                .arg(0)
                .arg(-1),
        )
        .await;
    assert_eq!(index, [format!("raw-{id}")]);
    assert_eq!(listed(stores[1].as_ref(), &org).await, [id]);

    let writer = store_over(Arc::clone(&stores[0]) as Arc<dyn CertStorage>);
    let broken = writer
        .add(&vector("leaf-p384-pkcs8.bundle.pem"), &org)
        .await
        .unwrap();
    let healthy = writer
        .add(&vector("leaf-ed25519-pkcs8.bundle.pem"), &org)
        .await
        .unwrap();
    let () = raw
        .query(
            redis::cmd("SET")
                .arg(format!("race-cert-raw-{broken}"))
                .arg("garbage\x00-----BEGIN CERTIFICATE-----\nnot base64\n"),
        )
        .await;
    let reader = store_over(Arc::new(storage(connection, "race-cert-", 1).await));
    let err = reader.certified_key(&broken).await.unwrap_err();
    assert!(matches!(err, StoreError::Record { .. }), "{err:?}");
    assert!(!err.is_temporary());
    reader.certified_key(&healthy).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_concurrent_inserts_have_one_winner_and_a_corrupted_record_fails_cleanly() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let raw = Raw::cluster(&cluster).await;
    races_and_corruption(cluster.connection(), raw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_sentinels_concurrent_inserts_have_one_winner_and_a_corrupted_record_fails_cleanly()
{
    let Some(sentinels) = RedisSentinels::start() else {
        return;
    };
    let raw = Raw::master(&sentinels).await;
    races_and_corruption(sentinels.connection(), raw).await;
}
