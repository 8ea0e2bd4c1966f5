//! The one error type of the client, sorted into the classes a caller acts upon.

use std::time::Duration;

use mte_relay_protocol::ErrorReason;

/// A boxed error from a body or a transport layer.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong while talking to a relay.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Connecting, sending or receiving failed, or a timeout expired.
    #[error("transport error: {message}")]
    Transport {
        /// What was being done.
        message: String,
        /// True when the failure happened before any byte of the request was sent
        /// (for example the connection was refused), so resending is safe.
        retry_safe: bool,
        /// True when the connection closed before any response arrived: typically a
        /// kept-alive connection the relay had already closed (it restarted, or timed
        /// the connection out). Whether the relay processed the request is unknown, so
        /// resending is safe only for an idempotent method with a replayable body.
        closed_before_response: bool,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// The relay answered with a registry error (`x-mte-relay-error`).
    #[error("relay refused the request with `{reason}` (status {status}): {message}")]
    Registry {
        /// The registry reason.
        reason: ErrorReason,
        /// The relay's explanation (shortened; unauthenticated unless `authenticated`).
        message: String,
        /// True when the error came sealed under the request's response key, so it is
        /// the relay's and no one on the path forged it. An unauthenticated error may
        /// have been forged by anyone on the path.
        authenticated: bool,
        /// The HTTP status of the error response.
        status: u16,
        /// The delay the relay asked for in `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// The relay's answer violates the protocol: a document or message that does not
    /// decode or authenticate, an unsupported version, a pairing confirmation mismatch.
    #[error("protocol error: {message}")]
    Protocol {
        /// What was wrong.
        message: String,
        /// The protocol crate's error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// The request cannot be sent through the relay as given (an invalid header, a head
    /// or body over a protocol limit, a bad base URL). Nothing was sent.
    #[error("invalid request: {message}")]
    InvalidRequest {
        /// What was wrong.
        message: String,
    },
}

impl ClientError {
    /// The registry reason when the relay refused the request.
    pub fn reason(&self) -> Option<ErrorReason> {
        match self {
            ClientError::Registry { reason, .. } => Some(*reason),
            _ => None,
        }
    }

    /// True when the request certainly did not reach the upstream, so sending it again
    /// cannot repeat a side effect.
    pub fn is_retry_safe(&self) -> bool {
        match self {
            ClientError::Transport { retry_safe, .. } => *retry_safe,
            ClientError::Registry { reason, .. } => reason.upstream_untouched(),
            ClientError::Protocol { .. } => false,
            ClientError::InvalidRequest { .. } => true,
        }
    }

    pub(crate) fn transport(
        message: impl Into<String>,
        retry_safe: bool,
        source: impl Into<BoxError>,
    ) -> Self {
        ClientError::Transport {
            message: message.into(),
            retry_safe,
            closed_before_response: false,
            source: Some(source.into()),
        }
    }

    /// The connection closed before a response head arrived.
    pub(crate) fn connection_closed(
        message: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        ClientError::Transport {
            message: message.into(),
            retry_safe: false,
            closed_before_response: true,
            source: Some(source.into()),
        }
    }

    pub(crate) fn protocol(message: impl Into<String>) -> Self {
        ClientError::Protocol {
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn protocol_from(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        ClientError::Protocol {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    pub(crate) fn invalid_request(message: impl Into<String>) -> Self {
        ClientError::InvalidRequest {
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_report_reason_and_retry_safety() {
        let registry = |reason| ClientError::Registry {
            reason,
            authenticated: false,
            message: String::new(),
            status: reason.status(),
            retry_after: None,
        };
        assert_eq!(
            registry(ErrorReason::PairUnknown).reason(),
            Some(ErrorReason::PairUnknown)
        );
        assert!(registry(ErrorReason::PairUnknown).is_retry_safe());
        assert!(!registry(ErrorReason::DecodeFailed).is_retry_safe());

        let refused = ClientError::transport("connect", true, "refused");
        assert!(refused.is_retry_safe());
        assert_eq!(refused.reason(), None);
        assert!(!ClientError::transport("read", false, "reset").is_retry_safe());
        assert!(!ClientError::protocol("bad").is_retry_safe());
    }
}
