//! Resend tokens: what lets the client send a non-idempotent request again after an
//! error it cannot authenticate, without the upstream ever running it twice.
//!
//! Every request carries a random token and a `not_after` time (on the relay's clock)
//! in its sealed head, the same in every copy. A relay forwards a non-idempotent
//! request with a given token at most once per client id, and no copy after
//! `not_after`; it keeps the token until then. So a copy resent before `not_after`, on
//! any pair of the same client id, either runs (no earlier copy did) or is refused with
//! an authenticated `already-processed` (docs/protocol.md §4.6).

use std::sync::OnceLock;

use mte_relay_protocol::ids::ResendToken;
use mte_relay_protocol::rng::os_rng;

use crate::session::Identity;

/// A resend must reach the relay before `not_after`: the client stops resending this
/// long before it, for the network delay and the error in its estimate of the relay's
/// clock.
const RESEND_MARGIN_SECS: u64 = 5;

/// Our Unix time in seconds.
pub(crate) fn local_unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// The relay's clock minus ours, from the `server_time` of its capabilities document
/// (0 when the relay did not send one).
pub(crate) fn clock_offset(server_time: u64) -> i64 {
    if server_time == 0 {
        return 0;
    }
    let local = i128::from(local_unix_now());
    i64::try_from(i128::from(server_time) - local).unwrap_or(0)
}

/// The resend token of one request and its deadline, fixed at the first attempt.
#[derive(Debug)]
pub(crate) struct ResendGuard {
    token: ResendToken,
    not_after: OnceLock<u64>,
    /// The client id the token is scoped to, from the first attempt on.
    client_id: OnceLock<std::sync::Arc<str>>,
}

impl ResendGuard {
    /// A fresh token; the deadline is set by the first attempt.
    pub(crate) fn new() -> Self {
        ResendGuard {
            token: ResendToken::random(&mut os_rng()),
            not_after: OnceLock::new(),
            client_id: OnceLock::new(),
        }
    }

    pub(crate) fn token(&self) -> ResendToken {
        self.token
    }

    /// The deadline of every copy: the relay's time at the first attempt plus the
    /// resend window it announced.
    pub(crate) fn not_after(&self, identity: &Identity) -> u64 {
        *self.not_after.get_or_init(|| {
            let _ = self.client_id.set(identity.client_id.clone());
            identity
                .relay_now()
                .saturating_add(identity.capabilities.limits.resend_window_secs)
        })
    }

    /// True when a copy sent now under `identity` would be recognised by the relay as
    /// a resend: the relay keeps tokens, the client id (the token's scope) is the one
    /// of the first attempt, and the deadline is not near.
    pub(crate) fn guards_a_resend(&self, identity: Option<&Identity>) -> bool {
        let (Some(identity), Some(not_after), Some(first_client_id)) =
            (identity, self.not_after.get(), self.client_id.get())
        else {
            // No attempt got as far as sealing: nothing was sent under this token.
            return true;
        };
        identity.capabilities.limits.resend_window_secs > 0
            && identity.client_id == *first_client_id
            && identity.relay_now().saturating_add(RESEND_MARGIN_SECS) < *not_after
    }
}
