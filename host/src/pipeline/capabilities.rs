//! `GET`/`HEAD /api/mte-relay`: the capabilities document and the caller's client id.

use std::sync::Arc;

use http::header::HeaderValue;
use http::{Method, Request, Response};
use mte_relay_protocol::capabilities::{Capabilities, Limits};
use mte_relay_protocol::header::CLIENT_ID_HEADER;
use mte_relay_protocol::rng::os_rng;

use super::protocol_domain;
use crate::body::{RelayBody, empty};
use crate::context::RequestContext;
use crate::response;
use crate::state::AppState;
use crate::store::unix_now;

pub async fn serve(
    state: &Arc<AppState>,
    ctx: &RequestContext,
    request: Request<RelayBody>,
) -> Response<RelayBody> {
    let domain = protocol_domain(&ctx.host);
    let now = unix_now();
    let authority = state.mte.authority(&ctx.domain);
    let presented = request.headers().get(CLIENT_ID_HEADER);

    // A still-fresh id is handed back unchanged; one in the last quarter of its life
    // (or invalid, or absent) is replaced, so clients never hold an id about to lapse.
    let refresh_after = authority.max_age_secs() / 4;
    let kept = presented.and_then(|value| {
        let verified = authority.verify(&domain, value.as_bytes(), now).ok()?;
        (verified.expires_at.saturating_sub(now) > refresh_after).then(|| {
            (
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
                verified.expires_at,
            )
        })
    });
    let (client_id, expires_at) = kept.unwrap_or_else(|| {
        let id = authority.mint(&domain, now, &mut os_rng());
        (id, now + authority.max_age_secs())
    });

    let mut document = Capabilities::new(limits(state), client_id.clone(), expires_at);
    document.server_time = now;
    document.identity_key = ctx
        .domain
        .identity
        .as_ref()
        .map(|identity| identity.public_key().to_text());
    let value = serde_json::to_value(&document).unwrap_or_default();
    let mut response = response::json(&value);
    if let Ok(header) = HeaderValue::from_str(&client_id) {
        response.headers_mut().insert(CLIENT_ID_HEADER, header);
    }
    if request.method() == Method::HEAD {
        *response.body_mut() = empty();
    }
    response
}

/// The limits this relay enforces, which may be tighter than the protocol's.
fn limits(state: &AppState) -> Limits {
    let pairing = &state.config.pairing;
    let mut limits = Limits::new(
        u32::try_from(pairing.max_pairs_per_batch).unwrap_or(u32::MAX),
        u32::try_from(pairing.max_pairs_per_client).unwrap_or(u32::MAX),
        pairing.pair_ttl.as_secs(),
        Some(state.config.limits.max_body_bytes),
    );
    let configured_head = u32::try_from(state.config.limits.max_head_bytes).unwrap_or(u32::MAX);
    limits.max_head_block = limits.max_head_block.min(configured_head);
    limits.resend_window_secs = state.config.resend.window.as_secs();
    limits
}
