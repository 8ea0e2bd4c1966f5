//! `POST /api/mte-pair`: one batch of pairings.
//!
//! Pairing is the CPU-heavy step (one X-Wing encapsulation per pair), so batches run on
//! the blocking pool under a bound of concurrent pairings; past the bound the relay
//! answers `overloaded` at once instead of queueing. In order, each step cheaper than
//! the next, so a flood is turned away before it costs much:
//!
//! ```text
//! read the document (whole, under PAIRING_BODY_TIMEOUT_SECS) -> parse -> client id
//!   -> rate per address, then per client id (tokens = pairs) -> pairing permit
//!   -> X-Wing (and the batch's signature, with an identity key) on the blocking pool
//!   -> insert the batch (refused whole at MAX_PAIRS)
//! ```
//!
//! The document is read before the permit is taken, so a slow sender holds a
//! connection and nothing else; the permit covers only the CPU work.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response};
use mte_relay_protocol::pairing::{PairingRequest, PairingResponse, PairingScope, accept_offer};
use mte_relay_protocol::registry::ErrorReason;
use mte_relay_protocol::rng::os_rng;

use super::{ReadError, protocol_domain, read_bounded};
use crate::admission::{LogThrottle, Refused, address_key};
use crate::body::RelayBody;
use crate::context::RequestContext;
use crate::response::{self, overloaded, registry_error};
use crate::state::AppState;
use crate::store::{InsertError, NewPair, PairCaps, unix_now};

/// Generous bound on one offer's JSON (a 1216-byte key is 1622 base64url characters).
const MAX_OFFER_JSON: usize = 2048;

pub async fn serve(
    state: &Arc<AppState>,
    ctx: &RequestContext,
    request: Request<RelayBody>,
) -> Response<RelayBody> {
    let settings = state.config.pairing;
    let max_body = settings.max_pairs_per_batch * MAX_OFFER_JSON + 1024;
    // The whole document is under one deadline below, not a per-frame one.
    let read = read_bounded(request.into_body(), max_body, None);
    let body = match tokio::time::timeout(settings.body_timeout, read).await {
        Ok(Ok(body)) => body,
        Ok(Err(ReadError::TooLarge)) => {
            return registry_error(
                ErrorReason::PairingLimit,
                format!("pairing document exceeds {max_body} bytes"),
            );
        }
        Ok(Err(ReadError::Failed | ReadError::Idle)) => {
            return registry_error(
                ErrorReason::PairingMalformed,
                "pairing document ended early",
            );
        }
        Err(_elapsed) => {
            tracing::info!(
                request_id = %ctx.request_id,
                remote_addr = %ctx.remote_addr,
                timeout_secs = settings.body_timeout.as_secs_f64(),
                "pairing document did not arrive in time"
            );
            return registry_error(
                ErrorReason::RequestBodyTimeout,
                "the pairing document did not arrive in time",
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

    let cost = u32::try_from(batch.pairs.len()).unwrap_or(u32::MAX);
    let address = address_key(ctx.provenance.client);
    let admitted = state
        .pairing_rates
        .per_address
        .take(&address, cost, Instant::now())
        .map_err(|refused| (refused, "this address"))
        .and_then(|()| {
            state
                .pairing_rates
                .per_client
                .take(&batch.client_id, cost, Instant::now())
                .map_err(|refused| (refused, "this client id"))
        });
    if let Err((Refused { retry_after }, whose)) = admitted {
        static REPORTED: LogThrottle = LogThrottle::new(Duration::from_secs(10));
        if let Some(held_back) = REPORTED.admit() {
            tracing::info!(
                request_id = %ctx.request_id,
                remote_addr = %ctx.remote_addr,
                pairs = cost,
                retry_after_secs = retry_after.as_secs(),
                refusals_not_logged = held_back,
                "pairing rate limit reached for {whose}"
            );
        }
        return overloaded(
            format!("pairing rate limit reached for {whose}; retry later"),
            retry_after,
        );
    }

    // A full store refuses the batch on insert anyway; saying so before the X-Wing
    // work keeps a flood at the cap from costing CPU.
    match state.mte.store.pair_count().await {
        Ok(held) if held + batch.pairs.len() > settings.max_pairs => {
            return store_full(ctx, settings.max_pairs);
        }
        Ok(_) => {}
        Err(error) => {
            tracing::error!(%error, "pair store cannot count pairs");
            return registry_error(error.reason(), "pair store unavailable; retry later");
        }
    }

    let Ok(permit) = state.pairing_permits.clone().try_acquire_owned() else {
        return registry_error(
            ErrorReason::Overloaded,
            "too many pairings in progress; retry later",
        );
    };
    // A clone of the `Secret`, which zeroizes itself, not a plain copy of its bytes.
    let psk = state.config.secret.clone();
    let expires_at = now + settings.pair_ttl.as_secs();
    let identity = ctx.domain.identity.clone();
    let accepted = tokio::task::spawn_blocking(move || {
        let scope = PairingScope {
            domain: &domain,
            client_id: &batch.client_id,
            psk: psk.as_ref().map(|secret| secret.expose().as_bytes()),
        };
        let mut rng = os_rng();
        let pairs = batch
            .pairs
            .iter()
            .map(|offer| accept_offer(scope, offer, expires_at, &mut rng))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| (error.reason(), error.to_string()))?;
        let signature = match identity {
            None => None,
            Some(identity) => {
                let hashes: Vec<_> = pairs.iter().map(|pair| pair.transcript_hash).collect();
                let answers: Vec<_> = pairs.iter().map(|pair| pair.answer.clone()).collect();
                let signed = identity.sign_pairing(scope, &hashes, &answers, &mut rng);
                Some(signed.map_err(|error| (ErrorReason::Internal, error.to_string()))?)
            }
        };
        Ok((batch.client_id.clone(), pairs, signature))
    })
    .await;
    drop(permit);
    let (client_id, pairs, signature) = match accepted {
        Ok(Ok(accepted)) => accepted,
        Ok(Err((reason, message))) => {
            if reason == ErrorReason::SecretMismatch {
                log_secret_mismatch(ctx, &message);
            }
            return registry_error(reason, message);
        }
        Err(_) => return registry_error(ErrorReason::Internal, "pairing task failed"),
    };

    let mut answers = Vec::with_capacity(pairs.len());
    let mut new_pairs = Vec::with_capacity(pairs.len());
    for accepted in pairs {
        new_pairs.push(NewPair {
            pair_id: accepted.pair_id,
            keys: accepted.keys,
            created_at: now,
            expires_at,
        });
        answers.push(accepted.answer);
    }
    let caps = PairCaps {
        per_client: settings.max_pairs_per_client,
        total: settings.max_pairs,
    };
    if let Err(error) = state.mte.store.insert(&client_id, new_pairs, caps).await {
        if let InsertError::Full(max_pairs) = error {
            return store_full(ctx, max_pairs);
        }
        let message = if let InsertError::Store(_) = error {
            tracing::error!(%error, "pair store refused a new pair");
            "pair store unavailable; retry later".to_owned()
        } else {
            tracing::info!(
                request_id = %ctx.request_id,
                remote_addr = %ctx.remote_addr,
                %error,
                "pairing refused"
            );
            error.to_string()
        };
        return registry_error(error.reason(), message);
    }
    let document = PairingResponse {
        pairs: answers,
        signature,
    };
    response::json(&serde_json::to_value(&document).unwrap_or_default())
}

/// A pairing under another `SECRET` (or none): the usual cause is a configuration
/// that differs between the two relays of an API Relay, so the line names it.
fn log_secret_mismatch(ctx: &RequestContext, detail: &str) {
    static REPORTED: LogThrottle = LogThrottle::new(Duration::from_secs(10));
    if let Some(held_back) = REPORTED.admit() {
        tracing::warn!(
            request_id = %ctx.request_id,
            remote_addr = %ctx.remote_addr,
            domain = %ctx.domain.name,
            refusals_not_logged = held_back,
            detail,
            "pairing refused: the peer's SECRET does not match this relay's SECRET \
             (check that both relays are given the same SECRET)"
        );
    }
}

/// The store holds `MAX_PAIRS`: pairing resumes as pairs expire or are evicted.
fn store_full(ctx: &RequestContext, max_pairs: usize) -> Response<RelayBody> {
    static REPORTED: LogThrottle = LogThrottle::new(Duration::from_secs(10));
    if let Some(held_back) = REPORTED.admit() {
        tracing::warn!(
            request_id = %ctx.request_id,
            max_pairs,
            refusals_not_logged = held_back,
            "pairing refused: the relay holds MAX_PAIRS pairs"
        );
    }
    overloaded(
        "the relay holds its maximum number of pairs; retry later",
        STORE_FULL_RETRY_AFTER,
    )
}

/// How long a client is asked to wait when the store is full: long enough that a
/// flood's retries do not arrive faster than the sweep frees pairs.
const STORE_FULL_RETRY_AFTER: Duration = Duration::from_secs(30);
