//! The protocol state every request shares: the pair store the relay chose and each
//! domain's client id authority.

use std::collections::HashMap;
use std::sync::Arc;

use mte_relay_protocol::client_id::ClientIdAuthority;
use mte_relay_protocol::secret::SecretBytes;

use super::PairStore;
use crate::config::{Config, DomainConfig};

/// Protocol state shared by every request: the pair store and each domain's client id
/// authority (its current and previous secrets).
#[derive(Debug)]
pub struct MteState {
    pub store: Arc<dyn PairStore>,
    authorities: HashMap<String, Arc<ClientIdAuthority>>,
    client_id_max_age_secs: u64,
}

impl MteState {
    pub fn new(config: &Config, store: Arc<dyn PairStore>) -> Self {
        let client_id_max_age_secs = config.pairing.client_id_max_age.as_secs();
        let authorities = config
            .domains
            .iter()
            .map(|domain| {
                (
                    domain.name.clone(),
                    Arc::new(authority_for(domain, client_id_max_age_secs)),
                )
            })
            .collect();
        MteState {
            store,
            authorities,
            client_id_max_age_secs,
        }
    }

    /// The client id authority of `domain`.
    pub fn authority(&self, domain: &DomainConfig) -> Arc<ClientIdAuthority> {
        match self.authorities.get(&domain.name) {
            Some(authority) => authority.clone(),
            // Every configured domain is in the map; this only serves a domain built
            // after startup.
            None => Arc::new(authority_for(domain, self.client_id_max_age_secs)),
        }
    }
}

fn authority_for(domain: &DomainConfig, max_age_secs: u64) -> ClientIdAuthority {
    let secret = |s: &crate::config::Secret| SecretBytes::new(s.expose().as_bytes().to_vec());
    ClientIdAuthority::new(
        secret(&domain.client_id_secret),
        domain
            .client_id_previous_secrets
            .iter()
            .map(secret)
            .collect(),
        max_age_secs,
    )
}
