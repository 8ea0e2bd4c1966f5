//! The one error type of the client, sorted into the classes a caller acts upon.

use std::time::Duration;

use mte_relay_protocol::ErrorReason;
use mte_relay_protocol::pairing::PairingError;

/// A boxed error from a body or a transport layer.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a caller can know, after a failure, about whether the upstream received the
/// request: the question to answer before sending a payment or an order again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestOutcome {
    /// The request did not reach the upstream: nothing was sent, or the relay said
    /// (authenticated) that it refused before forwarding, and no earlier attempt may
    /// have reached it. Sending it again cannot repeat a side effect.
    NotRun,
    /// The relay said (authenticated) that a copy of this request, with the same
    /// resend token, was forwarded to the upstream; only its response was lost. Do not
    /// send it again. (If the relay that forwarded it died while sending the body, the
    /// upstream may have received only part of it and acted on none: forwarded, not
    /// necessarily run, and never run twice.)
    Ran,
    /// Either may be true: the failure came after the request left (a reset, a
    /// timeout, an answer that did not authenticate), or it is an error anyone on the
    /// path could have forged. Find out from the upstream before sending it again.
    Unknown,
}

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
        /// resending is safe only for an idempotent method with a replayable body, or
        /// with the request's resend token.
        closed_before_response: bool,
        /// Whether the upstream received the request, over every attempt.
        outcome: RequestOutcome,
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
        /// Whether the upstream received the request, over every attempt.
        outcome: RequestOutcome,
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
        /// Whether the upstream received the request, over every attempt.
        outcome: RequestOutcome,
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

    /// True when the client's request timeout ended the exchange before the relay's
    /// answer arrived.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            ClientError::Transport { source: Some(source), .. }
                if source.is::<tokio::time::error::Elapsed>()
        )
    }

    /// True when the relay could not be reached at all: the connection failed before
    /// any byte of the request was sent.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            ClientError::Transport {
                retry_safe: true,
                ..
            }
        )
    }

    /// True when pairing failed because this client's `SECRET` is not the relay's:
    /// the relay refused the offer (`secret-mismatch`), or the relay's key
    /// confirmation did not match (it has a `SECRET` and this client none, or the
    /// exchange was altered).
    pub fn is_secret_mismatch(&self) -> bool {
        match self {
            ClientError::Registry { reason, .. } => *reason == ErrorReason::SecretMismatch,
            ClientError::Protocol {
                source: Some(source),
                ..
            } => matches!(
                source.downcast_ref::<PairingError>(),
                Some(PairingError::ConfirmationFailed)
            ),
            _ => false,
        }
    }

    /// True when the relay did not prove a pinned identity: its capabilities announce
    /// another key or none, or a pairing answer is not signed under a pinned key.
    /// Nothing was paired or sent.
    pub fn is_identity_mismatch(&self) -> bool {
        matches!(
            self,
            ClientError::Protocol { source: Some(source), .. }
                if source.is::<mte_relay_protocol::identity::IdentityError>()
        )
    }

    /// Whether the upstream received the request.
    pub fn outcome(&self) -> RequestOutcome {
        match self {
            ClientError::Transport { outcome, .. }
            | ClientError::Registry { outcome, .. }
            | ClientError::Protocol { outcome, .. } => *outcome,
            ClientError::InvalidRequest { .. } => RequestOutcome::NotRun,
        }
    }

    /// True when the request certainly did not reach the upstream, so sending it again
    /// cannot repeat a side effect ([`RequestOutcome::NotRun`]).
    pub fn is_retry_safe(&self) -> bool {
        self.outcome() == RequestOutcome::NotRun
    }

    /// The same error with `outcome` (the send loop knows what one attempt cannot: that
    /// nothing was sent, or that an earlier attempt may have run).
    pub(crate) fn with_outcome(mut self, new: RequestOutcome) -> Self {
        match &mut self {
            ClientError::Transport { outcome, .. }
            | ClientError::Registry { outcome, .. }
            | ClientError::Protocol { outcome, .. } => *outcome = new,
            ClientError::InvalidRequest { .. } => {}
        }
        self
    }

    /// A registry error as received. Only an authenticated one tells anything about the
    /// upstream: any other may have been forged on the path.
    pub(crate) fn registry(
        reason: ErrorReason,
        message: String,
        authenticated: bool,
        status: u16,
        retry_after: Option<Duration>,
    ) -> Self {
        let outcome = match (authenticated, reason) {
            (true, ErrorReason::AlreadyProcessed) => RequestOutcome::Ran,
            (true, reason) if reason.upstream_untouched() => RequestOutcome::NotRun,
            _ => RequestOutcome::Unknown,
        };
        ClientError::Registry {
            reason,
            message,
            authenticated,
            status,
            retry_after,
            outcome,
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
            outcome: if retry_safe {
                RequestOutcome::NotRun
            } else {
                RequestOutcome::Unknown
            },
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
            outcome: RequestOutcome::Unknown,
            source: Some(source.into()),
        }
    }

    pub(crate) fn protocol(message: impl Into<String>) -> Self {
        ClientError::Protocol {
            message: message.into(),
            source: None,
            outcome: RequestOutcome::Unknown,
        }
    }

    pub(crate) fn protocol_from(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        ClientError::Protocol {
            message: message.into(),
            source: Some(source.into()),
            outcome: RequestOutcome::Unknown,
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
        let registry = |reason: ErrorReason, authenticated| {
            ClientError::registry(reason, String::new(), authenticated, reason.status(), None)
        };
        assert_eq!(
            registry(ErrorReason::PairUnknown, false).reason(),
            Some(ErrorReason::PairUnknown)
        );
        assert_eq!(
            registry(ErrorReason::PairUnknown, false).outcome(),
            RequestOutcome::Unknown,
            "an unauthenticated error may be forged over a request that ran"
        );
        assert!(registry(ErrorReason::RouteNotFound, true).is_retry_safe());
        assert!(!registry(ErrorReason::DecodeFailed, true).is_retry_safe());
        assert_eq!(
            registry(ErrorReason::AlreadyProcessed, true).outcome(),
            RequestOutcome::Ran
        );
        assert_eq!(
            registry(ErrorReason::AlreadyProcessed, false).outcome(),
            RequestOutcome::Unknown
        );
        assert_eq!(
            registry(ErrorReason::RouteNotFound, true)
                .with_outcome(RequestOutcome::Unknown)
                .outcome(),
            RequestOutcome::Unknown
        );

        let refused = ClientError::transport("connect", true, "refused");
        assert!(refused.is_retry_safe());
        assert_eq!(refused.reason(), None);
        assert!(!ClientError::transport("read", false, "reset").is_retry_safe());
        assert!(!ClientError::protocol("bad").is_retry_safe());
    }
}
