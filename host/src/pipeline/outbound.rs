//! An outbound request (API Relay): a plain request from a service of this side,
//! carrying `x-mte-outbound-token`, sent encrypted to a peer relay, which forwards it
//! to its upstream; the answer comes back decrypted.
//!
//! ```text
//! token (constant time) -> peer (x-mte-upstream or the default; allow-list)
//!   -> mode (x-mte-encode-type or OUTBOUND_MODE) -> the forward stage (filters)
//!   -> the peer's client (pairs on first use) -> request encrypted as it streams
//!   -> response decrypted as it streams
//! ```
//!
//! Nothing leaves the relay before the token matched and the peer is allowed. The
//! `x-mte-*` headers steer this relay only: none reaches the peer's upstream or goes
//! back to the caller, and the token never leaves the process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{CONTENT_LENGTH, HeaderMap, HeaderName};
use http::{Request, Response};
use mte_relay_client::{ClientError, CodecTimer, Mode, RequestBody};
use mte_relay_protocol::head::parse_content_length;
use mte_relay_protocol::registry::ErrorReason;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::forward::{self, plain_facts};
use super::{ReadError, Refusal, read_bounded, refuse};
use crate::body::{RelayBody, boxed};
use crate::config::outbound::parse_mode;
use crate::config::{DomainOutbound, PeerOrigin};
use crate::context::RequestContext;
use crate::state::AppState;

/// The header that makes a request outbound: the domain's outbound token.
pub const OUTBOUND_TOKEN_HEADER: &str = "x-mte-outbound-token";
/// The peer relay's origin, when the request names one.
pub const UPSTREAM_HEADER: &str = "x-mte-upstream";
/// `MKE` or `MTE`: the mode of this request.
pub const ENCODE_TYPE_HEADER: &str = "x-mte-encode-type";
/// Prefix of every header that steers the relay; none is forwarded or returned.
const STEERING_PREFIX: &str = "x-mte-";

/// Sends an outbound request to its peer relay and returns the peer's answer.
pub async fn forward(
    state: &Arc<AppState>,
    ctx: &RequestContext,
    request: Request<RelayBody>,
) -> Response<RelayBody> {
    match send(state, ctx, request).await {
        Ok(response) => response,
        Err(refusal) => refusal.into_response(),
    }
}

async fn send(
    state: &Arc<AppState>,
    ctx: &RequestContext,
    request: Request<RelayBody>,
) -> Result<Response<RelayBody>, Refusal> {
    let (mut parts, body) = request.into_parts();
    let outbound = authorise(ctx.domain.outbound.as_ref(), &parts.headers)?;
    let peer = peer_of(outbound, &parts.headers)?;
    ctx.timings.set_peer(peer.as_str(), outbound.names(&peer));
    let mode = match parts.headers.get(ENCODE_TYPE_HEADER) {
        None => state.peers.default_mode(),
        Some(value) => value.to_str().ok().and_then(parse_mode).ok_or_else(|| {
            refuse(
                ErrorReason::OutboundRequestInvalid,
                "x-mte-encode-type must be MKE or MTE",
            )
        })?,
    };
    ctx.timings.set_mode(mode);
    // The filters and the peer see the request without this relay's steering headers.
    strip_steering_headers(&mut parts.headers);
    let request = Request::from_parts(parts, body);
    let answer = forward::through_filters(state, ctx, plain_facts(ctx), request, |request| {
        send_to_peer(state, ctx, &peer, mode, request)
    })
    .await?;
    Ok(answer.into_response())
}

/// Sends the request, encrypted, to the peer relay, and returns its decrypted answer.
async fn send_to_peer(
    state: &Arc<AppState>,
    ctx: &RequestContext,
    peer: &PeerOrigin,
    mode: Mode,
    request: Request<RelayBody>,
) -> Result<Response<RelayBody>, Refusal> {
    let (parts, body) = request.into_parts();
    let pins = ctx
        .domain
        .outbound
        .as_ref()
        .map_or(&[][..], |outbound| outbound.pins.as_slice());
    let client = state.peers.client(peer, pins).map_err(|error| {
        tracing::warn!(request_id = %ctx.request_id, %peer, %error, "no client for the peer relay");
        refuse(
            ErrorReason::OutboundRequestInvalid,
            format!("cannot send to peer relay {peer}: {error}"),
        )
    })?;
    let body = body_for_peer(body, &parts.headers, state.config.timeouts.body_idle).await?;
    let mut outgoing = Request::from_parts(parts, body);
    outgoing.extensions_mut().insert(mode);
    // The request's encoding and the answer's decoding are this relay's encode and
    // decode times, as the inbound side's are its decoding and encoding.
    outgoing
        .extensions_mut()
        .insert(CodecTimer::new(ctx.timings.clone()));

    let started = Instant::now();
    let sent = client.send(outgoing).await;
    ctx.timings.add_outbound(started.elapsed());
    let response = sent.map_err(|error| peer_failure(ctx, peer, &error))?;
    let (mut parts, body) = response.into_parts();
    strip_steering_headers(&mut parts.headers);
    Ok(Response::from_parts(parts, boxed(body)))
}

/// The domain's outbound role, once the request's token matched it (compared in
/// constant time, over digests so that the length does not show either).
fn authorise<'a>(
    outbound: Option<&'a DomainOutbound>,
    headers: &HeaderMap,
) -> Result<&'a DomainOutbound, Refusal> {
    let refused = |message: &'static str| refuse(ErrorReason::OutboundTokenInvalid, message);
    let Some(outbound) = outbound else {
        return Err(refused(
            "this domain has no outbound role (no outbound_token is configured)",
        ));
    };
    let given = headers
        .get(OUTBOUND_TOKEN_HEADER)
        .ok_or_else(|| refused("x-mte-outbound-token header missing"))?;
    let given = Sha256::digest(given.as_bytes());
    let expected = Sha256::digest(outbound.token.expose().as_bytes());
    if bool::from(given.ct_eq(&expected)) {
        Ok(outbound)
    } else {
        Err(refused(
            "x-mte-outbound-token does not match this domain's outbound token",
        ))
    }
}

/// The peer the request names in `x-mte-upstream`, or the domain's default, once the
/// allow-list admits it.
fn peer_of(outbound: &DomainOutbound, headers: &HeaderMap) -> Result<PeerOrigin, Refusal> {
    let named = match headers.get(UPSTREAM_HEADER) {
        None => None,
        Some(value) => {
            let text = value.to_str().unwrap_or_default();
            Some(PeerOrigin::parse(text).map_err(|problem| {
                refuse(
                    ErrorReason::OutboundPeerForbidden,
                    format!("x-mte-upstream: {problem}"),
                )
            })?)
        }
    };
    let peer = named
        .or_else(|| outbound.default_peer.clone())
        .ok_or_else(|| {
            refuse(
                ErrorReason::OutboundRequestInvalid,
                "no peer relay: send x-mte-upstream, or configure outbound_upstream \
             (OUTBOUND_UPSTREAM)",
            )
        })?;
    if !outbound.allows(&peer) {
        return Err(refuse(
            ErrorReason::OutboundPeerForbidden,
            format!("peer relay {peer} is not on this domain's outbound_peers allow-list"),
        ));
    }
    Ok(peer)
}

/// Bodies of at most this many bytes, by their `content-length`, are read whole before
/// they are sent: a whole body can be sent again when the peer has lost its pairs (it
/// restarted), so the caller never sees that. Longer ones stream.
pub const REPLAYABLE_BODY_BYTES: u64 = 64 * 1024;

/// The caller's body as the peer's client takes it: whole when it is short and its
/// length known, streamed otherwise.
async fn body_for_peer(
    body: RelayBody,
    headers: &HeaderMap,
    idle: Duration,
) -> Result<RequestBody, Refusal> {
    let stated = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| parse_content_length(value.as_bytes()));
    let Some(stated) = stated.filter(|stated| *stated <= REPLAYABLE_BODY_BYTES) else {
        return Ok(RequestBody::streaming(body));
    };
    let limit = usize::try_from(stated).unwrap_or(usize::MAX);
    match read_bounded(body, limit, Some(idle)).await {
        Ok(whole) if whole.len() == limit => Ok(RequestBody::full(whole)),
        Ok(_) | Err(ReadError::TooLarge) => Err(refuse(
            ErrorReason::OutboundRequestInvalid,
            "the request body's length differs from its content-length; nothing was sent",
        )),
        Err(ReadError::Idle) => Err(refuse(
            ErrorReason::RequestBodyTimeout,
            format!(
                "no request body data within {}s; nothing was sent",
                idle.as_secs_f64()
            ),
        )),
        Err(ReadError::Failed) => Err(refuse(
            ErrorReason::OutboundRequestInvalid,
            "the request body failed before its end; nothing was sent",
        )),
    }
}

/// Removes the headers that steer this relay (`x-mte-*`), which are this side's alone.
fn strip_steering_headers(headers: &mut HeaderMap) {
    let steering: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with(STEERING_PREFIX))
        .cloned()
        .collect();
    for name in steering {
        headers.remove(name);
    }
}

/// The caller's answer when the exchange with the peer failed: the peer's own refusal
/// with its reason, or this relay's account of why the peer could not be reached.
fn peer_failure(ctx: &RequestContext, peer: &PeerOrigin, error: &ClientError) -> Refusal {
    let secret_mismatch = error.is_secret_mismatch();
    let reason = if secret_mismatch {
        ErrorReason::SecretMismatch
    } else {
        match error {
            ClientError::Registry { reason, .. } => *reason,
            // The request could not be sent as given (a body over the MTE cap, a head
            // over the peer's limit): the caller's to fix.
            ClientError::InvalidRequest { .. } => ErrorReason::OutboundRequestInvalid,
            // Like an upstream whose certificate does not verify: nothing was sent.
            _ if error.is_unreachable() || error.is_identity_mismatch() => {
                ErrorReason::UpstreamUnreachable
            }
            _ if error.is_timeout() => ErrorReason::UpstreamTimeout,
            _ => ErrorReason::UpstreamFailed,
        }
    };
    // The caller learns whether its request may have run from the reason's class
    // (the registry's "upstream untouched"): a reason that promises nothing ran is
    // given only when the client knows so over every attempt (an earlier one may have
    // reached the peer's upstream before the peer went away, and an unauthenticated
    // refusal could be forged on the path).
    let reason = if reason.upstream_untouched() && !error.is_retry_safe() {
        ErrorReason::UpstreamFailed
    } else {
        reason
    };
    if secret_mismatch {
        tracing::warn!(
            request_id = %ctx.request_id,
            %peer,
            %error,
            "pairing with the peer relay failed: this relay's SECRET does not match the peer's \
             (check that both relays are given the same SECRET)"
        );
    } else {
        tracing::warn!(
            request_id = %ctx.request_id,
            %peer,
            reason = %reason,
            retry_safe = error.is_retry_safe(),
            %error,
            "outbound request to the peer relay failed"
        );
    }
    let message = match error {
        ClientError::Registry { message, .. } => format!("peer relay {peer} refused: {message}"),
        ClientError::InvalidRequest { message } => {
            format!("cannot send to peer relay {peer}: {message}; nothing was sent")
        }
        _ if error.is_identity_mismatch() => format!(
            "peer relay {peer} did not prove an identity key of outbound_pins; nothing was sent"
        ),
        _ if secret_mismatch => {
            format!("pairing with peer relay {peer} failed: the two relays' SECRET values differ")
        }
        _ => format!("peer relay {peer}: {}", reason_summary(reason, error)),
    };
    refuse(reason, message)
}

fn reason_summary(reason: ErrorReason, error: &ClientError) -> &'static str {
    match reason {
        ErrorReason::UpstreamUnreachable => "unreachable (connection failed; nothing was sent)",
        ErrorReason::UpstreamTimeout => "no answer within UPSTREAM_RESPONSE_TIMEOUT_SECS",
        _ if error.is_retry_safe() => "the exchange failed; nothing was sent",
        _ => "the exchange failed, and the request may have reached the peer's upstream",
    }
}
