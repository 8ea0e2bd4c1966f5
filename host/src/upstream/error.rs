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
    /// No response head within the response timeout, counted from the end of the
    /// request body. The upstream may have acted.
    #[error("the upstream did not answer within {0:?} of the request body's end")]
    Timeout(Duration),
    /// The upstream stopped reading the request body: a chunk waited for longer than
    /// the body idle timeout. The upstream may have acted on what it read.
    #[error("the upstream read none of the request body for {0:?}")]
    BodyNotRead(Duration),
    /// The client sent no chunk of its request body for longer than the body idle
    /// timeout. A client-side failure; the upstream saw part of the request.
    #[error("the client sent none of its request body for {0:?}")]
    ClientBodyIdle(Duration),
    /// The connection failed after the request was (at least partly) sent.
    #[error("the upstream failed after the request was sent: {0}")]
    Failed(#[source] BoxError),
    /// The relay could not build a valid upstream request (a relay fault).
    #[error("could not build the upstream request: {0}")]
    InvalidRequest(#[source] http::Error),
}

impl UpstreamError {
    /// Classifies a failure of the connection pool.
    pub(super) fn from_client(error: hyper_util::client::legacy::Error) -> UpstreamError {
        if error.is_connect() {
            UpstreamError::Unreachable(Box::new(error))
        } else {
            UpstreamError::Failed(Box::new(error))
        }
    }

    /// The registry reason the client receives.
    pub fn reason(&self) -> ErrorReason {
        match self {
            UpstreamError::Unreachable(_) => ErrorReason::UpstreamUnreachable,
            UpstreamError::Timeout(_) | UpstreamError::BodyNotRead(_) => {
                ErrorReason::UpstreamTimeout
            }
            UpstreamError::ClientBodyIdle(_) => ErrorReason::RequestBodyTimeout,
            UpstreamError::Failed(_) => ErrorReason::UpstreamFailed,
            UpstreamError::InvalidRequest(_) => ErrorReason::Internal,
        }
    }

    /// The message for the client: the class only, never addresses or internals.
    pub fn client_message(&self) -> &'static str {
        match self {
            UpstreamError::Unreachable(_) => "the relay could not connect to the upstream",
            UpstreamError::Timeout(_) => "the upstream did not answer in time",
            UpstreamError::BodyNotRead(_) => "the upstream stopped reading the request body",
            UpstreamError::ClientBodyIdle(_) => "the request body stopped arriving",
            UpstreamError::Failed(_) => "the upstream failed while handling the request",
            UpstreamError::InvalidRequest(_) => "the relay could not build the upstream request",
        }
    }
}
