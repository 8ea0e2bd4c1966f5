//! The client's standing with the relay: capabilities, client id, and keeping the pool
//! filled with pairs (initially, after a pair is dropped, after a new client id).

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use mte_relay_protocol::capabilities::{CAPABILITIES_ROUTE, Capabilities};
use mte_relay_protocol::header::Mode;
use mte_relay_protocol::identity::{IdentityError, IdentityPublicKey, Pin};
use mte_relay_protocol::ids::is_client_id_syntax;
use mte_relay_protocol::keys::MessageSecret;
use mte_relay_protocol::pairing::{
    PAIR_ROUTE, PairingError, PairingRequest, PairingResponse, PairingScope, PendingPair,
};
use mte_relay_protocol::rng::os_rng;
use mte_relay_protocol::{ClientReaction, ErrorReason};

use crate::builder::Config;
use crate::error::ClientError;
use crate::pool::{Pair, Pool};
use crate::reaction::{backoff_delay, read_registry_error, registry_reason};
use crate::transport::{OuterBody, Transport};

/// Most bytes read from a capabilities or pairing document.
const DOCUMENT_LIMIT: usize = 1024 * 1024;
/// A pair this close to its expiry is replaced before use rather than risk a refusal
/// (at most a tenth of the pair's lifetime, for relays with very short lifetimes).
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// What the relay told this client at identification.
#[derive(Debug)]
pub(crate) struct Identity {
    pub client_id: Arc<str>,
    pub capabilities: Capabilities,
    /// The relay's clock minus ours, in seconds, as of the capabilities document.
    pub relay_clock_offset: i64,
    /// The relay's identity key when the client pins one (and the relay's matched).
    pub relay_key: Option<IdentityPublicKey>,
}

impl Identity {
    /// Our estimate of the relay's Unix time.
    pub fn relay_now(&self) -> u64 {
        crate::resend::local_unix_now().saturating_add_signed(self.relay_clock_offset)
    }
}

/// A sequence number reserved on a pair, with its message secret.
pub(crate) struct Reservation {
    pub pair: Arc<Pair>,
    pub seq: u64,
    pub secret: MessageSecret,
}

pub(crate) struct Session {
    config: Arc<Config>,
    transport: Transport,
    identity: RwLock<Option<Arc<Identity>>>,
    pool: Pool,
    /// Serialises identification and pairing, so that a burst of failures leads to one
    /// re-pairing rather than one per request.
    gate: tokio::sync::Mutex<()>,
}

impl Session {
    pub fn new(config: Arc<Config>, transport: Transport) -> Self {
        Session {
            config,
            transport,
            identity: RwLock::new(None),
            pool: Pool::default(),
            gate: tokio::sync::Mutex::new(()),
        }
    }

    pub fn identity(&self) -> Option<Arc<Identity>> {
        self.identity
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_identity(&self, identity: Option<Arc<Identity>>) {
        *self
            .identity
            .write()
            .unwrap_or_else(PoisonError::into_inner) = identity;
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Identifies and pairs unless pairs are available already.
    pub async fn ensure_ready(&self) -> Result<(), ClientError> {
        if !self.pool.is_empty() {
            return Ok(());
        }
        let _gate = self.gate.lock().await;
        if self.pool.is_empty() {
            self.fill().await?;
        }
        Ok(())
    }

    /// Reserves a sequence number on `preferred` when it can take one (a pair paired
    /// for this very request), otherwise on the next pair.
    pub async fn reserve_preferring(
        &self,
        mode: Mode,
        preferred: Option<Arc<Pair>>,
    ) -> Result<Reservation, ClientError> {
        if let Some(pair) = preferred
            && let Ok((seq, secret)) = pair.reserve(mode)
        {
            return Ok(Reservation { pair, seq, secret });
        }
        self.reserve(mode).await
    }

    /// Reserves a sequence number on the next pair, replacing pairs that are spent or
    /// about to expire on the way.
    pub async fn reserve(&self, mode: Mode) -> Result<Reservation, ClientError> {
        // Each round either succeeds or removes a pair, and the pool holds at most
        // `pairs`; the extra round lets a refilled pool be tried.
        for _ in 0..=self.config.pairs + 1 {
            self.ensure_ready().await?;
            let Some(pair) = self.pool.next() else {
                continue;
            };
            if pair.is_retired(Instant::now()) {
                self.replace(&pair).await?;
                continue;
            }
            match pair.reserve(mode) {
                Ok((seq, secret)) => return Ok(Reservation { pair, seq, secret }),
                Err(_spent) => {
                    self.replace(&pair).await?;
                }
            }
        }
        Err(ClientError::protocol(
            "no usable pair: every fresh pair was refused at once",
        ))
    }

    /// Drops `pair` and pairs a replacement. Returns the replacement, or, when another
    /// request refilled the pool first, the pair paired last (`None` only when the pool
    /// is empty).
    pub async fn replace(&self, pair: &Pair) -> Result<Option<Arc<Pair>>, ClientError> {
        self.pool.remove(pair.id);
        let _gate = self.gate.lock().await;
        let added = self.fill().await?;
        // A request that failed at the same time refilled the pool while this one
        // waited at the gate: its new pairs are as fresh as any this call would have
        // made, so the retry goes to one of them, not to an older pair that may share
        // the fault (a relay that restarted has forgotten them all).
        Ok(added.into_iter().next().or_else(|| self.pool.newest()))
    }

    /// Gets a new client id and re-pairs everything, unless another request did so
    /// since `stale_client_id` was in use. Returns one of the new pairs, if this call
    /// paired any.
    pub async fn reidentify(
        &self,
        stale_client_id: &str,
    ) -> Result<Option<Arc<Pair>>, ClientError> {
        let _gate = self.gate.lock().await;
        let current = self.identity();
        if current.is_none_or(|identity| &*identity.client_id == stale_client_id) {
            self.set_identity(None);
            self.pool.clear();
        }
        Ok(self.fill().await?.into_iter().next())
    }

    /// Tops the pool up to its target and returns the pairs added. Called with the
    /// gate held.
    async fn fill(&self) -> Result<Vec<Arc<Pair>>, ClientError> {
        let identity = match self.identity() {
            Some(identity) => identity,
            None => self.identify().await?,
        };
        match self.pair_missing(&identity).await {
            Err(error)
                if error.reason().map(ErrorReason::reaction)
                    == Some(ClientReaction::ReIdentify) =>
            {
                // The relay no longer accepts our id (rotated secret, expiry): start over
                // once with a fresh one.
                self.set_identity(None);
                self.pool.clear();
                let identity = self.identify().await?;
                self.pair_missing(&identity).await
            }
            Err(ClientError::Registry {
                reason,
                retry_after,
                ..
            }) if reason.reaction() == ClientReaction::BackOff => {
                tokio::time::sleep(backoff_delay(retry_after, self.config.max_backoff)).await;
                self.pair_missing(&identity).await
            }
            other => other,
        }
    }

    /// Pairs as many pairs as the pool lacks; returns them.
    async fn pair_missing(&self, identity: &Identity) -> Result<Vec<Arc<Pair>>, ClientError> {
        let limits = &identity.capabilities.limits;
        let target = self
            .config
            .pairs
            .min(usize::try_from(limits.max_pairs_per_client).unwrap_or(usize::MAX))
            .max(1);
        let batch_limit = usize::try_from(limits.max_pairs_per_batch)
            .unwrap_or(usize::MAX)
            .max(1);
        let mut missing = target.saturating_sub(self.pool.len());
        let mut added = Vec::with_capacity(missing);
        while missing > 0 {
            let batch = missing.min(batch_limit);
            let pairs = self.pair_batch(identity, batch).await?;
            added.extend(self.pool.extend(pairs));
            missing -= batch;
        }
        Ok(added)
    }

    /// `GET /api/mte-relay`: the capabilities and a fresh client id.
    async fn identify(&self) -> Result<Arc<Identity>, ClientError> {
        let request = self
            .plain_request(Method::GET, CAPABILITIES_ROUTE)?
            .body(empty_body())
            .map_err(|error| ClientError::invalid_request(error.to_string()))?;
        let body = self.exchange(request, "capabilities").await?;
        let capabilities = Capabilities::parse(&body).map_err(|error| {
            ClientError::protocol_from("the relay's capabilities document is unusable", error)
        })?;
        if !is_client_id_syntax(capabilities.client_id.as_bytes()) {
            return Err(ClientError::protocol(
                "the relay issued a client id that is not 1 to 128 base64url characters",
            ));
        }
        let relay_clock_offset = crate::resend::clock_offset(capabilities.server_time);
        let relay_key = if self.config.pins.is_empty() {
            None
        } else {
            Some(
                Pin::check_any(&self.config.pins, capabilities.identity_key.as_deref())
                    .map_err(impostor)?,
            )
        };
        let identity = Arc::new(Identity {
            client_id: Arc::from(capabilities.client_id.as_str()),
            capabilities,
            relay_clock_offset,
            relay_key,
        });
        self.set_identity(Some(Arc::clone(&identity)));
        Ok(identity)
    }

    /// `POST /api/mte-pair` with `count` fresh offers; completes every answer.
    async fn pair_batch(
        &self,
        identity: &Identity,
        count: usize,
    ) -> Result<Vec<Pair>, ClientError> {
        let pending: Vec<PendingPair> = {
            let mut rng = os_rng();
            (0..count)
                .map(|_| PendingPair::generate(&mut rng))
                .collect()
        };
        let scope = PairingScope {
            domain: &self.config.domain,
            client_id: &identity.client_id,
            psk: self
                .config
                .secret
                .as_ref()
                .map(|secret| secret.expose_secret()),
        };
        let document = PairingRequest {
            client_id: identity.client_id.to_string(),
            pairs: pending.iter().map(|pair| pair.offer_in(scope)).collect(),
        };
        let json = serde_json::to_vec(&document)
            .map_err(|error| ClientError::invalid_request(format!("pairing document: {error}")))?;
        let request = self
            .plain_request(Method::POST, PAIR_ROUTE)?
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(
                Full::new(Bytes::from(json))
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )
            .map_err(|error| ClientError::invalid_request(error.to_string()))?;
        let sent_at = Instant::now();
        let body = self.exchange(request, "pairing").await?;
        let answer = PairingResponse::parse(&body).map_err(|error| {
            ClientError::protocol_from("the relay's pairing answer is malformed", error)
        })?;
        if answer.pairs.len() != pending.len() {
            return Err(ClientError::protocol(format!(
                "the relay answered {} of {} pairing offers",
                answer.pairs.len(),
                pending.len()
            )));
        }
        if let Some(relay_key) = &identity.relay_key {
            let hashes = pending
                .iter()
                .zip(&answer.pairs)
                .map(|(offer, answer)| offer.transcript_hash(scope, answer))
                .collect::<Result<Vec<_>, _>>()
                .map_err(pairing_failure)?;
            let signature = answer.signature.as_deref().ok_or(IdentityError::Unsigned);
            signature
                .and_then(|signature| {
                    relay_key.verify_pairing(scope, &hashes, &answer.pairs, signature)
                })
                .map_err(impostor)?;
        }
        let lifetime = Duration::from_secs(identity.capabilities.limits.pair_ttl_secs);
        // The deadline starts from when the request was sent, so it errs early.
        // `None` (never) when the lifetime is too long for the clock to represent.
        let retire_at = sent_at.checked_add(lifetime - EXPIRY_MARGIN.min(lifetime / 10));
        // By reference: each pending pair's X-Wing key is wiped where it lies when
        // `pending` drops, instead of leaving moved-from copies in a freed buffer.
        pending
            .iter()
            .zip(&answer.pairs)
            .map(|(offer, answer)| {
                let id = offer.pair_id();
                let keys = offer.complete(scope, answer).map_err(pairing_failure)?;
                Ok(Pair::new(
                    id,
                    Arc::clone(&identity.client_id),
                    keys,
                    retire_at,
                    self.config.mte_epoch_interval,
                ))
            })
            .collect()
    }

    fn plain_request(
        &self,
        method: Method,
        path: &str,
    ) -> Result<http::request::Builder, ClientError> {
        let mut builder = Request::builder()
            .method(method)
            .uri(self.config.uri(path)?);
        if let Some(headers) = builder.headers_mut() {
            headers.extend(
                self.config
                    .extra_headers
                    .iter()
                    .map(|(name, value)| (name.clone(), value.clone())),
            );
        }
        Ok(builder)
    }

    /// Sends a local-route request and returns its body, or the registry error.
    async fn exchange(
        &self,
        request: Request<OuterBody>,
        what: &str,
    ) -> Result<Bytes, ClientError> {
        let response = self.transport.send(request).await?;
        if let Some(reason) = registry_reason(response.headers()) {
            // Pairing answers are never sealed: there is no pair key yet.
            return Err(read_registry_error(reason, response, false).await);
        }
        if response.status() != StatusCode::OK {
            return Err(ClientError::protocol(format!(
                "the relay answered the {what} request with status {}",
                response.status().as_u16()
            )));
        }
        read_document(response, what).await
    }
}

fn empty_body() -> OuterBody {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

async fn read_document(response: Response<Incoming>, what: &str) -> Result<Bytes, ClientError> {
    Limited::new(response.into_body(), DOCUMENT_LIMIT)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .map_err(|error| {
            ClientError::transport(format!("reading the {what} document failed"), false, error)
        })
}

/// The relay failed the pin: someone else answers in its place, or its key changed.
fn impostor(error: IdentityError) -> ClientError {
    ClientError::protocol_from(
        format!(
            "{error}: an active man in the middle answers in the relay's place, or the \
             relay's identity key changed; nothing was paired or sent"
        ),
        error,
    )
}

fn pairing_failure(error: PairingError) -> ClientError {
    let message = match error {
        PairingError::ConfirmationFailed => {
            "pairing key confirmation failed: this client's SECRET differs from the relay's \
             (or none is set on one side), or the exchange was altered"
        }
        _ => "the relay's pairing answer is invalid",
    };
    ClientError::protocol_from(message, error)
}
