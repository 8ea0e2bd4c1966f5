//! The pool of pairs: round-robin selection, per-pair sequence numbers, removal.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use mte_relay_protocol::header::Mode;
use mte_relay_protocol::ids::PairId;
use mte_relay_protocol::keys::{EPOCH_LEN, MessageSecret, PairKeys, RatchetError};

/// Why a pair can protect no more requests; the pool replaces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PairSpent {
    /// The next sequence number would pass `u64::MAX`.
    #[error("the pair's sequence numbers are exhausted")]
    SequenceExhausted,
    /// The MTE ratchet cannot reach the next sequence number.
    #[error(transparent)]
    Ratchet(#[from] RatchetError),
}

/// One pair: its keys and the sequence numbers handed out so far.
pub(crate) struct Pair {
    pub id: PairId,
    /// The client id this pair is bound to; requests over it must carry this id.
    pub client_id: Arc<str>,
    /// When to stop using the pair, on this process's monotonic clock: a little before
    /// the relay forgets it. A monotonic deadline is immune to clock skew between the
    /// client and the relay, which an absolute expiry time is not.
    /// `None` when the pair never needs retiring.
    pub retire_at: Option<Instant>,
    next_seq: AtomicU64,
    /// How long MTE messages may use one ratchet epoch (see [`Pair::reserve_at`]).
    epoch_interval: Duration,
    keys: Mutex<KeyState>,
}

/// The pair's keys and the times that decide when MTE moves to a new epoch.
struct KeyState {
    keys: PairKeys,
    /// When the ratchet entered its current epoch (pairing, for epoch 0).
    epoch_entered: Instant,
    /// When the pair last numbered a request, in either mode; `None` before the first.
    last_request: Option<Instant>,
    /// Whether the pair has protected an MTE message yet.
    carried_mte: bool,
}

impl std::fmt::Debug for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pair")
            .field("id", &self.id)
            .field("next_seq", &self.next_seq.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Pair {
    pub fn new(
        id: PairId,
        client_id: Arc<str>,
        keys: PairKeys,
        retire_at: Option<Instant>,
        epoch_interval: Duration,
    ) -> Self {
        Pair::starting_at(id, client_id, keys, retire_at, epoch_interval, 0)
    }

    fn starting_at(
        id: PairId,
        client_id: Arc<str>,
        keys: PairKeys,
        retire_at: Option<Instant>,
        epoch_interval: Duration,
        first_seq: u64,
    ) -> Self {
        Pair {
            id,
            client_id,
            retire_at,
            next_seq: AtomicU64::new(first_seq),
            epoch_interval,
            keys: Mutex::new(KeyState {
                keys,
                epoch_entered: Instant::now(),
                last_request: None,
                carried_mte: false,
            }),
        }
    }

    /// Reserves the next sequence number and derives its message secret. A number is
    /// never handed out twice, whatever the concurrency.
    pub fn reserve(&self, mode: Mode) -> Result<(u64, MessageSecret), PairSpent> {
        self.reserve_at(mode, Instant::now())
    }

    /// [`Pair::reserve`] at the time `now`.
    ///
    /// An MTE message moves to a later ratchet epoch when time says so, not only when
    /// the sequence numbers do, so that a pair sending few messages still makes the
    /// relay forget old epoch keys (docs/protocol.md §8). Once the pair has carried an
    /// MTE message: two epochs on when the pair numbered no request at all for
    /// `epoch_interval` (nothing of it is in flight then, so the relay may drop the key
    /// of the earlier messages too, which it keeps as the "previous" epoch), otherwise
    /// one epoch on when the current one was entered `epoch_interval` ago. Every request
    /// a jump could put below the replay window was numbered `epoch_interval` before.
    fn reserve_at(&self, mode: Mode, now: Instant) -> Result<(u64, MessageSecret), PairSpent> {
        // Numbering under the lock: an MTE jump then sees every earlier request's time,
        // and the ratchet's moves follow sequence order, so it never has to reach back
        // to an erased epoch.
        let mut state = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        let idle_since = state.last_request.replace(now);
        match mode {
            Mode::Mke => {
                let seq = self.take_seq()?;
                let (secret, _) = state.keys.message_secret(Mode::Mke, seq)?;
                Ok((seq, secret))
            }
            Mode::Mte => {
                let elapsed = |since: Instant| now.saturating_duration_since(since);
                let skip = if !state.carried_mte {
                    0
                } else if idle_since.is_some_and(|last| elapsed(last) >= self.epoch_interval) {
                    2
                } else if elapsed(state.epoch_entered) >= self.epoch_interval {
                    1
                } else {
                    0
                };
                if skip > 0 {
                    let boundary = state
                        .keys
                        .ratchet
                        .epoch()
                        .checked_add(skip)
                        .and_then(|epoch| epoch.checked_mul(EPOCH_LEN))
                        .ok_or(PairSpent::SequenceExhausted)?;
                    self.next_seq.fetch_max(boundary, Ordering::AcqRel);
                }
                let seq = self.take_seq()?;
                let (secret, advanced) = state.keys.message_secret(Mode::Mte, seq)?;
                if let Some(advanced) = advanced {
                    state.keys.ratchet.advance_to(advanced);
                    state.epoch_entered = now;
                }
                state.carried_mte = true;
                Ok((seq, secret))
            }
        }
    }

    fn take_seq(&self) -> Result<u64, PairSpent> {
        // `checked_add` refuses to wrap, so the counter stops at u64::MAX and that
        // value itself is never handed out.
        self.next_seq
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |seq| {
                seq.checked_add(1)
            })
            .map_err(|_| PairSpent::SequenceExhausted)
    }

    /// True once the pair should be replaced rather than used.
    pub fn is_retired(&self, now: Instant) -> bool {
        self.retire_at.is_some_and(|deadline| now >= deadline)
    }
}

/// Pairs in use, chosen round-robin.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    pairs: RwLock<Vec<Arc<Pair>>>,
    cursor: AtomicUsize,
}

impl Pool {
    /// The next pair in round-robin order, if any.
    pub fn next(&self) -> Option<Arc<Pair>> {
        let pairs = self.pairs.read().unwrap_or_else(PoisonError::into_inner);
        if pairs.is_empty() {
            return None;
        }
        let index = self.cursor.fetch_add(1, Ordering::Relaxed) % pairs.len();
        Some(Arc::clone(&pairs[index]))
    }

    /// Removes the pair with `id`; false when it was already gone (another request
    /// replaced it first).
    pub fn remove(&self, id: PairId) -> bool {
        let mut pairs = self.pairs.write().unwrap_or_else(PoisonError::into_inner);
        let before = pairs.len();
        pairs.retain(|pair| pair.id != id);
        pairs.len() != before
    }

    /// Adds freshly paired pairs and returns them.
    pub fn extend(&self, new_pairs: impl IntoIterator<Item = Pair>) -> Vec<Arc<Pair>> {
        let added: Vec<Arc<Pair>> = new_pairs.into_iter().map(Arc::new).collect();
        let mut pairs = self.pairs.write().unwrap_or_else(PoisonError::into_inner);
        pairs.extend(added.iter().cloned());
        added
    }

    /// The pair paired last, if any.
    pub fn newest(&self) -> Option<Arc<Pair>> {
        self.pairs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .last()
            .cloned()
    }

    /// Drops every pair (a new client id invalidates them all).
    pub fn clear(&self) {
        self.pairs
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    pub fn len(&self) -> usize {
        self.pairs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ids of the pairs, in pool order.
    pub fn ids(&self) -> Vec<PairId> {
        let pairs = self.pairs.read().unwrap_or_else(PoisonError::into_inner);
        pairs.iter().map(|pair| pair.id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mte_relay_protocol::keys::{EPOCH_LEN, MAX_RATCHET_STEPS};
    use mte_relay_protocol::secret::Secret32;
    use std::collections::HashSet;
    use std::time::Duration;

    fn keys() -> PairKeys {
        PairKeys::from_roots(Secret32::from_bytes([1; 32]), Secret32::from_bytes([2; 32]))
    }

    fn later() -> Option<Instant> {
        Some(Instant::now() + Duration::from_secs(3_600))
    }

    const INTERVAL: Duration = Duration::from_secs(300);

    fn pair(tag: u8) -> Pair {
        Pair::new(
            PairId([tag; 16]),
            Arc::from("client"),
            keys(),
            later(),
            INTERVAL,
        )
    }

    #[test]
    fn pairs_are_used_round_robin() {
        let pool = Pool::default();
        assert!(pool.next().is_none());
        pool.extend([pair(1), pair(2), pair(3)]);
        let picked: Vec<u8> = (0..6).map(|_| pool.next().expect("pair").id.0[0]).collect();
        assert_eq!(picked, [1, 2, 3, 1, 2, 3]);
    }

    #[test]
    fn the_newest_pair_is_the_one_paired_last() {
        let pool = Pool::default();
        assert!(pool.newest().is_none());
        pool.extend([pair(1), pair(2)]);
        pool.extend([pair(3)]);
        assert_eq!(pool.newest().expect("a pair").id.0[0], 3);
        assert!(pool.remove(PairId([3; 16])));
        assert_eq!(pool.newest().expect("a pair").id.0[0], 2);
    }

    #[test]
    fn removal_and_replacement_change_the_rotation() {
        let pool = Pool::default();
        pool.extend([pair(1), pair(2)]);
        assert!(pool.remove(PairId([1; 16])));
        assert!(!pool.remove(PairId([1; 16])), "second removal is a no-op");
        pool.extend([pair(3)]);
        assert_eq!(pool.ids(), [PairId([2; 16]), PairId([3; 16])]);
        let picked: HashSet<u8> = (0..4).map(|_| pool.next().expect("pair").id.0[0]).collect();
        assert_eq!(picked, HashSet::from([2, 3]));
        pool.clear();
        assert!(pool.is_empty());
    }

    #[test]
    fn sequence_numbers_are_unique_under_concurrency() {
        let pair = Arc::new(pair(1));
        let threads: Vec<_> = (0..8)
            .map(|index| {
                let pair = Arc::clone(&pair);
                let mode = if index % 2 == 0 { Mode::Mke } else { Mode::Mte };
                std::thread::spawn(move || {
                    (0..300)
                        .map(|_| pair.reserve(mode).expect("reserve").0)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut seen = HashSet::new();
        for thread in threads {
            for seq in thread.join().expect("thread") {
                assert!(seen.insert(seq), "sequence {seq} handed out twice");
            }
        }
        assert_eq!(seen.len(), 2400);
        assert_eq!(seen.iter().max(), Some(&2399));
    }

    #[test]
    fn mte_reservations_advance_the_ratchet() {
        let pair = Pair::starting_at(
            PairId([1; 16]),
            Arc::from("c"),
            keys(),
            later(),
            INTERVAL,
            3 * EPOCH_LEN,
        );
        let (seq, secret) = pair.reserve(Mode::Mte).expect("reserve");
        assert_eq!(seq, 3 * EPOCH_LEN);
        let keys_now = pair.keys.lock().expect("lock").keys.clone();
        assert_eq!(keys_now.ratchet.epoch(), 3);
        // The secret is the one the relay derives from the unadvanced state.
        let (expected, _) = keys().message_secret(Mode::Mte, seq).expect("relay side");
        assert_eq!(secret, expected);
    }

    #[test]
    fn exhausted_counters_and_unreachable_epochs_spend_the_pair() {
        let last = Pair::starting_at(
            PairId([1; 16]),
            Arc::from("c"),
            keys(),
            later(),
            INTERVAL,
            u64::MAX - 1,
        );
        assert_eq!(
            last.reserve(Mode::Mke).expect("last number").0,
            u64::MAX - 1
        );
        assert_eq!(last.reserve(Mode::Mke), Err(PairSpent::SequenceExhausted));
        assert_eq!(last.reserve(Mode::Mte), Err(PairSpent::SequenceExhausted));

        let far = Pair::starting_at(
            PairId([1; 16]),
            Arc::from("c"),
            keys(),
            later(),
            INTERVAL,
            u64::MAX / 2,
        );
        assert_eq!(
            far.reserve(Mode::Mte),
            Err(PairSpent::Ratchet(RatchetError::TooFarAhead))
        );
        assert!(
            far.reserve(Mode::Mke).is_ok(),
            "MKE does not use the ratchet"
        );

        // MKE traffic moved the numbers 65 epochs past the ratchet: one more than a
        // relay derives for a single message, so the pair is spent for MTE.
        let mke_heavy = Pair::starting_at(
            PairId([1; 16]),
            Arc::from("c"),
            keys(),
            later(),
            INTERVAL,
            (MAX_RATCHET_STEPS + 1) * EPOCH_LEN,
        );
        assert_eq!(
            mke_heavy.reserve(Mode::Mte),
            Err(PairSpent::Ratchet(RatchetError::TooFarAhead))
        );
        let within = Pair::starting_at(
            PairId([1; 16]),
            Arc::from("c"),
            keys(),
            later(),
            INTERVAL,
            MAX_RATCHET_STEPS * EPOCH_LEN,
        );
        assert!(within.reserve(Mode::Mte).is_ok(), "64 epochs are in reach");
    }

    #[test]
    fn pairs_retire_at_their_deadline() {
        let start = Instant::now();
        let pair = Pair::new(
            PairId([1; 16]),
            Arc::from("c"),
            keys(),
            Some(start + Duration::from_secs(10)),
            INTERVAL,
        );
        assert!(!pair.is_retired(start));
        assert!(pair.is_retired(start + Duration::from_secs(10)));
        let forever = Pair::new(PairId([2; 16]), Arc::from("c"), keys(), None, INTERVAL);
        assert!(!forever.is_retired(start + Duration::from_secs(10)));
    }

    #[test]
    fn mte_moves_to_a_new_epoch_by_time_and_skips_one_after_a_pause() {
        let pair = pair(1);
        let start = Instant::now();
        let epoch_of = |seq: u64| seq / EPOCH_LEN;
        let reserve = |at: Instant| pair.reserve_at(Mode::Mte, at).expect("reserve").0;
        assert_eq!(reserve(start), 0, "a fresh pair starts in epoch 0");
        // Busy: a message every minute; the epoch changes once it is INTERVAL old.
        let minute = Duration::from_secs(60);
        let mut seqs = Vec::new();
        for n in 1..=6 {
            seqs.push(reserve(start + minute * n));
        }
        let epochs: Vec<u64> = seqs.iter().map(|&seq| epoch_of(seq)).collect();
        assert_eq!(
            epochs,
            [0, 0, 0, 0, 1, 1],
            "one epoch on after five minutes"
        );
        assert_eq!(seqs[4], EPOCH_LEN, "the first number of the new epoch");
        // A pause longer than the interval: two epochs on, so the relay's "previous"
        // key is one that protected nothing.
        let (after_pause, client_secret) = pair
            .reserve_at(Mode::Mte, start + minute * 6 + INTERVAL)
            .expect("reserve");
        assert_eq!(epoch_of(after_pause), 3);
        assert_eq!(pair.keys.lock().expect("lock").keys.ratchet.epoch(), 3);
        // The relay derives the same secret from its own state, however far behind.
        let (relay_secret, advanced) = keys()
            .message_secret(Mode::Mte, after_pause)
            .expect("three epochs are within reach");
        assert!(advanced.is_some());
        assert_eq!(relay_secret, client_secret);
        // MKE traffic is not affected by time...
        let later = start + minute * 6 + INTERVAL * 2;
        let mke = pair.reserve_at(Mode::Mke, later).expect("mke").0;
        assert_eq!(mke, after_pause + 1);
        // ...but it counts as traffic: MTE a minute after that MKE request moves one
        // epoch (the current one is old), not two, so the MKE request, perhaps still in
        // flight, stays inside the relay's replay window.
        let (after_mke, _) = pair.reserve_at(Mode::Mte, later + minute).expect("reserve");
        assert_eq!(epoch_of(after_mke), 4);
        assert!(after_mke - mke <= EPOCH_LEN, "{after_mke} - {mke}");
    }
}
