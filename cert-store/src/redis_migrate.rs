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

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use redis::aio::ConnectionManager;
use redis::{AsyncCommands as _, Script};
use tls_core::{CertId, OrgId};

use crate::error::{StorageError, StorageErrorKind};

/// Tyk's marker value.
pub(crate) const MARKER_VALUE: &str = "1";
/// Entries pushed per script call.
const BATCH: usize = 500;
/// SCAN's COUNT hint.
const SCAN_COUNT: usize = 1000;

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
fn glob_escape(text: &str) -> String {
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
        connection: &ConnectionManager,
        prefix: &str,
        org: Option<&OrgId>,
    ) -> Result<(), StorageError> {
        let mut connection = connection.clone();
        match org {
            Some(org) if !org.is_empty() => {
                if self.locked_orgs().contains(org) {
                    return Ok(());
                }
                migrate_org(&mut connection, prefix, org).await?;
                self.locked_orgs().insert(org.clone());
            }
            _ => {
                if !self.orgless_moved.load(Ordering::Relaxed) {
                    move_orgless(&mut connection, prefix).await?;
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

fn redis_error(e: redis::RedisError) -> StorageError {
    let kind = if e.is_timeout() {
        StorageErrorKind::Timeout
    } else if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
        StorageErrorKind::Unavailable
    } else {
        StorageErrorKind::Other
    };
    StorageError::new(kind, "redis: the certificate index migration failed").with_source(e)
}

/// Tyk's first-listing migration of one non-empty org.
async fn migrate_org(
    connection: &mut ConnectionManager,
    prefix: &str,
    org: &OrgId,
) -> Result<(), StorageError> {
    let done: i64 = Script::new(CHECK)
        .key(tyk_index(prefix, org))
        .key(marker(prefix, org))
        .arg(MARKER_VALUE)
        .invoke_async(connection)
        .await
        .map_err(redis_error)?;
    if done == 1 {
        return Ok(());
    }
    let pattern = format!(
        "{}{}*",
        glob_escape(&format!("{prefix}raw-")),
        glob_escape(org.as_str())
    );
    let ids: Vec<CertId> = scan_records(connection, prefix, &pattern)
        .await?
        .into_iter()
        .filter(|id| id.org() == org)
        .collect();
    let added = add_missing(connection, prefix, org, &ids).await?;
    let _: () = connection
        .set(marker(prefix, org), MARKER_VALUE)
        .await
        .map_err(redis_error)?;
    if added > 0 {
        tracing::info!(%org, added, "indexed certificates stored without an index (Tyk's index migration)");
    }
    Ok(())
}

/// Every record ID under keys matching `pattern`, by SCAN.
async fn scan_records(
    connection: &mut ConnectionManager,
    prefix: &str,
    pattern: &str,
) -> Result<Vec<CertId>, StorageError> {
    let record_prefix = format!("{prefix}raw-");
    let mut ids = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .query_async(connection)
            .await
            .map_err(redis_error)?;
        ids.extend(keys.iter().filter_map(|key| {
            key.strip_prefix(&record_prefix)
                .and_then(|id| id.parse::<CertId>().ok())
        }));
        if next == 0 {
            break;
        }
        cursor = next;
    }
    // SCAN may return a key more than once.
    let mut seen = HashSet::new();
    ids.retain(|id| seen.insert(id.clone()));
    Ok(ids)
}

/// Pushes the entries of `ids` missing from the org's index (the org-less index for the empty
/// org), batch by batch. Returns how many were pushed.
async fn add_missing(
    connection: &mut ConnectionManager,
    prefix: &str,
    org: &OrgId,
    ids: &[CertId],
) -> Result<usize, StorageError> {
    let index = if org.is_empty() {
        orgless_index(prefix)
    } else {
        tyk_index(prefix, org)
    };
    let script = Script::new(ADD_MISSING);
    let mut added = 0usize;
    for batch in ids.chunks(BATCH) {
        let mut invocation = script.prepare_invoke();
        invocation.key(&index).key(orgs_set(prefix));
        for id in batch {
            invocation.key(record_key(prefix, id));
        }
        invocation.arg(org.as_str());
        for id in batch {
            invocation.arg(format!("raw-{id}"));
        }
        let n: i64 = invocation
            .invoke_async(connection)
            .await
            .map_err(redis_error)?;
        added += usize::try_from(n).unwrap_or(0);
    }
    Ok(added)
}

/// Moves the entries older certgate versions pushed onto `cert--index` to the org-less index.
async fn move_orgless(
    connection: &mut ConnectionManager,
    prefix: &str,
) -> Result<usize, StorageError> {
    let moved: i64 = Script::new(MOVE_ORGLESS)
        .key(legacy_orgless_index(prefix))
        .key(orgless_index(prefix))
        .key(orgs_set(prefix))
        .arg(prefix)
        .invoke_async(connection)
        .await
        .map_err(redis_error)?;
    let moved = usize::try_from(moved).unwrap_or(0);
    if moved > 0 {
        tracing::info!(
            moved,
            "moved org-less certificate IDs from cert--index (written by an older certgate) to certgate's own org-less index"
        );
    }
    Ok(moved)
}

/// Up to `limit` record texts, found by at most `steps` SCAN calls over `<prefix>raw-*` (a
/// sample: never the whole keyspace).
pub(crate) async fn sample_records(
    connection: &ConnectionManager,
    prefix: &str,
    limit: usize,
    steps: usize,
) -> Result<Vec<String>, StorageError> {
    let mut connection = connection.clone();
    let pattern = format!("{}*", glob_escape(&format!("{prefix}raw-")));
    let mut keys: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    for _ in 0..steps {
        let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .query_async(&mut connection)
            .await
            .map_err(redis_error)?;
        keys.extend(found);
        if next == 0 || keys.len() >= limit {
            break;
        }
        cursor = next;
    }
    keys.sort_unstable();
    keys.dedup();
    keys.truncate(limit);
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let texts: Vec<Option<String>> = connection.mget(&keys).await.map_err(redis_error)?;
    Ok(texts.into_iter().flatten().collect())
}

/// What [`reindex`] found and did.
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
pub(crate) async fn reindex(
    connection: &ConnectionManager,
    prefix: &str,
) -> Result<ReindexReport, StorageError> {
    let mut connection = connection.clone();
    let mut report = ReindexReport {
        moved_orgless: move_orgless(&mut connection, prefix).await?,
        ..ReindexReport::default()
    };
    let pattern = format!("{}*", glob_escape(&format!("{prefix}raw-")));
    let mut by_org: BTreeMap<OrgId, Vec<CertId>> = BTreeMap::new();
    for id in scan_records(&mut connection, prefix, &pattern).await? {
        by_org.entry(id.org().clone()).or_default().push(id);
    }
    report.orgs = by_org.len();
    for (org, ids) in &by_org {
        report.records += ids.len();
        report.added += add_missing(&mut connection, prefix, org, ids).await?;
        if !org.is_empty() {
            let _: () = connection
                .set(marker(prefix, org), MARKER_VALUE)
                .await
                .map_err(redis_error)?;
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
