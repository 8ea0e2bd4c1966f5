//! Pair state: the keys and replay window of every live pair.
//!
//! The relay talks to a [`PairStore`]; the memory implementation is the embedded
//! default, and a Redis implementation shares pairs between replicas. The store owns
//! the one operation that must be atomic: checking and marking a sequence number in a
//! pair's replay window, together with advancing its MTE ratchet.

mod memory;

use std::future::Future;
use std::pin::Pin;

use mte_relay_protocol::ids::PairId;
use mte_relay_protocol::keys::{MteRatchet, PairKeys};
use mte_relay_protocol::registry::ErrorReason;
use mte_relay_protocol::replay::{ReplayError, ReplayWindow};

pub use memory::MemoryPairStore;

/// A boxed future, so stores can be chosen at runtime behind `Arc<dyn PairStore>`.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Everything the relay keeps about one pair.
#[derive(Clone, Debug)]
pub struct PairRecord {
    /// The client id the pair is bound to.
    pub client_id: String,
    /// The pair's keys and MTE ratchet.
    pub keys: PairKeys,
    /// Sequence numbers accepted so far.
    pub window: ReplayWindow,
    /// Unix time of pairing; the per-client cap evicts the oldest first.
    pub created_at: u64,
    /// Unix time after which the pair is refused.
    pub expires_at: u64,
}

/// The result of looking a pair up.
#[derive(Clone, Debug)]
pub enum Lookup {
    /// The pair exists and is live.
    Found(Box<PairRecord>),
    /// The pair existed but its time to live ran out.
    Expired,
    /// No such pair.
    Missing,
}

/// Why the store could not serve a call.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backing service is unreachable or failed; the request may be retried.
    #[error("pair store unavailable: {0}")]
    Unavailable(String),
}

/// Why committing a sequence number failed.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The sequence number was refused by the window (a concurrent duplicate, or old).
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// The pair disappeared (expired or evicted) between load and commit.
    #[error("pair vanished before its sequence number was recorded")]
    Missing,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CommitError {
    /// The registry reason the relay answers with.
    pub fn reason(&self) -> ErrorReason {
        match self {
            CommitError::Replay(_) => ErrorReason::Replay,
            CommitError::Missing => ErrorReason::PairUnknown,
            CommitError::Store(_) => ErrorReason::Internal,
        }
    }
}

/// Where pairs live.
pub trait PairStore: Send + Sync + std::fmt::Debug + 'static {
    /// Stores a new pair; when its client then has more than `max_per_client` pairs,
    /// the oldest are evicted.
    fn insert(
        &self,
        pair_id: PairId,
        record: PairRecord,
        max_per_client: usize,
    ) -> StoreFuture<'_, Result<(), StoreError>>;

    /// Looks a pair up at Unix time `now`.
    fn load(&self, pair_id: PairId, now: u64) -> StoreFuture<'_, Result<Lookup, StoreError>>;

    /// Atomically checks and marks `seq` in the pair's window and, when given, moves its
    /// ratchet forward. Called only after the request's head authenticated.
    fn commit(
        &self,
        pair_id: PairId,
        seq: u64,
        ratchet: Option<MteRatchet>,
    ) -> StoreFuture<'_, Result<(), CommitError>>;

    /// Number of live pairs, for logs and metrics.
    fn pair_count(&self) -> StoreFuture<'_, Result<usize, StoreError>>;
}
