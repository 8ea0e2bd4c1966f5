//! `POST /api/mte-pair`: one batch of pairings.
//!
//! Pairing is the CPU-heavy step (one X-Wing encapsulation per pair), so batches run on
//! the blocking pool under a bound of concurrent pairings; past the bound the relay
//! answers `overloaded` at once instead of queueing.

use std::sync::Arc;

use http::{Request, Response};
use mte_relay_protocol::pairing::{PairingRequest, PairingResponse, PairingScope, accept_offer};
use mte_relay_protocol::registry::ErrorReason;
use mte_relay_protocol::replay::ReplayWindow;
use mte_relay_protocol::rng::os_rng;

use super::{ReadError, protocol_domain, read_bounded, unix_now};
use crate::body::RelayBody;
use crate::response::{self, registry_error};
use crate::state::{AppState, RequestContext};
use crate::store::PairRecord;

/// Generous bound on one offer's JSON (a 1216-byte key is 1622 base64url characters).
const MAX_OFFER_JSON: usize = 2048;

pub async fn serve(
    state: &Arc<AppState>,
    ctx: &RequestContext,
    request: Request<RelayBody>,
) -> Response<RelayBody> {
    let Ok(_permit) = state.pairing_permits.clone().try_acquire_owned() else {
        return registry_error(
            ErrorReason::Overloaded,
            "too many pairings in progress; retry later",
        );
    };
    let settings = state.config.pairing;
    let max_body = settings.max_pairs_per_batch * MAX_OFFER_JSON + 1024;
    let body = match read_bounded(request.into_body(), max_body).await {
        Ok(body) => body,
        Err(ReadError::TooLarge) => {
            return registry_error(
                ErrorReason::PairingLimit,
                format!("pairing document exceeds {max_body} bytes"),
            );
        }
        Err(ReadError::Failed) => {
            return registry_error(
                ErrorReason::PairingMalformed,
                "pairing document ended early",
            );
        }
    };
    let batch = match PairingRequest::parse(&body, settings.max_pairs_per_batch) {
        Ok(batch) => batch,
        Err(error) => return registry_error(error.reason(), error.to_string()),
    };

    let domain = protocol_domain(&ctx.host);
    let now = unix_now();
    let authority = state.mte.authority(&ctx.domain);
    if let Err(error) = authority.verify(&domain, batch.client_id.as_bytes(), now) {
        return registry_error(error.reason(), error.to_string());
    }

    let psk = state
        .config
        .secret
        .as_ref()
        .map(|s| s.expose().as_bytes().to_vec());
    let expires_at = now + settings.pair_ttl.as_secs();
    let accepted = tokio::task::spawn_blocking(move || {
        let scope = PairingScope {
            domain: &domain,
            client_id: &batch.client_id,
            psk: psk.as_deref(),
        };
        let mut rng = os_rng();
        batch
            .pairs
            .iter()
            .map(|offer| accept_offer(scope, offer, expires_at, &mut rng))
            .collect::<Result<Vec<_>, _>>()
            .map(|pairs| (batch.client_id.clone(), pairs))
    })
    .await;
    let (client_id, pairs) = match accepted {
        Ok(Ok(accepted)) => accepted,
        Ok(Err(error)) => return registry_error(error.reason(), error.to_string()),
        Err(_) => return registry_error(ErrorReason::Internal, "pairing task failed"),
    };

    let mut answers = Vec::with_capacity(pairs.len());
    for (pair_id, keys, answer) in pairs {
        let record = PairRecord {
            client_id: client_id.clone(),
            keys,
            window: ReplayWindow::new(),
            created_at: now,
            expires_at,
        };
        if let Err(error) = state
            .mte
            .store
            .insert(pair_id, record, settings.max_pairs_per_client)
            .await
        {
            tracing::error!(%error, "pair store refused a new pair");
            return registry_error(ErrorReason::Internal, "pair store unavailable");
        }
        answers.push(answer);
    }
    let document = PairingResponse { pairs: answers };
    response::json(&serde_json::to_value(&document).unwrap_or_default())
}
