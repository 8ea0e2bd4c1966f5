//! [`RelayClient`]: sending requests, and reacting to what the relay answers.

use std::sync::Arc;

use http::{Method, Request, Response};
use mte_relay_protocol::capabilities::Capabilities;
use mte_relay_protocol::head::{HeaderField, RequestHead};
use mte_relay_protocol::header::{Flags, HEAD_HEADER, Mode, RelayHeader};
use mte_relay_protocol::ids::PairId;
use mte_relay_protocol::message::{RequestContext, SealError};
use mte_relay_protocol::{ClientReaction, ErrorReason};

use crate::builder::{Config, RelayClientBuilder};
use crate::error::{ClientError, RequestOutcome};
use crate::pool::Pair;
use crate::reaction::{
    ResendFacts, backoff_delay, may_retry, read_registry_error, registry_reason,
};
use crate::request::{
    AttemptSource, RequestBody, check_mte_body_len, encrypting_body, outer_request, request_head,
    stated_length,
};
use crate::resend::ResendGuard;
use crate::response::{Body, decrypt_response};
use crate::session::Session;
use crate::timing::CodecTimer;
use crate::transport::Transport;

/// A client of one relay. Cheap to clone; clones share the connection pool and the
/// pairs, and may be used from many tasks at once.
#[derive(Clone)]
pub struct RelayClient {
    shared: Arc<Shared>,
}

struct Shared {
    config: Arc<Config>,
    transport: Transport,
    session: Session,
}

impl std::fmt::Debug for RelayClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayClient")
            .field("origin", &self.shared.config.authority)
            .field("pairs", &self.shared.session.pool().len())
            .finish_non_exhaustive()
    }
}

/// A failed attempt and the pair it used, which the reaction may concern.
struct AttemptFailure {
    error: ClientError,
    pair: Option<Arc<Pair>>,
    /// Whether any of the request may have left the client.
    sent: bool,
}

impl From<ClientError> for AttemptFailure {
    fn from(error: ClientError) -> Self {
        AttemptFailure {
            error,
            pair: None,
            sent: false,
        }
    }
}

impl AttemptFailure {
    /// What this attempt tells about the upstream: nothing ran when nothing was sent.
    fn outcome(&self) -> RequestOutcome {
        if self.sent {
            self.error.outcome()
        } else {
            RequestOutcome::NotRun
        }
    }
}

/// One request as the caller gave it, ready to be sealed for any pair.
struct Prepared {
    method: Method,
    /// The head without its `not_after`, which the first attempt fixes.
    head: RequestHead,
    mode: Mode,
    guard: ResendGuard,
    /// Where the cryptography's time is reported, when the caller asked.
    timer: Option<CodecTimer>,
}

impl RelayClient {
    /// Starts configuring a client of the relay at `base_url`, an origin such as
    /// `https://api.example.com` (the protocol's domain is its host).
    pub fn builder(base_url: impl Into<String>) -> RelayClientBuilder {
        RelayClientBuilder::new(base_url)
    }

    pub(crate) fn from_config(config: Arc<Config>) -> Result<Self, ClientError> {
        let transport = Transport::new(&config)?;
        let session = Session::new(Arc::clone(&config), transport.clone());
        Ok(RelayClient {
            shared: Arc::new(Shared {
                config,
                transport,
                session,
            }),
        })
    }

    /// Fetches the capabilities and pairs now, instead of on the first request.
    pub async fn connect(&self) -> Result<(), ClientError> {
        self.shared.session.ensure_ready().await
    }

    /// The client id the relay issued, once connected.
    pub fn client_id(&self) -> Option<String> {
        self.shared
            .session
            .identity()
            .map(|identity| identity.client_id.to_string())
    }

    /// The relay's capabilities document, once connected.
    pub fn capabilities(&self) -> Option<Capabilities> {
        self.shared
            .session
            .identity()
            .map(|identity| identity.capabilities.clone())
    }

    /// Pairs currently in the pool.
    pub fn pair_count(&self) -> usize {
        self.shared.session.pool().len()
    }

    /// The ids of the pairs in the pool, in rotation order (for diagnostics).
    pub fn pair_ids(&self) -> Vec<PairId> {
        self.shared.session.pool().ids()
    }

    /// Sends `request` through the relay and returns the decrypted response, whose body
    /// decrypts as it streams.
    ///
    /// The request's path and query, its end-to-end headers and its body are encrypted;
    /// its host part is ignored (the relay decides the upstream). A [`Mode`] in the
    /// request's extensions overrides the client's default mode.
    ///
    /// When the relay answers with a registry error the client reacts as the protocol
    /// prescribes (replaces the pair, gets a new client id and re-pairs, or backs off)
    /// and sends the request once more if that is safe: the method is idempotent and
    /// the body replayable, or the copy carries the request's resend token within the
    /// relay's resend window (the relay then runs it at most once), or the relay said,
    /// authenticated, that it forwarded nothing. A connection that fails before
    /// anything was sent is retried, and so is one that closed without answering under
    /// the same rules. At most one retry of each kind; the failure after that is
    /// returned, and [`ClientError::outcome`] says whether the upstream got the request.
    pub async fn send<B>(&self, request: Request<B>) -> Result<Response<Body>, ClientError>
    where
        B: Into<RequestBody>,
    {
        let (parts, body) = request.into_parts();
        let mut body: RequestBody = body.into();
        let mode = parts
            .extensions
            .get::<Mode>()
            .copied()
            .unwrap_or(self.shared.config.default_mode);
        if mode == Mode::Mte {
            check_mte_body_len(body.known_len())?;
        }
        let guard = ResendGuard::new();
        let mut head = request_head(&parts.uri, &parts.headers)?;
        if let Some(length) = stated_length(&body, &parts.headers) {
            head.headers
                .push(HeaderField::new("content-length", length.to_string()));
        }
        head.token = guard.token();
        // Validate the head once, so that an invalid one burns no sequence number.
        head.encode_into(&mut Vec::new())
            .map_err(|error| ClientError::invalid_request(format!("request head: {error}")))?;
        let prepared = Prepared {
            method: parts.method,
            head,
            mode,
            guard,
            timer: parts.extensions.get::<CodecTimer>().cloned(),
        };
        let replayable = body.is_replayable();

        let mut source = body
            .next_attempt()
            .ok_or_else(|| ClientError::invalid_request("request body was already consumed"))?;
        let mut preferred = None;
        // One retry after a registry error and one after a connection failure: a
        // relay that restarted typically costs both (its kept-alive connection is
        // gone, then it no longer knows the pair). Never more, so no request loops.
        let mut retried_registry = false;
        let mut retried_transport = false;
        // An earlier attempt that may have reached the upstream, its fate unresolved.
        let mut earlier_unknown = false;
        loop {
            let failure = match self.attempt(&prepared, source, preferred.take()).await {
                Ok(response) => return Ok(response),
                Err(failure) => failure,
            };
            // An attempt refused before forwarding says nothing about an earlier one.
            let outcome = match failure.outcome() {
                RequestOutcome::NotRun if earlier_unknown => RequestOutcome::Unknown,
                outcome => outcome,
            };
            earlier_unknown = outcome == RequestOutcome::Unknown;
            let error = failure.error.with_outcome(outcome);
            let failure = AttemptFailure { error, ..failure };

            let already_retried = match failure.error {
                ClientError::Transport { .. } => &mut retried_transport,
                _ => &mut retried_registry,
            };
            let facts = |session: &Session| {
                let identity = session.identity();
                let guarded = prepared.guard.guards_a_resend(identity.as_deref());
                ResendFacts::new(&prepared.method, replayable, guarded)
            };
            let session = &self.shared.session;
            let retry = !*already_retried && may_retry(&failure.error, facts(session));
            // Repair state for later requests even when this one is not retried.
            preferred = self.react(&failure, retry).await;
            // The reaction may have changed the client id (this request's or another's),
            // which leaves the token's scope: decide again.
            if !retry || !may_retry(&failure.error, facts(session)) {
                return Err(failure.error);
            }
            *already_retried = true;
            source = match body.next_attempt() {
                Some(source) => source,
                None => return Err(failure.error),
            };
        }
    }

    /// Applies the protocol's reaction to a failure. Waiting only makes sense before a
    /// retry, so a back-off happens only when `retrying`. Returns a pair paired by the
    /// reaction: the retry goes there, since the other pairs may share the fault (a
    /// relay that restarted has forgotten them all).
    async fn react(&self, failure: &AttemptFailure, retrying: bool) -> Option<Arc<Pair>> {
        let reason = failure.error.reason()?;
        let session = &self.shared.session;
        // Re-pairing failures are not returned here: the caller gets the relay's
        // original error, and a retry (or the next request) meets the pairing error
        // itself when no pair is left.
        match (reason.reaction(), &failure.pair) {
            (ClientReaction::ReplacePair, Some(pair)) => session.replace(pair).await.ok().flatten(),
            (ClientReaction::ReIdentify, Some(pair)) => {
                session.reidentify(&pair.client_id).await.ok().flatten()
            }
            (ClientReaction::BackOff, _) if retrying => {
                if let ClientError::Registry { retry_after, .. } = &failure.error {
                    let delay = backoff_delay(*retry_after, self.shared.config.max_backoff);
                    tokio::time::sleep(delay).await;
                }
                None
            }
            _ => None,
        }
    }

    /// One attempt: reserve a sequence number (on `preferred` when given), seal, send,
    /// open the answer.
    async fn attempt(
        &self,
        prepared: &Prepared,
        source: AttemptSource,
        preferred: Option<Arc<Pair>>,
    ) -> Result<Response<Body>, AttemptFailure> {
        let shared = &self.shared;
        let reservation = shared
            .session
            .reserve_preferring(prepared.mode, preferred)
            .await?;
        let pair = Arc::clone(&reservation.pair);
        let unsent = |error: ClientError| AttemptFailure {
            error,
            pair: Some(Arc::clone(&pair)),
            sent: false,
        };
        let with_pair = |error: ClientError| AttemptFailure {
            error,
            pair: Some(Arc::clone(&pair)),
            sent: true,
        };
        let identity = shared.session.identity().ok_or_else(|| {
            unsent(ClientError::protocol(
                "the client id was dropped while the request was prepared",
            ))
        })?;

        let has_body = !matches!(source, AttemptSource::Empty);
        let header = RelayHeader {
            mode: prepared.mode,
            flags: Flags::with_body(has_body),
            seq: reservation.seq,
            pair_id: pair.id,
            client_id: pair.client_id.to_string(),
        };
        let method = prepared.method.as_str();
        let context =
            RequestContext::new(reservation.secret, &header, method, &shared.config.domain);
        let head = RequestHead {
            not_after: prepared.guard.not_after(&identity),
            ..prepared.head.clone()
        };
        let timer = prepared.timer.as_ref();
        let sealed = CodecTimer::seal(timer, || context.seal_head(&head))
            .map_err(|error| unsent(seal_failure(error)))?;
        // The relay announces its own, possibly lower, limit: refuse here rather than
        // send a head it will refuse (the sequence number is only skipped, never reused).
        let limit = identity.capabilities.limits.max_head_block;
        if sealed.len() > usize::try_from(limit).unwrap_or(usize::MAX) {
            return Err(unsent(ClientError::invalid_request(format!(
                "request head is too large: {} characters sealed, the relay's limit is \
                 {limit} (`{}`)",
                sealed.len(),
                ErrorReason::HeadTooLarge
            ))));
        }
        let body = encrypting_body(source, context.body_encoder(), prepared.timer.clone());
        let request = outer_request(
            shared.config.uri("/").map_err(unsent)?,
            prepared.method.clone(),
            &header,
            sealed,
            &shared.config.extra_headers,
            body,
        )
        .map_err(unsent)?;

        let response = shared.transport.send(request).await.map_err(with_pair)?;
        // A sealed head, when there is one, is the answer: an error token in the clear
        // beside it is advice for intermediaries, which anyone on the path could have
        // added to a genuine response. A sealed registry error is authenticated.
        if response.headers().contains_key(HEAD_HEADER) {
            let opened =
                decrypt_response(&context, &prepared.method, response, timer).map_err(with_pair)?;
            return match registry_reason(opened.headers()) {
                Some(reason) => Err(with_pair(read_registry_error(reason, opened, true).await)),
                None => Ok(opened),
            };
        }
        match registry_reason(response.headers()) {
            Some(reason) => Err(with_pair(
                read_registry_error(reason, response, false).await,
            )),
            None => {
                decrypt_response(&context, &prepared.method, response, timer).map_err(with_pair)
            }
        }
    }
}

fn seal_failure(error: SealError) -> ClientError {
    match error {
        SealError::TooLarge => ClientError::invalid_request(format!(
            "request head is too large to seal (the relay's limit is {} characters; `{}`)",
            mte_relay_protocol::message::MAX_HEAD_BLOCK_CHARS,
            ErrorReason::HeadTooLarge
        )),
        SealError::Head(error) => ClientError::invalid_request(format!("request head: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shareable<T: Clone + Send + Sync + 'static>() {}
    fn sendable<T: Send + 'static>() {}

    #[test]
    fn the_client_is_shareable_and_its_values_cross_tasks() {
        shareable::<RelayClient>();
        sendable::<Body>();
        sendable::<RequestBody>();
        sendable::<ClientError>();
    }
}
