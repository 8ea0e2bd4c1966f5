//! The MTE pipeline: the relay's protocol endpoints and one MTE request's life
//! (decode -> upstream -> encode). The server calls exactly the three functions here.

mod capabilities;
mod pairing;
mod request;
mod streams;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use mte_relay_protocol::client_id::ClientIdAuthority;
use mte_relay_protocol::secret::SecretBytes;

use crate::body::RelayBody;
use crate::config::{Config, DomainConfig};
use crate::state::{AppState, RequestContext};
use crate::store::PairStore;

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

/// `GET`/`HEAD /api/mte-relay`: capabilities, and the client id issued or refreshed.
pub async fn capabilities(
    state: &Arc<AppState>,
    ctx: &RequestContext,
    request: Request<RelayBody>,
) -> Response<RelayBody> {
    capabilities::serve(state, ctx, request).await
}

/// `POST /api/mte-pair`: one batch of pairings.
pub async fn pair(
    state: &Arc<AppState>,
    ctx: &RequestContext,
    request: Request<RelayBody>,
) -> Response<RelayBody> {
    pairing::serve(state, ctx, request).await
}

/// A request carrying `x-mte-relay`. The caller holds a `POOL_SIZE` permit until the
/// returned response's body is finished.
pub async fn handle_mte(
    state: &Arc<AppState>,
    ctx: &RequestContext,
    request: Request<RelayBody>,
) -> Response<RelayBody> {
    request::handle(state, ctx, request).await
}

/// The domain as the protocol binds it: the request's host, lowercase, without port.
pub fn protocol_domain(host: &str) -> String {
    let host = host.trim();
    let without_port = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port -> [v6]
        rest.split_once(']')
            .map_or(host, |(inside, _)| &host[..inside.len() + 2])
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    without_port.to_ascii_lowercase()
}

/// Why [`read_bounded`] stopped.
pub(crate) enum ReadError {
    /// The body is longer than the limit.
    TooLarge,
    /// The body failed while streaming.
    Failed,
}

/// Reads a whole body of at most `limit` bytes. Only for bodies the protocol bounds
/// (pairing documents, MTE messages); everything else streams.
pub(crate) async fn read_bounded(mut body: RelayBody, limit: usize) -> Result<Bytes, ReadError> {
    let mut whole = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ReadError::Failed)?;
        if let Some(data) = frame.data_ref() {
            if whole.len() + data.len() > limit {
                return Err(ReadError::TooLarge);
            }
            whole.extend_from_slice(data);
        }
    }
    Ok(Bytes::from(whole))
}

#[cfg(test)]
mod tests {
    use super::protocol_domain;

    #[test]
    fn protocol_domain_drops_port_and_case() {
        assert_eq!(protocol_domain("API.Example.com:8443"), "api.example.com");
        assert_eq!(protocol_domain("api.example.com"), "api.example.com");
        assert_eq!(protocol_domain("[::1]:8080"), "[::1]");
        assert_eq!(protocol_domain("127.0.0.1:9"), "127.0.0.1");
    }
}
