//! The fleet's coordinator: locks, fencing tokens, challenge answers, the sealed account and the
//! names' status in Redis, under keys starting `certgate-acme-`. Compare-and-set steps are Lua
//! scripts, so each runs atomically on the server. The keys of one name share a hash tag
//! (`{name}`).

use std::time::Duration;

use cert_store::RedisConnection;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands as _, Script};

use crate::coordinator::{Commit, Coordinator, Lock};
use crate::error::AcmeError;

const PREFIX: &str = "certgate-acme-";

/// Takes the lock if free: bumps the name's fence counter and stores the new fence as the
/// lock's value with the TTL. Returns the fence, or 0 while the lock is held.
const ACQUIRE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], fence, 'PX', ARGV[1])
return fence
";

/// Extends the lock if it still holds this fence.
const EXTEND: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

/// Deletes the lock if it still holds this fence.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
";

/// Records the certificate if no newer fence was granted; returns {1, previous or ''} or {0, ''}.
const COMMIT: &str = r"
local newest = tonumber(redis.call('GET', KEYS[1]) or '0')
if newest ~= tonumber(ARGV[1]) then return {0, ''} end
local previous = redis.call('GET', KEYS[2]) or ''
redis.call('SET', KEYS[2], ARGV[2])
return {1, previous}
";

/// Coordination through one Redis server (or a primary): every process of a fleet that
/// connects to the same Redis orders each name once at a time.
#[derive(Clone)]
pub struct RedisCoordinator {
    connection: ConnectionManager,
}

impl std::fmt::Debug for RedisCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCoordinator").finish_non_exhaustive()
    }
}

fn failed(error: redis::RedisError) -> AcmeError {
    tracing::debug!(%error, "ACME coordination through Redis failed");
    AcmeError::Coordination("Redis cannot be reached or refused the command".to_owned())
}

fn key(kind: &str, name: &str) -> String {
    format!("{PREFIX}{kind}-{{{name}}}")
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisCoordinator {
    /// Connects to `url` (`redis://[user:password@]host:port/db` or `rediss://...`, read by
    /// cert-store's [`RedisConnection::from_url`]).
    pub async fn connect(url: &str) -> Result<Self, AcmeError> {
        let connection = RedisConnection::from_url(url).map_err(|_| {
            AcmeError::Coordination("the Redis address is not a redis:// URL".to_owned())
        })?;
        Self::connect_to(&connection).await
    }

    /// Connects to the one Redis node `connection` describes (the store's own connection
    /// description; its client comes from cert-store).
    pub async fn connect_to(connection: &RedisConnection) -> Result<Self, AcmeError> {
        let client = connection.single_node_client().map_err(|error| {
            tracing::debug!(%error, "no Redis client for ACME coordination");
            AcmeError::Coordination(
                "ACME coordinates through one Redis node, not a Redis Cluster or Sentinel setup"
                    .to_owned(),
            )
        })?;
        let connection = ConnectionManager::new(client).await.map_err(failed)?;
        Ok(Self { connection })
    }
}

#[async_trait::async_trait]
impl Coordinator for RedisCoordinator {
    async fn acquire(&self, name: &str, ttl: Duration) -> Result<Option<Lock>, AcmeError> {
        let fence: u64 = Script::new(ACQUIRE)
            .key(key("lock", name))
            .key(key("fence", name))
            .arg(millis(ttl))
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(failed)?;
        Ok((fence > 0).then(|| Lock {
            name: name.to_owned(),
            fence,
        }))
    }

    async fn extend(&self, lock: &Lock, ttl: Duration) -> Result<bool, AcmeError> {
        let extended: i64 = Script::new(EXTEND)
            .key(key("lock", &lock.name))
            .arg(lock.fence)
            .arg(millis(ttl))
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(failed)?;
        Ok(extended == 1)
    }

    async fn release(&self, lock: &Lock) -> Result<(), AcmeError> {
        let _: i64 = Script::new(RELEASE)
            .key(key("lock", &lock.name))
            .arg(lock.fence)
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn commit(&self, lock: &Lock, cert_id: &str) -> Result<Commit, AcmeError> {
        let (committed, previous): (i64, String) = Script::new(COMMIT)
            .key(key("fence", &lock.name))
            .key(key("cert", &lock.name))
            .arg(lock.fence)
            .arg(cert_id)
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(failed)?;
        if committed != 1 {
            return Ok(Commit::Superseded);
        }
        Ok(Commit::Committed {
            previous: Some(previous).filter(|p| !p.is_empty() && p != cert_id),
        })
    }

    async fn current(&self, name: &str) -> Result<Option<String>, AcmeError> {
        self.connection
            .clone()
            .get(key("cert", name))
            .await
            .map_err(failed)
    }

    async fn put_challenge(
        &self,
        challenge: &str,
        answer: &str,
        ttl: Duration,
    ) -> Result<(), AcmeError> {
        self.connection
            .clone()
            .pset_ex(
                format!("{PREFIX}challenge-{challenge}"),
                answer,
                millis(ttl),
            )
            .await
            .map_err(failed)
    }

    async fn challenge(&self, challenge: &str) -> Result<Option<String>, AcmeError> {
        self.connection
            .clone()
            .get(format!("{PREFIX}challenge-{challenge}"))
            .await
            .map_err(failed)
    }

    async fn remove_challenge(&self, challenge: &str) -> Result<(), AcmeError> {
        self.connection
            .clone()
            .del(format!("{PREFIX}challenge-{challenge}"))
            .await
            .map_err(failed)
    }

    async fn account(&self, directory: &str) -> Result<Option<String>, AcmeError> {
        self.connection
            .clone()
            .get(account_key(directory))
            .await
            .map_err(failed)
    }

    async fn put_account(&self, directory: &str, sealed: &str) -> Result<String, AcmeError> {
        let mut connection = self.connection.clone();
        let key = account_key(directory);
        let _: bool = connection.set_nx(&key, sealed).await.map_err(failed)?;
        let stored: Option<String> = connection.get(&key).await.map_err(failed)?;
        stored.ok_or_else(|| AcmeError::Coordination("the stored account vanished".to_owned()))
    }

    async fn status(&self, name: &str) -> Result<Option<String>, AcmeError> {
        self.connection
            .clone()
            .get(key("status", name))
            .await
            .map_err(failed)
    }

    async fn put_status(&self, name: &str, status: &str) -> Result<(), AcmeError> {
        self.connection
            .clone()
            .set(key("status", name), status)
            .await
            .map_err(failed)
    }
}

fn account_key(directory: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, directory.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("{PREFIX}account-{hex}")
}
