//! Cooldowns shared between monitors: the [`CooldownStore`] trait and its in-memory
//! implementation. (`RedisCooldowns`, feature `redis`, shares them across processes.)
//!
//! A cooldown is *claimed*: the first caller gets it ([`Claim::Won`]) and everyone else learns
//! how long it is still held ([`Claim::Held`]). An atomic claim is what lets N monitors emit
//! exactly one event per certificate per cooldown; Tyk's check-then-set lets two gateways both
//! see "no cooldown" and both fire.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use cert_store::StorageError;
use time::OffsetDateTime;
use tls_core::Fingerprint;

/// Which cooldown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CooldownKind {
    /// The minimum gap between two checks of a certificate (`check_cooldown_seconds`).
    Check,
    /// The minimum gap between two events for a certificate (`event_cooldown_seconds`).
    Event,
}

impl CooldownKind {
    /// Tyk's key segment: `cert_check_cooldown` or `cert_expiry_event_cooldown`.
    pub const fn key_segment(self) -> &'static str {
        match self {
            Self::Check => "cert_check_cooldown",
            Self::Event => "cert_expiry_event_cooldown",
        }
    }
}

/// The outcome of a claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// This caller holds the cooldown now, for the full time asked.
    Won,
    /// Someone else holds it, for about `remaining` more.
    Held {
        /// How long the current holder keeps it.
        remaining: Duration,
    },
}

/// Where cooldowns are claimed. Implementations must make [`claim`](Self::claim) atomic: of
/// concurrent claims of one cooldown, from any number of monitors, exactly one wins.
///
/// Errors say whether retrying can help ([`StorageError::is_temporary`]); on any error the
/// monitor decides with its own in-process cooldowns until the store answers again.
#[async_trait]
pub trait CooldownStore: Send + Sync + 'static {
    /// Claims cooldown `kind` of certificate `fingerprint` for `ttl`, unless someone holds it.
    /// `now` is the monitor's clock; a store with a clock of its own (Redis) may ignore it.
    async fn claim(
        &self,
        kind: CooldownKind,
        fingerprint: &Fingerprint,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<Claim, StorageError>;
}

#[async_trait]
impl<T: CooldownStore + ?Sized> CooldownStore for std::sync::Arc<T> {
    async fn claim(
        &self,
        kind: CooldownKind,
        fingerprint: &Fingerprint,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<Claim, StorageError> {
        (**self).claim(kind, fingerprint, ttl, now).await
    }
}

/// Cooldowns in this process's memory, timed by the monitor's clock. Share one (in an `Arc`)
/// between monitors in a process to give them common cooldowns; it is the default store of a
/// monitor built without one.
#[derive(Debug, Default)]
pub struct MemoryCooldowns {
    claims: Mutex<Claims>,
}

#[derive(Debug, Default)]
struct Claims {
    until: HashMap<(CooldownKind, Fingerprint), OffsetDateTime>,
    inserts_since_purge: usize,
}

/// Expired claims are dropped after this many new ones.
const PURGE_EVERY: usize = 1024;

impl MemoryCooldowns {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl CooldownStore for MemoryCooldowns {
    async fn claim(
        &self,
        kind: CooldownKind,
        fingerprint: &Fingerprint,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<Claim, StorageError> {
        let mut claims = self.claims.lock().unwrap_or_else(|p| p.into_inner());
        let key = (kind, *fingerprint);
        if let Some(&until) = claims.until.get(&key)
            && until > now
        {
            let remaining = Duration::try_from(until - now).unwrap_or_default();
            return Ok(Claim::Held { remaining });
        }
        claims.until.insert(key, now + ttl);
        claims.inserts_since_purge += 1;
        if claims.inserts_since_purge >= PURGE_EVERY {
            claims.inserts_since_purge = 0;
            claims.until.retain(|_, until| *until > now);
        }
        Ok(Claim::Won)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[tokio::test]
    async fn memory_claims_are_exclusive_until_they_lapse() {
        let store = MemoryCooldowns::new();
        let fp = Fingerprint::of(b"a");
        let now = datetime!(2026-11-29 0:00 UTC);
        let ttl = Duration::from_secs(60);
        let claim = |kind, now| store.claim(kind, &fp, ttl, now);
        assert_eq!(claim(CooldownKind::Event, now).await.unwrap(), Claim::Won);
        assert_eq!(
            claim(CooldownKind::Event, now + time::Duration::SECOND)
                .await
                .unwrap(),
            Claim::Held {
                remaining: Duration::from_secs(59)
            }
        );
        // The other kind, and another certificate, are separate cooldowns.
        assert_eq!(claim(CooldownKind::Check, now).await.unwrap(), Claim::Won);
        assert_eq!(
            store
                .claim(CooldownKind::Event, &Fingerprint::of(b"b"), ttl, now)
                .await
                .unwrap(),
            Claim::Won
        );
        let later = now + time::Duration::seconds(60);
        assert_eq!(claim(CooldownKind::Event, later).await.unwrap(), Claim::Won);
    }

    #[test]
    fn key_segments_are_tyks() {
        assert_eq!(CooldownKind::Check.key_segment(), "cert_check_cooldown");
        assert_eq!(
            CooldownKind::Event.key_segment(),
            "cert_expiry_event_cooldown"
        );
    }
}
