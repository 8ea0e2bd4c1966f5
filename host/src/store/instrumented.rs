//! A pair store that times every operation of the store it wraps, for
//! `mte_relay_store_operation_duration_seconds` and `mte_relay_store_errors_total`:
//! the memory store is measured the same way as Redis, so the panel exists before
//! Redis does.

use std::sync::Arc;
use std::time::Instant;

use mte_relay_protocol::ids::ResendToken;

use super::{
    CommitError, CommitTokenError, InsertError, Lookup, NewPair, PairCaps, PairKey, PairStore,
    RatchetUse, StoreError, StoreFuture, Swept, TokenClaim, TokenError, TokenRecord,
};
use crate::metrics::StoreMetrics;

/// `inner`, timed.
pub struct InstrumentedStore {
    inner: Arc<dyn PairStore>,
    metrics: Arc<StoreMetrics>,
}

impl InstrumentedStore {
    pub fn new(inner: Arc<dyn PairStore>, metrics: Arc<StoreMetrics>) -> InstrumentedStore {
        InstrumentedStore { inner, metrics }
    }
}

impl std::fmt::Debug for InstrumentedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

/// Whether an operation's error is the store failing (the other errors are answers:
/// a replay, a taken id, a full store).
trait StoreFailure {
    fn is_store_failure(&self) -> bool;
}

impl StoreFailure for StoreError {
    fn is_store_failure(&self) -> bool {
        true
    }
}

impl StoreFailure for InsertError {
    fn is_store_failure(&self) -> bool {
        matches!(self, InsertError::Store(_))
    }
}

impl StoreFailure for CommitError {
    fn is_store_failure(&self) -> bool {
        matches!(self, CommitError::Store(_))
    }
}

impl StoreFailure for CommitTokenError {
    fn is_store_failure(&self) -> bool {
        match self {
            CommitTokenError::Commit(error) => error.is_store_failure(),
            CommitTokenError::Token(error) => error.is_store_failure(),
        }
    }
}

impl StoreFailure for TokenError {
    fn is_store_failure(&self) -> bool {
        matches!(self, TokenError::Store(_))
    }
}

impl InstrumentedStore {
    fn timed<'a, T: Send + 'a, E: StoreFailure + Send + 'a>(
        &'a self,
        op: &'static str,
        operation: StoreFuture<'a, Result<T, E>>,
    ) -> StoreFuture<'a, Result<T, E>> {
        Box::pin(async move {
            let started = Instant::now();
            let result = operation.await;
            let failed = result
                .as_ref()
                .err()
                .is_some_and(StoreFailure::is_store_failure);
            self.metrics.observe(op, started.elapsed(), failed);
            result
        })
    }
}

impl PairStore for InstrumentedStore {
    fn insert(
        &self,
        client_id: &str,
        pairs: Vec<NewPair>,
        caps: PairCaps,
    ) -> StoreFuture<'_, Result<Vec<u64>, InsertError>> {
        self.timed("insert", self.inner.insert(client_id, pairs, caps))
    }

    fn load<'a>(
        &'a self,
        key: &'a PairKey,
        now: u64,
    ) -> StoreFuture<'a, Result<Lookup, StoreError>> {
        self.timed("load", self.inner.load(key, now))
    }

    fn commit<'a>(
        &'a self,
        key: &'a PairKey,
        generation: u64,
        seq: u64,
        ratchet: Option<RatchetUse>,
    ) -> StoreFuture<'a, Result<(), CommitError>> {
        self.timed("commit", self.inner.commit(key, generation, seq, ratchet))
    }

    fn commit_and_record_token<'a>(
        &'a self,
        key: &'a PairKey,
        generation: u64,
        seq: u64,
        ratchet: Option<RatchetUse>,
        token: TokenRecord<'a>,
    ) -> StoreFuture<'a, Result<TokenClaim, CommitTokenError>> {
        self.timed(
            "commit",
            self.inner
                .commit_and_record_token(key, generation, seq, ratchet, token),
        )
    }

    fn record_token<'a>(
        &'a self,
        client_id: &'a str,
        token: ResendToken,
        now: u64,
        expires_at: u64,
        max_tokens: usize,
    ) -> StoreFuture<'a, Result<TokenClaim, TokenError>> {
        self.timed(
            "record_token",
            self.inner
                .record_token(client_id, token, now, expires_at, max_tokens),
        )
    }

    fn sweep_expired(&self, now: u64) -> StoreFuture<'_, Result<Swept, StoreError>> {
        self.timed("sweep", self.inner.sweep_expired(now))
    }

    fn pair_count(&self) -> StoreFuture<'_, Result<usize, StoreError>> {
        self.timed("count", self.inner.pair_count())
    }

    fn check(&self) -> StoreFuture<'_, Result<(), StoreError>> {
        self.timed("check", self.inner.check())
    }

    fn round_trips(&self) -> Option<u64> {
        self.inner.round_trips()
    }
}
