//! The in-memory pair store: the embedded default for a single replica.
//!
//! One mutex guards the map; every critical section is a few map operations with no
//! awaits, so contention stays far below the cost of the AEAD work around it. The
//! sweep is the exception: it walks every pair, once per sweep interval. Resend tokens
//! have a mutex of their own, so recording one never waits for a pair operation.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use mte_relay_protocol::ids::{PairId, ResendToken};
use mte_relay_protocol::replay::ReplayWindow;
use sha2::{Digest, Sha256};

use super::{
    CommitError, InsertError, Lookup, NewPair, PairCaps, PairKey, PairRecord, PairStore,
    RatchetUse, StoreError, StoreFuture, Swept, TokenClaim, TokenError,
};

/// One client's pairs, oldest first. A client holds at most `MAX_PAIRS_PER_CLIENT`
/// (64 by default, usually a handful), so a scan of a vector sized to fit beats a hash
/// map, which would allocate about twice the room it uses.
///
/// Each record is boxed so that it never moves: when the vector grows or drops its
/// oldest entries it moves pointers, and a record's keys exist in one place, zeroized
/// when the record drops, instead of leaving stale copies in freed or spare memory.
#[derive(Debug, Default)]
struct ClientPairs {
    oldest_first: Vec<(PairId, Box<PairRecord>)>,
}

impl ClientPairs {
    fn get(&self, pair_id: &PairId) -> Option<&PairRecord> {
        self.oldest_first
            .iter()
            .find(|(id, _)| id == pair_id)
            .map(|(_, record)| &**record)
    }

    fn get_mut(&mut self, pair_id: &PairId) -> Option<&mut PairRecord> {
        self.oldest_first
            .iter_mut()
            .find(|(id, _)| id == pair_id)
            .map(|(_, record)| &mut **record)
    }
}

#[derive(Debug, Default)]
struct Pairs {
    clients: HashMap<String, ClientPairs>,
    /// Pairs over all clients.
    total: usize,
    /// The last generation handed out.
    last_generation: u64,
}

impl Pairs {
    fn record(&self, key: &PairKey) -> Option<&PairRecord> {
        self.clients.get(&key.client_id)?.get(&key.pair_id)
    }

    fn record_mut(&mut self, key: &PairKey) -> Option<&mut PairRecord> {
        self.clients.get_mut(&key.client_id)?.get_mut(&key.pair_id)
    }

    fn insert(
        &mut self,
        client_id: &str,
        pairs: Vec<NewPair>,
        caps: PairCaps,
    ) -> Result<Vec<u64>, InsertError> {
        let mut offered = HashSet::with_capacity(pairs.len());
        for pair in &pairs {
            if !offered.insert(pair.pair_id) {
                return Err(InsertError::Duplicate(pair.pair_id));
            }
        }
        let per_client = caps.per_client.max(1);
        let held = match self.clients.get(client_id) {
            Some(client) => {
                if let Some(pair) = pairs.iter().find(|p| client.get(&p.pair_id).is_some()) {
                    return Err(InsertError::Exists(pair.pair_id));
                }
                client.oldest_first.len()
            }
            None => 0,
        };
        // The client keeps its newest `per_client` pairs, the batch's included.
        let kept = (held + pairs.len()).min(per_client);
        if self.total - held + kept > caps.total {
            return Err(InsertError::Full(caps.total));
        }

        let client = self.clients.entry(client_id.to_owned()).or_default();
        client.oldest_first.reserve_exact(pairs.len());
        let mut generations = Vec::with_capacity(pairs.len());
        for pair in pairs {
            self.last_generation += 1;
            generations.push(self.last_generation);
            let record = Box::new(PairRecord {
                keys: pair.keys,
                window: Some(ReplayWindow::new()),
                generation: self.last_generation,
                created_at: pair.created_at,
                expires_at: pair.expires_at,
            });
            client.oldest_first.push((pair.pair_id, record));
        }
        // Evicted records drop here, and their keys zeroize.
        let evicted = client.oldest_first.len() - kept;
        client.oldest_first.drain(..evicted);
        self.total = self.total - held + kept;
        Ok(generations)
    }

    fn sweep_expired(&mut self, now: u64) -> usize {
        let mut removed = 0;
        self.clients.retain(|_, client| {
            let before = client.oldest_first.len();
            client
                .oldest_first
                .retain(|(_, record)| record.expires_at > now);
            removed += before - client.oldest_first.len();
            !client.oldest_first.is_empty()
        });
        self.total -= removed;
        removed
    }
}

/// The resend tokens of forwarded requests, each scoped to its client id.
///
/// A token is held under a digest of the client id and the token, so an entry is 32
/// bytes and a Unix time whatever the id's length; two clients cannot collide short
/// of a SHA-256 collision.
#[derive(Debug, Default)]
struct Tokens {
    /// Scoped token -> Unix time at which its window ends.
    until: HashMap<[u8; 32], u64>,
}

impl Tokens {
    fn scoped(client_id: &str, token: &ResendToken) -> [u8; 32] {
        let mut digest = Sha256::new();
        // Length-prefixed, so no (id, token) pair can be read as another.
        digest.update((client_id.len() as u64).to_be_bytes());
        digest.update(client_id.as_bytes());
        digest.update(token.as_bytes());
        digest.finalize().into()
    }

    fn record(
        &mut self,
        client_id: &str,
        token: &ResendToken,
        now: u64,
        expires_at: u64,
        max_tokens: usize,
    ) -> Result<TokenClaim, TokenError> {
        let key = Tokens::scoped(client_id, token);
        let held = self.until.len();
        match self.until.entry(key) {
            Entry::Occupied(entry) if *entry.get() > now => Ok(TokenClaim::AlreadyForwarded),
            Entry::Occupied(mut entry) => {
                entry.insert(expires_at);
                Ok(TokenClaim::Recorded)
            }
            Entry::Vacant(_) if held >= max_tokens => Err(TokenError::Full(max_tokens)),
            Entry::Vacant(entry) => {
                entry.insert(expires_at);
                Ok(TokenClaim::Recorded)
            }
        }
    }

    fn sweep_expired(&mut self, now: u64) -> usize {
        let before = self.until.len();
        self.until.retain(|_, until| *until > now);
        before - self.until.len()
    }
}

/// Pairs held in this process; lost on restart (clients then re-pair on their own).
#[derive(Default)]
pub struct MemoryPairStore {
    pairs: Mutex<Pairs>,
    tokens: Mutex<Tokens>,
}

/// Names the store only: its contents (client ids among them) stay out of logs.
impl std::fmt::Debug for MemoryPairStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryPairStore")
    }
}

impl MemoryPairStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryPairStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, Pairs> {
        recover(&self.pairs)
    }

    fn lock_tokens(&self) -> MutexGuard<'_, Tokens> {
        recover(&self.tokens)
    }
}

/// A panic while holding a lock cannot leave the maps inconsistent in a way that
/// matters more than losing every pair, so the guard is recovered.
fn recover<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MemoryPairStore {
    /// Resend tokens held (live, or past their window and not yet swept).
    #[cfg(test)]
    fn token_count(&self) -> usize {
        self.lock_tokens().until.len()
    }
}

impl PairStore for MemoryPairStore {
    fn insert(
        &self,
        client_id: &str,
        pairs: Vec<NewPair>,
        caps: PairCaps,
    ) -> StoreFuture<'_, Result<Vec<u64>, InsertError>> {
        let outcome = self.lock().insert(client_id, pairs, caps);
        Box::pin(async move { outcome })
    }

    fn load<'a>(
        &'a self,
        key: &'a PairKey,
        now: u64,
    ) -> StoreFuture<'a, Result<Lookup, StoreError>> {
        let lookup = match self.lock().record(key) {
            Some(record) if record.expires_at <= now => Lookup::Expired,
            Some(record) => Lookup::Found(Box::new(record.clone())),
            None => Lookup::Missing,
        };
        Box::pin(async move { Ok(lookup) })
    }

    fn commit<'a>(
        &'a self,
        key: &'a PairKey,
        generation: u64,
        seq: u64,
        ratchet: Option<RatchetUse>,
    ) -> StoreFuture<'a, Result<(), CommitError>> {
        let outcome = match self.lock().record_mut(key) {
            None => Err(CommitError::Missing),
            Some(record) if record.generation != generation => Err(CommitError::Replaced),
            Some(record)
                if ratchet
                    .as_ref()
                    .is_some_and(|used| used.epoch + 1 < record.keys.ratchet.epoch()) =>
            {
                Err(CommitError::EpochErased)
            }
            Some(record) => record
                .window
                .get_or_insert_with(ReplayWindow::new)
                .check_and_mark(seq)
                .map(|()| {
                    if let Some(newer) = ratchet.and_then(|used| used.advanced) {
                        record.keys.ratchet.advance_to(newer);
                    }
                })
                .map_err(CommitError::from),
        };
        Box::pin(async move { outcome })
    }

    fn record_token<'a>(
        &'a self,
        client_id: &'a str,
        token: ResendToken,
        now: u64,
        expires_at: u64,
        max_tokens: usize,
    ) -> StoreFuture<'a, Result<TokenClaim, TokenError>> {
        let outcome = self
            .lock_tokens()
            .record(client_id, &token, now, expires_at, max_tokens);
        Box::pin(async move { outcome })
    }

    fn sweep_expired(&self, now: u64) -> StoreFuture<'_, Result<Swept, StoreError>> {
        let pairs = self.lock().sweep_expired(now);
        let tokens = self.lock_tokens().sweep_expired(now);
        Box::pin(async move { Ok(Swept { pairs, tokens }) })
    }

    fn pair_count(&self) -> StoreFuture<'_, Result<usize, StoreError>> {
        let total = self.lock().total;
        Box::pin(async move { Ok(total) })
    }

    fn check(&self) -> StoreFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use mte_relay_protocol::keys::{EPOCH_LEN, PairKeys};
    use mte_relay_protocol::registry::ErrorReason;
    use mte_relay_protocol::replay::ReplayError;
    use mte_relay_protocol::secret::Secret32;

    use super::*;

    const CAPS: PairCaps = PairCaps {
        per_client: 2,
        total: 100,
    };

    fn keys(seed: u8) -> PairKeys {
        PairKeys::from_roots(
            Secret32::from_bytes([seed; 32]),
            Secret32::from_bytes([seed.wrapping_add(1); 32]),
        )
    }

    fn pair(id: u8, created_at: u64) -> NewPair {
        NewPair {
            pair_id: PairId([id; 16]),
            keys: keys(id),
            created_at,
            expires_at: created_at + 100,
        }
    }

    fn key(client: &str, id: u8) -> PairKey {
        PairKey::new(client, PairId([id; 16]))
    }

    fn block<T>(future: StoreFuture<'_, T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(future)
    }

    fn found(store: &MemoryPairStore, key: &PairKey, now: u64) -> Option<PairRecord> {
        match block(store.load(key, now)).expect("load") {
            Lookup::Found(record) => Some(*record),
            Lookup::Expired | Lookup::Missing => None,
        }
    }

    #[test]
    fn per_client_cap_evicts_the_oldest_pair() {
        let store = MemoryPairStore::new();
        for n in 0..3u8 {
            block(store.insert("alice", vec![pair(n, u64::from(n))], CAPS)).expect("insert");
        }
        block(store.insert("bob", vec![pair(9, 0)], CAPS)).expect("insert");
        assert!(found(&store, &key("alice", 0), 5).is_none());
        assert!(found(&store, &key("alice", 1), 5).is_some());
        assert!(found(&store, &key("alice", 2), 5).is_some());
        assert!(found(&store, &key("bob", 9), 5).is_some());
        assert_eq!(block(store.pair_count()).expect("count"), 3);
    }

    #[test]
    fn a_pair_is_found_only_under_its_own_client() {
        let store = MemoryPairStore::new();
        block(store.insert("alice", vec![pair(1, 0)], CAPS)).expect("insert");
        assert!(found(&store, &key("mallory", 1), 5).is_none());
        // The same pair id under another client is another pair, and leaves alice's be.
        block(store.insert("mallory", vec![pair(1, 0)], CAPS)).expect("insert");
        let alice = found(&store, &key("alice", 1), 5).expect("alice's pair");
        assert!(alice.keys == keys(1), "alice's keys are untouched");
    }

    #[test]
    fn an_existing_pair_is_never_replaced() {
        let store = MemoryPairStore::new();
        block(store.insert("alice", vec![pair(1, 0)], CAPS)).expect("insert");
        let mut again = pair(1, 3);
        again.keys = keys(7);
        let refused = block(store.insert("alice", vec![pair(2, 3), again], CAPS));
        assert!(matches!(refused, Err(InsertError::Exists(id)) if id == PairId([1; 16])));
        // All or nothing: the batch's other pair was not stored either.
        assert!(found(&store, &key("alice", 2), 5).is_none());
        let kept = found(&store, &key("alice", 1), 5).expect("the original pair");
        assert!(kept.keys == keys(1), "the original keys are kept");
        assert!(matches!(
            block(store.insert("bob", vec![pair(4, 0), pair(4, 0)], CAPS)),
            Err(InsertError::Duplicate(_))
        ));
    }

    #[test]
    fn the_total_cap_refuses_new_pairs_but_counts_evictions() {
        let store = MemoryPairStore::new();
        let caps = PairCaps {
            per_client: 2,
            total: 3,
        };
        block(store.insert("alice", vec![pair(1, 0), pair(2, 0)], caps)).expect("insert");
        block(store.insert("bob", vec![pair(3, 0)], caps)).expect("insert");
        assert!(matches!(
            block(store.insert("carol", vec![pair(4, 0)], caps)),
            Err(InsertError::Full(3))
        ));
        // Alice replacing her own oldest pair does not grow the total.
        block(store.insert("alice", vec![pair(5, 1)], caps)).expect("within the cap");
        assert_eq!(block(store.pair_count()).expect("count"), 3);
    }

    #[test]
    fn expiry_is_reported_then_swept() {
        let store = MemoryPairStore::new();
        block(store.insert("alice", vec![pair(1, 0), pair(2, 50)], CAPS)).expect("insert");
        assert!(matches!(
            block(store.load(&key("alice", 1), 100)),
            Ok(Lookup::Expired)
        ));
        assert_eq!(block(store.sweep_expired(100)).expect("sweep").pairs, 1);
        assert!(matches!(
            block(store.load(&key("alice", 1), 100)),
            Ok(Lookup::Missing)
        ));
        assert_eq!(block(store.pair_count()).expect("count"), 1);
        assert_eq!(block(store.sweep_expired(150)).expect("sweep").pairs, 1);
        assert_eq!(block(store.pair_count()).expect("count"), 0);
        assert!(
            store.lock().clients.is_empty(),
            "no empty client entries remain"
        );
    }

    #[test]
    fn commit_marks_once_and_moves_the_ratchet_forward() {
        let store = MemoryPairStore::new();
        let id = key("alice", 1);
        block(store.insert("alice", vec![pair(1, 0)], CAPS)).expect("insert");
        let loaded = found(&store, &id, 1).expect("pair is live");
        let (_, advanced) = loaded
            .keys
            .ratchet
            .message_secret(EPOCH_LEN)
            .expect("next epoch");
        let used = Some(RatchetUse { epoch: 1, advanced });
        block(store.commit(&id, loaded.generation, EPOCH_LEN, used)).expect("first commit");
        assert!(matches!(
            block(store.commit(&id, loaded.generation, EPOCH_LEN, None)),
            Err(CommitError::Replay(ReplayError::Duplicate))
        ));
        let after = found(&store, &id, 1).expect("pair is live");
        assert_eq!(after.keys.ratchet.epoch(), 1);
        // Another request moves the ratchet two epochs on: a message opened with the
        // epoch-0 key is refused at commit, its key erased meanwhile.
        let (_, advanced) = after
            .keys
            .ratchet
            .message_secret(3 * EPOCH_LEN)
            .expect("within reach");
        let used = Some(RatchetUse { epoch: 3, advanced });
        block(store.commit(&id, loaded.generation, 3 * EPOCH_LEN, used)).expect("epoch 3");
        let stale = Some(RatchetUse {
            epoch: 1,
            advanced: None,
        });
        assert!(matches!(
            block(store.commit(&id, loaded.generation, 3 * EPOCH_LEN - 1, stale)),
            Err(CommitError::EpochErased)
        ));
        let previous = Some(RatchetUse {
            epoch: 2,
            advanced: None,
        });
        block(store.commit(&id, loaded.generation, 3 * EPOCH_LEN - 1, previous))
            .expect("the previous epoch is still held");
        assert!(matches!(
            block(store.commit(&key("alice", 7), 1, 0, None)),
            Err(CommitError::Missing)
        ));
    }

    #[test]
    fn a_commit_racing_a_replacement_touches_nothing() {
        let store = MemoryPairStore::new();
        let id = key("alice", 1);
        block(store.insert("alice", vec![pair(1, 0)], CAPS)).expect("insert");
        let loaded = found(&store, &id, 1).expect("pair is live");
        // While the request is in flight, the pair expires, is swept, and the same id is
        // paired again with other keys.
        block(store.sweep_expired(200)).expect("sweep");
        let mut again = pair(1, 200);
        again.keys = keys(7);
        block(store.insert("alice", vec![again], CAPS)).expect("re-paired");
        let (_, advanced) = loaded
            .keys
            .ratchet
            .message_secret(EPOCH_LEN)
            .expect("next epoch");
        let used = Some(RatchetUse { epoch: 1, advanced });
        assert!(matches!(
            block(store.commit(&id, loaded.generation, EPOCH_LEN, used)),
            Err(CommitError::Replaced)
        ));
        let current = found(&store, &id, 201).expect("the new pair");
        assert_ne!(current.generation, loaded.generation);
        assert_eq!(current.keys.ratchet.epoch(), 0, "its ratchet did not move");
        assert!(
            current
                .window
                .as_ref()
                .is_some_and(|window| window.check(EPOCH_LEN).is_ok()),
            "its window is unmarked"
        );
    }

    fn record(store: &MemoryPairStore, client: &str, token: u8, now: u64) -> TokenClaim {
        block(store.record_token(client, ResendToken([token; 16]), now, now + 60, 1_000))
            .expect("recorded")
    }

    #[test]
    fn a_token_is_recorded_once_per_client_within_its_window() {
        let store = MemoryPairStore::new();
        assert_eq!(record(&store, "alice", 1, 0), TokenClaim::Recorded);
        assert_eq!(record(&store, "alice", 1, 59), TokenClaim::AlreadyForwarded);
        assert_eq!(
            record(&store, "bob", 1, 59),
            TokenClaim::Recorded,
            "another client's token is another token"
        );
        assert_eq!(
            record(&store, "alice", 1, 60),
            TokenClaim::Recorded,
            "past its window the token is forgotten"
        );
        assert_eq!(record(&store, "alice", 1, 61), TokenClaim::AlreadyForwarded);
    }

    #[test]
    fn tokens_past_the_cap_are_refused_until_swept() {
        let store = MemoryPairStore::new();
        let at = |token: u8, now: u64| {
            block(store.record_token("alice", ResendToken([token; 16]), now, now + 10, 2))
        };
        assert!(matches!(at(1, 0), Ok(TokenClaim::Recorded)));
        assert!(matches!(at(2, 0), Ok(TokenClaim::Recorded)));
        assert!(matches!(at(3, 0), Err(TokenError::Full(2))));
        assert_eq!(
            at(3, 0).map_err(|error| error.reason()).err(),
            Some(ErrorReason::Overloaded)
        );
        assert!(
            matches!(at(1, 5), Ok(TokenClaim::AlreadyForwarded)),
            "a held token is still answered at the cap"
        );
        let swept = block(store.sweep_expired(10)).expect("sweep");
        assert_eq!(
            swept,
            Swept {
                pairs: 0,
                tokens: 2
            }
        );
        assert_eq!(store.token_count(), 0);
        assert!(matches!(at(3, 10), Ok(TokenClaim::Recorded)));
    }

    proptest::proptest! {
        /// A random history of sends: a client (of three) sends a token (of four) some
        /// seconds after the previous send, sometimes after a sweep. Whatever the
        /// interleaving of clients, tokens and times, and wherever sweeps
        /// fall, a token is recorded exactly when no copy of it was recorded for the same
        /// client within the window: so at most one copy runs per window, and a resend
        /// after the window runs again.
        #[test]
        fn a_token_runs_at_most_once_per_window(
            sends in proptest::collection::vec(
                (0u8..3, 0u8..4, 0u64..40, proptest::bool::ANY),
                1..60,
            ),
        ) {
            const WINDOW: u64 = 30;
            let store = MemoryPairStore::new();
            let mut recorded_at: HashMap<(u8, u8), u64> = HashMap::new();
            let mut now = 0;
            for (client, token, after, sweep) in sends {
                now += after;
                if sweep {
                    block(store.sweep_expired(now)).expect("sweep");
                }
                let claim = block(store.record_token(
                    &format!("client-{client}"),
                    ResendToken([token; 16]),
                    now,
                    now + WINDOW,
                    1_000,
                ))
                .expect("under the cap");
                let expected = match recorded_at.get(&(client, token)) {
                    Some(at) if now < at + WINDOW => TokenClaim::AlreadyForwarded,
                    _ => TokenClaim::Recorded,
                };
                proptest::prop_assert_eq!(claim, expected, "client {} token {} at {}", client, token, now);
                if expected == TokenClaim::Recorded {
                    recorded_at.insert((client, token), now);
                }
            }
        }
    }

    #[test]
    fn a_resend_token_costs_at_most_96_bytes() {
        // The token table is a hash map of 32-byte keys and 8-byte times; its buckets
        // (plus one control byte each) are all it allocates, at a load between 7/16
        // (just after growing) and 7/8. docs/operations.md quotes this bound.
        let store = MemoryPairStore::new();
        let mut worst = 0f64;
        for n in 1..=200_000u32 {
            let mut token = [0u8; 16];
            token[..4].copy_from_slice(&n.to_be_bytes());
            block(store.record_token("alice", ResendToken(token), 0, 60, usize::MAX))
                .expect("recorded");
            if n % 10_000 == 0 {
                let tokens = store.lock_tokens();
                let buckets = (tokens.until.capacity() * 8 / 7).next_power_of_two();
                let bytes = buckets * (std::mem::size_of::<([u8; 32], u64)>() + 1);
                worst = worst.max(bytes as f64 / f64::from(n));
            }
        }
        assert!(worst <= 96.0, "{worst:.1} bytes per token");
    }
}
