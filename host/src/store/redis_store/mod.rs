//! The Redis pair store: pairs shared by every replica, so any replica serves any
//! request and a restart is invisible to clients.
//!
//! Layout (docs/operations.md, "What Redis holds"), with `T` a digest of the client id
//! used as the hash tag, so one client's keys live on one Cluster node and each script
//! touches one node:
//! - `{prefix}:{T}:pair:<pair id>`: a hash per pair ([`scripts::field`]), expiring
//!   [`EXPIRED_ANSWER_SECS`] after the pair;
//! - `{prefix}:{T}:pairs` and `{prefix}:{T}:order`: the client's pairs oldest first,
//!   for the per-client cap;
//! - `{prefix}:{T}:token:<token>`: a resend token, expiring with its window;
//! - `{prefix}:pair-count`: pairs per expiry minute, for `MAX_PAIRS`.
//!
//! Key material is sealed under `STORE_KEY` ([`sealing`]); the window, epochs and
//! times are in the clear, as the wire shows them anyway.

mod cache;
mod connection;
mod kv;
mod scripts;
mod sealing;

use std::collections::HashMap;

use mte_relay_protocol::ids::{PAIR_ID_LEN, ResendToken};
use mte_relay_protocol::keys::{MteRatchet, PairKeys};
use mte_relay_protocol::replay::ReplayError;
use mte_relay_protocol::secret::Secret32;
use redis::AsyncCommands;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use self::cache::{CachedPair, PairCache};
use self::connection::Connection;
pub use self::kv::RedisKv;
use self::scripts::{MAX_EXACT_SEQUENCE, Scripts, field};
use self::sealing::RecordSealer;
use super::{
    CommitError, CommitTokenError, InsertError, Lookup, NewPair, PairCaps, PairKey, PairRecord,
    PairStore, RatchetUse, StoreError, StoreFuture, Swept, TokenClaim, TokenError, TokenRecord,
};
use crate::config::RedisSettings;
use crate::config::secret::hex_encode;

/// How long Redis keeps a pair after it expired, so a late request hears
/// `pair-expired` (and re-pairs) rather than `pair-unknown`.
pub const EXPIRED_ANSWER_SECS: u64 = 60;

/// Pairs in Redis, shared by the replicas that name the same Redis and `STORE_KEY`.
pub struct RedisPairStore {
    connection: Connection,
    scripts: Scripts,
    sealer: RecordSealer,
    cache: PairCache,
    prefix: String,
    /// What `Debug` and logs say of the store: kind and redacted URLs.
    described: String,
}

impl std::fmt::Debug for RedisPairStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.described)
    }
}

impl RedisPairStore {
    /// A store for `settings`. Does not connect: the relay starts while Redis is away,
    /// answers MTE requests `store-unavailable` meanwhile, and connects when it can.
    pub fn new(settings: &RedisSettings) -> Result<RedisPairStore, StoreError> {
        let connection = Connection::lazy(settings).map_err(unavailable)?;
        let urls: Vec<String> = settings.urls.iter().map(|url| url.redacted()).collect();
        Ok(RedisPairStore {
            connection,
            scripts: Scripts::new(),
            sealer: RecordSealer::new(&settings.store_key, settings.store_key_previous.as_ref()),
            cache: PairCache::new(settings.cache_pairs),
            prefix: settings.key_prefix.clone(),
            described: format!(
                "RedisPairStore({}{})",
                if settings.cluster { "cluster " } else { "" },
                urls.join(",")
            ),
        })
    }

    fn connection(&self) -> Connection {
        self.connection.clone()
    }

    /// The adapters' key-value store on the same Redis connection and key prefix.
    pub fn adapter_kv(&self) -> RedisKv {
        RedisKv::new(self.connection(), &self.prefix)
    }

    /// The hash tag of a client's keys: a digest, so any client id makes a short,
    /// brace-free tag.
    fn client_tag(client_id: &str) -> String {
        let digest = Sha256::digest(client_id.as_bytes());
        hex_encode(&digest[..16])
    }

    /// The name of a client's pair hashes, up to the pair id.
    fn pair_key_prefix(&self, client_id: &str) -> String {
        self.client_key(client_id, "pair:")
    }

    fn pair_key(&self, key: &PairKey) -> String {
        let pair_id: &[u8; PAIR_ID_LEN] = key.pair_id.as_bytes();
        self.pair_key_prefix(&key.client_id) + &hex_encode(pair_id)
    }

    fn client_key(&self, client_id: &str, what: &str) -> String {
        format!("{}:{{{}}}:{what}", self.prefix, Self::client_tag(client_id))
    }

    fn count_key(&self) -> String {
        format!("{}:pair-count", self.prefix)
    }

    fn seal_record(&self, redis_key: &str, generation: u64, pair: &NewPair) -> Vec<u8> {
        let mut plain = Zeroizing::new(Vec::with_capacity(48));
        plain.extend_from_slice(pair.keys.mke_root().expose_secret());
        plain.extend_from_slice(&pair.created_at.to_be_bytes());
        plain.extend_from_slice(&pair.expires_at.to_be_bytes());
        self.sealer
            .seal(redis_key, &record_context(generation), &plain)
    }

    fn seal_ratchet(&self, redis_key: &str, generation: u64, ratchet: &MteRatchet) -> Vec<u8> {
        let plain = Zeroizing::new(ratchet.to_bytes());
        self.sealer.seal(
            redis_key,
            &ratchet_context(generation, ratchet.epoch()),
            plain.as_ref(),
        )
    }

    /// Reads and opens a pair's record, bypassing the cache.
    async fn read(&self, key: &PairKey) -> Result<Option<CachedPair>, StoreError> {
        let redis_key = self.pair_key(key);
        let fields: StoredFields = redis::cmd("HMGET")
            .arg(&redis_key)
            .arg(&[
                field::GENERATION,
                field::RECORD,
                field::EPOCH,
                field::RATCHET,
            ])
            .query_async(&mut self.connection())
            .await
            .map_err(unavailable)?;
        let (generation, record, epoch, ratchet) = fields;
        let (Some(generation), Some(record), Some(epoch), Some(ratchet)) =
            (generation, record, epoch, ratchet)
        else {
            return Ok(None);
        };
        let damaged = |what: &str, error: &dyn std::fmt::Display| {
            StoreError::Unavailable(format!("pair record {what} cannot be read: {error}"))
        };
        let record = self
            .sealer
            .open(&redis_key, &record_context(generation), &record)
            .map_err(|error| damaged("root", &error))?;
        let ratchet = self
            .sealer
            .open(&redis_key, &ratchet_context(generation, epoch), &ratchet)
            .map_err(|error| damaged("ratchet", &error))?;
        let ratchet = MteRatchet::from_bytes(&ratchet)
            .ok_or_else(|| damaged("ratchet", &"not a ratchet state"))?;
        if record.len() != 48 {
            return Err(damaged("root", &"wrong length"));
        }
        let mut root = [0u8; 32];
        root.copy_from_slice(&record[..32]);
        let time = |range: std::ops::Range<usize>| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&record[range]);
            u64::from_be_bytes(bytes)
        };
        let pair = CachedPair {
            generation,
            keys: PairKeys::from_parts(Secret32::from_bytes(root), ratchet),
            created_at: time(32..40),
            expires_at: time(40..48),
        };
        zeroize::Zeroize::zeroize(&mut root);
        Ok(Some(pair))
    }
}

/// A pair hash's generation, sealed record, epoch and sealed ratchet, as read.
type StoredFields = (Option<u64>, Option<Vec<u8>>, Option<u64>, Option<Vec<u8>>);

impl RedisPairStore {
    /// The commit script, with a resend token to record in the same round trip when
    /// given (docs: scripts::COMMIT).
    async fn run_commit(
        &self,
        key: &PairKey,
        generation: u64,
        seq: u64,
        ratchet: Option<RatchetUse>,
        token: Option<TokenRecord<'_>>,
    ) -> Result<TokenClaim, CommitError> {
        if seq >= MAX_EXACT_SEQUENCE {
            return Err(CommitError::Replay(ReplayError::TooFarAhead));
        }
        let redis_key = self.pair_key(key);
        let mut invocation = self.scripts.commit.prepare_invoke();
        invocation.key(&redis_key).arg(generation).arg(seq);
        let advanced = ratchet.as_ref().and_then(|used| used.advanced.clone());
        match &ratchet {
            Some(used) => invocation.arg(used.epoch),
            None => invocation.arg(""),
        };
        match &advanced {
            Some(newer) => invocation
                .arg(newer.epoch())
                .arg(self.seal_ratchet(&redis_key, generation, newer)),
            None => invocation.arg("").arg(""),
        };
        invocation.arg(random_generation());
        let claim = random_generation();
        let token_key = token.map(|token| self.token_key(token.client_id, &token.token));
        if let (Some(token_key), Some(token)) = (&token_key, &token) {
            invocation.key(token_key).arg(claim).arg(token.expires_at);
        }
        let outcome: String = match invocation.invoke_async(&mut self.connection()).await {
            Ok(outcome) => outcome,
            Err(error) => {
                if let Some(token_key) = token_key {
                    self.withdraw_claim(token_key, claim);
                }
                return Err(CommitError::Store(unavailable(error)));
            }
        };
        match outcome.as_str() {
            "ok" | "already-forwarded" => {
                if let Some(newer) = advanced {
                    self.cache.advance(key, generation, newer);
                }
                Ok(if outcome == "ok" {
                    TokenClaim::Recorded
                } else {
                    TokenClaim::AlreadyForwarded
                })
            }
            "missing" => {
                self.cache.forget(key);
                Err(CommitError::Missing)
            }
            "replaced" => {
                self.cache.forget(key);
                Err(CommitError::Replaced)
            }
            "epoch-erased" => Err(CommitError::EpochErased),
            "duplicate" => Err(CommitError::Replay(ReplayError::Duplicate)),
            "too-old" => Err(CommitError::Replay(ReplayError::TooOld)),
            "too-far-ahead" => Err(CommitError::Replay(ReplayError::TooFarAhead)),
            other => Err(CommitError::Store(StoreError::Unavailable(format!(
                "redis: unexpected answer to the commit script: {other:?}"
            )))),
        }
    }

    fn token_key(&self, client_id: &str, token: &ResendToken) -> String {
        self.client_key(
            client_id,
            &format!("token:{}", hex_encode(token.as_bytes())),
        )
    }

    /// A write of resend token `claim` failed and may still land after its timeout;
    /// the request is not forwarded, so a claim left behind would turn the client's
    /// resend into a false `already-processed`: withdraw it, in order after the write
    /// on the same connection, and only if it is still this claim.
    fn withdraw_claim(&self, token_key: String, claim: u64) {
        let connection = self.connection();
        let withdraw = self.scripts.withdraw.clone();
        tokio::spawn(async move {
            let mut connection = connection;
            let mut invocation = withdraw.key(&token_key);
            invocation.arg(claim);
            if let Err(error) = invocation.invoke_async::<i64>(&mut connection).await {
                tracing::warn!(%error, "a resend token whose write failed could not be withdrawn");
            }
        });
    }
}

fn record_context(generation: u64) -> String {
    format!("{}/{generation}", field::RECORD)
}

fn ratchet_context(generation: u64, epoch: u64) -> String {
    format!("{}/{generation}/{epoch}", field::RATCHET)
}

/// Redis failed or is out of reach: the request may be retried.
fn unavailable(error: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {error}"))
}

fn random_generation() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS random generator is available");
    // 0 is never a generation, so a zeroed value cannot match.
    u64::from_be_bytes(bytes).max(1)
}

/// The oldest Redis the scripts run on: they use `EXPIRETIME`, `SET ... NX GET` and
/// `EXPIREAT ... NX|GT`, all from Redis 7.0.
const MIN_REDIS_MAJOR: u64 = 7;

/// Refuses a Redis older than [`MIN_REDIS_MAJOR`], naming the version found.
fn check_version(info: &str) -> Result<(), StoreError> {
    let version = info
        .lines()
        .find_map(|line| line.strip_prefix("redis_version:"))
        .map(str::trim)
        .unwrap_or("unknown");
    let major = version
        .split('.')
        .next()
        .and_then(|major| major.parse::<u64>().ok());
    match major {
        Some(major) if major >= MIN_REDIS_MAJOR => Ok(()),
        _ => Err(StoreError::Unavailable(format!(
            "Redis {MIN_REDIS_MAJOR}.0 or later is required; the server reports {version}"
        ))),
    }
}

/// The minute a pair's expiry falls in: the field of the pair counter.
fn expiry_minute(expires_at: u64) -> u64 {
    expires_at / 60
}

impl PairStore for RedisPairStore {
    fn insert(
        &self,
        client_id: &str,
        pairs: Vec<NewPair>,
        caps: PairCaps,
    ) -> StoreFuture<'_, Result<Vec<u64>, InsertError>> {
        let client_id = client_id.to_owned();
        Box::pin(async move {
            let mut offered = std::collections::HashSet::with_capacity(pairs.len());
            for pair in &pairs {
                if !offered.insert(pair.pair_id) {
                    return Err(InsertError::Duplicate(pair.pair_id));
                }
            }
            let mut invocation = self.scripts.insert.prepare_invoke();
            invocation
                .key(self.client_key(&client_id, "pairs"))
                .key(self.client_key(&client_id, "order"))
                .arg(caps.per_client.max(1))
                .arg(self.pair_key_prefix(&client_id));
            let mut generations = Vec::with_capacity(pairs.len());
            for pair in &pairs {
                let key = PairKey::new(client_id.as_str(), pair.pair_id);
                let redis_key = self.pair_key(&key);
                let generation = random_generation();
                generations.push(generation);
                invocation
                    .arg(hex_encode(pair.pair_id.as_bytes()))
                    .arg(generation)
                    .arg(self.seal_record(&redis_key, generation, pair))
                    .arg(pair.keys.ratchet.epoch())
                    .arg(self.seal_ratchet(&redis_key, generation, &pair.keys.ratchet))
                    .arg(pair.expires_at + EXPIRED_ANSWER_SECS);
                invocation.key(redis_key);
            }
            let mut connection = self.connection();
            let reply: Vec<redis::Value> = invocation
                .invoke_async(&mut connection)
                .await
                .map_err(|error| InsertError::Store(unavailable(error)))?;
            let status: String = reply
                .first()
                .and_then(|value| redis::from_redis_value_ref(value).ok())
                .unwrap_or_default();
            if status == "exists" {
                let index: usize = reply
                    .get(1)
                    .and_then(|value| redis::from_redis_value_ref(value).ok())
                    .unwrap_or(0);
                return Err(InsertError::Exists(
                    pairs[index.min(pairs.len() - 1)].pair_id,
                ));
            }
            if status != "ok" {
                return Err(InsertError::Store(StoreError::Unavailable(format!(
                    "redis: unexpected answer to the insert script: {status:?}"
                ))));
            }
            // The pair counter is advisory (it bounds MAX_PAIRS across replicas); a
            // failure to update it leaves the pairs stored and is only logged.
            let mut counts: HashMap<u64, i64> = HashMap::new();
            for pair in &pairs {
                *counts
                    .entry(expiry_minute(pair.expires_at + EXPIRED_ANSWER_SECS))
                    .or_default() += 1;
            }
            for value in &reply[1..] {
                if let Ok(expired_at) = redis::from_redis_value_ref::<i64>(value)
                    && expired_at > 0
                {
                    *counts.entry(expiry_minute(expired_at as u64)).or_default() -= 1;
                }
            }
            let mut pipeline = redis::pipe();
            let last_minute = counts.keys().copied().max().unwrap_or(0);
            for (minute, delta) in counts {
                pipeline.hincr(self.count_key(), minute, delta).ignore();
            }
            // The counter lives as long as its last minute: NX sets a first expiry,
            // GT only ever extends it.
            let until = (last_minute + 1) * 60;
            for condition in ["NX", "GT"] {
                pipeline
                    .cmd("EXPIREAT")
                    .arg(self.count_key())
                    .arg(until)
                    .arg(condition)
                    .ignore();
            }
            if let Err(error) = pipeline.query_async::<()>(&mut connection).await {
                tracing::warn!(%error, "pair counter not updated");
            }
            Ok(generations)
        })
    }

    fn load<'a>(
        &'a self,
        key: &'a PairKey,
        now: u64,
    ) -> StoreFuture<'a, Result<Lookup, StoreError>> {
        Box::pin(async move {
            let pair = match self.cache.get(key) {
                Some(pair) => pair,
                None => match self.read(key).await? {
                    Some(pair) => {
                        self.cache.put(key.clone(), pair.clone());
                        pair
                    }
                    None => return Ok(Lookup::Missing),
                },
            };
            if pair.expires_at <= now {
                self.cache.forget(key);
                return Ok(Lookup::Expired);
            }
            Ok(Lookup::Found(Box::new(PairRecord {
                keys: pair.keys,
                // Decided by the commit script alone.
                window: None,
                generation: pair.generation,
                created_at: pair.created_at,
                expires_at: pair.expires_at,
            })))
        })
    }

    fn commit<'a>(
        &'a self,
        key: &'a PairKey,
        generation: u64,
        seq: u64,
        ratchet: Option<RatchetUse>,
    ) -> StoreFuture<'a, Result<(), CommitError>> {
        Box::pin(async move {
            self.run_commit(key, generation, seq, ratchet, None)
                .await
                .map(|_| ())
        })
    }

    fn commit_and_record_token<'a>(
        &'a self,
        key: &'a PairKey,
        generation: u64,
        seq: u64,
        ratchet: Option<RatchetUse>,
        token: TokenRecord<'a>,
    ) -> StoreFuture<'a, Result<TokenClaim, CommitTokenError>> {
        Box::pin(async move {
            Ok(self
                .run_commit(key, generation, seq, ratchet, Some(token))
                .await?)
        })
    }

    fn record_token<'a>(
        &'a self,
        client_id: &'a str,
        token: ResendToken,
        _now: u64,
        expires_at: u64,
        _max_tokens: usize,
    ) -> StoreFuture<'a, Result<TokenClaim, TokenError>> {
        Box::pin(async move {
            let key = self.token_key(client_id, &token);
            // SET NX GET EXAT: of two copies racing on any replicas, one sets it. The
            // value is this claim's own: a resent write (the cluster client resends
            // after a dropped connection) finds its own claim and counts as recorded,
            // and a claim whose answer was lost can be withdrawn.
            let claim = random_generation();
            let set: Result<Option<u64>, _> = redis::cmd("SET")
                .arg(&key)
                .arg(claim)
                .arg("NX")
                .arg("GET")
                .arg("EXAT")
                .arg(expires_at)
                .query_async(&mut self.connection())
                .await;
            match set {
                Ok(None) => Ok(TokenClaim::Recorded),
                Ok(Some(held)) if held == claim => Ok(TokenClaim::Recorded),
                Ok(Some(_)) => Ok(TokenClaim::AlreadyForwarded),
                Err(error) => {
                    self.withdraw_claim(key, claim);
                    Err(TokenError::Store(unavailable(error)))
                }
            }
        })
    }

    fn sweep_expired(&self, now: u64) -> StoreFuture<'_, Result<Swept, StoreError>> {
        Box::pin(async move {
            // Redis expires pairs and tokens itself; here the replica drops cached keys
            // past their lifetime, and counter minutes that have passed.
            self.cache.purge_stale();
            let mut connection = self.connection();
            let minutes: Vec<u64> = connection
                .hkeys(self.count_key())
                .await
                .map_err(unavailable)?;
            let passed: Vec<u64> = minutes
                .into_iter()
                .filter(|minute| *minute < expiry_minute(now))
                .collect();
            if !passed.is_empty() {
                let _: () = connection
                    .hdel(self.count_key(), passed)
                    .await
                    .map_err(unavailable)?;
            }
            Ok(Swept::default())
        })
    }

    fn pair_count(&self) -> StoreFuture<'_, Result<usize, StoreError>> {
        Box::pin(async move {
            let counts: HashMap<u64, i64> = self
                .connection()
                .hgetall(self.count_key())
                .await
                .map_err(unavailable)?;
            let now_minute = expiry_minute(super::unix_now());
            let held: i64 = counts
                .into_iter()
                .filter(|(minute, _)| *minute >= now_minute)
                .map(|(_, count)| count.max(0))
                .sum();
            Ok(usize::try_from(held).unwrap_or(0))
        })
    }

    fn round_trips(&self) -> Option<u64> {
        Some(self.connection.round_trips())
    }

    fn check(&self) -> StoreFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let info: redis::Value = redis::cmd("INFO")
                .arg("server")
                .query_async(&mut self.connection())
                .await
                .map_err(unavailable)?;
            // One node answers with its text; a cluster with each node's text by node.
            if let Ok(text) = redis::from_redis_value_ref::<String>(&info) {
                return check_version(&text);
            }
            let per_node: HashMap<String, String> =
                redis::from_redis_value_ref(&info).map_err(|error| {
                    StoreError::Unavailable(format!("redis: unreadable INFO answer: {error}"))
                })?;
            per_node.values().try_for_each(|text| check_version(text))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_before_7_is_refused_by_name() {
        assert!(check_version("# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone").is_ok());
        assert!(check_version("redis_version:8.2.1").is_ok());
        let old = check_version("redis_version:6.2.14").expect_err("too old");
        assert!(old.to_string().contains("6.2.14"), "{old}");
        assert!(check_version("no version here").is_err());
    }
}
