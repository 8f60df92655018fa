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
//! The prefix defaults to Tyk's `cert-`. Writes are Lua scripts, so a record, its index entry and
//! its notice happen together or not at all, and of concurrent inserts of one ID exactly one
//! wins (no EXISTS-then-SET race). The connection is multiplexed and reconnects by itself; the
//! subscriber reconnects too and reports [`Change::Resync`] when it may have missed notices.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands as _, Client, RedisError, Script};
use tls_core::{CertId, OrgId};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::error::{StorageError, StorageErrorKind};
use crate::storage::{CertStorage, Change, Changes, Cursor, Inserted, Page, PageRequest, Scope};

/// Where and how to connect.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RedisConfig {
    /// A Redis URL: `redis://[user[:password]@]host:port[/db]`, `rediss://` for TLS, or
    /// `redis+unix:///path/to/socket?db=N`.
    pub url: String,
    /// Key prefix (Tyk's `cert-` by default).
    pub key_prefix: String,
    /// How long one command may take before it fails with a timeout.
    pub response_timeout: Duration,
    /// How long connecting may take.
    pub connect_timeout: Duration,
}

impl RedisConfig {
    /// The defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key_prefix: "cert-".to_owned(),
            response_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
        }
    }

    /// Sets the key prefix.
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
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

/// Certificate records in Redis. See the module docs for the layout.
pub struct RedisStorage {
    connection: ConnectionManager,
    keys: Keys,
    scripts: Arc<Scripts>,
    changes: broadcast::Sender<Change>,
    subscriber: JoinHandle<()>,
    migration: crate::redis_migrate::Migration,
}

struct Scripts {
    insert: Script,
    delete: Script,
    replace: Script,
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

fn storage_error(e: RedisError) -> StorageError {
    let kind = if e.is_timeout() {
        StorageErrorKind::Timeout
    } else if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
        StorageErrorKind::Unavailable
    } else if matches!(e.kind(), redis::ErrorKind::AuthenticationFailed) {
        StorageErrorKind::Rejected
    } else if e.is_unrecoverable_error() {
        StorageErrorKind::Unavailable
    } else {
        StorageErrorKind::Other
    };
    StorageError::new(kind, format!("redis: {e}")).with_source(e)
}

impl RedisStorage {
    /// Connects (failing if Redis cannot be reached now) and starts the change subscriber.
    pub async fn connect(config: RedisConfig) -> Result<Self, StorageError> {
        let client = Client::open(config.url.as_str()).map_err(|e| {
            StorageError::new(
                StorageErrorKind::Rejected,
                format!("invalid Redis URL: {e}"),
            )
            .with_source(e)
        })?;
        let manager_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(config.response_timeout))
            .set_connection_timeout(Some(config.connect_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let connection = client
            .get_connection_manager_with_config(manager_config)
            .await
            .map_err(storage_error)?;
        let keys = Keys {
            prefix: config.key_prefix,
        };
        let (changes, _) = broadcast::channel(4096);
        let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
        let subscriber = tokio::spawn(subscribe_forever(
            client,
            keys.channel(),
            changes.clone(),
            subscribed_tx,
        ));
        // Notices sent before the subscription exists would be lost: wait for it (bounded).
        if tokio::time::timeout(config.connect_timeout, subscribed)
            .await
            .is_err()
        {
            tracing::warn!(
                "the Redis change subscription is not up yet; notices may be missed until it is"
            );
        }
        Ok(Self {
            connection,
            keys,
            scripts: Arc::new(Scripts {
                insert: Script::new(INSERT),
                delete: Script::new(DELETE),
                replace: Script::new(REPLACE),
            }),
            changes,
            subscriber,
            migration: crate::redis_migrate::Migration::default(),
        })
    }

    /// Indexes every stored record of every org, as Tyk's first listing does for one org (see
    /// [`ReindexReport`](crate::ReindexReport)): SCANs `<prefix>raw-*` once. Safe to run
    /// while gateways serve and list.
    pub async fn reindex(&self) -> Result<crate::ReindexReport, StorageError> {
        crate::redis_migrate::reindex(&self.connection, &self.keys.prefix).await
    }

    /// A sample of up to `limit` stored record texts, whoever wrote them (Tyk or certgate),
    /// found by at most five SCAN calls: never a scan of the whole keyspace.
    pub async fn sample_records(&self, limit: usize) -> Result<Vec<String>, StorageError> {
        crate::redis_migrate::sample_records(&self.connection, &self.keys.prefix, limit, 5).await
    }

    fn insert_invocation<'a>(&'a self, id: &CertId, record: &str) -> redis::ScriptInvocation<'a> {
        let mut invocation = self.scripts.insert.prepare_invoke();
        invocation
            .key(self.keys.record(id))
            .key(self.keys.index(id.org()))
            .key(self.keys.orgs())
            .arg(record)
            .arg(index_entry(id))
            .arg(id.org().as_str())
            .arg(self.keys.channel())
            .arg(notice(id, ADDED));
        invocation
    }

    async fn list_org(
        &self,
        org: &OrgId,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<CertId>, bool), StorageError> {
        let mut connection = self.connection.clone();
        let start = isize::try_from(offset).unwrap_or(isize::MAX);
        let stop = isize::try_from(offset.saturating_add(limit)).unwrap_or(isize::MAX);
        // One extra entry tells whether another page follows.
        let entries: Vec<String> = connection
            .lrange(self.keys.index(org), start, stop)
            .await
            .map_err(storage_error)?;
        let more = entries.len() > limit;
        let ids = entries
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
        Ok((ids, more))
    }
}

impl Drop for RedisStorage {
    fn drop(&mut self) {
        self.subscriber.abort();
    }
}

/// Keeps a pub/sub subscription alive, reconnecting with backoff; reports [`Change::Resync`]
/// whenever notices may have been missed.
async fn subscribe_forever(
    client: Client,
    channel: String,
    changes: broadcast::Sender<Change>,
    subscribed: tokio::sync::oneshot::Sender<()>,
) {
    let mut subscribed = Some(subscribed);
    let mut delay = Duration::from_millis(50);
    // Set after a lost or failed subscription; the notice goes out once subscribed again, so
    // caches are cleared when Redis can refill them, not while it is away.
    let mut missed = false;
    loop {
        match client.get_async_pubsub().await {
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
                Err(e) => tracing::warn!(error = %e, "cannot subscribe to Redis change notices"),
            },
            Err(e) => tracing::debug!(error = %e, "Redis change subscriber cannot connect yet"),
        }
        missed = true;
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

#[async_trait]
impl CertStorage for RedisStorage {
    async fn insert(&self, id: &CertId, record: &str) -> Result<Inserted, StorageError> {
        let mut connection = self.connection.clone();
        let added: i64 = self
            .insert_invocation(id, record)
            .invoke_async(&mut connection)
            .await
            .map_err(storage_error)?;
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
        let mut connection = self.connection.clone();
        let pipelined = async {
            self.scripts.insert.load_async(&mut connection).await?;
            let mut pipe = redis::pipe();
            for (id, record) in records {
                pipe.cmd("EVALSHA")
                    .arg(self.scripts.insert.get_hash())
                    .arg(3)
                    .arg(self.keys.record(id))
                    .arg(self.keys.index(id.org()))
                    .arg(self.keys.orgs())
                    .arg(record)
                    .arg(index_entry(id))
                    .arg(id.org().as_str())
                    .arg(self.keys.channel())
                    .arg(notice(id, ADDED));
            }
            pipe.query_async::<Vec<i64>>(&mut connection).await
        };
        match pipelined.await {
            Ok(flags) if flags.len() == records.len() => flags
                .into_iter()
                .map(|added| {
                    Ok(if added == 1 {
                        Inserted::Added
                    } else {
                        Inserted::AlreadyExists
                    })
                })
                .collect(),
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
        let mut connection = self.connection.clone();
        connection
            .get(self.keys.record(id))
            .await
            .map_err(storage_error)
    }

    async fn replace(
        &self,
        id: &CertId,
        expected: &str,
        record: &str,
    ) -> Result<bool, StorageError> {
        let mut connection = self.connection.clone();
        let replaced: i64 = self
            .scripts
            .replace
            .key(self.keys.record(id))
            .arg(expected)
            .arg(record)
            .arg(self.keys.channel())
            .arg(notice(id, REPLACED))
            .invoke_async(&mut connection)
            .await
            .map_err(storage_error)?;
        Ok(replaced == 1)
    }

    async fn delete(&self, id: &CertId) -> Result<bool, StorageError> {
        let mut connection = self.connection.clone();
        let existed: i64 = self
            .scripts
            .delete
            .key(self.keys.record(id))
            .key(self.keys.index(id.org()))
            .key(self.keys.orgs())
            .arg(index_entry(id))
            .arg(id.org().as_str())
            .arg(self.keys.channel())
            .arg(notice(id, REMOVED))
            .invoke_async(&mut connection)
            .await
            .map_err(storage_error)?;
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
                    self.migration
                        .before_listing(&self.connection, &self.keys.prefix, Some(org))
                        .await?;
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
                    self.migration
                        .before_listing(&self.connection, &self.keys.prefix, None)
                        .await?;
                }
                let mut connection = self.connection.clone();
                let mut orgs: Vec<String> = connection
                    .smembers(self.keys.orgs())
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
        let mut connection = self.connection.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
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
