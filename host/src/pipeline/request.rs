//! One MTE request: verify, open, forward (the shared forward stage), seal.
//!
//! ```text
//! relay header -> client id -> pair lookup -> replay check (read-only)
//!   -> message keys -> open head -> commit sequence (atomic) -> route check
//!   -> adapters -> [verify_body_before_forward: open the whole body first]
//!   -> record resend token (non-idempotent methods, atomic)
//!   -> upstream request (body opened record by record) -> seal response head and body
//!      (records padded for event streams, per pad_stream_records)
//! ```
//!
//! Nothing reaches the upstream before the head has authenticated, and the sequence
//! number is recorded only then, so forged requests cannot burn a client's numbers.
//! A refusal before the head opened is a plain registry error; one after it is sealed
//! under the response key ([`seal_refusal`]), so the client knows it is the relay's.

use std::sync::Arc;
use std::time::Instant;

use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderName, HeaderValue, RETRY_AFTER};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode};
use mte_relay_protocol::ECHO_ROUTE;
use mte_relay_protocol::head::{HeaderField, RequestHead, ResponseHead, parse_content_length};
use mte_relay_protocol::header::{Flags, HEAD_HEADER, Mode, RELAY_HEADER, RelayHeader};
use mte_relay_protocol::keys::epoch_of;
use mte_relay_protocol::message::RequestContext as MessageContext;
use mte_relay_protocol::padding::MTE_MAX_MESSAGE;
use mte_relay_protocol::registry::{ERROR_HEADER, ErrorReason, is_idempotent};
use mte_relay_protocol::rng::os_rng;

use super::forward;
use super::streams::{self, DecodeFailure};
use super::{ReadError, Refusal, protocol_domain, read_bounded, refuse};
use crate::adapters::RequestFacts;
use crate::admission::Slot;
use crate::body::{Holding, RelayBody, boxed, empty, full};
use crate::context::RequestContext;
use crate::response::registry_error;
use crate::state::AppState;
use crate::store::{
    CommitError, CommitTokenError, Lookup, PairKey, PairRecord, RatchetUse, TokenClaim,
    TokenRecord, unix_now,
};
use crate::trace_context;

pub async fn handle(
    state: &Arc<AppState>,
    ctx: &RequestContext,
    request: Request<RelayBody>,
) -> Response<RelayBody> {
    // The client's in-flight slot, once its id verified; held until the last byte of
    // the response, like the `POOL_SIZE` permit the server holds.
    let mut slot = None;
    match decode_and_forward(state, ctx, request, &mut slot).await {
        Ok(response) => match slot {
            Some(slot) => response.map(|body| boxed(Holding::new(body, slot))),
            None => response,
        },
        Err(refusal) => registry_error(refusal.reason, refusal.message),
    }
}

async fn decode_and_forward(
    state: &Arc<AppState>,
    ctx: &RequestContext,
    request: Request<RelayBody>,
    slot: &mut Option<Slot<String>>,
) -> Result<Response<RelayBody>, Refusal> {
    let (parts, body) = request.into_parts();
    let verified = verify(state, ctx, &parts.headers, slot).await?;
    let opened = open(state, ctx, &parts.headers, parts.method, verified)?;
    // From here on the relay holds the response key: its refusals are sealed, so the
    // client can tell them from errors forged on the path.
    match forward(state, ctx, &opened, body).await {
        Ok(response) => Ok(response),
        Err(refusal) => seal_refusal(&opened, refusal, ctx).await,
    }
}

/// A request whose relay header parsed, whose client id verified and whose pair is
/// known, its number inside the pair's window: ready to open.
struct Verified {
    header: RelayHeader,
    key: PairKey,
    record: Box<PairRecord>,
}

/// Checks what the clear relay header says, cheapest first: its syntax, the client id's
/// MAC, the client's in-flight bound (taking a slot into `slot`), the pair, the window.
async fn verify(
    state: &Arc<AppState>,
    ctx: &RequestContext,
    headers: &http::HeaderMap,
    slot: &mut Option<Slot<String>>,
) -> Result<Verified, Refusal> {
    let header = headers.get(RELAY_HEADER).ok_or_else(|| {
        refuse(
            ErrorReason::RelayHeaderMissing,
            "x-mte-relay header missing",
        )
    })?;
    let header = RelayHeader::parse(header.as_bytes())
        .map_err(|error| refuse(error.reason(), error.to_string()))?;
    ctx.timings.set_mode(header.mode);

    let domain = protocol_domain(&ctx.host);
    let now = unix_now();
    state
        .mte
        .authority(&ctx.domain)
        .verify(&domain, header.client_id.as_bytes(), now)
        .map_err(|error| refuse(error.reason(), error.to_string()))?;
    *slot = Some(
        state
            .in_flight_per_client
            .try_take(&header.client_id)
            .map_err(|_| {
                refuse(
                    ErrorReason::Overloaded,
                    "this client id is at its bound of in-flight requests; retry later",
                )
            })?,
    );

    let key = PairKey::new(header.client_id.as_str(), header.pair_id);
    let record = match state.mte.store.load(&key, now).await {
        Ok(Lookup::Found(record)) => record,
        Ok(Lookup::Missing) => {
            return Err(refuse(
                ErrorReason::PairUnknown,
                "no such pair for this client",
            ));
        }
        Ok(Lookup::Expired) => {
            return Err(refuse(ErrorReason::PairExpired, "the pair has expired"));
        }
        Err(error) => {
            tracing::error!(%error, "pair store lookup failed");
            return Err(refuse(
                error.reason(),
                "pair store unavailable; retry later",
            ));
        }
    };
    // A duplicate or out-of-window number is refused like a head that fails to open
    // (below): same token, status and message, so a sender that may not be the
    // pair's client learns nothing of the pair's window. A store that keeps the
    // window only where its commit runs (Redis) decides it after the head opened.
    if let Some(window) = &record.window {
        window
            .check(header.seq)
            .map_err(|error| unauthenticated_refusal(ErrorReason::DecodeFailed, &error, ctx))?;
    }
    Ok(Verified {
        header,
        key,
        record,
    })
}

/// Opens the sealed head with the pair's message keys: nothing of the request is
/// believed before this succeeds.
fn open(
    state: &Arc<AppState>,
    ctx: &RequestContext,
    headers: &http::HeaderMap,
    method: Method,
    verified: Verified,
) -> Result<Opened, Refusal> {
    let Verified {
        header,
        key,
        record,
    } = verified;
    let head_value = headers.get(HEAD_HEADER).ok_or_else(|| {
        refuse(
            ErrorReason::RelayHeaderMalformed,
            "x-mte-relay-head header missing",
        )
    })?;
    if head_value.len() > state.config.limits.max_head_bytes {
        return Err(refuse(
            ErrorReason::HeadTooLarge,
            "encrypted header block exceeds the limit",
        ));
    }
    let started = Instant::now();
    let (secret, advanced) = record
        .keys
        .message_secret(header.mode, header.seq)
        .map_err(|error| unauthenticated_refusal(ErrorReason::DecodeFailed, &error, ctx))?;
    // The loaded copy of the pair's keys goes now, not after the upstream answered.
    let generation = record.generation;
    drop(record);
    let domain = protocol_domain(&ctx.host);
    let message = MessageContext::new(secret, &header, method.as_str(), &domain);
    let head = message
        .open_head(head_value.as_bytes())
        .map_err(|error| unauthenticated_refusal(error.reason(), &error, ctx))?;
    ctx.timings.add_decode(started.elapsed());

    let ratchet = (header.mode == Mode::Mte).then(|| RatchetUse {
        epoch: epoch_of(header.seq),
        advanced,
    });
    Ok(Opened {
        header,
        message,
        method,
        head,
        key,
        generation,
        ratchet,
    })
}

/// A refusal of a request on a known pair before its head authenticated. Its token,
/// status and message say nothing of why (a duplicate, an old or far-ahead number, the
/// ratchet, the head's tag): whoever sent it may not be the pair's client, and the
/// detail would tell them about the pair's state. The detail goes to the debug log.
fn unauthenticated_refusal(
    reason: ErrorReason,
    detail: &dyn std::fmt::Display,
    ctx: &RequestContext,
) -> Refusal {
    tracing::debug!(
        request_id = %ctx.request_id,
        %reason,
        detail = %detail,
        "refused before the head authenticated"
    );
    refuse(reason, UNAUTHENTICATED_REFUSAL)
}

/// The one message of every [`unauthenticated_refusal`].
const UNAUTHENTICATED_REFUSAL: &str = "the request was not accepted for this pair";

/// A request whose head opened, with what it takes to answer it sealed.
struct Opened {
    header: RelayHeader,
    message: MessageContext,
    method: Method,
    head: RequestHead,
    key: PairKey,
    /// The generation of the pair record the head was opened with.
    generation: u64,
    /// The MTE epoch this message used, and the ratchet after it when it moved to a
    /// new epoch; `None` for MKE.
    ratchet: Option<RatchetUse>,
}

/// Commits the sequence number, applies the route rules and the adapters, and
/// forwards to the upstream; the response comes back sealed.
async fn forward(
    state: &Arc<AppState>,
    ctx: &RequestContext,
    opened: &Opened,
    body: RelayBody,
) -> Result<Response<RelayBody>, Refusal> {
    let Opened {
        header,
        message,
        method,
        head,
        key,
        generation,
        ratchet,
    } = opened;
    let path_only = head.path.split('?').next().unwrap_or("/");
    let is_echo = path_only == ECHO_ROUTE;
    let route_allowed =
        ctx.domain.mte_routes.is_empty() || ctx.domain.mte_routes.matches(path_only);
    let verify_first = ctx.domain.verify_body_before_forward.is_some() && message.has_body();
    // A non-idempotent request that nothing can refuse between its commit and its
    // forwarding (no filters, no verify-first body, an allowed route) records its resend
    // token with the commit: one store round trip instead of two. Otherwise the token
    // is recorded last before forwarding, once nothing else can refuse the request.
    let token_with_commit = !is_idempotent(method.as_str())
        && !is_echo
        && route_allowed
        && !forward::has_filters(state, ctx)
        && !verify_first;
    let log_store_failure = |cause: &dyn std::fmt::Display| {
        tracing::error!(request_id = %ctx.request_id, error = %cause, "pair store commit failed");
    };

    let mut body = Some(body);
    let mut upstream_request = None;
    if token_with_commit {
        let now = check_not_after(state, head)?;
        // Built before the commit: a head that cannot become a request is refused
        // without recording the token.
        ctx.timings.set_client_id(&header.client_id);
        let failure = DecodeFailure::default();
        let body = body.take().unwrap_or_else(empty);
        let built = upstream_request_for(state, ctx, message, method, head, body, &failure)?;
        let claim = state
            .mte
            .store
            .commit_and_record_token(
                key,
                *generation,
                header.seq,
                ratchet.clone(),
                TokenRecord {
                    client_id: &header.client_id,
                    token: head.token,
                    now,
                    // Kept through the deadline's whole second.
                    expires_at: head.not_after.saturating_add(1),
                    max_tokens: state.config.resend.max_tokens,
                },
            )
            .await
            .map_err(|error| {
                match &error {
                    CommitTokenError::Commit(CommitError::Store(cause)) => log_store_failure(cause),
                    CommitTokenError::Token(cause) => {
                        tracing::warn!(error = %cause, "resend token not recorded; the request is refused");
                    }
                    CommitTokenError::Commit(_) => {}
                }
                refuse(error.reason(), error.to_string())
            })?;
        if claim == TokenClaim::AlreadyForwarded {
            return Err(already_forwarded());
        }
        upstream_request = Some((built, failure));
    } else {
        state
            .mte
            .store
            .commit(key, *generation, header.seq, ratchet.clone())
            .await
            .map_err(|error| {
                if let CommitError::Store(cause) = &error {
                    log_store_failure(cause);
                }
                refuse(error.reason(), error.to_string())
            })?;
    }

    if is_echo {
        let query = head.path.split_once('?').map(|(_, query)| query);
        let echoed = super::echo::echo(query);
        return seal_response(message, method, header.mode, echoed, ctx).await;
    }
    if !route_allowed {
        return Err(refuse(
            ErrorReason::RouteNotFound,
            "this path is not an allowed MTE route",
        ));
    }
    let (upstream_request, failure) = match upstream_request {
        Some(built) => built,
        None => {
            ctx.timings.set_client_id(&header.client_id);
            let failure = DecodeFailure::default();
            let body = body.take().unwrap_or_else(empty);
            let built = upstream_request_for(state, ctx, message, method, head, body, &failure)?;
            (built, failure)
        }
    };

    let facts = RequestFacts {
        domain: &ctx.domain.name,
        mte: true,
        client_id: Some(&header.client_id),
        pair_id: Some(header.pair_id.to_string()),
        correlation_id: &ctx.request_id,
        remote_addr: ctx.remote_addr,
    };
    // An adapter's local answer goes back sealed like any other (the runtime has
    // refused any relay header in it).
    let answer = forward::through_filters(state, ctx, facts, upstream_request, |request| {
        send_upstream(state, ctx, opened, request, failure, token_with_commit)
    })
    .await?;
    seal_response(message, method, header.mode, answer.into_response(), ctx).await
}

/// The last steps before the upstream, once the filters let the request through: the
/// whole body authenticated first when the domain asks for it, the resend token
/// recorded (unless the commit recorded it), then the upstream exchange.
async fn send_upstream(
    state: &Arc<AppState>,
    ctx: &RequestContext,
    opened: &Opened,
    mut upstream_request: Request<RelayBody>,
    failure: DecodeFailure,
    token_recorded: bool,
) -> Result<Response<RelayBody>, Refusal> {
    let Opened {
        header,
        message,
        method,
        head,
        ..
    } = opened;
    if let (Some(limit), true) = (ctx.domain.verify_body_before_forward, message.has_body()) {
        // The whole body authenticates before the upstream sees a byte of it; the
        // resend token is recorded only after, since a body that fails ran nothing. A
        // copy already past its deadline is refused before its body is read.
        if !is_idempotent(method.as_str()) {
            check_not_after(state, head)?;
        }
        let limit = limit.min(state.config.limits.max_body_bytes);
        let body = std::mem::replace(upstream_request.body_mut(), empty());
        let whole = verified_body(body, limit, state.config.timeouts.body_idle, &failure).await?;
        // A whole body is sent with its length, as a plain client would send it.
        *upstream_request.body_mut() = full(whole);
    }
    if !is_idempotent(method.as_str()) && !token_recorded {
        record_resend_token(state, &header.client_id, head).await?;
    }
    let upstream = state
        .upstream
        .send(ctx.destination(), upstream_request)
        .await;
    if let Some(error) = failure.get() {
        // The upstream request was aborted because the client's body failed to open.
        return Err(refuse(error.reason(), format!("request body: {error}")));
    }
    let response = upstream.map_err(|error| {
        super::log_upstream_failure(ctx, &error);
        refuse(error.reason(), error.client_message())
    })?;
    Ok(response.map(boxed))
}

/// Reads and opens a whole request body of at most `limit` plaintext bytes, each record
/// within `idle` of the one before, for `verify_body_before_forward`. Every refusal is
/// raised before anything was forwarded.
async fn verified_body(
    body: RelayBody,
    limit: u64,
    idle: std::time::Duration,
    failure: &DecodeFailure,
) -> Result<bytes::Bytes, Refusal> {
    let too_large = || {
        refuse(
            ErrorReason::BodyTooLarge,
            format!(
                "the request body exceeds {limit} bytes, the most this domain \
                 authenticates before forwarding; it was not forwarded"
            ),
        )
    };
    let limit_bytes = usize::try_from(limit).unwrap_or(usize::MAX);
    match read_bounded(body, limit_bytes, Some(idle)).await {
        Ok(whole) => Ok(whole),
        Err(ReadError::TooLarge) => Err(too_large()),
        Err(ReadError::Idle) => Err(refuse(
            ErrorReason::RequestBodyTimeout,
            format!(
                "no request body record within {}s; nothing was forwarded",
                idle.as_secs_f64()
            ),
        )),
        // The decoder says why the body failed; without its word the client's stream
        // broke off before its final record.
        Err(ReadError::Failed) => Err(match failure.get() {
            Some(error) if error.reason() == ErrorReason::BodyTooLarge => too_large(),
            Some(error) => refuse(
                error.reason(),
                format!("request body: {error}; nothing was forwarded"),
            ),
            None => refuse(
                ErrorReason::DecodeFailed,
                "the request body ended before its final record; nothing was forwarded",
            ),
        }),
    }
}

/// How far past the resend window a request's `not_after` may lie: the client states
/// it on its estimate of the relay's clock, which is off by its network delay and drift.
const NOT_AFTER_SKEW_SECS: u64 = 30;

/// Records the request's resend token, last before forwarding, so that no copy of a
/// non-idempotent request is forwarded twice: a resend after an error forged on the
/// path, or a copy replayed on another pair, finds the token and is refused with a
/// sealed `already-processed`.
///
/// The token is kept until the request's `not_after`, and no copy is forwarded after
/// it: so a copy held back on the path and released late finds either the token or its
/// deadline passed (docs/protocol.md §4.6).
async fn record_resend_token(
    state: &AppState,
    client_id: &str,
    head: &RequestHead,
) -> Result<(), Refusal> {
    let now = check_not_after(state, head)?;
    let settings = &state.config.resend;
    let claim = state
        .mte
        .store
        .record_token(
            client_id,
            head.token,
            now,
            // Kept through the deadline's whole second.
            head.not_after.saturating_add(1),
            settings.max_tokens,
        )
        .await
        .map_err(|error| {
            tracing::warn!(%error, "resend token not recorded; the request is refused");
            refuse(error.reason(), error.to_string())
        })?;
    match claim {
        TokenClaim::Recorded => Ok(()),
        TokenClaim::AlreadyForwarded => Err(already_forwarded()),
    }
}

/// The refusal of a copy whose resend token was recorded by an earlier copy.
fn already_forwarded() -> Refusal {
    refuse(
        ErrorReason::AlreadyProcessed,
        "an earlier copy of this request (the same resend token) was forwarded; \
         it is not forwarded again",
    )
}

/// The upstream request of an opened MTE request: its head as headers, and its body
/// decrypted record by record as the upstream reads it (a failure lands in `failure`).
fn upstream_request_for(
    state: &AppState,
    ctx: &RequestContext,
    message: &MessageContext,
    method: &Method,
    head: &RequestHead,
    body: RelayBody,
    failure: &DecodeFailure,
) -> Result<Request<RelayBody>, Refusal> {
    let declared = declared_length(head)?;
    if declared.is_some_and(|length| length > state.config.limits.max_body_bytes) {
        return Err(refuse(
            ErrorReason::BodyTooLarge,
            format!(
                "the request body states {} bytes, more than MAX_BODY_BYTES ({}); \
                 nothing was forwarded",
                declared.unwrap_or_default(),
                state.config.limits.max_body_bytes
            ),
        ));
    }
    let upstream_body = if message.has_body() {
        let decoder = message.body_decoder(Some(state.config.limits.max_body_bytes));
        streams::opening(
            body,
            decoder,
            declared,
            failure.clone(),
            ctx.timings.clone(),
        )
    } else {
        if declared.is_some_and(|length| length > 0) {
            return Err(refuse(
                ErrorReason::DecodeFailed,
                "the head states a content-length, and the request has no body",
            ));
        }
        empty()
    };
    let request = upstream_request(method, head, upstream_body)?;
    if let Some(parent) = trace_context::parse(request.headers()) {
        ctx.timings.set_trace_parent(parent);
    }
    Ok(request)
}

/// The plaintext length the sealed head states in `content-length`, when it states one
/// (a client that knew its body's length sends it, so the upstream gets the request
/// with its length rather than chunked). Several differing values are refused, as
/// RFC 9110 §8.6 asks.
fn declared_length(head: &RequestHead) -> Result<Option<u64>, Refusal> {
    let mut declared = None;
    for field in head
        .headers
        .iter()
        .filter(|field| field.name == "content-length")
    {
        let length = parse_content_length(&field.value).ok_or_else(|| {
            refuse(
                ErrorReason::DecodeFailed,
                "the head's content-length is not a number",
            )
        })?;
        if declared.is_some_and(|earlier| earlier != length) {
            return Err(refuse(
                ErrorReason::DecodeFailed,
                "the head states two different content-lengths",
            ));
        }
        declared = Some(length);
    }
    Ok(declared)
}

/// Refuses a non-idempotent request whose `not_after` is past, or further ahead than
/// the resend window allows; returns the relay's time.
fn check_not_after(state: &AppState, head: &RequestHead) -> Result<u64, Refusal> {
    let now = unix_now();
    let latest = now
        .saturating_add(state.config.resend.window.as_secs())
        .saturating_add(NOT_AFTER_SKEW_SECS);
    if head.not_after < now || head.not_after > latest {
        tracing::debug!(
            not_after = head.not_after,
            now,
            "request outside its resend window"
        );
        return Err(refuse(
            ErrorReason::RequestExpired,
            format!(
                "the request's not_after ({}) is not between the relay's time ({now}) and the \
                 end of its resend window ({latest}); it was not forwarded",
                head.not_after
            ),
        ));
    }
    Ok(now)
}

/// A refusal of an opened request, sealed like a response: the registry status, and
/// the token, `Retry-After` and JSON explanation inside the sealed head and body. The
/// token and `Retry-After` are repeated in the clear, as advice for intermediaries and
/// logs; a client believes only the sealed copy.
async fn seal_refusal(
    opened: &Opened,
    refusal: Refusal,
    ctx: &RequestContext,
) -> Result<Response<RelayBody>, Refusal> {
    let plain = registry_error(refusal.reason, refusal.message);
    let advice: Vec<_> = [ERROR_HEADER, RETRY_AFTER.as_str()]
        .into_iter()
        .filter_map(|name| Some((name, plain.headers().get(name)?.clone())))
        .collect();
    let mut sealed = seal_response(
        &opened.message,
        &opened.method,
        opened.header.mode,
        plain,
        ctx,
    )
    .await?;
    for (name, value) in advice {
        sealed.headers_mut().insert(name, value);
    }
    Ok(sealed)
}

/// The request the upstream sees: the decrypted target and end-to-end headers.
fn upstream_request(
    method: &Method,
    head: &RequestHead,
    body: RelayBody,
) -> Result<Request<RelayBody>, Refusal> {
    let target = PathAndQuery::try_from(head.path.as_str()).map_err(|_| {
        refuse(
            ErrorReason::DecodeFailed,
            "decrypted path is not a valid target",
        )
    })?;
    let mut request = Request::new(body);
    *request.method_mut() = method.clone();
    *request.uri_mut() = http::Uri::from(target);
    let headers = request.headers_mut();
    for field in &head.headers {
        let name = HeaderName::from_bytes(field.name.as_bytes()).map_err(|_| {
            refuse(
                ErrorReason::DecodeFailed,
                "decrypted header name is invalid",
            )
        })?;
        // The upstream client sets these from the upstream URL and the body it sends.
        if name == HOST || name == CONTENT_LENGTH {
            continue;
        }
        let value = HeaderValue::from_bytes(&field.value).map_err(|_| {
            refuse(
                ErrorReason::DecodeFailed,
                "decrypted header value is invalid",
            )
        })?;
        headers.append(name, value);
    }
    Ok(request)
}

/// Seals a response for the client: status in the clear (authenticated), headers in the
/// head block, body record by record as the upstream yields it.
async fn seal_response(
    message: &MessageContext,
    method: &Method,
    mode: Mode,
    response: Response<RelayBody>,
    ctx: &RequestContext,
) -> Result<Response<RelayBody>, Refusal> {
    let status = response.status();
    let has_body = !(method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || status.is_informational());
    let (parts, body) = response.into_parts();

    // MTE responses are one padded message: read it (bounded by the cap) before
    // committing to a status, so an oversized one becomes a clean registry error.
    let body = if has_body && mode == Mode::Mte {
        // Upstream pauses are bounded by the response timeouts, not here.
        match read_bounded(body, MTE_MAX_MESSAGE, None).await {
            Ok(whole) => full(whole),
            Err(ReadError::TooLarge) => {
                return Err(refuse(
                    ErrorReason::BodyTooLarge,
                    "upstream response exceeds the MTE message cap",
                ));
            }
            Err(ReadError::Failed | ReadError::Idle) => {
                return Err(refuse(
                    ErrorReason::UpstreamFailed,
                    "upstream response body failed",
                ));
            }
        }
    } else {
        body
    };

    let head = ResponseHead {
        headers: parts
            .headers
            .iter()
            .filter(|(name, _)| **name != CONTENT_LENGTH)
            .map(|(name, value)| HeaderField::new(name.as_str(), value.as_bytes()))
            .collect(),
    };
    // The protocol keeps the padding flag only where it applies (an MKE body).
    let mut flags = Flags::with_body(has_body);
    if ctx
        .domain
        .pad_stream_records
        .applies_to(parts.headers.get(CONTENT_TYPE))
    {
        flags = flags.union(Flags::PADDED_RECORDS);
    }
    let started = Instant::now();
    let sealer = message.response_sealer_with(&mut os_rng(), status.as_u16(), flags);
    let head_value = sealer
        .seal_head(&head)
        .map_err(|error| refuse(ErrorReason::Internal, format!("response head: {error}")))?;
    ctx.timings.add_encode(started.elapsed());
    let head_value = HeaderValue::from_str(&head_value).map_err(|_| {
        refuse(
            ErrorReason::Internal,
            "response head block is not a header value",
        )
    })?;

    let mut sealed = Response::new(if has_body {
        streams::sealing(body, sealer.body_encoder(), ctx.timings.clone())
    } else {
        empty()
    });
    *sealed.status_mut() = status;
    sealed.headers_mut().insert(HEAD_HEADER, head_value);
    if has_body {
        sealed.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
    }
    Ok(sealed)
}
