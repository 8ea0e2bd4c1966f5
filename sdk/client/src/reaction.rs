//! Reading registry errors and deciding what a failure allows: whether a request may be
//! sent again, and how long to back off first.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, RETRY_AFTER};
use http::{Method, Response};
use http_body::Body as HttpBody;
use http_body_util::{BodyExt, Limited};
use mte_relay_protocol::registry::parse_error_header;
use mte_relay_protocol::{ClientReaction, ERROR_HEADER, ErrorBody, ErrorReason};

use crate::builder::DEFAULT_BACKOFF;
use crate::error::{BoxError, ClientError};

/// Most bytes of a registry error body read; the body is advice, not payload.
const ERROR_BODY_LIMIT: usize = 8 * 1024;
/// Most characters of a relay's explanation kept in an error.
const ERROR_MESSAGE_LIMIT: usize = 512;

/// The registry reason of a response, when it carries exactly one registered token.
pub(crate) fn registry_reason(headers: &HeaderMap) -> Option<ErrorReason> {
    headers
        .get(ERROR_HEADER)
        .and_then(|value| parse_error_header(value.as_bytes()).ok())
}

/// The delay a `Retry-After` asks for, when given in seconds. (An HTTP date gives
/// `None`: relays send seconds, and a date would depend on both clocks agreeing.)
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Digits only, so a parse failure can only be overflow: treat it as "very long".
    Some(Duration::from_secs(text.parse().unwrap_or(u64::MAX)))
}

/// How long to wait before retrying after `overloaded`: the relay's `Retry-After` (a
/// default when absent), never more than `max`.
pub(crate) fn backoff_delay(retry_after: Option<Duration>, max: Duration) -> Duration {
    retry_after.unwrap_or(DEFAULT_BACKOFF).min(max)
}

/// Methods whose repetition has the same effect as one request (RFC 9110 §9.2.2).
pub(crate) fn is_idempotent(method: &Method) -> bool {
    [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::PUT,
        Method::DELETE,
        Method::TRACE,
    ]
    .contains(method)
}

/// Whether a request that failed with `error` may be sent once more. A registry error
/// qualifies when its reaction can fix the cause and either the relay guarantees the
/// upstream saw nothing, or repeating is harmless (idempotent method, replayable body).
/// A transport error qualifies when nothing was sent, or when the connection closed
/// before any answer and repeating is harmless.
pub(crate) fn may_retry(error: &ClientError, method: &Method, body_replayable: bool) -> bool {
    match error {
        ClientError::Registry { reason, .. } => {
            reason.reaction() != ClientReaction::Surface
                && (reason.upstream_untouched() || (is_idempotent(method) && body_replayable))
        }
        ClientError::Transport {
            retry_safe,
            closed_before_response,
            ..
        } => *retry_safe || (*closed_before_response && is_idempotent(method) && body_replayable),
        ClientError::Protocol { .. } | ClientError::InvalidRequest { .. } => false,
    }
}

/// The error for a registry response: reason, status, `Retry-After`, and the relay's
/// explanation from the JSON body (shortened). `authenticated` when `response` is the
/// opened form of a sealed response.
pub(crate) async fn read_registry_error<B>(
    reason: ErrorReason,
    response: Response<B>,
    authenticated: bool,
) -> ClientError
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let status = response.status().as_u16();
    let retry_after = retry_after(response.headers());
    let body = Limited::new(response.into_body(), ERROR_BODY_LIMIT)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    let message = serde_json::from_slice::<ErrorBody>(&body)
        .map(|parsed| parsed.message.chars().take(ERROR_MESSAGE_LIMIT).collect())
        .unwrap_or_default();
    ClientError::Registry {
        reason,
        message,
        authenticated,
        status,
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers_with(name: &'static str, value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_static(value));
        headers
    }

    fn registry(reason: ErrorReason) -> ClientError {
        ClientError::Registry {
            reason,
            authenticated: false,
            message: String::new(),
            status: reason.status(),
            retry_after: None,
        }
    }

    #[test]
    fn retry_after_takes_delta_seconds_only() {
        let parse = |value| retry_after(&headers_with("retry-after", value));
        assert_eq!(parse("5"), Some(Duration::from_secs(5)));
        assert_eq!(parse(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            parse("99999999999999999999999"),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(parse("-1"), None);
        assert_eq!(parse("1.5"), None);
        assert_eq!(parse("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn backoff_honours_retry_after_up_to_the_cap() {
        let cap = Duration::from_secs(10);
        assert_eq!(
            backoff_delay(Some(Duration::from_secs(3)), cap),
            Duration::from_secs(3)
        );
        assert_eq!(backoff_delay(Some(Duration::from_secs(3600)), cap), cap);
        assert_eq!(backoff_delay(None, cap), DEFAULT_BACKOFF);
        assert_eq!(backoff_delay(None, Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn registry_reason_needs_exactly_one_known_token() {
        let reason = |value| registry_reason(&headers_with("x-mte-relay-error", value));
        assert_eq!(reason("pair-unknown"), Some(ErrorReason::PairUnknown));
        assert_eq!(reason("pair-unknown, replay"), None);
        assert_eq!(reason("teapot"), None);
        assert_eq!(registry_reason(&HeaderMap::new()), None);
    }

    #[test]
    fn untouched_errors_with_a_fixing_reaction_always_retry() {
        for reason in [
            ErrorReason::PairUnknown,
            ErrorReason::PairExpired,
            ErrorReason::ClientIdInvalid,
            ErrorReason::ClientIdExpired,
            ErrorReason::Overloaded,
        ] {
            assert!(
                may_retry(&registry(reason), &Method::POST, false),
                "{reason}"
            );
        }
    }

    #[test]
    fn touched_errors_retry_only_idempotent_replayable_requests() {
        // `replay` too: a duplicate means an earlier copy was accepted.
        for reason in [ErrorReason::DecodeFailed, ErrorReason::Replay] {
            let error = registry(reason);
            assert!(may_retry(&error, &Method::PUT, true), "{reason}");
            assert!(may_retry(&error, &Method::GET, true), "{reason}");
            assert!(
                !may_retry(&error, &Method::PUT, false),
                "{reason}: streaming body"
            );
            assert!(
                !may_retry(&error, &Method::POST, true),
                "{reason}: not idempotent"
            );
            assert!(
                !may_retry(&error, &Method::PATCH, true),
                "{reason}: not idempotent"
            );
        }
    }

    #[test]
    fn surfaced_reasons_never_retry() {
        for &reason in ErrorReason::ALL {
            if reason.reaction() == ClientReaction::Surface {
                assert!(
                    !may_retry(&registry(reason), &Method::GET, true),
                    "{reason}"
                );
            }
        }
    }

    #[test]
    fn transport_errors_retry_when_nothing_was_sent_or_repeating_is_harmless() {
        let refused = ClientError::transport("connect", true, "refused");
        let reset = ClientError::transport("read", false, "reset");
        assert!(may_retry(&refused, &Method::POST, false));
        assert!(!may_retry(&reset, &Method::GET, true));
        let unanswered = ClientError::connection_closed("no answer", "closed");
        assert!(may_retry(&unanswered, &Method::GET, true));
        assert!(may_retry(&unanswered, &Method::PUT, true));
        assert!(
            !may_retry(&unanswered, &Method::POST, true),
            "not idempotent"
        );
        assert!(!may_retry(&unanswered, &Method::PUT, false), "body gone");
        assert!(!may_retry(
            &ClientError::protocol("bad"),
            &Method::GET,
            true
        ));
    }

    #[tokio::test]
    async fn registry_error_carries_status_message_and_retry_after() {
        let body =
            serde_json::to_vec(&ErrorBody::new(ErrorReason::Overloaded, "busy")).expect("json");
        let response = Response::builder()
            .status(568)
            .header("x-mte-relay-error", "overloaded")
            .header("retry-after", "2")
            .body(http_body_util::Full::new(Bytes::from(body)))
            .expect("response");
        let error = read_registry_error(ErrorReason::Overloaded, response, false).await;
        let ClientError::Registry {
            reason,
            message,
            status,
            retry_after,
            authenticated,
        } = error
        else {
            panic!("registry error expected");
        };
        assert_eq!(reason, ErrorReason::Overloaded);
        assert_eq!(message, "busy");
        assert!(!authenticated, "a plain response is not authenticated");
        assert_eq!(status, 568);
        assert_eq!(retry_after, Some(Duration::from_secs(2)));
    }
}
