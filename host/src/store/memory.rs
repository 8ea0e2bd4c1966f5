//! The in-memory pair store: the embedded default for a single replica.
//!
//! One mutex guards the map; every critical section is a few map operations with no
//! awaits, so contention stays far below the cost of the AEAD work around it.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use mte_relay_protocol::ids::PairId;
use mte_relay_protocol::keys::MteRatchet;

use super::{CommitError, Lookup, PairRecord, PairStore, StoreError, StoreFuture};

#[derive(Debug, Default)]
struct Pairs {
    by_id: HashMap<PairId, PairRecord>,
    /// Each client's pairs, oldest first, for the per-client cap.
    by_client: HashMap<String, VecDeque<PairId>>,
}

impl Pairs {
    fn remove(&mut self, pair_id: &PairId) {
        if let Some(record) = self.by_id.remove(pair_id)
            && let Some(ids) = self.by_client.get_mut(&record.client_id)
        {
            ids.retain(|id| id != pair_id);
            if ids.is_empty() {
                self.by_client.remove(&record.client_id);
            }
        }
    }
}

/// Pairs held in this process; lost on restart (clients then re-pair on their own).
#[derive(Debug, Default)]
pub struct MemoryPairStore {
    pairs: Mutex<Pairs>,
}

impl MemoryPairStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryPairStore::default()
    }

    /// Drops every pair whose time to live ran out before `now`; returns how many.
    /// Expired pairs are refused on lookup anyway; this only frees their memory.
    pub fn sweep_expired(&self, now: u64) -> usize {
        let mut pairs = self.lock();
        let expired: Vec<PairId> = pairs
            .by_id
            .iter()
            .filter(|(_, record)| record.expires_at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in &expired {
            pairs.remove(id);
        }
        expired.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pairs> {
        // A panic while holding the lock cannot leave the maps inconsistent in a way
        // that matters more than losing every pair, so recover the guard.
        self.pairs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl PairStore for MemoryPairStore {
    fn insert(
        &self,
        pair_id: PairId,
        record: PairRecord,
        max_per_client: usize,
    ) -> StoreFuture<'_, Result<(), StoreError>> {
        let mut pairs = self.lock();
        // Re-pairing under an existing id replaces the old pair.
        pairs.remove(&pair_id);
        let client_id = record.client_id.clone();
        pairs.by_id.insert(pair_id, record);
        let ids = pairs.by_client.entry(client_id).or_default();
        ids.push_back(pair_id);
        let mut evicted = Vec::new();
        while ids.len() > max_per_client.max(1) {
            if let Some(oldest) = ids.pop_front() {
                evicted.push(oldest);
            }
        }
        for id in evicted {
            pairs.by_id.remove(&id);
        }
        Box::pin(async { Ok(()) })
    }

    fn load(&self, pair_id: PairId, now: u64) -> StoreFuture<'_, Result<Lookup, StoreError>> {
        let lookup = match self.lock().by_id.get(&pair_id) {
            Some(record) if record.expires_at <= now => Lookup::Expired,
            Some(record) => Lookup::Found(Box::new(record.clone())),
            None => Lookup::Missing,
        };
        Box::pin(async move { Ok(lookup) })
    }

    fn commit(
        &self,
        pair_id: PairId,
        seq: u64,
        ratchet: Option<MteRatchet>,
    ) -> StoreFuture<'_, Result<(), CommitError>> {
        let outcome = match self.lock().by_id.get_mut(&pair_id) {
            None => Err(CommitError::Missing),
            Some(record) => record
                .window
                .check_and_mark(seq)
                .map(|()| {
                    if let Some(ratchet) = ratchet {
                        record.keys.ratchet.advance_to(ratchet);
                    }
                })
                .map_err(CommitError::from),
        };
        Box::pin(async move { outcome })
    }

    fn pair_count(&self) -> StoreFuture<'_, Result<usize, StoreError>> {
        let len = self.lock().by_id.len();
        Box::pin(async move { Ok(len) })
    }
}

#[cfg(test)]
mod tests {
    use mte_relay_protocol::keys::{EPOCH_LEN, PairKeys};
    use mte_relay_protocol::replay::{ReplayError, ReplayWindow};
    use mte_relay_protocol::secret::Secret32;

    use super::*;

    fn record(client: &str, created_at: u64) -> PairRecord {
        PairRecord {
            client_id: client.into(),
            keys: PairKeys::from_roots(
                Secret32::from_bytes([1; 32]),
                Secret32::from_bytes([2; 32]),
            ),
            window: ReplayWindow::new(),
            created_at,
            expires_at: created_at + 100,
        }
    }

    fn block<T>(future: StoreFuture<'_, T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(future)
    }

    #[test]
    fn per_client_cap_evicts_the_oldest_pair() {
        let store = MemoryPairStore::new();
        for n in 0..3u8 {
            block(store.insert(PairId([n; 16]), record("alice", u64::from(n)), 2)).expect("insert");
        }
        block(store.insert(PairId([9; 16]), record("bob", 0), 2)).expect("insert");
        assert!(matches!(
            block(store.load(PairId([0; 16]), 5)),
            Ok(Lookup::Missing)
        ));
        assert!(matches!(
            block(store.load(PairId([1; 16]), 5)),
            Ok(Lookup::Found(_))
        ));
        assert!(matches!(
            block(store.load(PairId([2; 16]), 5)),
            Ok(Lookup::Found(_))
        ));
        assert!(matches!(
            block(store.load(PairId([9; 16]), 5)),
            Ok(Lookup::Found(_))
        ));
        assert_eq!(block(store.pair_count()).expect("len"), 3);
    }

    #[test]
    fn expiry_is_reported_then_swept() {
        let store = MemoryPairStore::new();
        block(store.insert(PairId([1; 16]), record("alice", 0), 4)).expect("insert");
        assert!(matches!(
            block(store.load(PairId([1; 16]), 100)),
            Ok(Lookup::Expired)
        ));
        assert_eq!(store.sweep_expired(100), 1);
        assert!(matches!(
            block(store.load(PairId([1; 16]), 100)),
            Ok(Lookup::Missing)
        ));
    }

    #[test]
    fn commit_marks_once_and_moves_the_ratchet_forward() {
        let store = MemoryPairStore::new();
        let id = PairId([1; 16]);
        block(store.insert(id, record("alice", 0), 4)).expect("insert");
        let Ok(Lookup::Found(found)) = block(store.load(id, 1)) else {
            panic!("pair is live")
        };
        let (_, advanced) = found
            .keys
            .ratchet
            .message_secret(EPOCH_LEN)
            .expect("next epoch");
        block(store.commit(id, EPOCH_LEN, advanced)).expect("first commit");
        assert!(matches!(
            block(store.commit(id, EPOCH_LEN, None)),
            Err(CommitError::Replay(ReplayError::Duplicate))
        ));
        let Ok(Lookup::Found(after)) = block(store.load(id, 1)) else {
            panic!("pair is live")
        };
        assert_eq!(after.keys.ratchet.epoch(), 1);
        assert!(matches!(
            block(store.commit(PairId([7; 16]), 0, None)),
            Err(CommitError::Missing)
        ));
    }
}
