//! The error registry: every way a relay can refuse a request, with its status code,
//! the token carried in `x-mte-relay-error`, and what a client must do about it.
//!
//! A registry error raised before the request's head opened travels in the clear, so
//! a client treats it as advice: an on-path attacker can forge one. One raised after
//! the head opened (a refusal by the route rules or an adapter, an upstream failure, a
//! limit) is sealed under the response key like any response, with the token inside
//! the sealed head, so the client knows it is genuine; the token is repeated in the
//! clear for intermediaries and logs, and a client never believes that copy when the
//! sealed head opens.

use core::fmt;

/// Name of the response header that carries a registry token.
pub const ERROR_HEADER: &str = "x-mte-relay-error";

/// What a client SDK does when it receives a registry error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientReaction {
    /// Drop the pair the request used, pair a new one, and (when retry is safe) retry.
    ReplacePair,
    /// Fetch a new client id, drop every pair, re-pair, and (when safe) retry.
    ReIdentify,
    /// Wait (honouring `Retry-After`) and retry when safe.
    BackOff,
    /// Give the error to the caller; retrying will not help.
    Surface,
}

macro_rules! registry {
    ($( $(#[$doc:meta])* $variant:ident = ($status:literal, $token:literal, $reaction:ident, $untouched:literal), )+) => {
        /// One reason a relay refused or failed a request.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorReason {
            $( $(#[$doc])* $variant, )+
        }

        impl ErrorReason {
            /// Every registered reason, in registry order.
            pub const ALL: &'static [ErrorReason] = &[ $( ErrorReason::$variant, )+ ];

            /// HTTP status code the relay answers with.
            pub const fn status(self) -> u16 {
                match self { $( ErrorReason::$variant => $status, )+ }
            }

            /// The token carried in [`ERROR_HEADER`] and in the JSON error body.
            pub const fn token(self) -> &'static str {
                match self { $( ErrorReason::$variant => $token, )+ }
            }

            /// The reaction the protocol prescribes to a client.
            pub const fn reaction(self) -> ClientReaction {
                match self { $( ErrorReason::$variant => ClientReaction::$reaction, )+ }
            }

            /// True when the relay guarantees that no byte of the request reached the
            /// upstream, so any request may be retried. Otherwise only idempotent
            /// requests with replayable bodies may be.
            pub const fn upstream_untouched(self) -> bool {
                match self { $( ErrorReason::$variant => $untouched, )+ }
            }

            /// Strict inverse of [`ErrorReason::token`].
            pub fn from_token(token: &str) -> Option<ErrorReason> {
                match token { $( $token => Some(ErrorReason::$variant), )+ _ => None }
            }
        }
    };
}

registry! {
    /// An MTE request without the `x-mte-relay` header.
    RelayHeaderMissing = (559, "relay-header-missing", Surface, true),
    /// The `x-mte-relay` or `x-mte-relay-head` header does not parse.
    RelayHeaderMalformed = (559, "relay-header-malformed", Surface, true),
    /// The request speaks a protocol major version this relay does not.
    VersionUnsupported = (559, "version-unsupported", Surface, true),
    /// The client id does not verify under any accepted secret, or belongs to another domain.
    ClientIdInvalid = (560, "client-id-invalid", ReIdentify, true),
    /// The client id verified but is older than the maximum age.
    ClientIdExpired = (561, "client-id-expired", ReIdentify, true),
    /// No pair with this id exists for this client (never paired, evicted, or lost in a restart).
    PairUnknown = (562, "pair-unknown", ReplacePair, true),
    /// The pair existed but its time to live ran out.
    PairExpired = (563, "pair-expired", ReplacePair, true),
    /// The header block or a body chunk failed to authenticate or decode. A body chunk
    /// can fail after the upstream request started, so this is not retry-safe.
    DecodeFailed = (564, "decode-failed", ReplacePair, false),
    /// The sequence number was already used, or is older than the replay window. Not
    /// untouched: a client never reuses a sequence number, so a duplicate means an
    /// earlier copy of the request was accepted and may have been forwarded.
    Replay = (565, "replay", ReplacePair, false),
    /// A resend of a non-idempotent request whose earlier copy the relay already
    /// forwarded (the same resend token from the same client id within the resend
    /// window). Sealed, so the client knows the request ran and only its answer was
    /// lost; never retried.
    AlreadyProcessed = (565, "already-processed", Surface, false),
    /// A non-idempotent request arrived after its `not_after` time (held back on the
    /// path, or sent with a wrong estimate of the relay's clock), or with one further
    /// ahead than the resend window allows. Raised before anything is forwarded.
    RequestExpired = (408, "request-expired", Surface, true),
    /// The encrypted header block exceeds the announced limit.
    HeadTooLarge = (566, "head-too-large", Surface, true),
    /// The body exceeds the configured or mode limit.
    BodyTooLarge = (566, "body-too-large", Surface, false),
    /// The pairing document is not valid JSON of the expected shape.
    PairingMalformed = (567, "pairing-malformed", Surface, true),
    /// The pairing batch asks for more pairs than the relay allows in one request.
    PairingLimit = (567, "pairing-limit", Surface, true),
    /// A pairing offer names a pair id this client already holds. Pairs are never
    /// replaced, whoever sends the offer; a client picks fresh random ids.
    PairIdTaken = (567, "pair-id-taken", Surface, true),
    /// The relay has a `SECRET` (API Relay mode) and the pairing offer proves another
    /// one, or none; or the offer proves one and the relay has none. Both sides must be
    /// configured with the same `SECRET`.
    SecretMismatch = (567, "secret-mismatch", Surface, true),
    /// The relay is at a bound (in-flight requests, concurrent pairings, pairs held) or
    /// the caller at its pairing rate; see `Retry-After`.
    Overloaded = (568, "overloaded", BackOff, true),
    /// A filter adapter failed and its failure policy is closed.
    AdapterFailed = (569, "adapter-failed", Surface, false),
    /// No domain in the configuration matches the `Host` header.
    DomainUnknown = (404, "domain-unknown", Surface, true),
    /// The path is neither a local, pass-through nor allowed MTE route.
    RouteNotFound = (404, "route-not-found", Surface, true),
    /// An outbound request (API Relay) whose `x-mte-outbound-token` does not match the
    /// domain's outbound token, or a domain that has none. Nothing was sent anywhere.
    OutboundTokenInvalid = (401, "outbound-token-invalid", Surface, true),
    /// An outbound request names a peer relay (`x-mte-upstream`) that is not on the
    /// domain's `outbound_peers` allow-list, or is not an http(s) origin.
    OutboundPeerForbidden = (403, "outbound-peer-forbidden", Surface, true),
    /// An outbound request that cannot be sent as given: it names no peer relay and
    /// the domain has no `outbound_upstream`, or its `x-mte-encode-type` is neither
    /// `MKE` nor `MTE`.
    OutboundRequestInvalid = (400, "outbound-request-invalid", Surface, true),
    /// The relay could not connect to the upstream.
    UpstreamUnreachable = (502, "upstream-unreachable", Surface, true),
    /// The upstream failed after the request was sent (reset, malformed response).
    UpstreamFailed = (502, "upstream-failed", Surface, false),
    /// The upstream did not answer within the configured timeout, or stopped reading
    /// the request body.
    UpstreamTimeout = (504, "upstream-timeout", Surface, false),
    /// The client's request body stopped arriving: no chunk within the relay's body
    /// idle timeout. The upstream received part of the request.
    RequestBodyTimeout = (408, "request-body-timeout", Surface, false),
    /// The relay's pair store (Redis, when shared by replicas) could not be reached or
    /// failed; see `Retry-After`. Raised before anything is forwarded.
    StoreUnavailable = (503, "store-unavailable", BackOff, true),
    /// A fault inside the relay.
    Internal = (500, "internal", Surface, false),
}

/// Methods whose repetition has the same effect as one request (RFC 9110 §9.2.2). A
/// client may resend them after any failure that its reaction can fix, and a relay
/// keeps no resend token for them; every other method is resent only with its token,
/// which the relay forwards at most once.
pub fn is_idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE" | "TRACE"
    )
}

/// The HTTP/1 reason phrase for a status of the registry's own 559–569 family, which
/// HTTP does not name (without one the status line reads `559 <none>`).
pub const fn reason_phrase(status: u16) -> Option<&'static str> {
    Some(match status {
        559 => "Relay Header Error",
        560 => "Client Id Invalid",
        561 => "Client Id Expired",
        562 => "Pair Unknown",
        563 => "Pair Expired",
        564 => "Decode Failed",
        565 => "Replay", // replay and already-processed: a copy was accepted before
        566 => "Too Large",
        567 => "Pairing Refused",
        568 => "Overloaded",
        569 => "Adapter Failed",
        _ => return None,
    })
}

impl fmt::Display for ErrorReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}

/// The value of an `x-mte-relay-error` header did not name a registered reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unrecognised x-mte-relay-error value")]
pub struct UnknownErrorToken;

/// Parses an `x-mte-relay-error` header value (raw bytes, as received).
///
/// Strict: exactly one registered token, no surrounding whitespace, no parameters.
pub fn parse_error_header(value: &[u8]) -> Result<ErrorReason, UnknownErrorToken> {
    let token = core::str::from_utf8(value).map_err(|_| UnknownErrorToken)?;
    ErrorReason::from_token(token).ok_or(UnknownErrorToken)
}

/// The JSON body of a registry error response.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorBody {
    /// The registry token, equal to the header value.
    pub error: String,
    /// A human-readable explanation that never contains secrets or plaintext.
    pub message: String,
}

impl ErrorBody {
    /// The body for `reason` with an explanation.
    pub fn new(reason: ErrorReason, message: impl Into<String>) -> Self {
        ErrorBody {
            error: reason.token().to_owned(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for &reason in ErrorReason::ALL {
            assert!(
                seen.insert(reason.token()),
                "duplicate token {}",
                reason.token()
            );
            assert_eq!(ErrorReason::from_token(reason.token()), Some(reason));
            assert_eq!(parse_error_header(reason.token().as_bytes()), Ok(reason));
        }
    }

    #[test]
    fn protocol_failures_use_the_559_to_569_family() {
        for &reason in ErrorReason::ALL {
            let status = reason.status();
            let http_standard =
                matches!(status, 400 | 401 | 403 | 404 | 408 | 500 | 502 | 503 | 504);
            assert!(
                (559..=569).contains(&status) || http_standard,
                "{reason} has status {status}"
            );
        }
    }

    #[test]
    fn every_status_of_the_family_has_a_reason_phrase() {
        for &reason in ErrorReason::ALL {
            let status = reason.status();
            if (559..=569).contains(&status) {
                let phrase = reason_phrase(status).expect("a phrase");
                assert!(
                    phrase.bytes().all(|b| b == b' ' || b.is_ascii_alphabetic()),
                    "{phrase}"
                );
            }
        }
        assert_eq!(reason_phrase(404), None, "HTTP names its own statuses");
    }

    #[test]
    fn error_header_parser_is_strict() {
        for bad in [
            &b""[..],
            b" replay",
            b"replay ",
            b"REPLAY",
            b"replay;x=1",
            b"\xff",
        ] {
            assert_eq!(parse_error_header(bad), Err(UnknownErrorToken));
        }
    }
}
