//! The outbound side of an API Relay: one client of each peer relay, with its pool of
//! pairs, made on the first request to that peer and kept while the process lives.
//!
//! The client is the SDK's (`mte-relay-client`): the same pairing, retry rules and
//! resend tokens as any client of a relay, so a peer that restarted is re-paired and a
//! request is resent only when that cannot run it twice. Pools are per process: a pair
//! is cheap to make (one X-Wing exchange per pair), and a replica sharing another's
//! pairs would have to share their sequence numbers too (docs/api-relay.md).

use std::collections::HashMap;
use std::sync::Mutex;

use mte_relay_client::{ClientError, RelayClient};

use crate::config::{Config, OutboundSettings, PeerOrigin, Secret, Timeouts};

/// Peers kept at once. Without an allow-list a caller holding the token may name any
/// origin; past this many, the least recently used peer's client is dropped (its pairs
/// with it), so the map stays bounded.
pub const MAX_PEERS: usize = 256;

/// The clients of every peer relay this process has sent to.
pub struct PeerClients {
    settings: OutboundSettings,
    secret: Option<Secret>,
    timeouts: Timeouts,
    /// The upstreams' trust roots (web PKI plus `UPSTREAM_CA_FILE`), for `https://` peers.
    tls: std::sync::Arc<rustls::ClientConfig>,
    clients: Mutex<PeerMap>,
}

#[derive(Default)]
struct PeerMap {
    /// By peer origin and the pins its identity must match (domains may pin alike).
    by_origin: HashMap<(PeerOrigin, Vec<String>), Entry>,
    /// Increases on every use; the entry with the smallest is the least recently used.
    clock: u64,
}

struct Entry {
    client: RelayClient,
    last_used: u64,
}

impl std::fmt::Debug for PeerClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let peers = self.clients.lock().map_or(0, |map| map.by_origin.len());
        f.debug_struct("PeerClients")
            .field("settings", &self.settings)
            .field("peers", &peers)
            .finish_non_exhaustive()
    }
}

impl PeerClients {
    pub fn new(config: &Config) -> Self {
        PeerClients {
            settings: config.outbound,
            secret: config.secret.clone(),
            timeouts: config.timeouts,
            tls: config.upstream_tls.client_config.clone(),
            clients: Mutex::new(PeerMap::default()),
        }
    }

    /// The mode of requests that do not choose one.
    pub fn default_mode(&self) -> mte_relay_client::Mode {
        self.settings.mode
    }

    /// The client of `peer`, made now if this process has none. Pairing happens on the
    /// client's first request, not here.
    pub fn client(&self, peer: &PeerOrigin, pins: &[String]) -> Result<RelayClient, ClientError> {
        let key = (peer.clone(), pins.to_vec());
        if let Some(client) = self.lookup(&key) {
            return Ok(client);
        }
        // Built outside the lock (a TLS configuration and a connection pool): two
        // first requests at once may both build, and the first to insert is kept.
        let built = self.build(peer, pins)?;
        let mut map = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.clock += 1;
        let now = map.clock;
        if let Some(entry) = map.by_origin.get_mut(&key) {
            entry.last_used = now;
            return Ok(entry.client.clone());
        }
        let client = built;
        if map.by_origin.len() >= MAX_PEERS
            && let Some(oldest) = map
                .by_origin
                .iter()
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(origin, _)| origin.clone())
        {
            map.by_origin.remove(&oldest);
        }
        map.by_origin.insert(
            key,
            Entry {
                client: client.clone(),
                last_used: now,
            },
        );
        Ok(client)
    }

    /// The client already made for `key`, marked as used.
    fn lookup(&self, key: &(PeerOrigin, Vec<String>)) -> Option<RelayClient> {
        let mut map = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.clock += 1;
        let now = map.clock;
        let entry = map.by_origin.get_mut(key)?;
        entry.last_used = now;
        Some(entry.client.clone())
    }

    fn build(&self, peer: &PeerOrigin, pins: &[String]) -> Result<RelayClient, ClientError> {
        let mut builder = RelayClient::builder(peer.as_str())
            .pairs(self.settings.pairs)
            .mode(self.settings.mode)
            .connect_timeout(self.timeouts.upstream_connect)
            // The peer forwards to its upstream and answers within its own timeouts;
            // this bounds the wait for the answer's head from this side.
            .request_timeout(self.timeouts.upstream_response)
            .tls_config((*self.tls).clone());
        if let Some(secret) = &self.secret {
            builder = builder.secret(secret.expose().as_bytes());
        }
        for pin in pins {
            builder = builder.pin(pin.clone());
        }
        builder.build()
    }

    /// Peers with a client now.
    pub fn len(&self) -> usize {
        self.clients.lock().map_or(0, |map| map.by_origin.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
