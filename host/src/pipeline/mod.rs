//! The request pipelines: the relay's protocol endpoints, one MTE request's life
//! (decode -> upstream -> encode), pass-through forwarding, and outbound requests to a
//! peer relay. The server calls the three functions here, [`passthrough::forward`] and
//! [`outbound::forward`].

mod capabilities;
pub mod echo;
mod forward;
pub mod outbound;
mod pairing;
pub mod passthrough;
mod request;
mod streams;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;

use mte_relay_protocol::registry::ErrorReason;

use crate::body::RelayBody;
use crate::context::RequestContext;
use crate::state::AppState;
use crate::upstream::UpstreamError;

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

/// Logs why an upstream exchange failed: the cause stays in the log, the client gets
/// only the class ([`UpstreamError::client_message`]).
pub(crate) fn log_upstream_failure(ctx: &RequestContext, error: &UpstreamError) {
    tracing::warn!(
        request_id = %ctx.request_id,
        domain = %ctx.domain.name,
        reason = %error.reason(),
        // The registry decides retry safety, one rule for every error it names.
        retry_safe = error.reason().upstream_untouched(),
        error = %error,
        "upstream request failed"
    );
}

/// The domain as the protocol binds it (one rule, in the protocol crate).
pub use mte_relay_protocol::host::protocol_domain;

/// Why a pipeline refused a request, with a message safe to show the client; answered
/// as a registry error (or, once an MTE head opened, sealed) by the pipeline's entry.
pub(crate) struct Refusal {
    pub reason: ErrorReason,
    pub message: Cow<'static, str>,
}

pub(crate) fn refuse(reason: ErrorReason, message: impl Into<Cow<'static, str>>) -> Refusal {
    Refusal {
        reason,
        message: message.into(),
    }
}

impl Refusal {
    /// The registry error the client gets, in the clear.
    pub(crate) fn into_response(self) -> Response<RelayBody> {
        crate::response::registry_error(self.reason, self.message)
    }
}

/// Why [`read_bounded`] stopped.
pub(crate) enum ReadError {
    /// The body is longer than the limit.
    TooLarge,
    /// The body failed while streaming.
    Failed,
    /// No frame arrived within the idle bound.
    Idle,
}

/// Reads a whole body of at most `limit` bytes, each frame within `idle` of the one
/// before when given. Only for bodies that are bounded (pairing documents, MTE
/// messages, bodies a domain verifies before forwarding); everything else streams.
pub(crate) async fn read_bounded(
    mut body: RelayBody,
    limit: usize,
    idle: Option<Duration>,
) -> Result<Bytes, ReadError> {
    let mut whole = Vec::new();
    loop {
        let next = match idle {
            Some(idle) => tokio::time::timeout(idle, body.frame())
                .await
                .map_err(|_elapsed| ReadError::Idle)?,
            None => body.frame().await,
        };
        let Some(frame) = next else { break };
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
