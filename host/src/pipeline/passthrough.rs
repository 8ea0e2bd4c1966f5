//! Pass-through routes: a plain streaming reverse proxy, upgrades (WebSocket) included.

use http::{Request, Response, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::forward::{plain_facts, through_filters};
use super::refuse;
use crate::body::{RelayBody, boxed};
use crate::context::RequestContext;
use crate::state::AppState;

use crate::upstream::headers::is_upgrade;

/// Forwards a request to the domain's upstream and streams the response back.
pub async fn forward(
    state: &AppState,
    ctx: &RequestContext,
    mut request: Request<RelayBody>,
) -> Response<RelayBody> {
    let client_side = is_upgrade(request.headers()).then(|| hyper::upgrade::on(&mut request));
    let answer = through_filters(
        state,
        ctx,
        plain_facts(ctx),
        request,
        |request| async move {
            let mut response = state
                .upstream
                .send(ctx.destination(), request)
                .await
                .map_err(|error| {
                    super::log_upstream_failure(ctx, &error);
                    refuse(error.reason(), error.client_message())
                })?;
            if response.status() == StatusCode::SWITCHING_PROTOCOLS
                && let Some(client_side) = client_side
            {
                let upstream_side = hyper::upgrade::on(&mut response);
                tokio::spawn(tunnel(client_side, upstream_side, ctx.request_id.clone()));
            }
            Ok(response.map(boxed))
        },
    )
    .await;
    match answer {
        Ok(answer) => answer.into_response(),
        Err(refusal) => refusal.into_response(),
    }
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
