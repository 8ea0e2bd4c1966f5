//! Responses the relay itself writes: registry errors and small JSON documents.

use std::time::Duration;

use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Response, StatusCode};
use mte_relay_protocol::registry::{ClientReaction, ERROR_HEADER, ErrorBody, ErrorReason};

use crate::body::{RelayBody, full};

/// Marks a response the relay wrote itself as a refusal, so that the end of the request
/// can tell it from an upstream's answer that carries a header of the same name.
#[derive(Clone, Copy, Debug)]
pub struct RelayRefusal;

/// A registry error: the registry's status, `x-mte-relay-error: <token>`, and an
/// [`ErrorBody`]. `message` must never contain secrets or plaintext of MTE requests.
pub fn registry_error(reason: ErrorReason, message: impl Into<String>) -> Response<RelayBody> {
    let body = ErrorBody::new(reason, message);
    let json = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
    let status = StatusCode::from_u16(reason.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = Response::new(full(json));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(ERROR_HEADER, HeaderValue::from_static(reason.token()));
    if reason.reaction() == ClientReaction::BackOff {
        headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response.extensions_mut().insert(RelayRefusal);
    response
}

/// `overloaded`, asking the client to wait `retry_after` (whole seconds, at least one).
pub fn overloaded(message: impl Into<String>, retry_after: Duration) -> Response<RelayBody> {
    let mut response = registry_error(ErrorReason::Overloaded, message);
    let seconds = retry_after.as_secs().max(1);
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// A JSON document with status 200.
pub fn json(value: &serde_json::Value) -> Response<RelayBody> {
    let mut response = Response::new(full(value.to_string()));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
