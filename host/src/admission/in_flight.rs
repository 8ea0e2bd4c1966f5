//! Counting slots per key: MTE requests in flight per client id, connections per
//! remote address.
//!
//! A slot is taken at once or refused (never queued) and given back when its guard is
//! dropped. Only keys with a slot taken are in the map, so its size is bounded by the
//! resource it counts (`POOL_SIZE`, `MAX_CONNECTIONS`).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// Up to `per_key` slots for each key, and up to `total` over all keys.
#[derive(Debug)]
pub struct SlotCounter<K: Hash + Eq> {
    inner: Arc<Counts<K>>,
}

#[derive(Debug)]
struct Counts<K> {
    per_key: usize,
    total: usize,
    taken: Mutex<Taken<K>>,
}

#[derive(Debug)]
struct Taken<K> {
    by_key: HashMap<K, usize>,
    total: usize,
}

/// Which bound refused a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotRefused {
    /// The key holds `per_key` slots.
    PerKey,
    /// All keys together hold `total` slots.
    Total,
}

/// A taken slot; given back when dropped.
#[derive(Debug)]
pub struct Slot<K: Hash + Eq> {
    counts: Arc<Counts<K>>,
    key: K,
}

impl<K: Hash + Eq + Clone> SlotCounter<K> {
    pub fn new(per_key: usize, total: usize) -> Self {
        SlotCounter {
            inner: Arc::new(Counts {
                per_key: per_key.max(1),
                total: total.max(1),
                taken: Mutex::new(Taken {
                    by_key: HashMap::new(),
                    total: 0,
                }),
            }),
        }
    }

    /// Takes a slot for `key`, or says which bound is reached.
    pub fn try_take(&self, key: &K) -> Result<Slot<K>, SlotRefused> {
        let mut taken = self.inner.lock();
        if taken.total >= self.inner.total {
            return Err(SlotRefused::Total);
        }
        // Look up before inserting, so a key already in the map costs no allocation.
        match taken.by_key.get_mut(key) {
            Some(count) if *count >= self.inner.per_key => return Err(SlotRefused::PerKey),
            Some(count) => *count += 1,
            None => {
                taken.by_key.insert(key.clone(), 1);
            }
        }
        taken.total += 1;
        Ok(Slot {
            counts: self.inner.clone(),
            key: key.clone(),
        })
    }

    /// Slots taken by `key` now.
    #[cfg(test)]
    pub fn taken_by(&self, key: &K) -> usize {
        self.inner.lock().by_key.get(key).copied().unwrap_or(0)
    }
}

impl<K> Counts<K> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Taken<K>> {
        self.taken
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<K: Hash + Eq> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut taken = self.counts.lock();
        taken.total = taken.total.saturating_sub(1);
        if let Some(count) = taken.by_key.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                taken.by_key.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_per_key_and_in_total_and_come_back() {
        let counter = SlotCounter::new(2, 3);
        let a1 = counter.try_take(&"a").expect("a 1");
        let _a2 = counter.try_take(&"a").expect("a 2");
        assert_eq!(counter.try_take(&"a").err(), Some(SlotRefused::PerKey));
        let _b1 = counter.try_take(&"b").expect("b 1");
        assert_eq!(counter.try_take(&"c").err(), Some(SlotRefused::Total));
        drop(a1);
        assert_eq!(counter.taken_by(&"a"), 1);
        let _c1 = counter.try_take(&"c").expect("room again");
    }

    #[test]
    fn keys_without_slots_leave_the_map() {
        let counter = SlotCounter::new(1, 10);
        drop(counter.try_take(&"a").expect("a"));
        assert!(counter.inner.lock().by_key.is_empty());
        assert_eq!(counter.inner.lock().total, 0);
    }
}
