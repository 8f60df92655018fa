//! Cooldowns shared through Redis, with Tyk's keys.
//!
//! | cooldown | key | value |
//! | --- | --- | --- |
//! | check | `cert-cooldown:cert_check_cooldown:<fingerprint>` | `"1"`, TTL `check_cooldown_seconds` |
//! | event | `cert-cooldown:cert_expiry_event_cooldown:<fingerprint>` | `"1"`, TTL `event_cooldown_seconds` |
//!
//! A claim is `SET key 1 NX PX <ms>` (atomic: of N monitors exactly one wins), pipelined with
//! `PTTL key` so a loser learns how long the winner holds it. Tyk reads these keys with `GET`,
//! so a Tyk gateway on the same Redis honours our cooldowns and we honour its.

use std::time::Duration;

use async_trait::async_trait;
use cert_store::{RedisConfig, StorageError, StorageErrorKind};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError};
use time::OffsetDateTime;
use tls_core::Fingerprint;

use crate::cooldown::{Claim, CooldownKind, CooldownStore};

/// How long one cooldown command may take with [`RedisCooldowns::connect`].
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_millis(250);
/// How long connecting may take with [`RedisCooldowns::connect`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Cooldowns in Redis, shared by every monitor (and every Tyk gateway) using the same Redis.
///
/// Claims run on the monitor's background worker, never on the request path. The connection
/// is multiplexed and reconnects by itself; while Redis is unreachable claims fail fast (short
/// timeouts, one reconnection retry) and the monitor uses its in-process cooldowns.
#[derive(Clone)]
pub struct RedisCooldowns {
    connection: ConnectionManager,
    prefix: String,
}

impl core::fmt::Debug for RedisCooldowns {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RedisCooldowns")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisCooldowns {
    /// Connects to `url` with short timeouts ([`DEFAULT_RESPONSE_TIMEOUT`],
    /// [`DEFAULT_CONNECT_TIMEOUT`]) and Tyk's key prefix `cert-cooldown:`. Fails if Redis cannot
    /// be reached now.
    pub async fn connect(url: &str) -> Result<Self, StorageError> {
        let mut config = RedisConfig::new(url);
        config.response_timeout = DEFAULT_RESPONSE_TIMEOUT;
        config.connect_timeout = DEFAULT_CONNECT_TIMEOUT;
        Self::connect_with(&config).await
    }

    /// Connects with `config`'s URL and timeouts (keep them short: a claim waits that long when
    /// Redis hangs). Keys are `<key_prefix>cooldown:...`, so the default prefix `cert-` gives
    /// Tyk's `cert-cooldown:...`. Fails if Redis cannot be reached now.
    pub async fn connect_with(config: &RedisConfig) -> Result<Self, StorageError> {
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
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(100));
        let connection = client
            .get_connection_manager_with_config(manager_config)
            .await
            .map_err(storage_error)?;
        Ok(Self {
            connection,
            prefix: format!("{}cooldown:", config.key_prefix),
        })
    }

    /// The key of a cooldown, e.g. `cert-cooldown:cert_check_cooldown:<fingerprint>`.
    pub fn key(&self, kind: CooldownKind, fingerprint: &Fingerprint) -> String {
        format!("{}{}:{fingerprint}", self.prefix, kind.key_segment())
    }

    /// Checks that Redis answers (and reconnects if it had gone away).
    pub async fn ping(&self) -> Result<(), StorageError> {
        let mut connection = self.connection.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .map(drop)
            .map_err(storage_error)
    }
}

#[async_trait]
impl CooldownStore for RedisCooldowns {
    async fn claim(
        &self,
        kind: CooldownKind,
        fingerprint: &Fingerprint,
        ttl: Duration,
        _now: OffsetDateTime,
    ) -> Result<Claim, StorageError> {
        let key = self.key(kind, fingerprint);
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut connection = self.connection.clone();
        let (set, pttl): (Option<String>, i64) = redis::pipe()
            .cmd("SET")
            .arg(&key)
            .arg("1")
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms)
            .cmd("PTTL")
            .arg(&key)
            .query_async(&mut connection)
            .await
            .map_err(storage_error)?;
        if set.is_some() {
            return Ok(Claim::Won);
        }
        let remaining = match pttl {
            // No TTL (written by someone else without one): treat it as a full cooldown.
            -1 => ttl,
            // Gone between SET and PTTL: it lapsed just now.
            ms if ms < 0 => Duration::ZERO,
            ms => Duration::from_millis(ms.unsigned_abs()),
        };
        Ok(Claim::Held { remaining })
    }
}

fn storage_error(e: RedisError) -> StorageError {
    let kind = if e.is_timeout() {
        StorageErrorKind::Timeout
    } else if e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
    {
        StorageErrorKind::Unavailable
    } else if matches!(e.kind(), redis::ErrorKind::AuthenticationFailed) {
        StorageErrorKind::Rejected
    } else {
        StorageErrorKind::Other
    };
    StorageError::new(kind, format!("redis cooldowns: {e}")).with_source(e)
}
