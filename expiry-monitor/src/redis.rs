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
use cert_store::{KeyClaim, RedisConnection, RedisLink, StorageError};
use time::OffsetDateTime;
use tls_core::Fingerprint;

use crate::cooldown::{Claim, CooldownKind, CooldownStore};

/// How long one cooldown command may take with [`RedisCooldowns::connect`].
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_millis(250);
/// How long connecting may take with [`RedisCooldowns::connect`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Cooldowns in Redis, shared by every monitor (and every Tyk gateway) using the same Redis:
/// one node, a Redis Cluster (each claim is one key, so it runs on the node owning it) or a
/// sentinel-managed master (followed through failovers).
///
/// Claims run on the monitor's background worker, never on the request path. The connection
/// reconnects by itself (cert-store's `RedisLink`, which also classifies errors); while Redis is
/// unreachable claims fail fast (short timeouts, one reconnection retry) and the monitor uses
/// its in-process cooldowns.
#[derive(Clone)]
pub struct RedisCooldowns {
    link: RedisLink,
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
    /// Connects to `connection` with timeouts no longer than [`DEFAULT_RESPONSE_TIMEOUT`] and
    /// [`DEFAULT_CONNECT_TIMEOUT`], and Tyk's key prefix `cert-cooldown:`. Fails if Redis cannot
    /// be reached now.
    pub async fn connect(connection: RedisConnection) -> Result<Self, StorageError> {
        let connect = connection.connect_timeout.min(DEFAULT_CONNECT_TIMEOUT);
        let response = connection.response_timeout.min(DEFAULT_RESPONSE_TIMEOUT);
        Self::connect_with(&connection.with_timeouts(connect, response), "cert-").await
    }

    /// Connects with `connection`'s timeouts as given (keep them short: a claim waits that long
    /// when Redis hangs). Keys are `<key_prefix>cooldown:...`, so the prefix `cert-` gives Tyk's
    /// `cert-cooldown:...`. Fails if Redis cannot be reached now.
    pub async fn connect_with(
        connection: &RedisConnection,
        key_prefix: &str,
    ) -> Result<Self, StorageError> {
        Ok(Self {
            link: RedisLink::connect(connection, 1).await?,
            prefix: format!("{key_prefix}cooldown:"),
        })
    }

    /// The key of a cooldown, e.g. `cert-cooldown:cert_check_cooldown:<fingerprint>`.
    pub fn key(&self, kind: CooldownKind, fingerprint: &Fingerprint) -> String {
        format!("{}{}:{fingerprint}", self.prefix, kind.key_segment())
    }

    /// Checks that Redis answers (and reconnects if it had gone away).
    pub async fn ping(&self) -> Result<(), StorageError> {
        self.link.ping().await
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
        Ok(match self.link.claim_key(&key, ttl).await? {
            KeyClaim::Won => Claim::Won,
            // No TTL (written by someone else without one): treat it as a full cooldown.
            KeyClaim::Held { remaining } => Claim::Held {
                remaining: remaining.unwrap_or(ttl),
            },
            _ => Claim::Held { remaining: ttl },
        })
    }
}
