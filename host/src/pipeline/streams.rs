//! The MTE pipeline's streaming bodies: the client SDK's sealing and opening wrappers
//! ([`mte_relay_client::codec`], the one set the relay and its clients share), timed
//! into the request's timings, with an opening body's failure kept for the pipeline.
//!
//! Neither buffers more than one record (MKE) or one MTE message, so memory per
//! request is bounded by the chunk size whatever the payload size.

use std::sync::{Arc, OnceLock};

use http_body_util::BodyExt;
use mte_relay_client::CodecTimer;
use mte_relay_client::codec::{CodecError, OpeningBody, SealingBody};
use mte_relay_protocol::stream::{BodyDecoder, BodyEncoder, BodyError};

use crate::body::{BoxError, RelayBody, boxed};
use crate::telemetry::RequestTimings;

/// Where an opening body reports the reason it aborted, so the pipeline can answer
/// with the right registry error instead of a generic upstream failure.
pub type DecodeFailure = Arc<OnceLock<BodyError>>;

/// The client's sealed request body, opened record by record on its way upstream, held
/// to `declared` plaintext bytes when the head states a length. A record that fails to
/// open, or a stream that ends early, fails the body (which aborts the upstream
/// request) and lands in `failure`.
pub fn opening(
    body: RelayBody,
    decoder: BodyDecoder,
    declared: Option<u64>,
    failure: DecodeFailure,
    timings: Arc<RequestTimings>,
) -> RelayBody {
    let opened = OpeningBody::new(body, decoder, Some(CodecTimer::new(timings)))
        .with_length(declared)
        .map_err(move |error| -> BoxError {
            if let CodecError::Body(cause) = &error {
                let _ = failure.set(*cause);
            }
            Box::new(error)
        });
    boxed(opened)
}

/// The upstream's response body, sealed as it streams: every upstream frame is sealed
/// and flushed at once, so a Server-Sent Event reaches the client when produced.
pub fn sealing(body: RelayBody, encoder: BodyEncoder, timings: Arc<RequestTimings>) -> RelayBody {
    boxed(SealingBody::new(
        body,
        encoder,
        Some(CodecTimer::new(timings)),
    ))
}
