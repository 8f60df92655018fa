//! Tyk's index migration, and the org-less index, for the Redis backend.
//!
//! Tyk gateways older than the per-org indexes stored `cert-raw-<org><sha>` records with no
//! `cert-<org>-index`. A Tyk node's first listing of an org that has neither the index nor the
//! marker `cert-<org>-index-migrated` SCANs `cert-raw-<org>*`, pushes every `raw-<id>` it finds
//! onto the index and sets the marker to `"1"`; every listing sets the marker. certgate does the
//! same on the first page of an org's listing (once per org and process), so such records are
//! listed by both, and leaves exactly the keys Tyk would leave. Two differences, both safer:
//!
//! - Only the org's own records are indexed: Tyk's pattern `cert-raw-org1*` also matches the
//!   records of an org `org12`; certgate checks that what remains after the org is a 64-character
//!   hash. The org is escaped in the SCAN pattern (an org may contain `[`, `]` or `\`).
//! - Concurrent migrations (two certgate processes, or a listing and `certctl reindex`) never
//!   push an entry twice: the SCAN runs outside Redis, then each batch is pushed by one Lua
//!   script that reads the index, skips entries already on it and entries whose record is gone
//!   (deleted meanwhile), and pushes the rest. A script is atomic, so whichever migration comes
//!   second sees the first one's entries. No lock is needed, so a migration that dies halfway
//!   leaves nothing to clean up: the marker is set only after the last batch, and the next
//!   listing finishes the job. (A Tyk node migrating at the same moment pushes without looking;
//!   that race is Tyk's own, with or without certgate.)
//!
//! Org-less certificates: Tyk writes only `cert-raw-<id>` for them (no index), and never reads
//! `cert--index` (its org-less listing SCANs once, then answers nothing: Tyk issue #4776).
//! certgate lists them through a key of its own that no Tyk node reads, [`orgless_index`]
//! (`certgate-orgless-index` with Tyk's prefix). Older certgate versions pushed them onto
//! `cert--index`; the first listing of all orgs (or of the empty org) in a process moves those
//! entries to the new key and deletes `cert--index`, which only certgate ever wrote.
//!
//! [`reindex`] does all of it on demand for every org found by SCAN `cert-raw-*` (the org of a
//! record is its ID minus the last 64 characters), and also indexes records that were written
//! after the org's index existed (which a listing, like Tyk's, never picks up).
//!
//! On a Redis Cluster the index, the marker, the orgs set and the records live in different hash
//! slots, so the multi-key scripts above cannot run there (`CROSSSLOT`). The same migration then
//! runs in single-key steps, each atomic on the node that owns its key, in an order that keeps
//! it race-free and crash-safe: SCAN on every master (refusing to go on when the masters that
//! answer do not cover all 16384 slots, so a failed-over node's records are never skipped and
//! marked as migrated); check which records exist; push the missing entries with one script on
//! the index alone that skips entries already there (two processes migrating one org at once
//! push each ID once); check the pushed records again and take back the entry of one deleted
//! meanwhile (as the cluster's delete protocol does); `SADD` the org; set the marker last. A
//! crash before the marker leaves the migration to be redone by the next listing, never a
//! marker over a half-built index. docs/FORMAT.md has the reasoning.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::future::join_all;
use redis::Cmd;
use tls_core::{CertId, OrgId};

use crate::error::{StorageError, StorageErrorKind};
use crate::redis::{Link, RedisStorage};

/// Tyk's marker value.
pub(crate) const MARKER_VALUE: &str = "1";
/// Entries pushed per script call.
const BATCH: usize = 500;
/// SCAN's COUNT hint.
const SCAN_COUNT: usize = 1000;
/// Hash slots of a Redis Cluster.
const CLUSTER_SLOTS: usize = 16384;

/// The org-less index: a key no Tyk node reads. With Tyk's prefix `cert-` it is
/// `certgate-orgless-index` (which does not start with `cert-`, so it is neither a Tyk key
/// nor an org's index); with another prefix `P`, `Porgless` (not of the form `P<org>-index`).
pub(crate) fn orgless_index(prefix: &str) -> String {
    if prefix == "cert-" {
        "certgate-orgless-index".to_owned()
    } else {
        format!("{prefix}orgless")
    }
}

/// The key older certgate versions kept org-less IDs in (Tyk's index name for the empty org).
fn legacy_orgless_index(prefix: &str) -> String {
    format!("{prefix}-index")
}

/// Tyk's index of a non-empty org.
fn tyk_index(prefix: &str, org: &OrgId) -> String {
    format!("{prefix}{org}-index")
}

/// The index certgate keeps for `org`: Tyk's, or the org-less one for the empty org.
fn index_of(prefix: &str, org: &OrgId) -> String {
    if org.is_empty() {
        orgless_index(prefix)
    } else {
        tyk_index(prefix, org)
    }
}

/// Tyk's migration marker of a non-empty org.
pub(crate) fn marker(prefix: &str, org: &OrgId) -> String {
    format!("{prefix}{org}-index-migrated")
}

fn orgs_set(prefix: &str) -> String {
    format!("{prefix}orgs")
}

fn record_key(prefix: &str, id: &CertId) -> String {
    format!("{prefix}raw-{id}")
}

/// `text` with Redis glob characters escaped.
pub(crate) fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Nothing to do when the marker exists; when only the index exists, set the marker (Tyk sets
/// it on every listing) and stop. 1: done; 0: the org needs a migration.
const CHECK: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 then return 1 end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('SET', KEYS[2], ARGV[1])
  return 1
end
return 0
";

/// KEYS[1] index, KEYS[2] the orgs set, KEYS[3..] the records; ARGV[1] the org, ARGV[2..]
/// the entries (`raw-<id>`) of those records in the same order. Pushes each entry that is not
/// on the index yet and whose record exists; returns how many were pushed.
const ADD_MISSING: &str = r"
local present = {}
for _, entry in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do present[entry] = true end
local added = 0
for i = 2, #ARGV do
  local entry = ARGV[i]
  if not present[entry] and redis.call('EXISTS', KEYS[i + 1]) == 1 then
    redis.call('RPUSH', KEYS[1], entry)
    present[entry] = true
    added = added + 1
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('SADD', KEYS[2], ARGV[1]) end
return added
";

/// KEYS[1] the legacy org-less index, KEYS[2] the org-less index, KEYS[3] the orgs set;
/// ARGV[1] the key prefix. Moves the entries whose record exists and that are not there yet,
/// then deletes the legacy key. Returns how many were moved.
const MOVE_ORGLESS: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local present = {}
for _, entry in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do present[entry] = true end
local moved = 0
for _, entry in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  if not present[entry] and redis.call('EXISTS', ARGV[1] .. entry) == 1 then
    redis.call('RPUSH', KEYS[2], entry)
    present[entry] = true
    moved = moved + 1
  end
end
redis.call('DEL', KEYS[1])
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('SADD', KEYS[3], '') end
return moved
";

/// Cluster: KEYS[1] an index; ARGV the entries. Pushes each entry not on the index yet (one
/// key, so it runs atomically on the node that owns the index); returns the pushed entries.
const PUSH_ABSENT: &str = r"
local present = {}
for _, entry in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do present[entry] = true end
local pushed = {}
for _, entry in ipairs(ARGV) do
  if not present[entry] then
    redis.call('RPUSH', KEYS[1], entry)
    present[entry] = true
    pushed[#pushed + 1] = entry
  end
end
return pushed
";

/// Cluster: KEYS[1] a list; ARGV entries. Removes each (the list disappears when emptied).
const REMOVE_ENTRIES: &str = r"
for _, entry in ipairs(ARGV) do redis.call('LREM', KEYS[1], 0, entry) end
return redis.call('EXISTS', KEYS[1])
";

/// What this process already migrated, so a listing costs no extra round trip afterwards.
#[derive(Default)]
pub(crate) struct Migration {
    orgs: Mutex<HashSet<OrgId>>,
    orgless_moved: AtomicBool,
}

impl Migration {
    /// Runs before the first page of a listing: of `org`, or of every org when `None`.
    pub(crate) async fn before_listing(
        &self,
        storage: &RedisStorage,
        org: Option<&OrgId>,
    ) -> Result<(), StorageError> {
        match org {
            Some(org) if !org.is_empty() => {
                if self.locked_orgs().contains(org) {
                    return Ok(());
                }
                migrate_org(storage, org).await?;
                self.locked_orgs().insert(org.clone());
            }
            _ => {
                if !self.orgless_moved.load(Ordering::Relaxed) {
                    move_orgless(storage).await?;
                    self.orgless_moved.store(true, Ordering::Relaxed);
                }
            }
        }
        Ok(())
    }

    fn locked_orgs(&self) -> std::sync::MutexGuard<'_, HashSet<OrgId>> {
        self.orgs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Says what failed (the migration) and keeps the classification (temporary or not).
fn migration_error(e: StorageError) -> StorageError {
    let kind = e.kind();
    StorageError::new(kind, "redis: the certificate index migration failed").with_source(e)
}

fn link_error(e: redis::RedisError) -> StorageError {
    migration_error(crate::redis::link_error("redis", e))
}

/// Runs a write (a command or a script about `key` alone, or on one node about keys of any
/// slot) through the store, which adds `WAIT` when replicas must acknowledge.
async fn write<T: redis::FromRedisValue>(
    storage: &RedisStorage,
    key: &str,
    cmd: Cmd,
) -> Result<T, StorageError> {
    storage.write(key, cmd).await.map_err(migration_error)
}

/// Tyk's first-listing migration of one non-empty org.
async fn migrate_org(storage: &RedisStorage, org: &OrgId) -> Result<(), StorageError> {
    let prefix = storage.prefix();
    let index = tyk_index(prefix, org);
    let marker_key = marker(prefix, org);
    let link = storage.link();
    let done = if link.is_cluster() {
        // The same decision in single-key steps: setting the marker of an org whose index
        // exists is what every listing does, so no atomicity is lost.
        let marked: i64 = link
            .read(redis::cmd("EXISTS").arg(&marker_key))
            .await
            .map_err(link_error)?;
        let indexed: i64 = if marked == 1 {
            0
        } else {
            link.read(redis::cmd("EXISTS").arg(&index))
                .await
                .map_err(link_error)?
        };
        if marked == 0 && indexed == 1 {
            set_marker(storage, org).await?;
        }
        marked == 1 || indexed == 1
    } else {
        let done: i64 = write(
            storage,
            &index,
            RedisStorage::eval(CHECK, &[&index, &marker_key], &[MARKER_VALUE]),
        )
        .await?;
        done == 1
    };
    if done {
        return Ok(());
    }
    let pattern = format!(
        "{}{}*",
        glob_escape(&format!("{prefix}raw-")),
        glob_escape(org.as_str())
    );
    let ids: Vec<CertId> = scan_records(link, prefix, &pattern)
        .await?
        .into_iter()
        .filter(|id| id.org() == org)
        .collect();
    let added = add_missing(storage, org, &ids).await?;
    // Last: a migration cut short before this point is redone by the next listing.
    set_marker(storage, org).await?;
    if added > 0 {
        tracing::info!(%org, added, "indexed certificates stored without an index (Tyk's index migration)");
    }
    Ok(())
}

async fn set_marker(storage: &RedisStorage, org: &OrgId) -> Result<(), StorageError> {
    let key = marker(storage.prefix(), org);
    let mut set = redis::cmd("SET");
    set.arg(&key).arg(MARKER_VALUE);
    let _: () = write(storage, &key, set).await?;
    Ok(())
}

/// The nodes a SCAN must visit: the one node (`None`), or every master of a cluster. On a
/// cluster the masters that answer must cover every hash slot: a master that failed and has
/// no successor yet would otherwise hide its records, and a migration would mark its org
/// as done without them.
async fn scan_nodes(link: &Link) -> Result<Vec<Option<(String, u16)>>, StorageError> {
    if !link.is_cluster() {
        return Ok(vec![None]);
    }
    let nodes: String = link
        .query(&redis::cmd("CLUSTER").arg("NODES").clone())
        .await
        .map_err(link_error)?;
    let mut covered = vec![false; CLUSTER_SLOTS];
    let mut masters = Vec::new();
    for line in nodes.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(flags) = fields.get(2) else { continue };
        if !flags.split(',').any(|f| f == "master") || flags.contains("fail") {
            continue;
        }
        let Some((host, port)) = fields
            .get(1)
            .and_then(|addr| addr.split('@').next())
            .and_then(|addr| addr.rsplit_once(':'))
        else {
            continue;
        };
        let Ok(port) = port.parse::<u16>() else {
            continue;
        };
        let mut serves = false;
        // Fields 8.. are slots ("5", "0-5460") or slots in migration ("[5-<-id]"), skipped.
        for range in fields.iter().skip(8).filter(|r| !r.starts_with('[')) {
            let (low, high) = range.split_once('-').unwrap_or((range, range));
            if let (Ok(low), Ok(high)) = (low.parse::<usize>(), high.parse::<usize>()) {
                for slot in covered.iter_mut().take(high.saturating_add(1)).skip(low) {
                    *slot = true;
                    serves = true;
                }
            }
        }
        if serves {
            masters.push(Some((host.to_owned(), port)));
        }
    }
    if covered.iter().any(|slot| !slot) {
        return Err(StorageError::new(
            StorageErrorKind::Unavailable,
            "redis: the certificate index migration needs every hash slot of the cluster served by a reachable master (a failover may be in progress); it runs again on the next listing",
        ));
    }
    Ok(masters)
}

/// One SCAN call on `node` (`None`: the one node).
async fn scan_step(
    link: &Link,
    node: Option<&(String, u16)>,
    cursor: u64,
    pattern: &str,
) -> Result<(u64, Vec<String>), StorageError> {
    let mut scan = redis::cmd("SCAN");
    scan.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(SCAN_COUNT);
    match node {
        Some((host, port)) => link.query_node(host, *port, scan).await,
        None => link.query(&scan).await,
    }
    .map_err(link_error)
}

/// Every record ID under keys matching `pattern`, by SCAN (on every master of a cluster).
async fn scan_records(
    link: &Link,
    prefix: &str,
    pattern: &str,
) -> Result<Vec<CertId>, StorageError> {
    let record_prefix = format!("{prefix}raw-");
    let mut ids = Vec::new();
    for node in scan_nodes(link).await? {
        let mut cursor: u64 = 0;
        loop {
            let (next, keys) = scan_step(link, node.as_ref(), cursor, pattern).await?;
            ids.extend(keys.iter().filter_map(|key| {
                key.strip_prefix(&record_prefix)
                    .and_then(|id| id.parse::<CertId>().ok())
            }));
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    // SCAN may return a key more than once.
    let mut seen = HashSet::new();
    ids.retain(|id| seen.insert(id.clone()));
    Ok(ids)
}

/// Pushes the entries of `ids` missing from the org's index (the org-less index for the empty
/// org), batch by batch. Returns how many were pushed.
async fn add_missing(
    storage: &RedisStorage,
    org: &OrgId,
    ids: &[CertId],
) -> Result<usize, StorageError> {
    let prefix = storage.prefix();
    let index = index_of(prefix, org);
    let orgs = orgs_set(prefix);
    let mut added = 0usize;
    for batch in ids.chunks(BATCH) {
        if storage.link().is_cluster() {
            added += add_missing_on_cluster(storage, org, &index, batch).await?;
            continue;
        }
        let records: Vec<String> = batch.iter().map(|id| record_key(prefix, id)).collect();
        let entries: Vec<String> = batch.iter().map(|id| format!("raw-{id}")).collect();
        let mut keys: Vec<&str> = vec![&index, &orgs];
        keys.extend(records.iter().map(String::as_str));
        let mut args: Vec<&str> = vec![org.as_str()];
        args.extend(entries.iter().map(String::as_str));
        let n: i64 = write(
            storage,
            &index,
            RedisStorage::eval(ADD_MISSING, &keys, &args),
        )
        .await?;
        added += usize::try_from(n).unwrap_or(0);
    }
    Ok(added)
}

/// One batch of [`add_missing`] on a cluster, in single-key steps (see the module docs).
async fn add_missing_on_cluster(
    storage: &RedisStorage,
    org: &OrgId,
    index: &str,
    batch: &[CertId],
) -> Result<usize, StorageError> {
    let exists = storage
        .records_exist(batch)
        .await
        .map_err(migration_error)?;
    let present: Vec<&CertId> = batch
        .iter()
        .zip(exists)
        .filter_map(|(id, exists)| exists.then_some(id))
        .collect();
    if present.is_empty() {
        return Ok(0);
    }
    let entries: Vec<String> = present.iter().map(|id| format!("raw-{id}")).collect();
    let args: Vec<&str> = entries.iter().map(String::as_str).collect();
    let pushed: Vec<String> = write(
        storage,
        index,
        RedisStorage::eval(PUSH_ABSENT, &[index], &args),
    )
    .await?;
    let orgs = orgs_set(storage.prefix());
    let mut sadd = redis::cmd("SADD");
    sadd.arg(&orgs).arg(org.as_str());
    let _: i64 = write(storage, &orgs, sadd).await?;
    // A record deleted between the check and the push: its delete may already have cleaned
    // the index, so take the entry back (the store's unindex re-adds it if the ID was stored
    // again meanwhile).
    let pushed: Vec<CertId> = pushed
        .iter()
        .filter_map(|entry| entry.strip_prefix("raw-").and_then(|id| id.parse().ok()))
        .collect();
    let still = storage
        .records_exist(&pushed)
        .await
        .map_err(migration_error)?;
    let mut added = pushed.len();
    for (id, exists) in pushed.iter().zip(still) {
        if !exists {
            storage.unindex_record(id).await.map_err(migration_error)?;
            added = added.saturating_sub(1);
        }
    }
    Ok(added)
}

/// Moves the entries older certgate versions pushed onto `cert--index` to the org-less index.
async fn move_orgless(storage: &RedisStorage) -> Result<usize, StorageError> {
    let prefix = storage.prefix();
    let legacy = legacy_orgless_index(prefix);
    let moved = if storage.link().is_cluster() {
        move_orgless_on_cluster(storage, &legacy).await?
    } else {
        let index = orgless_index(prefix);
        let orgs = orgs_set(prefix);
        let moved: i64 = write(
            storage,
            &legacy,
            RedisStorage::eval(MOVE_ORGLESS, &[&legacy, &index, &orgs], &[prefix]),
        )
        .await?;
        usize::try_from(moved).unwrap_or(0)
    };
    if moved > 0 {
        tracing::info!(
            moved,
            "moved org-less certificate IDs from cert--index (written by an older certgate) to certgate's own org-less index"
        );
    }
    Ok(moved)
}

/// [`move_orgless`] on a cluster: index what the legacy list names (as a migration does), then
/// remove exactly the entries read from it, so nothing pushed meanwhile is lost and a crash
/// before the removal leaves the move to be redone.
async fn move_orgless_on_cluster(
    storage: &RedisStorage,
    legacy: &str,
) -> Result<usize, StorageError> {
    let entries: Vec<String> = storage
        .link()
        .read(redis::cmd("LRANGE").arg(legacy).arg(0).arg(-1))
        .await
        .map_err(link_error)?;
    if entries.is_empty() {
        return Ok(0);
    }
    let ids: Vec<CertId> = entries
        .iter()
        .filter_map(|entry| entry.strip_prefix("raw-").and_then(|id| id.parse().ok()))
        .filter(|id: &CertId| id.org().is_empty())
        .collect();
    let moved = add_missing(storage, &OrgId::EMPTY, &ids).await?;
    for chunk in entries.chunks(BATCH) {
        let args: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let _: i64 = write(
            storage,
            legacy,
            RedisStorage::eval(REMOVE_ENTRIES, &[legacy], &args),
        )
        .await?;
    }
    Ok(moved)
}

/// Up to `limit` record texts, found by at most `steps` SCAN calls over `<prefix>raw-*` (per
/// master of a cluster; a sample: never the whole keyspace).
pub(crate) async fn sample_records(
    storage: &RedisStorage,
    limit: usize,
    steps: usize,
) -> Result<Vec<String>, StorageError> {
    let link = storage.link();
    let pattern = format!("{}*", glob_escape(&format!("{}raw-", storage.prefix())));
    let mut keys: Vec<String> = Vec::new();
    'nodes: for node in scan_nodes(link).await? {
        let mut cursor: u64 = 0;
        for _ in 0..steps {
            let (next, found) = scan_step(link, node.as_ref(), cursor, &pattern).await?;
            keys.extend(found);
            if keys.len() >= limit {
                break 'nodes;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    keys.sort_unstable();
    keys.dedup();
    keys.truncate(limit);
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let texts: Vec<Option<String>> = if link.is_cluster() {
        // MGET would be CROSSSLOT: one GET per key, sent at once.
        join_all(keys.iter().map(|key| async move {
            link.read::<Option<String>>(redis::cmd("GET").arg(key))
                .await
        }))
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(link_error)?
    } else {
        // MGET explicitly (one key too: redis-rs's `mget` would send GET and answer one value).
        link.read(redis::cmd("MGET").arg(&keys))
            .await
            .map_err(link_error)?
    };
    Ok(texts.into_iter().flatten().collect())
}

/// What [`RedisStorage::reindex`](crate::RedisStorage::reindex) found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReindexReport {
    /// Orgs with records (the empty org included when it has records).
    pub orgs: usize,
    /// Records found by SCAN.
    pub records: usize,
    /// Index entries added (records that no index listed).
    pub added: usize,
    /// Org-less entries moved from the `cert--index` of older certgate versions.
    pub moved_orgless: usize,
}

/// Indexes every record of every org: SCAN `<prefix>raw-*`, then for each org push what its
/// index lacks and set Tyk's marker (not for the empty org, whose marker belongs to Tyk's own
/// org-less listing); the org-less entries of older certgate versions are moved first.
pub(crate) async fn reindex(storage: &RedisStorage) -> Result<ReindexReport, StorageError> {
    let mut report = ReindexReport {
        moved_orgless: move_orgless(storage).await?,
        ..ReindexReport::default()
    };
    let prefix = storage.prefix();
    let pattern = format!("{}*", glob_escape(&format!("{prefix}raw-")));
    let mut by_org: BTreeMap<OrgId, Vec<CertId>> = BTreeMap::new();
    for id in scan_records(storage.link(), prefix, &pattern).await? {
        by_org.entry(id.org().clone()).or_default().push(id);
    }
    report.orgs = by_org.len();
    for (org, ids) in &by_org {
        report.records += ids.len();
        report.added += add_missing(storage, org, ids).await?;
        if !org.is_empty() {
            set_marker(storage, org).await?;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_are_tyks_and_the_orgless_one_is_no_tyk_key() {
        let org = OrgId::new("5e9d9544a1dcd60001d0ed20").unwrap();
        assert_eq!(
            tyk_index("cert-", &org),
            "cert-5e9d9544a1dcd60001d0ed20-index"
        );
        assert_eq!(
            marker("cert-", &org),
            "cert-5e9d9544a1dcd60001d0ed20-index-migrated"
        );
        assert_eq!(orgless_index("cert-"), "certgate-orgless-index");
        assert!(!orgless_index("cert-").starts_with("cert-"));
        assert_eq!(legacy_orgless_index("cert-"), "cert--index");
        assert!(!orgless_index("x-").ends_with("-index"));
    }

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("a[b]*?\\c"), "a\\[b\\]\\*\\?\\\\c");
        assert_eq!(glob_escape("cert-raw-"), "cert-raw-");
    }
}
