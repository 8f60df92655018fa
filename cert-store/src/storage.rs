//! The storage trait that backends implement, and the types it speaks.
//!
//! A backend stores opaque record text under certificate IDs, keeps a per-org index so listing
//! never scans, and, if it can, tells subscribers what changed. It knows nothing of PEM,
//! encryption or TLS: the [`CertStore`](crate::CertStore) manager does that.

use core::fmt;

use async_trait::async_trait;
use tls_core::{CertId, OrgId};
use tokio::sync::broadcast;

use crate::error::StorageError;

/// Outcome of an insert-if-absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// The record was stored and indexed.
    Added,
    /// A record with this ID already existed; nothing was changed.
    AlreadyExists,
}

/// What a listing covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope<'a> {
    /// One org's certificates (the empty org included: it has an index of its own).
    Org(&'a OrgId),
    /// Every org's certificates.
    All,
}

/// An opaque position in a listing, returned by one page to ask for the next.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Cursor(String);

impl Cursor {
    /// Wraps a backend-specific position. Backends choose the format.
    pub fn new(position: impl Into<String>) -> Self {
        Self(position.into())
    }

    /// The position text, for backends and for passing through an HTTP API.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which page of a listing to return.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// Where to continue; `None` starts at the beginning.
    pub cursor: Option<Cursor>,
    /// Most IDs to return (at least 1; larger values may be capped by the backend).
    pub limit: usize,
}

impl PageRequest {
    /// The first page of at most `limit` IDs.
    pub fn first(limit: usize) -> Self {
        Self {
            cursor: None,
            limit,
        }
    }

    /// The page after `cursor`.
    pub fn after(cursor: Cursor, limit: usize) -> Self {
        Self {
            cursor: Some(cursor),
            limit,
        }
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self::first(1000)
    }
}

/// Walks a listing from its first page to its last: the one loop every caller that wants a
/// whole listing runs, whatever fetches the pages (a [`CertStorage`], the
/// [`CertStore`](crate::CertStore) manager, or an HTTP API that hands out cursors).
///
/// ```
/// # use cert_store::{Page, PageWalk};
/// # let fetch = |_: &cert_store::PageRequest| Ok::<_, ()>(Page { items: vec![1], next: None });
/// let mut walk = PageWalk::new(500);
/// let mut all = Vec::new();
/// while let Some(request) = walk.request() {
///     let page = fetch(request)?;
///     all.extend(walk.advance(page));
/// }
/// # assert_eq!(all, [1]);
/// # Ok::<(), ()>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageWalk {
    next: Option<PageRequest>,
    limit: usize,
    pages_left: usize,
}

impl PageWalk {
    /// A walk from the first page, asking for `limit` items a page.
    pub fn new(limit: usize) -> Self {
        Self {
            next: Some(PageRequest::first(limit)),
            limit,
            pages_left: usize::MAX,
        }
    }

    /// Stops after at most `pages` pages, whether or not the listing goes on.
    pub fn at_most(mut self, pages: usize) -> Self {
        self.pages_left = pages;
        if pages == 0 {
            self.next = None;
        }
        self
    }

    /// The page to fetch next; `None` once the last page (or the page budget) is used up.
    pub fn request(&self) -> Option<&PageRequest> {
        self.next.as_ref()
    }

    /// Takes in the page just fetched for [`PageWalk::request`] and returns its items.
    pub fn advance<T>(&mut self, page: Page<T>) -> Vec<T> {
        self.pages_left = self.pages_left.saturating_sub(1);
        self.next = page
            .next
            .filter(|_| self.pages_left > 0)
            .map(|cursor| PageRequest::after(cursor, self.limit));
        page.items
    }
}

/// One page of certificate IDs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, in the backend's stable order (insertion order for an org).
    pub items: Vec<T>,
    /// Where the next page starts; `None` when this was the last page.
    pub next: Option<Cursor>,
}

/// A change notice.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Change {
    /// A certificate was added.
    Added(CertId),
    /// A certificate was removed. A [`CertStore::delete`](crate::CertStore::delete) also tells
    /// its own process's subscribers when the record was already gone (an explicit delete).
    Removed(CertId),
    /// A record was rewritten in place (e.g. re-encrypted by a rekey).
    Replaced(CertId),
    /// Notices may have been missed (a subscriber lagged, or the backend reconnected): anything
    /// cached may be stale. It says nothing was deleted: a backend that lost its data (a Redis
    /// restarted empty) sends this, not [`Change::Removed`].
    Resync,
}

impl Change {
    /// The ID concerned, if the notice names one.
    pub fn id(&self) -> Option<&CertId> {
        match self {
            Self::Added(id) | Self::Removed(id) | Self::Replaced(id) => Some(id),
            Self::Resync => None,
        }
    }
}

/// A subscription to a backend's change notices.
#[derive(Debug)]
pub struct Changes(broadcast::Receiver<Change>);

impl Changes {
    /// Wraps a broadcast receiver (backends use a `tokio::sync::broadcast` channel).
    pub fn new(receiver: broadcast::Receiver<Change>) -> Self {
        Self(receiver)
    }

    /// The next notice; [`Change::Resync`] if notices were dropped because this subscriber fell
    /// behind; `None` once the backend is gone.
    pub async fn next(&mut self) -> Option<Change> {
        match self.0.recv().await {
            Ok(change) => Some(change),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(Change::Resync),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

/// Where certificate records live. Implement this for your own backend and check it with the
/// conformance suite (`testkit` feature).
///
/// Records are opaque text (the Tyk-compatible stored PEM). Every method is safe to call
/// concurrently. Errors say whether retrying can help ([`StorageError::is_temporary`]).
#[async_trait]
pub trait CertStorage: Send + Sync + 'static {
    /// Stores `record` under `id` if no record has that ID, and appends `id` to its org's index;
    /// both or neither. Of concurrent inserts of one ID exactly one gets [`Inserted::Added`].
    async fn insert(&self, id: &CertId, record: &str) -> Result<Inserted, StorageError>;

    /// Inserts many records; the result for each is as [`CertStorage::insert`] would give.
    /// Backends that can batch round trips override this.
    async fn insert_many(
        &self,
        records: &[(CertId, String)],
    ) -> Vec<Result<Inserted, StorageError>> {
        let mut results = Vec::with_capacity(records.len());
        for (id, record) in records {
            results.push(self.insert(id, record).await);
        }
        results
    }

    /// The record stored under `id`, if any.
    async fn get(&self, id: &CertId) -> Result<Option<String>, StorageError>;

    /// Rewrites the record of `id` if it is still `expected`; false if it changed or is gone.
    async fn replace(
        &self,
        id: &CertId,
        expected: &str,
        record: &str,
    ) -> Result<bool, StorageError>;

    /// Removes the record and its index entry; says whether it existed.
    async fn delete(&self, id: &CertId) -> Result<bool, StorageError>;

    /// A page of IDs in `scope`, from the index (never a keyspace scan).
    async fn list(
        &self,
        scope: Scope<'_>,
        page: &PageRequest,
    ) -> Result<Page<CertId>, StorageError>;

    /// A subscription to change notices from every process sharing this storage, or `None` if
    /// this backend cannot notify (the manager then relies on its cache TTL).
    fn watch(&self) -> Option<Changes>;

    /// Checks that the storage answers.
    async fn ping(&self) -> Result<(), StorageError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pages of `items` split in threes, cursors being the next offset.
    fn fetch(items: &[u32], request: &PageRequest) -> Page<u32> {
        let start = request
            .cursor
            .as_ref()
            .map_or(0, |c| c.as_str().parse().unwrap());
        let end = (start + request.limit).min(items.len());
        Page {
            items: items[start..end].to_vec(),
            next: (end < items.len()).then(|| Cursor::new(end.to_string())),
        }
    }

    #[test]
    fn page_walk_visits_every_page_once_in_order() {
        let items: Vec<u32> = (0..10).collect();
        let mut walk = PageWalk::new(3);
        let (mut seen, mut pages) = (Vec::new(), 0);
        while let Some(request) = walk.request() {
            assert_eq!(request.limit, 3);
            let page = fetch(&items, request);
            seen.extend(walk.advance(page));
            pages += 1;
        }
        assert_eq!(seen, items);
        assert_eq!(pages, 4);
    }

    #[test]
    fn page_walk_stops_at_its_page_budget() {
        let items: Vec<u32> = (0..10).collect();
        let mut walk = PageWalk::new(3).at_most(2);
        let mut seen = Vec::new();
        while let Some(request) = walk.request() {
            let page = fetch(&items, request);
            seen.extend(walk.advance(page));
        }
        assert_eq!(seen, [0, 1, 2, 3, 4, 5]);
        assert!(PageWalk::new(3).at_most(0).request().is_none());
    }
}
