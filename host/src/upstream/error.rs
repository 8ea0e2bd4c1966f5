//! Upstream failures, classified by when they happened.

use std::time::Duration;

use mte_relay_protocol::registry::ErrorReason;

use crate::body::BoxError;

/// Why the upstream did not produce a response head.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No connection could be made: nothing was sent, any request may be retried.
    #[error("could not connect to the upstream: {0}")]
    Unreachable(#[source] BoxError),
    /// No response head within the response timeout. The upstream may have acted.
    #[error("the upstream did not answer within {0:?}")]
    Timeout(Duration),
    /// The connection failed after the request was (at least partly) sent.
    #[error("the upstream failed after the request was sent: {0}")]
    Failed(#[source] BoxError),
    /// The relay could not build a valid upstream request (a relay fault).
    #[error("could not build the upstream request: {0}")]
    InvalidRequest(#[source] http::Error),
}

impl UpstreamError {
    /// The registry reason the client receives.
    pub fn reason(&self) -> ErrorReason {
        match self {
            UpstreamError::Unreachable(_) => ErrorReason::UpstreamUnreachable,
            UpstreamError::Timeout(_) => ErrorReason::UpstreamTimeout,
            UpstreamError::Failed(_) => ErrorReason::UpstreamFailed,
            UpstreamError::InvalidRequest(_) => ErrorReason::Internal,
        }
    }

    /// True when the upstream certainly saw nothing of the request.
    pub fn retry_safe(&self) -> bool {
        matches!(
            self,
            UpstreamError::Unreachable(_) | UpstreamError::InvalidRequest(_)
        )
    }

    /// The message for the client: the class only, never addresses or internals.
    pub fn client_message(&self) -> &'static str {
        match self {
            UpstreamError::Unreachable(_) => "the relay could not connect to the upstream",
            UpstreamError::Timeout(_) => "the upstream did not answer in time",
            UpstreamError::Failed(_) => "the upstream failed while handling the request",
            UpstreamError::InvalidRequest(_) => "the relay could not build the upstream request",
        }
    }
}
