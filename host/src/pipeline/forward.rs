//! The forward stage every forwarded request goes through, MTE, pass-through and
//! outbound alike: the domain's filter adapters on the request, then the sending
//! (the upstream, or a peer relay), then the filters on the response.
//!
//! ```text
//! filters on-request --Respond--> the adapter's own answer (nothing sent)
//!        | Forward
//!        v
//!      send (the pipeline's: upstream client or peer client)
//!        v
//! filters on-response (reverse order) -> the answer
//! ```
//!
//! A filter that fails under the closed policy refuses the request with
//! `adapter-failed`, before anything was sent when it is `on-request`.

use std::future::Future;

use http::{Request, Response};
use mte_relay_protocol::registry::ErrorReason;

use super::{Refusal, refuse};
use crate::adapters::{self, Decision, RequestFacts};
use crate::body::RelayBody;
use crate::context::RequestContext;
use crate::state::AppState;

/// Where the answer came from.
pub(crate) enum Answer {
    /// The destination's response, after the filters' `on-response`.
    Forwarded(Response<RelayBody>),
    /// A filter answered the request itself; nothing was sent.
    Local(Response<RelayBody>),
}

impl Answer {
    pub(crate) fn into_response(self) -> Response<RelayBody> {
        match self {
            Answer::Forwarded(response) | Answer::Local(response) => response,
        }
    }
}

/// True when the domain runs filter adapters, which may refuse or answer a request
/// between its admission and its sending.
pub(crate) fn has_filters(state: &AppState, ctx: &RequestContext) -> bool {
    adapters::filters_of(state.adapters.as_deref(), &ctx.domain.name).is_some()
}

/// Runs `request` through the domain's filters around `send`, which forwards it and
/// returns the destination's response.
pub(crate) async fn through_filters<F, Fut>(
    state: &AppState,
    ctx: &RequestContext,
    facts: RequestFacts<'_>,
    mut request: Request<RelayBody>,
    send: F,
) -> Result<Answer, Refusal>
where
    F: FnOnce(Request<RelayBody>) -> Fut,
    Fut: Future<Output = Result<Response<RelayBody>, Refusal>>,
{
    let Some(chain) = adapters::filters_of(state.adapters.as_deref(), &ctx.domain.name) else {
        return send(request).await.map(Answer::Forwarded);
    };
    let info = match adapters::filter_request(chain, facts, &mut request).await {
        Ok(Decision::Forward(info)) => info,
        Ok(Decision::Respond(reply)) => return Ok(Answer::Local(reply)),
        Err(error) => return Err(adapter_refusal(&error, ctx)),
    };
    let mut response = send(request).await?;
    adapters::filter_response(chain, &info, &mut response)
        .await
        .map_err(|error| adapter_refusal(&error, ctx))?;
    Ok(Answer::Forwarded(response))
}

/// A filter failed under the closed policy: the request is refused.
fn adapter_refusal(error: &mte_relay_adapter_runtime::HookError, ctx: &RequestContext) -> Refusal {
    let message = adapters::refusal_message(error, &ctx.request_id, &ctx.domain.name);
    refuse(ErrorReason::AdapterFailed, message)
}

/// The facts filters get about a request that is not an MTE request (pass-through and
/// outbound): no client id or pair.
pub(crate) fn plain_facts<'a>(ctx: &'a RequestContext) -> RequestFacts<'a> {
    RequestFacts {
        domain: &ctx.domain.name,
        mte: false,
        client_id: None,
        pair_id: None,
        correlation_id: &ctx.request_id,
        remote_addr: ctx.remote_addr,
    }
}
