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

impl PeerMap {
    /// The client made for `key`, marked as used now.
    fn touch(&mut self, key: &(PeerOrigin, Vec<String>)) -> Option<RelayClient> {
        self.clock += 1;
        let now = self.clock;
        let entry = self.by_origin.get_mut(key)?;
        entry.last_used = now;
        Some(entry.client.clone())
    }

    /// Keeps `client` for `key`, dropping the least recently used one when full.
    fn insert(&mut self, key: (PeerOrigin, Vec<String>), client: RelayClient) -> RelayClient {
        if self.by_origin.len() >= MAX_PEERS
            && let Some(oldest) = self
                .by_origin
                .iter()
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(key, _)| key.clone())
        {
            self.by_origin.remove(&oldest);
        }
        self.by_origin.insert(
            key,
            Entry {
                client: client.clone(),
                last_used: self.clock,
            },
        );
        client
    }
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
        if let Some(client) = self.map().touch(&key) {
            return Ok(client);
        }
        // Built outside the lock (a TLS configuration and a connection pool): two
        // first requests at once may both build, and the first to insert is kept.
        let built = self.build(peer, pins)?;
        let mut map = self.map();
        Ok(match map.touch(&key) {
            Some(client) => client,
            None => map.insert(key, built),
        })
    }

    fn map(&self) -> std::sync::MutexGuard<'_, PeerMap> {
        self.clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: usize) -> (PeerOrigin, Vec<String>) {
        let origin = PeerOrigin::parse(&format!("http://peer-{n}:8080")).expect("origin");
        (origin, Vec::new())
    }

    fn client(n: usize) -> RelayClient {
        RelayClient::builder(format!("http://peer-{n}:8080"))
            .build()
            .expect("client")
    }

    #[test]
    fn the_least_recently_used_peer_goes_when_the_map_is_full() {
        let mut map = PeerMap::default();
        for n in 0..MAX_PEERS {
            assert!(map.touch(&key(n)).is_none());
            map.insert(key(n), client(n));
        }
        // Peer 0 is used again, so peer 1 is now the least recently used.
        assert!(map.touch(&key(0)).is_some());
        assert!(map.touch(&key(MAX_PEERS)).is_none());
        map.insert(key(MAX_PEERS), client(MAX_PEERS));
        assert_eq!(map.by_origin.len(), MAX_PEERS);
        assert!(map.touch(&key(0)).is_some(), "a used peer stays");
        assert!(map.touch(&key(1)).is_none(), "the least recently used went");
        assert!(map.touch(&key(MAX_PEERS)).is_some());
    }
}
