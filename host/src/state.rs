//! State shared by every request, built once at startup from the configuration and the
//! pair store it chose.

use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::adapters::{Adapters, Meters};
use crate::admission::{KeyedRateLimiter, SlotCounter};
use crate::config::Config;
use crate::observe::{Observers, RequestObserver};
use crate::outbound::PeerClients;
use crate::store::{MteState, PairStore};
use crate::telemetry::AccessLog;
use crate::upstream::UpstreamClient;

/// Built once at startup; handlers get it as `Arc<AppState>`.
#[derive(Debug)]
pub struct AppState {
    pub config: Arc<Config>,
    /// The shared upstream connection pool.
    pub upstream: UpstreamClient,
    /// The clients of peer relays, for outbound requests (API Relay).
    pub peers: PeerClients,
    /// `POOL_SIZE` permits: one per in-flight MTE request, held until its response
    /// body is finished. Taken with `try_acquire` so overload never queues.
    pub mte_permits: Arc<Semaphore>,
    /// `MAX_CONCURRENT_PAIRINGS` permits, for the pairing handler.
    pub pairing_permits: Arc<Semaphore>,
    /// MTE requests in flight per client id (`MAX_IN_FLIGHT_PER_CLIENT` each), so one
    /// client cannot hold every `POOL_SIZE` permit.
    pub in_flight_per_client: SlotCounter<String>,
    /// Open connections per remote address and in all.
    pub connections: SlotCounter<IpAddr>,
    /// Pairing rate limits.
    pub pairing_rates: PairingRates,
    /// Pair store and client id authorities.
    pub mte: MteState,
    /// The adapters, when the configuration declares any.
    pub adapters: Option<Arc<Adapters>>,
    /// Told of every request when it ends: the access log, then the meters and the
    /// metrics when present.
    pub observers: Observers,
}

impl AppState {
    /// The state of a relay with this configuration, keeping its pairs in `store`.
    pub fn new(config: Config, store: Arc<dyn PairStore>) -> Self {
        let upstream = UpstreamClient::new(&config.timeouts, &config.upstream_tls);
        let mte = MteState::new(&config, store);
        AppState {
            mte,
            adapters: None,
            observers: Arc::new([Arc::new(AccessLog) as Arc<dyn RequestObserver>]),
            mte_permits: Arc::new(Semaphore::new(config.pool_size)),
            pairing_permits: Arc::new(Semaphore::new(config.pairing.max_concurrent_pairings)),
            in_flight_per_client: SlotCounter::new(
                config.callers.max_in_flight_per_client,
                config.pool_size,
            ),
            connections: SlotCounter::new(
                config.callers.max_connections_per_address,
                config.callers.max_connections,
            ),
            pairing_rates: PairingRates {
                per_address: KeyedRateLimiter::new(
                    config.pairing.rate_per_address,
                    MAX_RATE_LIMITED_KEYS,
                ),
                per_client: KeyedRateLimiter::new(
                    config.pairing.rate_per_client,
                    MAX_RATE_LIMITED_KEYS,
                ),
            },
            upstream,
            peers: PeerClients::new(&config),
            config: Arc::new(config),
        }
    }

    /// The state with these adapters wired into every request, their meters among
    /// the observers.
    pub fn with_adapters(mut self, adapters: Option<Arc<Adapters>>) -> Self {
        if let Some(adapters) = &adapters {
            self = self.with_observer(Arc::new(Meters(adapters.clone())));
        }
        self.adapters = adapters;
        self
    }

    /// The state with one more observer of every finished request.
    pub fn with_observer(mut self, observer: Arc<dyn RequestObserver>) -> Self {
        self.observers = self
            .observers
            .iter()
            .cloned()
            .chain(std::iter::once(observer))
            .collect();
        self
    }
}

/// Buckets tracked per pairing rate limit: each a few dozen bytes, so the limiters
/// stay within a few MiB under any flood (past it, new keys wait; see
/// [`KeyedRateLimiter::take`]).
const MAX_RATE_LIMITED_KEYS: usize = 100_000;

/// The pairing rate limits, in the order the pairing handler applies them.
#[derive(Debug)]
pub struct PairingRates {
    /// Per remote address (IPv6: per /64).
    pub per_address: KeyedRateLimiter<IpAddr>,
    pub per_client: KeyedRateLimiter<String>,
}
