//! The request-path half of the monitor: when may each certificate be checked next.
//!
//! A copy-on-write map (read without locks through `ArcSwap`) from fingerprint to a slot
//! holding the next-check instant in Unix milliseconds. Reading it is the whole cost of an
//! observation within the check cooldown. A slot set to [`PENDING`] has a check queued; the
//! worker sets the next instant when it is done. The map only grows when a certificate is seen
//! for the first time.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tls_core::Fingerprint;

/// The next-check instant of a certificate whose check is queued.
pub(crate) const PENDING: i64 = i64::MAX;

/// One certificate's next-check instant.
pub(crate) struct Slot {
    next_check_ms: AtomicI64,
}

impl Slot {
    /// Lets the certificate be checked again from `at_ms` on.
    pub(crate) fn release(&self, at_ms: i64) {
        self.next_check_ms
            .store(at_ms.min(PENDING - 1), Ordering::Release);
    }
}

/// What [`Schedule::take_if_due`] found.
pub(crate) enum Take {
    /// Not due yet, or already queued.
    NotDue,
    /// Due: this caller marked it pending and must queue a check or [`Slot::release`] it.
    Due(Arc<Slot>),
}

/// A fingerprint as a map key, hashed by its first 8 bytes: SHA-256 output is already uniformly
/// distributed, so hashing it again would be wasted work on the request path.
#[derive(Clone, Copy, PartialEq, Eq)]
struct FingerprintKey([u8; 32]);

impl Hash for FingerprintKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let [a, b, c, d, e, f, g, h, ..] = self.0;
        state.write_u64(u64::from_le_bytes([a, b, c, d, e, f, g, h]));
    }
}

/// Passes a `write_u64` through; anything else is folded in (never used by our key).
#[derive(Default)]
struct PrefixHasher(u64);

impl Hasher for PrefixHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 ^= value;
    }
}

type SlotMap = HashMap<FingerprintKey, Arc<Slot>, BuildHasherDefault<PrefixHasher>>;

/// Every certificate seen, with its next-check instant.
pub(crate) struct Schedule {
    slots: ArcSwap<SlotMap>,
    insert: Mutex<()>,
}

impl Schedule {
    pub(crate) fn new() -> Self {
        Self {
            slots: ArcSwap::from_pointee(SlotMap::default()),
            insert: Mutex::new(()),
        }
    }

    /// If `fingerprint` is due at `now_ms`, marks it pending and returns its slot.
    pub(crate) fn take_if_due(&self, fingerprint: &Fingerprint, now_ms: i64) -> Take {
        let key = FingerprintKey(*fingerprint.as_bytes());
        {
            let slots = self.slots.load();
            if let Some(slot) = slots.get(&key) {
                return take(slot, now_ms);
            }
        }
        // First sighting: add a slot, already pending, under the insert lock.
        let _guard = self.insert.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.slots.load_full();
        if let Some(slot) = current.get(&key) {
            return take(slot, now_ms);
        }
        let slot = Arc::new(Slot {
            next_check_ms: AtomicI64::new(PENDING),
        });
        let mut next = SlotMap::clone(&current);
        next.insert(key, Arc::clone(&slot));
        self.slots.store(Arc::new(next));
        Take::Due(slot)
    }
}

fn take(slot: &Arc<Slot>, now_ms: i64) -> Take {
    let next = slot.next_check_ms.load(Ordering::Acquire);
    if now_ms < next {
        return Take::NotDue;
    }
    match slot
        .next_check_ms
        .compare_exchange(next, PENDING, Ordering::AcqRel, Ordering::Relaxed)
    {
        Ok(_) => Take::Due(Arc::clone(slot)),
        // Another caller took it first.
        Err(_) => Take::NotDue,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_is_due_once_until_released() {
        let schedule = Schedule::new();
        let fp = Fingerprint::of(b"a");
        let Take::Due(slot) = schedule.take_if_due(&fp, 1000) else {
            panic!("first sighting is due");
        };
        assert!(matches!(schedule.take_if_due(&fp, 1000), Take::NotDue));
        assert!(matches!(
            schedule.take_if_due(&fp, i64::MAX - 1),
            Take::NotDue
        ));
        slot.release(5000);
        assert!(matches!(schedule.take_if_due(&fp, 4999), Take::NotDue));
        assert!(matches!(schedule.take_if_due(&fp, 5000), Take::Due(_)));
        // Another certificate has its own slot.
        assert!(matches!(
            schedule.take_if_due(&Fingerprint::of(b"b"), 0),
            Take::Due(_)
        ));
    }

    #[test]
    fn concurrent_callers_take_a_due_certificate_once() {
        let schedule = Arc::new(Schedule::new());
        let fps: Vec<Fingerprint> = (0u8..50).map(|i| Fingerprint::of(&[i])).collect();
        let taken: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let schedule = Arc::clone(&schedule);
                    let fps = &fps;
                    scope.spawn(move || {
                        fps.iter()
                            .filter(|fp| matches!(schedule.take_if_due(fp, 0), Take::Due(_)))
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(taken, fps.len());
    }
}
