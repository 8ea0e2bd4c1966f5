//! Pass-through routes: a plain streaming reverse proxy, upgrades (WebSocket) included.

use http::{Request, Response, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use mte_relay_adapter_runtime::HookError;
use mte_relay_protocol::registry::ErrorReason;

use crate::adapters::{self, Decision, RequestFacts};
use crate::body::{RelayBody, boxed};
use crate::context::RequestContext;
use crate::response::registry_error;
use crate::state::AppState;

use crate::upstream::headers::is_upgrade;

/// Forwards a request to the domain's upstream and streams the response back.
pub async fn forward(
    state: &AppState,
    ctx: &RequestContext,
    mut request: Request<RelayBody>,
) -> Response<RelayBody> {
    let client_side = is_upgrade(request.headers()).then(|| hyper::upgrade::on(&mut request));
    let filters = adapters::filters_of(state.adapters.as_deref(), &ctx.domain.name);
    let mut filtered = None;
    if let Some(chain) = filters {
        let facts = RequestFacts {
            domain: &ctx.domain.name,
            mte: false,
            client_id: None,
            pair_id: None,
            correlation_id: &ctx.request_id,
            remote_addr: ctx.remote_addr,
        };
        match adapters::filter_request(chain, facts, &mut request).await {
            Ok(Decision::Forward(info)) => filtered = Some(info),
            Ok(Decision::Respond(reply)) => return reply,
            Err(error) => {
                return adapter_refusal(&error, ctx);
            }
        }
    }
    let mut response = match state.upstream.send(ctx.destination(), request).await {
        Ok(response) => response,
        Err(error) => {
            super::log_upstream_failure(ctx, &error);
            return registry_error(error.reason(), error.client_message());
        }
    };
    if response.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client_side) = client_side
    {
        let upstream_side = hyper::upgrade::on(&mut response);
        tokio::spawn(tunnel(client_side, upstream_side, ctx.request_id.clone()));
    }
    let mut response = response.map(boxed);
    if let (Some(chain), Some(info)) = (filters, &filtered)
        && let Err(error) = adapters::filter_response(chain, info, &mut response).await
    {
        return adapter_refusal(&error, ctx);
    }
    response
}

/// Copies bytes both ways between the upgraded connections until either side closes.
async fn tunnel(client_side: OnUpgrade, upstream_side: OnUpgrade, request_id: String) {
    let (client, upstream) = match tokio::try_join!(client_side, upstream_side) {
        Ok(pair) => pair,
        Err(error) => {
            tracing::debug!(%request_id, %error, "protocol upgrade did not complete");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        Ok((to_upstream, to_client)) => {
            tracing::debug!(%request_id, to_upstream, to_client, "upgraded connection closed");
        }
        Err(error) => tracing::debug!(%request_id, %error, "upgraded connection failed"),
    }
}

/// A filter failed under the closed policy: the request is refused.
fn adapter_refusal(error: &HookError, ctx: &RequestContext) -> Response<RelayBody> {
    let message = adapters::refusal_message(error, &ctx.request_id, &ctx.domain.name);
    registry_error(ErrorReason::AdapterFailed, message)
}
