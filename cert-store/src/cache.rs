//! A keyed cache where concurrent misses for one key share one load, entries expire after a TTL,
//! and failed loads are not kept.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::OnceCell;
use tokio::time::Instant;

/// The cache. `V` is cheap to clone (an `Arc`).
#[derive(Debug)]
pub(crate) struct Cache<K, V> {
    slots: Mutex<HashMap<K, Arc<Slot<V>>>>,
    ttl: Duration,
    /// Raised by [`Cache::expire_all`]; a slot created under an older generation is stale.
    generation: AtomicU64,
}

#[derive(Debug)]
struct Slot<V> {
    value: OnceCell<(V, Instant)>,
    generation: u64,
}

impl<K: Eq + Hash + Clone, V: Clone> Cache<K, V> {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            ttl,
            generation: AtomicU64::new(0),
        }
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<K, Arc<Slot<V>>>> {
        // Every critical section is a single map operation, so a poisoned map is consistent.
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cached value for `key`, or the result of `load`, which runs once however many callers
    /// miss at the same time. An error is returned to those callers and not cached.
    ///
    /// When an entry has expired and reloading it fails with an error for which `serve_stale`
    /// is true (the storage is away), the expired value is returned instead: a certificate keeps
    /// serving through a storage outage.
    pub(crate) async fn get_or_load<E, F>(
        &self,
        key: &K,
        load: F,
        serve_stale: fn(&E) -> bool,
    ) -> Result<V, E>
    where
        F: Future<Output = Result<V, E>>,
    {
        let (slot, stale) = {
            let mut slots = self.slots();
            match slots.get(key) {
                Some(slot) if !self.is_stale(slot) => (Arc::clone(slot), None),
                previous => {
                    let stale = previous
                        .filter(|old| old.value.get().is_some())
                        .map(Arc::clone);
                    let slot = Arc::new(Slot {
                        value: OnceCell::new(),
                        generation: self.generation.load(Ordering::SeqCst),
                    });
                    slots.insert(key.clone(), Arc::clone(&slot));
                    (slot, stale)
                }
            }
        };
        let result = slot
            .value
            .get_or_try_init(|| async { load.await.map(|v| (v, Instant::now())) })
            .await;
        match result {
            Ok((value, _)) => Ok(value.clone()),
            Err(e) => match stale {
                Some(old) if serve_stale(&e) => {
                    // The old value stays in place (still stale), so it keeps serving for as
                    // long as the storage is away; each later use tries to reload it.
                    let value = old.value.get().map(|(v, _)| v.clone());
                    let mut slots = self.slots();
                    if slots
                        .get(key)
                        .is_some_and(|current| Arc::ptr_eq(current, &slot))
                    {
                        slots.insert(key.clone(), old);
                    }
                    value.ok_or(e)
                }
                _ => {
                    self.remove_slot(key, &slot);
                    Err(e)
                }
            },
        }
    }

    /// The cached value, if present and fresh.
    pub(crate) fn peek(&self, key: &K) -> Option<V> {
        let slots = self.slots();
        let slot = slots.get(key)?;
        if self.is_stale(slot) {
            return None;
        }
        slot.value.get().map(|(v, _)| v.clone())
    }

    fn is_stale(&self, slot: &Slot<V>) -> bool {
        slot.value.get().is_some_and(|(_, loaded)| {
            loaded.elapsed() >= self.ttl || slot.generation < self.generation.load(Ordering::SeqCst)
        })
    }

    fn remove_slot(&self, key: &K, slot: &Arc<Slot<V>>) {
        let mut slots = self.slots();
        if slots
            .get(key)
            .is_some_and(|current| Arc::ptr_eq(current, slot))
        {
            slots.remove(key);
        }
    }

    /// Forgets `key`. A load already running finishes for its callers but is not kept.
    pub(crate) fn invalidate(&self, key: &K) {
        self.slots().remove(key);
    }

    /// Makes every entry stale, as if its TTL had passed (loads running now included): the next
    /// use reloads it, and if reloading fails with an error for which `serve_stale` is true,
    /// the old value still serves.
    pub(crate) fn expire_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots().len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn never<E>(_: &E) -> bool {
        false
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_load() {
        let cache: Arc<Cache<u8, Arc<u32>>> = Arc::new(Cache::new(Duration::from_secs(60)));
        let loads = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (cache, loads) = (Arc::clone(&cache), Arc::clone(&loads));
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_load(
                        &1,
                        async {
                            loads.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            Ok::<_, ()>(Arc::new(7))
                        },
                        never,
                    )
                    .await
            }));
        }
        for task in tasks {
            assert_eq!(*task.await.unwrap().unwrap(), 7);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn failures_are_not_cached_and_invalidate_forgets() {
        let cache: Cache<u8, u32> = Cache::new(Duration::from_secs(60));
        assert_eq!(
            cache
                .get_or_load(&1, async { Err::<u32, _>("down") }, never)
                .await,
            Err("down")
        );
        assert_eq!(cache.len(), 0);
        assert_eq!(
            cache
                .get_or_load(&1, async { Ok::<_, &str>(5) }, never)
                .await,
            Ok(5)
        );
        assert_eq!(cache.peek(&1), Some(5));
        cache.invalidate(&1);
        assert_eq!(cache.peek(&1), None);
    }

    #[tokio::test(start_paused = true)]
    async fn entries_expire_after_the_ttl() {
        let cache: Cache<u8, u32> = Cache::new(Duration::from_secs(10));
        cache
            .get_or_load(&1, async { Ok::<_, ()>(1) }, never)
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(cache.peek(&1), Some(1));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(cache.peek(&1), None);
        assert_eq!(
            cache.get_or_load(&1, async { Ok::<_, ()>(2) }, never).await,
            Ok(2)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_entry_serves_while_reloading_fails_temporarily() {
        let cache: Cache<u8, u32> = Cache::new(Duration::from_secs(10));
        cache
            .get_or_load(&1, async { Ok::<_, bool>(1) }, never)
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(11)).await;
        // `true` stands for a temporary error: the stale value is served, again and again.
        for _ in 0..3 {
            assert_eq!(
                cache.get_or_load(&1, async { Err(true) }, |e| *e).await,
                Ok(1)
            );
        }
        // A permanent error is returned.
        cache
            .get_or_load(&1, async { Ok::<_, bool>(1) }, never)
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(
            cache.get_or_load(&1, async { Err(false) }, |e| *e).await,
            Err(false)
        );
    }

    #[tokio::test]
    async fn expire_all_reloads_everything_but_keeps_serving_while_the_storage_is_away() {
        let cache: Cache<u8, u32> = Cache::new(Duration::from_secs(300));
        for key in [1, 2] {
            cache
                .get_or_load(&key, async { Ok::<_, bool>(1) }, never)
                .await
                .unwrap();
        }
        cache.expire_all();
        assert_eq!(cache.peek(&1), None, "stale after expire_all");
        // Reloaded on next use...
        assert_eq!(
            cache
                .get_or_load(&1, async { Ok::<_, bool>(2) }, never)
                .await,
            Ok(2)
        );
        assert_eq!(cache.peek(&1), Some(2));
        // ...and served as it was when the reload fails temporarily; a permanent failure
        // (the certificate is gone) is not served.
        assert_eq!(
            cache.get_or_load(&2, async { Err(true) }, |e| *e).await,
            Ok(1)
        );
        cache.expire_all();
        assert_eq!(
            cache.get_or_load(&1, async { Err(false) }, |e| *e).await,
            Err(false)
        );
    }
}
