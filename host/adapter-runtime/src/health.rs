//! Per adapter version: the crash breaker and, under the `reload` policy, the
//! rebuild backoff. Decides whether a hook may be called at all.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::FailurePolicy;

pub const RELOAD_BACKOFF_BASE: Duration = Duration::from_millis(100);
pub const RELOAD_BACKOFF_MAX: Duration = Duration::from_secs(30);

#[derive(Default)]
struct State {
    consecutive_failures: u32,
    closed_until: Option<Instant>,
}

pub(crate) struct Health {
    state: Mutex<State>,
    policy: FailurePolicy,
    threshold: u32,
    cooldown: Duration,
}

/// What a recorded failure changed.
pub(crate) enum Tripped {
    Nothing,
    /// The breaker opened (or re-opened) for this long.
    Breaker(Duration),
    /// A reload backoff started for this long.
    Backoff(Duration),
}

impl Health {
    pub fn new(policy: FailurePolicy, threshold: u32, cooldown: Duration) -> Self {
        Self {
            state: Mutex::new(State::default()),
            policy,
            threshold,
            cooldown,
        }
    }

    /// `Err(why)` while the breaker is open or a backoff runs.
    pub fn admit(&self) -> Result<(), String> {
        let Ok(state) = self.state.lock() else {
            return Ok(());
        };
        match state.closed_until {
            Some(until) if Instant::now() < until => Err(format!(
                "{} after {} consecutive failures ({} ms left)",
                if state.consecutive_failures >= self.threshold {
                    "crash breaker open"
                } else {
                    "reload backoff"
                },
                state.consecutive_failures,
                until.saturating_duration_since(Instant::now()).as_millis()
            )),
            _ => Ok(()),
        }
    }

    pub fn record_success(&self) {
        if let Ok(mut state) = self.state.lock() {
            *state = State::default();
        }
    }

    pub fn record_failure(&self) -> Tripped {
        let Ok(mut state) = self.state.lock() else {
            return Tripped::Nothing;
        };
        state.consecutive_failures = state.consecutive_failures.saturating_add(1);
        let n = state.consecutive_failures;
        if n >= self.threshold {
            // Past the threshold every further failure (the trial call after a
            // cooldown included) re-opens the breaker.
            state.closed_until = Some(Instant::now() + self.cooldown);
            return Tripped::Breaker(self.cooldown);
        }
        if self.policy == FailurePolicy::Reload {
            let factor = 1u32 << (n - 1).min(16);
            let backoff = (RELOAD_BACKOFF_BASE * factor).min(RELOAD_BACKOFF_MAX);
            state.closed_until = Some(Instant::now() + backoff);
            return Tripped::Backoff(backoff);
        }
        Tripped::Nothing
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_at_threshold_and_success_resets() {
        let h = Health::new(FailurePolicy::Closed, 3, Duration::from_secs(60));
        assert!(matches!(h.record_failure(), Tripped::Nothing));
        assert!(matches!(h.record_failure(), Tripped::Nothing));
        assert!(h.admit().is_ok());
        assert!(matches!(h.record_failure(), Tripped::Breaker(_)));
        assert!(h.admit().unwrap_err().contains("breaker open"));
        h.record_success();
        assert!(h.admit().is_ok());
    }

    #[test]
    fn reload_policy_backs_off_exponentially() {
        let h = Health::new(FailurePolicy::Reload, 10, Duration::from_secs(60));
        let Tripped::Backoff(first) = h.record_failure() else {
            panic!("expected a backoff");
        };
        let Tripped::Backoff(second) = h.record_failure() else {
            panic!("expected a backoff");
        };
        assert_eq!(second, first * 2);
        assert!(h.admit().unwrap_err().contains("reload backoff"));
    }
}
