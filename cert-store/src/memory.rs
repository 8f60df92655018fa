//! The in-memory backend: the default, for one process and for tests.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use tls_core::{CertId, OrgId};
use tokio::sync::broadcast;

use crate::error::{StorageError, StorageErrorKind};
use crate::storage::{CertStorage, Change, Changes, Cursor, Inserted, Page, PageRequest, Scope};

/// Records in a map, indexed per org in insertion order. Change notices reach every
/// [`CertStorage::watch`] subscriber of this instance.
#[derive(Debug)]
pub struct MemoryStorage {
    state: Mutex<State>,
    changes: broadcast::Sender<Change>,
}

#[derive(Debug, Default)]
struct State {
    /// ID → (insertion sequence, record).
    records: HashMap<CertId, (u64, String)>,
    /// Insertion sequence → ID, for every org; listing pages by sequence, so deletions during a
    /// listing never make it skip or repeat an ID.
    by_seq: BTreeMap<u64, CertId>,
    /// The same, per org.
    by_org: HashMap<OrgId, BTreeMap<u64, CertId>>,
    next_seq: u64,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State::default()),
            changes: broadcast::channel(1024).0,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave State half-updated (every update is a
        // single map operation pair done without await), so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn notify(&self, change: Change) {
        // No subscribers is fine.
        let _ = self.changes.send(change);
    }
}

impl Default for MemoryStorage {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl CertStorage for MemoryStorage {
    async fn insert(&self, id: &CertId, record: &str) -> Result<Inserted, StorageError> {
        {
            let mut state = self.state();
            if state.records.contains_key(id) {
                return Ok(Inserted::AlreadyExists);
            }
            let seq = state.next_seq;
            state.next_seq += 1;
            state.records.insert(id.clone(), (seq, record.to_owned()));
            state.by_seq.insert(seq, id.clone());
            state
                .by_org
                .entry(id.org().clone())
                .or_default()
                .insert(seq, id.clone());
        }
        self.notify(Change::Added(id.clone()));
        Ok(Inserted::Added)
    }

    async fn get(&self, id: &CertId) -> Result<Option<String>, StorageError> {
        Ok(self
            .state()
            .records
            .get(id)
            .map(|(_, record)| record.clone()))
    }

    async fn replace(
        &self,
        id: &CertId,
        expected: &str,
        record: &str,
    ) -> Result<bool, StorageError> {
        {
            let mut state = self.state();
            match state.records.get_mut(id) {
                Some((_, current)) if current == expected => *current = record.to_owned(),
                _ => return Ok(false),
            }
        }
        self.notify(Change::Replaced(id.clone()));
        Ok(true)
    }

    async fn delete(&self, id: &CertId) -> Result<bool, StorageError> {
        let removed = {
            let mut state = self.state();
            match state.records.remove(id) {
                Some((seq, _)) => {
                    state.by_seq.remove(&seq);
                    if let Some(org) = state.by_org.get_mut(id.org()) {
                        org.remove(&seq);
                        if org.is_empty() {
                            state.by_org.remove(id.org());
                        }
                    }
                    true
                }
                None => false,
            }
        };
        if removed {
            self.notify(Change::Removed(id.clone()));
        }
        Ok(removed)
    }

    async fn list(
        &self,
        scope: Scope<'_>,
        page: &PageRequest,
    ) -> Result<Page<CertId>, StorageError> {
        let after = match &page.cursor {
            None => None,
            Some(cursor) => Some(cursor.as_str().parse::<u64>().map_err(|_| {
                StorageError::new(
                    StorageErrorKind::Rejected,
                    format!("invalid listing cursor {:?}", cursor.as_str()),
                )
            })?),
        };
        let limit = page.limit.max(1);
        let state = self.state();
        let start = after.map_or(0, |seq| seq.saturating_add(1));
        let index = match scope {
            Scope::All => Some(&state.by_seq),
            Scope::Org(org) => state.by_org.get(org),
        };
        let mut items = Vec::new();
        let mut last = None;
        let mut more = false;
        for (seq, id) in index.into_iter().flat_map(|index| index.range(start..)) {
            if items.len() == limit {
                more = true;
                break;
            }
            items.push(id.clone());
            last = Some(*seq);
        }
        let next = if more {
            last.map(|seq| Cursor::new(seq.to_string()))
        } else {
            None
        };
        Ok(Page { items, next })
    }

    fn watch(&self) -> Option<Changes> {
        Some(Changes::new(self.changes.subscribe()))
    }

    async fn ping(&self) -> Result<(), StorageError> {
        Ok(())
    }
}
