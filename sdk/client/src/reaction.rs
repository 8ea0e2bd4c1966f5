//! Reading registry errors and deciding what a failure allows: whether a request may be
//! sent again, and how long to back off first.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, RETRY_AFTER};
use http::{Method, Response};
use http_body::Body as HttpBody;
use http_body_util::{BodyExt, Limited};
use mte_relay_protocol::registry::{is_idempotent, parse_error_header};
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

/// What, besides the failure, decides whether a request may be sent once more.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ResendFacts {
    /// The method's repetition has the effect of one request (RFC 9110 §9.2.2).
    pub idempotent: bool,
    /// The body can be sent again.
    pub body_replayable: bool,
    /// The relay would recognise the copy by its resend token and refuse it if an
    /// earlier copy ran (same client id, before the deadline).
    pub token_guarded: bool,
}

impl ResendFacts {
    pub(crate) fn new(method: &Method, body_replayable: bool, token_guarded: bool) -> Self {
        ResendFacts {
            idempotent: is_idempotent(method.as_str()),
            body_replayable,
            token_guarded,
        }
    }

    /// Repeating the request is harmless whatever happened to the first copy.
    fn harmless(self) -> bool {
        self.idempotent && self.body_replayable
    }
}

/// Whether a request that failed with `error` may be sent once more.
///
/// - A registry error qualifies when its reaction can fix the cause, and repeating is
///   harmless (idempotent method, replayable body), or the relay would refuse a second
///   run by the resend token, or the relay said authenticated that it forwarded nothing.
///   A reaction that takes a new client id leaves the token's scope, so after it only
///   harmless repeats are made.
/// - A transport error qualifies when nothing was sent, or when the connection closed
///   before any answer and repeating is harmless or guarded by the token.
pub(crate) fn may_retry(error: &ClientError, facts: ResendFacts) -> bool {
    let guarded = facts.token_guarded && facts.body_replayable;
    match error {
        ClientError::Registry {
            reason,
            authenticated,
            ..
        } => {
            let genuinely_untouched =
                reason.upstream_untouched() && (facts.idempotent || *authenticated);
            match reason.reaction() {
                ClientReaction::Surface => false,
                ClientReaction::ReIdentify => facts.harmless() || genuinely_untouched,
                ClientReaction::ReplacePair | ClientReaction::BackOff => {
                    facts.harmless() || guarded || genuinely_untouched
                }
            }
        }
        ClientError::Transport {
            retry_safe,
            closed_before_response,
            ..
        } => *retry_safe || (*closed_before_response && (facts.harmless() || guarded)),
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
    ClientError::registry(reason, message, authenticated, status, retry_after)
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
        ClientError::registry(reason, String::new(), false, reason.status(), None)
    }

    fn sealed(reason: ErrorReason) -> ClientError {
        ClientError::registry(reason, String::new(), true, reason.status(), None)
    }

    /// A request of `method` with a replayable body or not, guarded by its token or not.
    fn facts(method: Method, body_replayable: bool, token_guarded: bool) -> ResendFacts {
        ResendFacts::new(&method, body_replayable, token_guarded)
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
    fn a_post_is_resent_after_an_unauthenticated_error_only_under_its_token() {
        for reason in [
            ErrorReason::PairUnknown,
            ErrorReason::PairExpired,
            ErrorReason::Overloaded,
            ErrorReason::StoreUnavailable,
            ErrorReason::DecodeFailed,
            ErrorReason::Replay,
        ] {
            let error = registry(reason);
            assert!(
                may_retry(&error, facts(Method::POST, true, true)),
                "{reason}: the relay refuses a second run by the token"
            );
            assert!(
                !may_retry(&error, facts(Method::POST, true, false)),
                "{reason}: without the token's guard the error may be forged over a run"
            );
        }
    }

    #[test]
    fn a_new_client_id_leaves_the_tokens_scope() {
        for reason in [ErrorReason::ClientIdInvalid, ErrorReason::ClientIdExpired] {
            let error = registry(reason);
            assert!(
                !may_retry(&error, facts(Method::POST, true, true)),
                "{reason}: a POST is not resent under another client id"
            );
            assert!(
                may_retry(&error, facts(Method::GET, true, false)),
                "{reason}"
            );
        }
    }

    #[test]
    fn an_authenticated_untouched_error_is_resent_without_a_guard() {
        for reason in [ErrorReason::Overloaded, ErrorReason::StoreUnavailable] {
            assert!(
                may_retry(&sealed(reason), facts(Method::POST, true, false)),
                "{reason}: the relay said it forwarded nothing"
            );
        }
    }

    #[test]
    fn idempotent_replayable_requests_retry_on_any_fixable_error() {
        for reason in [
            ErrorReason::DecodeFailed,
            ErrorReason::Replay,
            ErrorReason::PairUnknown,
        ] {
            let error = registry(reason);
            assert!(
                may_retry(&error, facts(Method::PUT, true, false)),
                "{reason}"
            );
            assert!(
                may_retry(&error, facts(Method::GET, true, false)),
                "{reason}"
            );
            assert!(
                !may_retry(&error, facts(Method::PATCH, true, false)),
                "{reason}: not idempotent"
            );
        }
        assert!(
            !may_retry(
                &registry(ErrorReason::DecodeFailed),
                facts(Method::PUT, false, false)
            ),
            "a streamed body cannot be repeated"
        );
    }

    #[test]
    fn surfaced_reasons_never_retry() {
        for &reason in ErrorReason::ALL {
            if reason.reaction() == ClientReaction::Surface {
                for error in [registry(reason), sealed(reason)] {
                    assert!(
                        !may_retry(&error, facts(Method::GET, true, true)),
                        "{reason}"
                    );
                }
            }
        }
    }

    #[test]
    fn transport_errors_retry_when_nothing_was_sent_or_repeating_is_harmless_or_guarded() {
        let refused = ClientError::transport("connect", true, "refused");
        let reset = ClientError::transport("read", false, "reset");
        assert!(may_retry(&refused, facts(Method::POST, false, false)));
        assert!(!may_retry(&reset, facts(Method::GET, true, true)));
        let unanswered = ClientError::connection_closed("no answer", "closed");
        assert!(may_retry(&unanswered, facts(Method::GET, true, false)));
        assert!(may_retry(&unanswered, facts(Method::PUT, true, false)));
        assert!(
            may_retry(&unanswered, facts(Method::POST, true, true)),
            "guarded"
        );
        assert!(
            !may_retry(&unanswered, facts(Method::POST, true, false)),
            "not idempotent, not guarded"
        );
        assert!(
            !may_retry(&unanswered, facts(Method::PUT, false, true)),
            "body gone"
        );
        assert!(!may_retry(
            &ClientError::protocol("bad"),
            facts(Method::GET, true, true)
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
            ..
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
