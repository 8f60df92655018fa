//! A coordinator that counts the challenge lookups of another one.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::coordinator::{Commit, Coordinator, Lock};
use crate::error::AcmeError;

/// Wraps a coordinator and counts its challenge lookups by kind (`http-01`, `tls-alpn-01`).
///
/// ```
/// use std::sync::Arc;
///
/// use acme::testkit::CountingCoordinator;
/// use acme::{ChallengeResponder, MemoryCoordinator};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let counting = Arc::new(CountingCoordinator::new(Arc::new(MemoryCoordinator::default())));
/// let responder = ChallengeResponder::new(counting.clone());
/// assert_eq!(responder.http01("token").await, None);
/// assert_eq!(responder.http01("../etc").await, None, "not a token: not looked up");
/// assert_eq!((counting.http01_lookups(), counting.tls_alpn01_lookups()), (1, 0));
/// # });
/// ```
pub struct CountingCoordinator {
    inner: Arc<dyn Coordinator>,
    http01: AtomicUsize,
    tls_alpn01: AtomicUsize,
}

impl CountingCoordinator {
    /// Counts the lookups of `inner`.
    pub fn new(inner: Arc<dyn Coordinator>) -> Self {
        Self {
            inner,
            http01: AtomicUsize::new(0),
            tls_alpn01: AtomicUsize::new(0),
        }
    }

    /// `http-01` challenge lookups so far.
    pub fn http01_lookups(&self) -> usize {
        self.http01.load(Ordering::SeqCst)
    }

    /// `tls-alpn-01` challenge lookups so far.
    pub fn tls_alpn01_lookups(&self) -> usize {
        self.tls_alpn01.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl Coordinator for CountingCoordinator {
    async fn acquire(&self, name: &str, ttl: Duration) -> Result<Option<Lock>, AcmeError> {
        self.inner.acquire(name, ttl).await
    }
    async fn extend(&self, lock: &Lock, ttl: Duration) -> Result<bool, AcmeError> {
        self.inner.extend(lock, ttl).await
    }
    async fn release(&self, lock: &Lock) -> Result<(), AcmeError> {
        self.inner.release(lock).await
    }
    async fn commit(&self, lock: &Lock, cert_id: &str) -> Result<Commit, AcmeError> {
        self.inner.commit(lock, cert_id).await
    }
    async fn current(&self, name: &str) -> Result<Option<String>, AcmeError> {
        self.inner.current(name).await
    }
    async fn put_challenge(&self, key: &str, answer: &str, ttl: Duration) -> Result<(), AcmeError> {
        self.inner.put_challenge(key, answer, ttl).await
    }
    async fn challenge(&self, key: &str) -> Result<Option<String>, AcmeError> {
        if key.starts_with("http-01:") {
            self.http01.fetch_add(1, Ordering::SeqCst);
        } else if key.starts_with("tls-alpn-01:") {
            self.tls_alpn01.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.challenge(key).await
    }
    async fn remove_challenge(&self, key: &str) -> Result<(), AcmeError> {
        self.inner.remove_challenge(key).await
    }
    async fn account(&self, directory: &str) -> Result<Option<String>, AcmeError> {
        self.inner.account(directory).await
    }
    async fn put_account(&self, directory: &str, sealed: &str) -> Result<String, AcmeError> {
        self.inner.put_account(directory, sealed).await
    }
    async fn status(&self, name: &str) -> Result<Option<String>, AcmeError> {
        self.inner.status(name).await
    }
    async fn put_status(&self, name: &str, status: &str) -> Result<(), AcmeError> {
        self.inner.put_status(name, status).await
    }
}
