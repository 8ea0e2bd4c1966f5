//! A small per-replica cache of pair keys, so that a request costs one Redis round
//! trip (its commit) instead of two.
//!
//! What it may serve is bounded by what Redis decides anyway: the replay window is
//! never cached (every commit decides it in Redis), and the commit script refuses a
//! message whose MTE epoch Redis has erased, so a cached ratchet that lags behind
//! another replica's cannot open a door Redis has closed. A pair evicted or replaced
//! in Redis is refused at commit and dropped from here.
//!
//! Entries are served for [`ENTRY_LIFETIME`] at most and removed by the next sweep
//! after that (every quarter of the pair lifetime or resend window, at most a minute),
//! so an erased epoch key does not linger in a replica's memory much longer than in
//! Redis; they are zeroized when dropped.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mte_relay_protocol::keys::{MteRatchet, PairKeys};

use crate::store::PairKey;

/// How long a cached pair may be served before it is read from Redis again.
pub const ENTRY_LIFETIME: Duration = Duration::from_secs(30);

/// A pair's keys and times as this replica last read or wrote them.
#[derive(Clone, Debug)]
pub struct CachedPair {
    pub generation: u64,
    pub keys: PairKeys,
    pub created_at: u64,
    pub expires_at: u64,
}

#[derive(Debug)]
struct Entry {
    pair: Box<CachedPair>,
    cached_at: Instant,
}

/// At most `capacity` pairs; 0 turns the cache off.
#[derive(Debug)]
pub struct PairCache {
    capacity: usize,
    entries: Mutex<HashMap<PairKey, Entry>>,
}

impl PairCache {
    pub fn new(capacity: usize) -> PairCache {
        PairCache {
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PairKey, Entry>> {
        // The map holds no invariant a panicking holder could break halfway.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cached pair, when fresh.
    pub fn get(&self, key: &PairKey) -> Option<CachedPair> {
        let mut entries = self.lock();
        let entry = entries.get(key)?;
        if entry.cached_at.elapsed() < ENTRY_LIFETIME {
            return Some((*entry.pair).clone());
        }
        entries.remove(key);
        None
    }

    pub fn put(&self, key: PairKey, pair: CachedPair) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, entry| entry.cached_at.elapsed() < ENTRY_LIFETIME);
            if entries.len() >= self.capacity {
                // Full of fresh entries: any one makes room; a miss costs one read.
                if let Some(victim) = entries.keys().next().cloned() {
                    entries.remove(&victim);
                }
            }
        }
        entries.insert(
            key,
            Entry {
                pair: Box::new(pair),
                cached_at: Instant::now(),
            },
        );
    }

    /// Moves a cached pair's ratchet to `newer` after a commit stored it.
    pub fn advance(&self, key: &PairKey, generation: u64, newer: MteRatchet) {
        if let Some(entry) = self.lock().get_mut(key)
            && entry.pair.generation == generation
        {
            entry.pair.keys.ratchet.advance_to(newer);
        }
    }

    /// Drops every entry past its lifetime, with its keys: run by the sweep, so a pair
    /// that went quiet does not keep its keys in this replica's memory.
    pub fn purge_stale(&self) -> usize {
        let mut entries = self.lock();
        let before = entries.len();
        entries.retain(|_, entry| entry.cached_at.elapsed() < ENTRY_LIFETIME);
        before - entries.len()
    }

    /// Drops a pair Redis no longer holds as cached.
    pub fn forget(&self, key: &PairKey) {
        self.lock().remove(key);
    }

    #[cfg(test)]
    fn age_all(&self, by: Duration) {
        for entry in self.lock().values_mut() {
            entry.cached_at -= by;
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use mte_relay_protocol::ids::PairId;
    use mte_relay_protocol::secret::Secret32;

    use super::*;

    fn pair(generation: u64) -> CachedPair {
        CachedPair {
            generation,
            keys: PairKeys::from_roots(
                Secret32::from_bytes([1; 32]),
                Secret32::from_bytes([2; 32]),
            ),
            created_at: 1,
            expires_at: 2,
        }
    }

    fn key(n: u8) -> PairKey {
        PairKey::new("client", PairId([n; 16]))
    }

    #[test]
    fn holds_at_most_its_capacity_and_nothing_when_off() {
        let cache = PairCache::new(2);
        for n in 0..5 {
            cache.put(key(n), pair(u64::from(n)));
        }
        assert_eq!(cache.len(), 2);
        let off = PairCache::new(0);
        off.put(key(1), pair(1));
        assert!(off.get(&key(1)).is_none());
    }

    #[test]
    fn stale_entries_are_neither_served_nor_kept() {
        let cache = PairCache::new(8);
        cache.put(key(1), pair(1));
        cache.put(key(2), pair(2));
        cache.age_all(ENTRY_LIFETIME);
        cache.put(key(3), pair(3));
        assert!(cache.get(&key(1)).is_none(), "past its lifetime");
        assert_eq!(cache.purge_stale(), 1, "the other stale entry goes");
        assert_eq!(cache.len(), 1);
        assert!(cache.get(&key(3)).is_some());
    }

    #[test]
    fn forgets_and_advances_only_the_same_generation() {
        let cache = PairCache::new(8);
        cache.put(key(1), pair(7));
        let advanced = {
            let keys = pair(7).keys;
            let (_, advanced) = keys
                .ratchet
                .message_secret(5 << mte_relay_protocol::keys::EPOCH_BITS)
                .expect("within reach");
            advanced.expect("a later epoch")
        };
        cache.advance(&key(1), 8, advanced.clone());
        assert_eq!(cache.get(&key(1)).expect("cached").keys.ratchet.epoch(), 0);
        cache.advance(&key(1), 7, advanced);
        assert_eq!(cache.get(&key(1)).expect("cached").keys.ratchet.epoch(), 5);
        cache.forget(&key(1));
        assert!(cache.get(&key(1)).is_none());
    }
}
