//! Pair state: the keys and replay window of every live pair.
//!
//! The relay talks to a [`PairStore`]; the memory implementation is the embedded
//! default, and a Redis implementation shares pairs between replicas. The store owns
//! the operations that must be atomic: inserting a batch of new pairs under the caps,
//! and checking and marking a sequence number in a pair's replay window together with
//! advancing its MTE ratchet.
//!
//! Two rules keep one client's pairs out of another's reach (docs/protocol.md,
//! "Pair ownership"):
//! - a pair is addressed by its client id *and* pair id ([`PairKey`]), so a pair id
//!   seen in the clear names nothing outside the client that chose it, and an offer
//!   for a key that exists is refused, never a replacement;
//! - every record carries a generation, assigned on insert, that `commit` must match,
//!   so a request that loaded one record cannot mark or advance a later record under
//!   the same key (after expiry or eviction and a new pairing).
//!
//! The store also remembers, for the resend window, the resend token of every
//! non-idempotent request the relay forwarded, per client id ([`PairStore::record_token`]),
//! so that a resend of a request that already ran is refused however it arrives: on
//! another pair, or at another replica sharing the store.

mod instrumented;
mod memory;
mod mte_state;
mod redis_store;
mod sweeper;

use std::future::Future;
use std::pin::Pin;

use mte_relay_protocol::ids::{PairId, ResendToken};
use mte_relay_protocol::keys::{MteRatchet, PairKeys};
use mte_relay_protocol::registry::ErrorReason;
use mte_relay_protocol::replay::{ReplayError, ReplayWindow};

pub use instrumented::InstrumentedStore;
pub use memory::MemoryPairStore;
pub use mte_state::MteState;
pub use redis_store::{RedisKv, RedisPairStore};
pub use sweeper::{Sweeper, sweep_interval};

/// Seconds since the Unix epoch: the clock of pair lifetimes and client id ages.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// A boxed future, so stores can be chosen at runtime behind `Arc<dyn PairStore>`.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where one pair lives: the client id it is bound to and the id its client chose.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PairKey {
    pub client_id: String,
    pub pair_id: PairId,
}

impl PairKey {
    pub fn new(client_id: impl Into<String>, pair_id: PairId) -> PairKey {
        PairKey {
            client_id: client_id.into(),
            pair_id,
        }
    }
}

/// A pair as pairing produced it, before the store holds it.
#[derive(Clone, Debug)]
pub struct NewPair {
    pub pair_id: PairId,
    /// The pair's keys and MTE ratchet.
    pub keys: PairKeys,
    /// Unix time of pairing; the per-client cap evicts the oldest first.
    pub created_at: u64,
    /// Unix time after which the pair is refused.
    pub expires_at: u64,
}

/// Everything the relay keeps about one pair.
#[derive(Clone, Debug)]
pub struct PairRecord {
    /// The pair's keys and MTE ratchet.
    pub keys: PairKeys,
    /// Sequence numbers accepted so far, when the store keeps them where the relay can
    /// check a number before opening the head; `None` when only `commit` decides.
    pub window: Option<ReplayWindow>,
    /// Assigned by the store on insert, never reused for the same key.
    pub generation: u64,
    /// Unix time of pairing.
    pub created_at: u64,
    /// Unix time after which the pair is refused.
    pub expires_at: u64,
}

/// The caps an insert must respect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PairCaps {
    /// Pairs one client id may hold; past it the client's oldest pairs are evicted.
    pub per_client: usize,
    /// Pairs the store may hold in all; past it new pairs are refused.
    pub total: usize,
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

impl StoreError {
    /// The registry reason the relay answers with: the client backs off and retries,
    /// as nothing was forwarded.
    pub fn reason(&self) -> ErrorReason {
        match self {
            StoreError::Unavailable(_) => ErrorReason::StoreUnavailable,
        }
    }
}

/// Why a batch of new pairs was not stored. A refused batch stores none of its pairs.
#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    /// A pair with one of the offered ids exists for this client. Pairs are never
    /// replaced: an offer is refused whoever sends it.
    #[error("pair id {0} is already paired for this client")]
    Exists(PairId),
    /// The same pair id appears twice in the batch.
    #[error("pair id {0} appears twice in the batch")]
    Duplicate(PairId),
    /// The store holds its cap of pairs.
    #[error("the relay holds its maximum of {0} pairs")]
    Full(usize),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl InsertError {
    /// The registry reason the relay answers with.
    pub fn reason(&self) -> ErrorReason {
        match self {
            InsertError::Exists(_) | InsertError::Duplicate(_) => ErrorReason::PairIdTaken,
            InsertError::Full(_) => ErrorReason::Overloaded,
            InsertError::Store(error) => error.reason(),
        }
    }
}

/// What recording a resend token found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenClaim {
    /// The token was new for this client; it is now recorded and the request may go on.
    Recorded,
    /// The token is recorded already: an earlier copy of this request was forwarded.
    AlreadyForwarded,
}

/// Why a resend token could not be recorded. Nothing has been forwarded.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The store holds its cap of live tokens.
    #[error("the relay remembers its maximum of {0} resend tokens")]
    Full(usize),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl TokenError {
    /// The registry reason the relay answers with.
    pub fn reason(&self) -> ErrorReason {
        match self {
            TokenError::Full(_) => ErrorReason::Overloaded,
            TokenError::Store(error) => error.reason(),
        }
    }
}

/// A resend token to record together with a commit, for a request that is forwarded
/// right after it (see [`PairStore::commit_and_record_token`]).
#[derive(Clone, Copy, Debug)]
pub struct TokenRecord<'a> {
    pub client_id: &'a str,
    pub token: ResendToken,
    /// The relay's time.
    pub now: u64,
    /// Unix time until which the token is kept.
    pub expires_at: u64,
    /// The cap of live tokens (memory store).
    pub max_tokens: usize,
}

/// Why a commit with a resend token failed. Nothing has been forwarded.
#[derive(Debug, thiserror::Error)]
pub enum CommitTokenError {
    #[error(transparent)]
    Commit(#[from] CommitError),
    #[error(transparent)]
    Token(#[from] TokenError),
}

impl CommitTokenError {
    /// The registry reason the relay answers with.
    pub fn reason(&self) -> ErrorReason {
        match self {
            CommitTokenError::Commit(error) => error.reason(),
            CommitTokenError::Token(error) => error.reason(),
        }
    }
}

/// What one sweep removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Expired pairs, with their key material.
    pub pairs: usize,
    /// Resend tokens past their window.
    pub tokens: usize,
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
    /// The key now holds a different record than the one the request loaded.
    #[error("pair was replaced before its sequence number was recorded")]
    Replaced,
    /// The message used an MTE epoch the pair's ratchet has erased since it was
    /// loaded (another request moved it on).
    #[error("sequence number belongs to an erased MTE epoch")]
    EpochErased,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CommitError {
    /// The registry reason the relay answers with.
    pub fn reason(&self) -> ErrorReason {
        match self {
            CommitError::Replay(_) | CommitError::EpochErased => ErrorReason::Replay,
            CommitError::Missing | CommitError::Replaced => ErrorReason::PairUnknown,
            CommitError::Store(error) => error.reason(),
        }
    }
}

/// What an MTE message did with its pair's ratchet, for the commit.
#[derive(Clone, Debug)]
pub struct RatchetUse {
    /// The epoch whose key opened the message.
    pub epoch: u64,
    /// The ratchet after the message, when the message moved it to a later epoch.
    pub advanced: Option<MteRatchet>,
}

/// Where pairs live.
pub trait PairStore: Send + Sync + std::fmt::Debug + 'static {
    /// Stores a batch of new pairs for `client_id`, all or none, and returns their
    /// generations in batch order. Refused when a key exists or the total cap would be
    /// passed; when the client then holds more than `caps.per_client` pairs, its
    /// oldest are evicted.
    fn insert(
        &self,
        client_id: &str,
        pairs: Vec<NewPair>,
        caps: PairCaps,
    ) -> StoreFuture<'_, Result<Vec<u64>, InsertError>>;

    /// Looks a pair up at Unix time `now`.
    fn load<'a>(
        &'a self,
        key: &'a PairKey,
        now: u64,
    ) -> StoreFuture<'a, Result<Lookup, StoreError>>;

    /// Atomically checks that the key still holds the record of `generation`, that an
    /// MTE message's epoch is still held (not erased by a later commit), checks and
    /// marks `seq` in its window and, when the message moved it, advances the ratchet.
    /// `ratchet` is `None` for MKE messages. Called only after the head authenticated.
    fn commit<'a>(
        &'a self,
        key: &'a PairKey,
        generation: u64,
        seq: u64,
        ratchet: Option<RatchetUse>,
    ) -> StoreFuture<'a, Result<(), CommitError>>;

    /// [`PairStore::commit`], then [`PairStore::record_token`] when the commit
    /// succeeded: for a non-idempotent request that nothing can refuse between the
    /// two. A store that can do both in one round trip (Redis) does; the sequence number
    /// is consumed even when the token is found recorded already.
    fn commit_and_record_token<'a>(
        &'a self,
        key: &'a PairKey,
        generation: u64,
        seq: u64,
        ratchet: Option<RatchetUse>,
        token: TokenRecord<'a>,
    ) -> StoreFuture<'a, Result<TokenClaim, CommitTokenError>> {
        Box::pin(async move {
            self.commit(key, generation, seq, ratchet).await?;
            let claim = self
                .record_token(
                    token.client_id,
                    token.token,
                    token.now,
                    token.expires_at,
                    token.max_tokens,
                )
                .await?;
            Ok(claim)
        })
    }

    /// Records `token` for `client_id` until Unix time `expires_at`, unless it is
    /// recorded already (and not expired at `now`): atomically, so of two copies of
    /// one request racing here, exactly one is [`TokenClaim::Recorded`]. Refused
    /// without recording when `max_tokens` live tokens are held.
    fn record_token<'a>(
        &'a self,
        client_id: &'a str,
        token: ResendToken,
        now: u64,
        expires_at: u64,
        max_tokens: usize,
    ) -> StoreFuture<'a, Result<TokenClaim, TokenError>>;

    /// Removes every pair whose time to live ran out at Unix time `now`, with its key
    /// material, and every resend token past its window. Stores whose backend expires
    /// keys itself remove nothing.
    fn sweep_expired(&self, now: u64) -> StoreFuture<'_, Result<Swept, StoreError>>;

    /// Number of pairs held (live, or expired and not yet swept), for logs, metrics and
    /// `MAX_PAIRS`. Exact in memory; with Redis, counted per expiry minute across
    /// replicas.
    fn pair_count(&self) -> StoreFuture<'_, Result<usize, StoreError>>;

    /// Whether the store can serve now (readiness).
    fn check(&self) -> StoreFuture<'_, Result<(), StoreError>>;

    /// Network round trips to a backing service so far (a command or a pipeline each);
    /// `None` for a store in this process.
    fn round_trips(&self) -> Option<u64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use mte_relay_protocol::registry::ClientReaction;

    use super::*;

    #[test]
    fn a_failing_store_is_store_unavailable_wherever_it_fails() {
        let failed = || StoreError::Unavailable("connection refused".into());
        assert_eq!(failed().reason(), ErrorReason::StoreUnavailable);
        assert_eq!(
            InsertError::Store(failed()).reason(),
            ErrorReason::StoreUnavailable
        );
        assert_eq!(
            CommitError::Store(failed()).reason(),
            ErrorReason::StoreUnavailable
        );
        let reason = ErrorReason::StoreUnavailable;
        assert!(reason.upstream_untouched(), "nothing was forwarded");
        assert_eq!(reason.reaction(), ClientReaction::BackOff);
        assert_eq!(reason.status(), 503);
    }
}
