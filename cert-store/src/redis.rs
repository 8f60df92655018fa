//! The Redis backend: Tyk's key layout, atomic Lua writes, pub/sub change notices.
//!
//! | what | key |
//! | --- | --- |
//! | record | `<prefix>raw-<id>` (string, no TTL) |
//! | per-org index | `<prefix><org>-index` (list of `raw-<id>`), Tyk's; built by Tyk's first-listing migration when missing (see `redis_migrate`) |
//! | Tyk's migration marker | `<prefix><org>-index-migrated` = `"1"` |
//! | org-less index | `certgate-orgless-index` (a key no Tyk node reads; Tyk indexes no org-less certificate) |
//! | orgs with an index | `<prefix>orgs` (set; our addition, so listing every org never scans) |
//! | change notices | channel `<prefix>changes`, messages `<id>:CertificateAdded`, `<id>:CertificateRemoved`, `<id>:CertificateReplaced` (the strings Tyk's MDCB uses) |
//!
//! The prefix defaults to Tyk's `cert-`. On one node (and a sentinel-managed master) writes are
//! Lua scripts, so a record, its index entry and its notice happen together or not at all, and
//! of concurrent inserts of one ID exactly one wins (no EXISTS-then-SET race). On a Redis
//! Cluster the record and its index live in different hash slots, so writes follow a cross-slot
//! protocol instead (record first with `SET NX`, then the index; listings skip entries without
//! a record and [`RedisStorage::repair`] heals a write cut short; docs/FORMAT.md gives the
//! reasoning). With `min_replicas_to_ack`, every write is followed by `WAIT` on the node that
//! took it and is acknowledged only once that many replicas have it.
//!
//! Connections ([`RedisConnection`]) reconnect by themselves, follow cluster slot moves and
//! sentinel failovers; the subscriber reconnects too (to another node, or the new master) and
//! reports [`Change::Resync`] when it may have missed notices.

mod connection;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt as _;
use futures_util::future::join_all;
use redis::{Cmd, Script, Value};
use tls_core::{CertId, OrgId};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::error::{StorageError, StorageErrorKind};
use crate::storage::{CertStorage, Change, Changes, Cursor, Inserted, Page, PageRequest, Scope};
pub(crate) use connection::Link;
pub(crate) use connection::storage_error as link_error;
pub use connection::{KeyClaim, RedisConnection, RedisLink, RedisTls, RedisTopology};

/// Where and how to connect, and how durable a write must be before it is acknowledged.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RedisConfig {
    /// Where Redis is and how to reach it.
    pub connection: RedisConnection,
    /// Key prefix (Tyk's `cert-` by default).
    pub key_prefix: String,
    /// Replicas that must have every write before it is acknowledged (`WAIT`); 0: none
    /// (Redis replication is asynchronous, so an acknowledged write can then be lost when a
    /// replica is promoted).
    pub min_replicas_to_ack: u32,
    /// How long a write waits for `min_replicas_to_ack` replicas; a write that does not reach
    /// them in time fails with a temporary error.
    pub min_replicas_timeout: Duration,
}

impl RedisConfig {
    /// The defaults for `connection`: prefix `cert-`, no replica acknowledgement.
    pub fn new(connection: RedisConnection) -> Self {
        Self {
            connection,
            key_prefix: "cert-".to_owned(),
            min_replicas_to_ack: 0,
            min_replicas_timeout: Duration::from_secs(1),
        }
    }

    /// The defaults for a URL (see [`RedisConnection::from_url`]).
    pub fn from_url(url: &str) -> Result<Self, StorageError> {
        RedisConnection::from_url(url).map(Self::new)
    }

    /// Sets the key prefix.
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Makes every write wait for `replicas` replicas, at most `timeout`.
    pub fn with_min_replicas_to_ack(mut self, replicas: u32, timeout: Duration) -> Self {
        self.min_replicas_to_ack = replicas;
        self.min_replicas_timeout = timeout;
        self
    }
}

const INSERT: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  redis.call('RPUSH', KEYS[2], ARGV[2])
  redis.call('SADD', KEYS[3], ARGV[3])
  redis.call('PUBLISH', ARGV[4], ARGV[5])
  return 1
end
if ARGV[6] == '1' then
  -- Already stored, with replicas to acknowledge: written again (see REWRITE).
  redis.call('SET', KEYS[1], redis.call('GET', KEYS[1]), 'KEEPTTL')
end
return 0
";

/// With `min_replicas_to_ack`: an insert that finds its record already stored writes it again
/// as it is. The record may be a retry's own first attempt, whose `WAIT` failed (an unknown
/// outcome): the replicas may not have it, and a `WAIT` after a command that wrote nothing
/// measures nothing. A write after the first one in the replication stream makes the `WAIT`
/// that follows cover the first one too (and everything it wrote with it).
const REWRITE: &str = r"
local record = redis.call('GET', KEYS[1])
if record then
  redis.call('SET', KEYS[1], record, 'KEEPTTL')
end
return 0
";

const DELETE: &str = r"
local existed = redis.call('DEL', KEYS[1])
redis.call('LREM', KEYS[2], 0, ARGV[1])
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('SREM', KEYS[3], ARGV[2])
end
if existed == 1 then
  redis.call('PUBLISH', ARGV[3], ARGV[4])
end
return existed
";

const REPLACE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  redis.call('PUBLISH', ARGV[3], ARGV[4])
  return 1
end
return 0
";

/// Cluster protocol: adds an entry to an index list unless it is there (one key, so it runs on
/// the node that owns the index), searching from the tail, at most `ARGV[2]` entries (0: all).
/// Returns 1 when it added the entry.
const INDEX_PUSH: &str = r"
local found
if tonumber(ARGV[2]) > 0 then
  found = redis.call('LPOS', KEYS[1], ARGV[1], 'RANK', -1, 'MAXLEN', ARGV[2])
else
  found = redis.call('LPOS', KEYS[1], ARGV[1], 'RANK', -1)
end
if found then
  -- Written again as it is, so that a WAIT after this covers the first write (see REWRITE).
  redis.call('LSET', KEYS[1], found, ARGV[1])
  return 0
end
redis.call('RPUSH', KEYS[1], ARGV[1])
return 1
";

/// Adds an org to the org set; when it is there already, removes and adds it again in one
/// step, so that a `WAIT` after this covers the first add (see [`REWRITE`]).
const ORG_ADD: &str = r"
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then
  redis.call('SREM', KEYS[1], ARGV[1])
  redis.call('SADD', KEYS[1], ARGV[1])
end
return 0
";

/// Cluster repair: keeps one copy of an entry that is in an index list more than once.
const INDEX_DEDUPE: &str = r"
local n = redis.call('LREM', KEYS[1], 0, ARGV[1])
if n > 0 then
  redis.call('RPUSH', KEYS[1], ARGV[1])
end
return n
";

/// Cluster protocol: removes an entry from an index list; returns 1 when the list is now empty.
const INDEX_REMOVE: &str = r"
redis.call('LREM', KEYS[1], 0, ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 1
end
return 0
";

/// Certificate records in Redis. See the module docs for the layout.
pub struct RedisStorage {
    link: Link,
    keys: Keys,
    scripts: Arc<Scripts>,
    durability: Durability,
    changes: broadcast::Sender<Change>,
    subscriber: JoinHandle<()>,
    stop_after_record_write: Arc<AtomicBool>,
    /// Tyk's first-listing migration: what this process already did (shared with background
    /// clones).
    migration: Arc<crate::redis_migrate::Migration>,
}

/// The insert script, sent by hash (`EVALSHA`, loaded again on `NOSCRIPT`) when no `WAIT`
/// follows; the other writes send their script text (`EVAL`), which a new master after a
/// failover always understands.
struct Scripts {
    insert: Script,
}

#[derive(Clone, Copy, Debug)]
struct Durability {
    replicas: u32,
    timeout: Duration,
}

/// What [`RedisStorage::repair`] changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepairReport {
    /// Records that were found.
    pub records: usize,
    /// Records that were missing from their org's index and were added to it.
    pub indexed: usize,
    /// Index entries removed: those whose record no longer exists, and duplicates.
    pub dropped: usize,
}

#[derive(Clone, Debug)]
struct Keys {
    prefix: String,
}

impl Keys {
    fn record(&self, id: &CertId) -> String {
        format!("{}raw-{id}", self.prefix)
    }
    fn index(&self, org: &OrgId) -> String {
        if org.is_empty() {
            return crate::redis_migrate::orgless_index(&self.prefix);
        }
        format!("{}{org}-index", self.prefix)
    }
    fn orgs(&self) -> String {
        format!("{}orgs", self.prefix)
    }
    fn channel(&self) -> String {
        format!("{}changes", self.prefix)
    }
}

fn index_entry(id: &CertId) -> String {
    format!("raw-{id}")
}

const ADDED: &str = "CertificateAdded";
const REMOVED: &str = "CertificateRemoved";
const REPLACED: &str = "CertificateReplaced";

fn notice(id: &CertId, what: &str) -> String {
    format!("{id}:{what}")
}

fn parse_notice(message: &str) -> Option<Change> {
    let (id, what) = message.rsplit_once(':')?;
    let id: CertId = id.parse().ok()?;
    match what {
        ADDED => Some(Change::Added(id)),
        REMOVED => Some(Change::Removed(id)),
        REPLACED => Some(Change::Replaced(id)),
        _ => None,
    }
}

fn storage_error(e: redis::RedisError) -> StorageError {
    link_error("redis", e)
}

fn not_replicated(acked: i64, durability: Durability) -> StorageError {
    StorageError::new(
        StorageErrorKind::Unavailable,
        format!(
            "the write reached {acked} of the {} replicas required (min_replicas_to_ack) within {} ms; it is not acknowledged and may be lost in a failover",
            durability.replicas,
            durability.timeout.as_millis()
        ),
    )
}

impl RedisStorage {
    /// Connects (failing if Redis cannot be reached now) and starts the change subscriber. On a
    /// Redis Cluster it also starts a [`repair`](Self::repair) in the background.
    pub async fn connect(config: RedisConfig) -> Result<Self, StorageError> {
        let mut connection = config.connection.clone();
        let durability = Durability {
            replicas: config.min_replicas_to_ack,
            timeout: config.min_replicas_timeout,
        };
        if durability.replicas > 0 && durability.timeout.is_zero() {
            // WAIT with a timeout of 0 would block forever.
            return Err(StorageError::new(
                StorageErrorKind::Rejected,
                "min_replicas_timeout must be above 0 when min_replicas_to_ack is set",
            ));
        }
        if durability.replicas > 0 {
            // A write waits for its replicas on the same connection: give it that long.
            connection.response_timeout += durability.timeout;
        }
        let link = Link::connect(&connection, 2).await?;
        let keys = Keys {
            prefix: config.key_prefix,
        };
        let (changes, _) = broadcast::channel(4096);
        let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
        let subscriber = tokio::spawn(subscribe_forever(
            link.clone(),
            keys.channel(),
            changes.clone(),
            subscribed_tx,
        ));
        // Notices sent before the subscription exists would be lost: wait for it (bounded).
        if tokio::time::timeout(connection.connect_timeout * 2, subscribed)
            .await
            .is_err()
        {
            tracing::warn!(
                "the Redis change subscription is not up yet; notices may be missed until it is"
            );
        }
        let storage = Self {
            link,
            keys,
            scripts: Arc::new(Scripts {
                insert: Script::new(INSERT),
            }),
            durability,
            changes,
            subscriber,
            stop_after_record_write: Arc::new(AtomicBool::new(false)),
            migration: Arc::new(crate::redis_migrate::Migration::default()),
        };
        if storage.link.is_cluster() {
            let repairer = storage.background_clone();
            tokio::spawn(async move {
                match repairer.repair().await {
                    Ok(report) if report.indexed + report.dropped > 0 => {
                        tracing::warn!(?report, "repaired the certificate indexes on start-up")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "the start-up index repair failed"),
                }
            });
        }
        Ok(storage)
    }

    /// Indexes every stored record of every org, as Tyk's first listing does for one org (see
    /// [`ReindexReport`](crate::ReindexReport)): SCANs `<prefix>raw-*` once (on every master
    /// of a cluster). Safe to run while gateways serve and list.
    pub async fn reindex(&self) -> Result<crate::ReindexReport, StorageError> {
        crate::redis_migrate::reindex(self).await
    }

    /// A sample of up to `limit` stored record texts, whoever wrote them (Tyk or certgate),
    /// found by at most five SCAN calls (per master of a cluster): never a scan of the whole
    /// keyspace.
    pub async fn sample_records(&self, limit: usize) -> Result<Vec<String>, StorageError> {
        crate::redis_migrate::sample_records(self, limit, 5).await
    }

    /// The link, for the migration module.
    pub(crate) fn link(&self) -> &Link {
        &self.link
    }

    /// The key prefix.
    pub(crate) fn prefix(&self) -> &str {
        &self.keys.prefix
    }

    /// A second handle on the same link for background work (no subscriber of its own).
    fn background_clone(&self) -> Self {
        Self {
            link: self.link.clone(),
            keys: self.keys.clone(),
            scripts: Arc::clone(&self.scripts),
            durability: self.durability,
            changes: self.changes.clone(),
            subscriber: tokio::spawn(async {}),
            stop_after_record_write: Arc::clone(&self.stop_after_record_write),
            migration: Arc::clone(&self.migration),
        }
    }

    /// Test support: makes the cross-slot protocol of a Redis Cluster stop (as a crash would)
    /// right after the record write of an insert or a delete, before the index write.
    #[cfg(feature = "testkit")]
    pub fn stop_after_record_write(&self, stop: bool) {
        self.stop_after_record_write.store(stop, Ordering::SeqCst);
    }

    fn crash_point(&self) -> Result<(), StorageError> {
        if self.stop_after_record_write.load(Ordering::SeqCst) {
            return Err(StorageError::new(
                StorageErrorKind::Unavailable,
                "stopped after the record write (test failpoint)",
            ));
        }
        Ok(())
    }

    /// Runs one write command (a command or a script about `key`'s slot) and, when replicas
    /// must acknowledge, `WAIT` in the same pipeline on the same node.
    pub(crate) async fn write<T: redis::FromRedisValue>(
        &self,
        key: &str,
        cmd: Cmd,
    ) -> Result<T, StorageError> {
        let mut pipe = redis::pipe();
        pipe.add_command(cmd);
        if self.durability.replicas > 0 {
            pipe.cmd("WAIT")
                .arg(self.durability.replicas)
                .arg(u64::try_from(self.durability.timeout.as_millis()).unwrap_or(u64::MAX));
        }
        let mut values: Vec<Value> = self
            .link
            .pipe_on_key(key, &pipe)
            .await
            .map_err(storage_error)?;
        if self.durability.replicas > 0 {
            let acked: i64 = values
                .pop()
                .and_then(|v| redis::from_redis_value(v).ok())
                .unwrap_or(0);
            if acked < i64::from(self.durability.replicas) {
                return Err(not_replicated(acked, self.durability));
            }
        }
        let value = values.pop().unwrap_or(Value::Nil);
        redis::from_redis_value(value).map_err(|e| storage_error(e.into()))
    }

    /// With `min_replicas_to_ack`, a record found already stored is acknowledged only once the
    /// replicas have it (see [`REWRITE`]).
    async fn confirm_replicated(&self, record_key: &str) -> Result<(), StorageError> {
        if self.durability.replicas == 0 {
            return Ok(());
        }
        let _: i64 = self
            .write(record_key, Self::eval(REWRITE, &[record_key], &[]))
            .await?;
        Ok(())
    }

    pub(crate) fn eval(script: &str, keys: &[&str], args: &[&str]) -> Cmd {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(script).arg(keys.len());
        for key in keys {
            cmd.arg(*key);
        }
        for arg in args {
            cmd.arg(*arg);
        }
        cmd
    }

    async fn publish(&self, id: &CertId, what: &str) {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(self.keys.channel()).arg(notice(id, what));
        if let Err(e) = self.link.query::<i64>(&cmd).await {
            // The write is done; other processes fall back to their cache TTL for this one.
            tracing::warn!(error = %e, id = %id, "cannot publish a change notice");
        }
    }

    /// Cluster protocol, step 2 of an insert: the index entry and the org, each idempotent.
    /// `fresh`: this process just created the record (`SET NX` won), so the entry can only be
    /// there if a concurrent retry of the same insert pushed it just now (at the tail), or if a
    /// crashed delete left it (anywhere; the rare duplicate is listed once per page and removed
    /// by the repair): the check covers the last 1000 entries only.
    pub(crate) async fn index_record(
        &self,
        id: &CertId,
        fresh: bool,
    ) -> Result<bool, StorageError> {
        let index = self.keys.index(id.org());
        // The winner of SET NX checks only the tail (where a racing retry's entry would be):
        // bounded, where a full scan per insert would be quadratic for a bulk import.
        let scan = if fresh { "1000" } else { "0" };
        let pushed: i64 = self
            .write(
                &index,
                Self::eval(INDEX_PUSH, &[&index], &[&index_entry(id), scan]),
            )
            .await?;
        let orgs = self.keys.orgs();
        let add = if self.durability.replicas > 0 {
            Self::eval(ORG_ADD, &[&orgs], &[id.org().as_str()])
        } else {
            let mut sadd = redis::cmd("SADD");
            sadd.arg(&orgs).arg(id.org().as_str());
            sadd
        };
        let _: i64 = self.write(&orgs, add).await?;
        Ok(pushed == 1)
    }

    /// Cluster protocol: removes `id`'s index entry (and the org when its index is empty).
    /// Re-adds the entry when the record exists again by then (a concurrent insert of the same
    /// ID), so an insert is never left unlisted.
    pub(crate) async fn unindex_record(&self, id: &CertId) -> Result<(), StorageError> {
        let index = self.keys.index(id.org());
        let empty: i64 = self
            .write(
                &index,
                Self::eval(INDEX_REMOVE, &[&index], &[&index_entry(id)]),
            )
            .await?;
        let exists: i64 = self
            .link
            .query(redis::cmd("EXISTS").arg(self.keys.record(id)))
            .await
            .map_err(storage_error)?;
        if exists == 1 {
            self.index_record(id, false).await?;
        } else if empty == 1 {
            let orgs = self.keys.orgs();
            let mut srem = redis::cmd("SREM");
            srem.arg(&orgs).arg(id.org().as_str());
            let _: i64 = self.write(&orgs, srem).await?;
            // An insert may have pushed to the index meanwhile: its org stays listed.
            let still: i64 = self
                .link
                .query(redis::cmd("EXISTS").arg(&index))
                .await
                .map_err(storage_error)?;
            if still == 1 {
                let mut sadd = redis::cmd("SADD");
                sadd.arg(&orgs).arg(id.org().as_str());
                let _: i64 = self.write(&orgs, sadd).await?;
            }
        }
        Ok(())
    }

    /// Heals what a crash in the middle of a cross-slot write leaves on a Redis Cluster (and
    /// anything else that broke the layout): adds every record missing from its org's index,
    /// and drops index entries whose record is gone. Safe to run at any time, also while other
    /// processes write; run on start-up on a cluster, and by `certctl repair`.
    pub async fn repair(&self) -> Result<RepairReport, StorageError> {
        let mut report = RepairReport::default();
        let pattern = format!(
            "{}raw-*",
            crate::redis_migrate::glob_escape(&self.keys.prefix)
        );
        let nodes = if self.link.is_cluster() {
            self.link
                .cluster_masters()
                .await
                .map_err(storage_error)?
                .into_iter()
                .map(Some)
                .collect()
        } else {
            vec![None]
        };
        let mut by_org: std::collections::BTreeMap<String, Vec<CertId>> = Default::default();
        for node in nodes {
            let mut cursor = 0u64;
            loop {
                let mut scan = redis::cmd("SCAN");
                scan.arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000);
                let (next, keys): (u64, Vec<String>) = match &node {
                    Some((host, port)) => self.link.query_node(host, *port, scan).await,
                    None => self.link.query(&scan).await,
                }
                .map_err(storage_error)?;
                for key in keys {
                    let id = key
                        .strip_prefix(&self.keys.prefix)
                        .and_then(|k| k.strip_prefix("raw-"))
                        .and_then(|k| k.parse::<CertId>().ok());
                    if let Some(id) = id {
                        report.records += 1;
                        by_org
                            .entry(id.org().as_str().to_owned())
                            .or_default()
                            .push(id);
                    }
                }
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
        }
        let listed: Vec<String> = self
            .link
            .query(redis::cmd("SMEMBERS").arg(self.keys.orgs()))
            .await
            .map_err(storage_error)?;
        for org in listed {
            by_org.entry(org).or_default();
        }
        for (org, ids) in by_org {
            let Ok(org) = OrgId::new(org) else { continue };
            let entries: Vec<String> = self
                .link
                .query(
                    redis::cmd("LRANGE")
                        .arg(self.keys.index(&org))
                        .arg(0)
                        .arg(-1),
                )
                .await
                .map_err(storage_error)?;
            let present: std::collections::HashSet<&str> =
                entries.iter().map(String::as_str).collect();
            for id in &ids {
                if !present.contains(index_entry(id).as_str())
                    && self.index_record(id, false).await?
                {
                    // Deleted since the SCAN: its delete may have cleaned the index already.
                    if self.records_exist(std::slice::from_ref(id)).await? == [true] {
                        report.indexed += 1;
                    } else {
                        self.unindex_record(id).await?;
                    }
                }
            }
            // A duplicate (a re-add after a crashed delete, see `index_record`) is kept once.
            let mut seen = std::collections::HashMap::<&str, usize>::new();
            for entry in &entries {
                *seen.entry(entry.as_str()).or_default() += 1;
            }
            for (entry, count) in seen.into_iter().filter(|(_, count)| *count > 1) {
                let index = self.keys.index(&org);
                let _: i64 = self
                    .write(&index, Self::eval(INDEX_DEDUPE, &[&index], &[entry]))
                    .await?;
                report.dropped += count - 1;
            }
            let indexed: Vec<CertId> = entries
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .filter_map(|e| e.strip_prefix("raw-").and_then(|id| id.parse().ok()))
                .collect();
            let exists = self.records_exist(&indexed).await?;
            for (id, exists) in indexed.iter().zip(exists) {
                if !exists {
                    self.unindex_record(id).await?;
                    report.dropped += 1;
                }
            }
            if ids.is_empty() && entries.is_empty() {
                // An org listed without an index.
                let mut srem = redis::cmd("SREM");
                srem.arg(self.keys.orgs()).arg(org.as_str());
                let _: i64 = self.write(&self.keys.orgs(), srem).await?;
            }
        }
        Ok(report)
    }

    /// Whether each record exists (one `EXISTS` per ID, sent at once).
    pub(crate) async fn records_exist(&self, ids: &[CertId]) -> Result<Vec<bool>, StorageError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(1000) {
            let answers = join_all(chunk.iter().map(|id| async move {
                self.link
                    .read::<i64>(redis::cmd("EXISTS").arg(self.keys.record(id)))
                    .await
            }))
            .await;
            for answer in answers {
                out.push(answer.map_err(storage_error)? == 1);
            }
        }
        Ok(out)
    }

    fn insert_command(&self, id: &CertId, record: &str) -> Cmd {
        let record_key = self.keys.record(id);
        let index = self.keys.index(id.org());
        let orgs = self.keys.orgs();
        let channel = self.keys.channel();
        Self::eval(
            INSERT,
            &[&record_key, &index, &orgs],
            &[
                record,
                &index_entry(id),
                id.org().as_str(),
                &channel,
                &notice(id, ADDED),
                if self.durability.replicas > 0 {
                    "1"
                } else {
                    "0"
                },
            ],
        )
    }

    async fn list_org(
        &self,
        org: &OrgId,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<CertId>, bool), StorageError> {
        let start = isize::try_from(offset).unwrap_or(isize::MAX);
        let stop = isize::try_from(offset.saturating_add(limit)).unwrap_or(isize::MAX);
        // One extra entry tells whether another page follows.
        let entries: Vec<String> = self
            .link
            .query(
                redis::cmd("LRANGE")
                    .arg(self.keys.index(org))
                    .arg(start)
                    .arg(stop),
            )
            .await
            .map_err(storage_error)?;
        let more = entries.len() > limit;
        let mut ids: Vec<CertId> = entries
            .iter()
            .take(limit)
            .filter_map(|entry| {
                let id = entry.strip_prefix("raw-").and_then(|id| id.parse::<CertId>().ok());
                if id.is_none() {
                    tracing::warn!(entry = %entry, org = %org, "ignoring a malformed certificate index entry");
                }
                id
            })
            .collect();
        if self.link.is_cluster() {
            // On a cluster the index is written after the record and cleaned after the delete:
            // an entry whose record is gone (a delete in progress, or one a crash cut short
            // until the repair runs) is not listed.
            let exists = self.records_exist(&ids).await?;
            let mut exists = exists.into_iter();
            let mut seen = std::collections::HashSet::new();
            // A duplicate entry (see `index_record`) is listed once per page.
            ids.retain(|id| exists.next().unwrap_or(false) && seen.insert(id.clone()));
        }
        Ok((ids, more))
    }
}

impl Drop for RedisStorage {
    fn drop(&mut self) {
        self.subscriber.abort();
    }
}

/// Keeps a pub/sub subscription alive, reconnecting with backoff (to the next seed node of a
/// cluster, to the current master of a sentinel setup); reports [`Change::Resync`] whenever
/// notices may have been missed.
async fn subscribe_forever(
    link: Link,
    channel: String,
    changes: broadcast::Sender<Change>,
    subscribed: tokio::sync::oneshot::Sender<()>,
) {
    let mut subscribed = Some(subscribed);
    let mut delay = Duration::from_millis(50);
    // Set after a lost or failed subscription; the notice goes out once subscribed again, so
    // caches are cleared when Redis can refill them, not while it is away.
    let mut missed = false;
    let mut attempt = 0usize;
    loop {
        let client = link.pubsub_client(attempt).await;
        attempt = attempt.wrapping_add(1);
        match client {
            Ok(client) => match client.get_async_pubsub().await {
                Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                    Ok(()) => {
                        if missed {
                            let _ = changes.send(Change::Resync);
                        }
                        if let Some(first) = subscribed.take() {
                            let _ = first.send(());
                        }
                        delay = Duration::from_millis(50);
                        let mut messages = pubsub.into_on_message();
                        while let Some(message) = messages.next().await {
                            match message
                                .get_payload::<String>()
                                .ok()
                                .as_deref()
                                .and_then(parse_notice)
                            {
                                Some(change) => {
                                    let _ = changes.send(change);
                                }
                                None => {
                                    tracing::warn!(channel = %channel, "ignoring a malformed change notice")
                                }
                            }
                        }
                        tracing::warn!(channel = %channel, "lost the Redis change subscription; reconnecting");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot subscribe to Redis change notices")
                    }
                },
                Err(e) => tracing::debug!(error = %e, "Redis change subscriber cannot connect yet"),
            },
            Err(e) => tracing::debug!(error = %e, "Redis change subscriber cannot find a node yet"),
        }
        missed = true;
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

#[async_trait]
impl CertStorage for RedisStorage {
    async fn insert(&self, id: &CertId, record: &str) -> Result<Inserted, StorageError> {
        let record_key = self.keys.record(id);
        if self.link.is_cluster() {
            // Cross-slot protocol (docs/FORMAT.md): record first, then its index entry, then
            // the notice. A crash between leaves a whole record that is not listed yet; the
            // repair (or a retried insert) adds the entry.
            let mut set = redis::cmd("SET");
            set.arg(&record_key).arg(record).arg("NX");
            let set: Option<String> = self.write(&record_key, set).await?;
            self.crash_point()?;
            if set.is_none() {
                self.confirm_replicated(&record_key).await?;
            }
            self.index_record(id, set.is_some()).await?;
            return Ok(if set.is_some() {
                self.publish(id, ADDED).await;
                Inserted::Added
            } else {
                Inserted::AlreadyExists
            });
        }
        let added: i64 = if self.durability.replicas > 0 {
            self.write(&record_key, self.insert_command(id, record))
                .await?
        } else {
            let mut connection = self.link.conn().await.map_err(storage_error)?;
            let result = self
                .scripts
                .insert
                .key(&record_key)
                .key(self.keys.index(id.org()))
                .key(self.keys.orgs())
                .arg(record)
                .arg(index_entry(id))
                .arg(id.org().as_str())
                .arg(self.keys.channel())
                .arg(notice(id, ADDED))
                .invoke_async(&mut connection)
                .await;
            if let Err(e) = &result {
                self.link.failed(e);
            }
            result.map_err(storage_error)?
        };
        Ok(if added == 1 {
            Inserted::Added
        } else {
            Inserted::AlreadyExists
        })
    }

    async fn insert_many(
        &self,
        records: &[(CertId, String)],
    ) -> Vec<Result<Inserted, StorageError>> {
        if self.link.is_cluster() {
            let mut results = Vec::with_capacity(records.len());
            for chunk in records.chunks(256) {
                results.extend(
                    join_all(chunk.iter().map(|(id, record)| self.insert(id, record))).await,
                );
            }
            return results;
        }
        let pipelined = async {
            let mut connection = self.link.conn().await?;
            let mut pipe = redis::pipe();
            for (id, record) in records {
                pipe.add_command(self.insert_command(id, record));
            }
            if self.durability.replicas > 0 {
                pipe.cmd("WAIT")
                    .arg(self.durability.replicas)
                    .arg(u64::try_from(self.durability.timeout.as_millis()).unwrap_or(u64::MAX));
            }
            let result = pipe.query_async::<Vec<i64>>(&mut connection).await;
            if let Err(e) = &result {
                self.link.failed(e);
            }
            result
        };
        match pipelined.await {
            Ok(mut flags)
                if flags.len() == records.len() + usize::from(self.durability.replicas > 0) =>
            {
                if self.durability.replicas > 0 {
                    let acked = flags.pop().unwrap_or(0);
                    if acked < i64::from(self.durability.replicas) {
                        return records
                            .iter()
                            .map(|_| Err(not_replicated(acked, self.durability)))
                            .collect();
                    }
                }
                flags
                    .into_iter()
                    .map(|added| {
                        Ok(if added == 1 {
                            Inserted::Added
                        } else {
                            Inserted::AlreadyExists
                        })
                    })
                    .collect()
            }
            // A failed pipeline may have applied some inserts; one by one, each gets its own
            // answer (an applied one reports AlreadyExists).
            _ => {
                let mut results = Vec::with_capacity(records.len());
                for (id, record) in records {
                    results.push(self.insert(id, record).await);
                }
                results
            }
        }
    }

    async fn get(&self, id: &CertId) -> Result<Option<String>, StorageError> {
        self.link
            .read(redis::cmd("GET").arg(self.keys.record(id)))
            .await
            .map_err(storage_error)
    }

    async fn replace(
        &self,
        id: &CertId,
        expected: &str,
        record: &str,
    ) -> Result<bool, StorageError> {
        let record_key = self.keys.record(id);
        let channel = self.keys.channel();
        let replaced: i64 = self
            .write(
                &record_key,
                Self::eval(
                    REPLACE,
                    &[&record_key],
                    &[expected, record, &channel, &notice(id, REPLACED)],
                ),
            )
            .await?;
        Ok(replaced == 1)
    }

    async fn delete(&self, id: &CertId) -> Result<bool, StorageError> {
        let record_key = self.keys.record(id);
        if self.link.is_cluster() {
            // Record first: from this point the certificate is neither served nor listed (the
            // listing skips an entry without its record); then the index entry, then the notice.
            let mut del = redis::cmd("DEL");
            del.arg(&record_key);
            let existed: i64 = self.write(&record_key, del).await?;
            self.crash_point()?;
            self.unindex_record(id).await?;
            if existed == 1 {
                self.publish(id, REMOVED).await;
            }
            return Ok(existed == 1);
        }
        let index = self.keys.index(id.org());
        let orgs = self.keys.orgs();
        let channel = self.keys.channel();
        let existed: i64 = self
            .write(
                &record_key,
                Self::eval(
                    DELETE,
                    &[&record_key, &index, &orgs],
                    &[
                        &index_entry(id),
                        id.org().as_str(),
                        &channel,
                        &notice(id, REMOVED),
                    ],
                ),
            )
            .await?;
        Ok(existed == 1)
    }

    async fn list(
        &self,
        scope: Scope<'_>,
        page: &PageRequest,
    ) -> Result<Page<CertId>, StorageError> {
        let limit = page.limit.max(1);
        let bad_cursor = |c: &Cursor| {
            StorageError::new(
                StorageErrorKind::Rejected,
                format!("invalid listing cursor {:?}", c.as_str()),
            )
        };
        match scope {
            Scope::Org(org) => {
                let offset = match &page.cursor {
                    None => 0,
                    Some(c) => c.as_str().parse::<usize>().map_err(|_| bad_cursor(c))?,
                };
                if offset == 0 {
                    self.migration.before_listing(self, Some(org)).await?;
                }
                let (items, more) = self.list_org(org, offset, limit).await?;
                let next = more.then(|| Cursor::new((offset.saturating_add(limit)).to_string()));
                Ok(Page { items, next })
            }
            Scope::All => {
                // Cursor: "<offset>:<org>"; orgs are walked in sorted order.
                let (mut offset, start_org) = match &page.cursor {
                    None => (0, None),
                    Some(c) => {
                        let (offset, org) =
                            c.as_str().split_once(':').ok_or_else(|| bad_cursor(c))?;
                        (
                            offset.parse::<usize>().map_err(|_| bad_cursor(c))?,
                            Some(org.to_owned()),
                        )
                    }
                };
                if page.cursor.is_none() {
                    self.migration.before_listing(self, None).await?;
                }
                let mut orgs: Vec<String> = self
                    .link
                    .read(redis::cmd("SMEMBERS").arg(self.keys.orgs()))
                    .await
                    .map_err(storage_error)?;
                orgs.sort();
                let mut items = Vec::new();
                for org in orgs
                    .into_iter()
                    .filter(|org| start_org.as_ref().is_none_or(|start| org >= start))
                {
                    if start_org.as_ref() != Some(&org) {
                        offset = 0;
                    }
                    let Ok(org_id) = OrgId::new(org.clone()) else {
                        continue;
                    };
                    let want = limit - items.len();
                    let (ids, _) = self.list_org(&org_id, offset, want).await?;
                    let got = ids.len();
                    items.extend(ids);
                    if items.len() == limit {
                        // Just past what was returned; when this org is exhausted, the next
                        // page moves on to the following org.
                        let next = Cursor::new(format!("{}:{org}", offset.saturating_add(got)));
                        return Ok(Page {
                            items,
                            next: Some(next),
                        });
                    }
                }
                Ok(Page { items, next: None })
            }
        }
    }

    fn watch(&self) -> Option<Changes> {
        Some(Changes::new(self.changes.subscribe()))
    }

    async fn ping(&self) -> Result<(), StorageError> {
        self.link
            .read::<String>(&redis::cmd("PING"))
            .await
            .map_err(storage_error)
            .map(drop)
    }
}

impl core::fmt::Debug for RedisStorage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RedisStorage")
            .field("key_prefix", &self.keys.prefix)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_use_tyk_mdcb_strings_and_parse_back() {
        let id: CertId = format!("org1{}", "ab".repeat(32)).parse().unwrap();
        assert_eq!(
            notice(&id, ADDED),
            format!("org1{}:CertificateAdded", "ab".repeat(32))
        );
        assert_eq!(
            parse_notice(&notice(&id, REMOVED)),
            Some(Change::Removed(id.clone()))
        );
        assert_eq!(parse_notice("nonsense"), None);
        assert_eq!(parse_notice(&format!("{id}:Other")), None);
    }

    #[test]
    fn keys_follow_tyk_layout() {
        let keys = Keys {
            prefix: "cert-".into(),
        };
        let id: CertId = format!("org1{}", "ab".repeat(32)).parse().unwrap();
        assert_eq!(
            keys.record(&id),
            format!("cert-raw-org1{}", "ab".repeat(32))
        );
        assert_eq!(keys.index(id.org()), "cert-org1-index");
        assert_eq!(keys.index(&OrgId::EMPTY), "certgate-orgless-index");
    }
}
