//! What the processes of a fleet share while obtaining certificates: per-name ordering locks
//! with fencing tokens, pending challenge answers, the ACME account, and which certificate is
//! the current one for each name.
//!
//! A lock is granted with a fencing token that grows with every grant for that name. The holder
//! commits its certificate with that token, and the commit is refused when a newer token was
//! granted since (the holder stalled past its lock's expiry and another process took over): a
//! stalled holder never replaces a newer certificate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cert_store::{Clock, SystemClock};
use time::OffsetDateTime;

use crate::error::AcmeError;

/// A granted ordering lock: the name and its fencing token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lock {
    /// The name being ordered.
    pub name: String,
    /// Grows with every grant for the name.
    pub fence: u64,
}

/// What a commit did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Commit {
    /// The certificate is now the name's; `previous` was the one it replaces.
    Committed {
        /// The certificate ID it replaces, if any.
        previous: Option<String>,
    },
    /// A newer lock was granted since: this certificate must not be used.
    Superseded,
}

/// Fleet-wide coordination for ACME (object-safe: `Arc<dyn Coordinator>`).
#[async_trait::async_trait]
pub trait Coordinator: Send + Sync + 'static {
    /// Grants the ordering lock for `name` for `ttl`, or `None` while another holder's lock lives.
    async fn acquire(&self, name: &str, ttl: Duration) -> Result<Option<Lock>, AcmeError>;
    /// Extends a held lock; false when it expired or was granted to someone else.
    async fn extend(&self, lock: &Lock, ttl: Duration) -> Result<bool, AcmeError>;
    /// Releases a held lock (nothing happens when it is no longer held).
    async fn release(&self, lock: &Lock) -> Result<(), AcmeError>;
    /// Makes `cert_id` the name's certificate if no lock newer than `lock` was granted.
    async fn commit(&self, lock: &Lock, cert_id: &str) -> Result<Commit, AcmeError>;
    /// The name's current certificate ID.
    async fn current(&self, name: &str) -> Result<Option<String>, AcmeError>;
    /// Publishes a challenge answer under `key` for `ttl`.
    async fn put_challenge(&self, key: &str, answer: &str, ttl: Duration) -> Result<(), AcmeError>;
    /// The challenge answer under `key`.
    async fn challenge(&self, key: &str) -> Result<Option<String>, AcmeError>;
    /// Withdraws a challenge answer.
    async fn remove_challenge(&self, key: &str) -> Result<(), AcmeError>;
    /// The stored (sealed) account for `directory`.
    async fn account(&self, directory: &str) -> Result<Option<String>, AcmeError>;
    /// Stores the sealed account for `directory` unless one exists; returns the stored one.
    async fn put_account(&self, directory: &str, sealed: &str) -> Result<String, AcmeError>;
    /// The name's renewal status (JSON written by [`put_status`](Self::put_status)).
    async fn status(&self, name: &str) -> Result<Option<String>, AcmeError>;
    /// Records the name's renewal status for `certctl acme status` and the other processes.
    async fn put_status(&self, name: &str, status: &str) -> Result<(), AcmeError>;
}

/// The key under which a challenge answer is published.
pub(crate) fn http01_key(token: &str) -> String {
    format!("http-01:{token}")
}

/// The key under which a `tls-alpn-01` key authorization is published.
pub(crate) fn tls_alpn01_key(name: &str) -> String {
    format!("tls-alpn-01:{}", name.to_ascii_lowercase())
}

#[derive(Default)]
struct MemoryState {
    /// Name: fence counter, current holder's fence and lock expiry.
    locks: HashMap<String, (u64, Option<(u64, OffsetDateTime)>)>,
    current: HashMap<String, String>,
    challenges: HashMap<String, (String, OffsetDateTime)>,
    accounts: HashMap<String, String>,
    status: HashMap<String, String>,
}

/// Coordination within one process (tests, a single gateway with memory storage). Expiry follows
/// the injected clock.
pub struct MemoryCoordinator {
    state: Mutex<MemoryState>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for MemoryCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCoordinator").finish_non_exhaustive()
    }
}

impl Default for MemoryCoordinator {
    fn default() -> Self {
        Self::new(Arc::new(SystemClock))
    }
}

impl MemoryCoordinator {
    /// A coordinator whose locks and challenges expire by `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            state: Mutex::default(),
            clock,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn ttl_of(ttl: Duration) -> time::Duration {
    time::Duration::try_from(ttl).unwrap_or(time::Duration::MAX)
}

#[async_trait::async_trait]
impl Coordinator for MemoryCoordinator {
    async fn acquire(&self, name: &str, ttl: Duration) -> Result<Option<Lock>, AcmeError> {
        let now = self.clock.now();
        let mut state = self.state();
        let (counter, holder) = state.locks.entry(name.to_owned()).or_default();
        if matches!(holder, Some((_, until)) if *until > now) {
            return Ok(None);
        }
        *counter += 1;
        *holder = Some((*counter, now + ttl_of(ttl)));
        Ok(Some(Lock {
            name: name.to_owned(),
            fence: *counter,
        }))
    }

    async fn extend(&self, lock: &Lock, ttl: Duration) -> Result<bool, AcmeError> {
        let now = self.clock.now();
        let mut state = self.state();
        match state.locks.get_mut(&lock.name) {
            Some((_, Some((fence, until)))) if *fence == lock.fence && *until > now => {
                *until = now + ttl_of(ttl);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release(&self, lock: &Lock) -> Result<(), AcmeError> {
        let mut state = self.state();
        if let Some((_, holder)) = state.locks.get_mut(&lock.name)
            && matches!(holder, Some((fence, _)) if *fence == lock.fence)
        {
            *holder = None;
        }
        Ok(())
    }

    async fn commit(&self, lock: &Lock, cert_id: &str) -> Result<Commit, AcmeError> {
        let mut state = self.state();
        let newest = state
            .locks
            .get(&lock.name)
            .map_or(0, |(counter, _)| *counter);
        if newest != lock.fence {
            return Ok(Commit::Superseded);
        }
        let previous = state
            .current
            .insert(lock.name.clone(), cert_id.to_owned())
            .filter(|previous| previous != cert_id);
        Ok(Commit::Committed { previous })
    }

    async fn current(&self, name: &str) -> Result<Option<String>, AcmeError> {
        Ok(self.state().current.get(name).cloned())
    }

    async fn put_challenge(&self, key: &str, answer: &str, ttl: Duration) -> Result<(), AcmeError> {
        let until = self.clock.now() + ttl_of(ttl);
        self.state()
            .challenges
            .insert(key.to_owned(), (answer.to_owned(), until));
        Ok(())
    }

    async fn challenge(&self, key: &str) -> Result<Option<String>, AcmeError> {
        let now = self.clock.now();
        Ok(self
            .state()
            .challenges
            .get(key)
            .filter(|(_, until)| *until > now)
            .map(|(answer, _)| answer.clone()))
    }

    async fn remove_challenge(&self, key: &str) -> Result<(), AcmeError> {
        self.state().challenges.remove(key);
        Ok(())
    }

    async fn account(&self, directory: &str) -> Result<Option<String>, AcmeError> {
        Ok(self.state().accounts.get(directory).cloned())
    }

    async fn put_account(&self, directory: &str, sealed: &str) -> Result<String, AcmeError> {
        Ok(self
            .state()
            .accounts
            .entry(directory.to_owned())
            .or_insert_with(|| sealed.to_owned())
            .clone())
    }

    async fn status(&self, name: &str) -> Result<Option<String>, AcmeError> {
        Ok(self.state().status.get(name).cloned())
    }

    async fn put_status(&self, name: &str, status: &str) -> Result<(), AcmeError> {
        self.state()
            .status
            .insert(name.to_owned(), status.to_owned());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use cert_store::ManualClock;

    use super::*;

    #[tokio::test]
    async fn a_lock_is_exclusive_until_it_expires_and_a_stale_holder_cannot_commit() {
        let clock = Arc::new(ManualClock::new(
            time::macros::datetime!(2026-01-01 0:00 UTC),
        ));
        let coordinator = MemoryCoordinator::new(clock.clone());
        let ttl = Duration::from_secs(60);
        let first = coordinator
            .acquire("a.example", ttl)
            .await
            .unwrap()
            .unwrap();
        assert!(
            coordinator
                .acquire("a.example", ttl)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            coordinator
                .acquire("b.example", ttl)
                .await
                .unwrap()
                .is_some()
        );
        assert!(coordinator.extend(&first, ttl).await.unwrap());

        clock.advance(time::Duration::seconds(61));
        let second = coordinator
            .acquire("a.example", ttl)
            .await
            .unwrap()
            .unwrap();
        assert!(second.fence > first.fence);
        assert!(!coordinator.extend(&first, ttl).await.unwrap());
        assert_eq!(
            coordinator.commit(&second, "new").await.unwrap(),
            Commit::Committed { previous: None }
        );
        // The stalled first holder wakes up: its result is refused and its release is a no-op.
        assert_eq!(
            coordinator.commit(&first, "stale").await.unwrap(),
            Commit::Superseded
        );
        coordinator.release(&first).await.unwrap();
        assert!(
            coordinator
                .acquire("a.example", ttl)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            coordinator.current("a.example").await.unwrap().as_deref(),
            Some("new")
        );

        coordinator.release(&second).await.unwrap();
        let third = coordinator
            .acquire("a.example", ttl)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            coordinator.commit(&third, "newer").await.unwrap(),
            Commit::Committed {
                previous: Some("new".to_owned())
            }
        );
    }

    #[tokio::test]
    async fn challenges_expire_and_the_first_account_stays() {
        let clock = Arc::new(ManualClock::new(
            time::macros::datetime!(2026-01-01 0:00 UTC),
        ));
        let coordinator = MemoryCoordinator::new(clock.clone());
        coordinator
            .put_challenge("http-01:t", "t.k", Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(
            coordinator.challenge("http-01:t").await.unwrap().as_deref(),
            Some("t.k")
        );
        clock.advance(time::Duration::seconds(11));
        assert_eq!(coordinator.challenge("http-01:t").await.unwrap(), None);
        assert_eq!(coordinator.put_account("d", "one").await.unwrap(), "one");
        assert_eq!(coordinator.put_account("d", "two").await.unwrap(), "one");
    }
}
