//! Counters per adapter instance name, kept across reloads, for metrics export.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::{FailureKind, Hook};

/// Upper bounds, in seconds, of the hook-duration buckets (a last one is unbounded).
pub const HOOK_DURATION_BUCKETS: [f64; 10] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0,
];

/// How a hook call ended, as the metrics name it.
pub const HOOK_OUTCOMES: [&str; 8] = [
    "ok",
    "trap",
    "timeout",
    "memory-exceeded",
    "bad-output",
    "guest-error",
    "instantiate-failed",
    "unavailable",
];

/// Every hook, in the order of [`Hook`]'s variants.
const HOOKS: [Hook; 5] = [
    Hook::Init,
    Hook::OnRequest,
    Hook::OnResponse,
    Hook::OnUsage,
    Hook::OnTick,
];

fn outcome_index(failure: Option<&FailureKind>) -> usize {
    match failure {
        None => 0,
        Some(FailureKind::Trap) => 1,
        Some(FailureKind::Timeout(_)) => 2,
        Some(FailureKind::MemoryExceeded { .. }) => 3,
        Some(FailureKind::BadOutput(_)) => 4,
        Some(FailureKind::GuestError(_)) => 5,
        Some(FailureKind::Instantiate(_)) => 6,
        Some(FailureKind::Unavailable(_) | FailureKind::Removed) => 7,
    }
}

fn hook_index(hook: Hook) -> usize {
    HOOKS.iter().position(|known| *known == hook).unwrap_or(0)
}

/// Calls of one hook by outcome, and their durations.
#[derive(Default)]
struct HookStats {
    outcomes: [AtomicU64; HOOK_OUTCOMES.len()],
    /// Calls per bucket (not cumulative); the last is past every bound.
    buckets: [AtomicU64; HOOK_DURATION_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

/// One hook's counters at a point in time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HookSnapshot {
    /// The WIT name of the hook.
    pub hook: &'static str,
    /// Calls by outcome, named as in [`HOOK_OUTCOMES`].
    pub outcomes: Vec<(&'static str, u64)>,
    /// Calls per bucket, each under its upper bound (those of
    /// [`HOOK_DURATION_BUCKETS`], then infinity); not cumulative.
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_seconds: f64,
}

#[derive(Default)]
pub(crate) struct AdapterStats {
    calls: AtomicU64,
    failures: AtomicU64,
    proceeded_after_failure: AtomicU64,
    unavailable: AtomicU64,
    instances_created: AtomicU64,
    reloads: AtomicU64,
    records_dropped: AtomicU64,
    hooks: [HookStats; HOOKS.len()],
}

/// A point-in-time copy of one adapter's counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AdapterStatsSnapshot {
    pub name: String,
    /// Hook calls attempted (including those refused by the breaker).
    pub calls: u64,
    /// Calls that failed for any reason.
    pub failures: u64,
    /// Failures the policy let through (`open`).
    pub proceeded_after_failure: u64,
    /// Calls not made because the breaker or a backoff was active.
    pub unavailable: u64,
    /// Instances created (warm pool misses, fresh-per-request, rebuilds).
    pub instances_created: u64,
    /// Successful hot reloads to a new version.
    pub reloads: u64,
    /// Usage records for this meter dropped because the queue was full or stopped.
    pub records_dropped: u64,
    /// Per hook: calls by outcome and their durations.
    pub hooks: Vec<HookSnapshot>,
}

impl AdapterStats {
    pub fn call(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }
    pub fn failure(&self, proceeded: bool, unavailable: bool) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        if proceeded {
            self.proceeded_after_failure.fetch_add(1, Ordering::Relaxed);
        }
        if unavailable {
            self.unavailable.fetch_add(1, Ordering::Relaxed);
        }
    }
    pub fn instance_created(&self) {
        self.instances_created.fetch_add(1, Ordering::Relaxed);
    }
    pub fn reloaded(&self) {
        self.reloads.fetch_add(1, Ordering::Relaxed);
    }
    pub fn record_dropped(&self) {
        self.records_dropped.fetch_add(1, Ordering::Relaxed);
    }
    /// One hook call ended: `failure` is `None` when it succeeded.
    pub fn hook_finished(&self, hook: Hook, failure: Option<&FailureKind>, took: Duration) {
        let stats = &self.hooks[hook_index(hook)];
        stats.outcomes[outcome_index(failure)].fetch_add(1, Ordering::Relaxed);
        let seconds = took.as_secs_f64();
        let bucket = HOOK_DURATION_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(HOOK_DURATION_BUCKETS.len());
        stats.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        stats.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
    pub fn snapshot(&self, name: &str) -> AdapterStatsSnapshot {
        AdapterStatsSnapshot {
            name: name.to_owned(),
            calls: self.calls.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            proceeded_after_failure: self.proceeded_after_failure.load(Ordering::Relaxed),
            unavailable: self.unavailable.load(Ordering::Relaxed),
            instances_created: self.instances_created.load(Ordering::Relaxed),
            reloads: self.reloads.load(Ordering::Relaxed),
            records_dropped: self.records_dropped.load(Ordering::Relaxed),
            hooks: HOOKS
                .iter()
                .zip(&self.hooks)
                .map(|(hook, stats)| {
                    let buckets = HOOK_DURATION_BUCKETS
                        .iter()
                        .copied()
                        .chain(std::iter::once(f64::INFINITY))
                        .zip(&stats.buckets)
                        .map(|(bound, calls)| (bound, calls.load(Ordering::Relaxed)))
                        .collect();
                    let count = stats
                        .buckets
                        .iter()
                        .map(|calls| calls.load(Ordering::Relaxed))
                        .sum();
                    HookSnapshot {
                        hook: hook.as_str(),
                        outcomes: HOOK_OUTCOMES
                            .iter()
                            .zip(&stats.outcomes)
                            .map(|(name, calls)| (*name, calls.load(Ordering::Relaxed)))
                            .collect(),
                        buckets,
                        count,
                        sum_seconds: stats.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
                    }
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_calls_are_counted_by_outcome_and_bucketed_by_duration() {
        let stats = AdapterStats::default();
        stats.hook_finished(Hook::OnRequest, None, Duration::from_micros(50));
        stats.hook_finished(Hook::OnRequest, None, Duration::from_millis(3));
        stats.hook_finished(
            Hook::OnRequest,
            Some(&FailureKind::Timeout(Duration::from_millis(5))),
            Duration::from_secs(2),
        );
        stats.record_dropped();
        let snapshot = stats.snapshot("auth");
        assert_eq!(snapshot.records_dropped, 1);
        let on_request = snapshot
            .hooks
            .iter()
            .find(|hook| hook.hook == "on-request")
            .expect("on-request");
        assert_eq!(on_request.count, 3);
        assert!(on_request.outcomes.contains(&("ok", 2)));
        assert!(on_request.outcomes.contains(&("timeout", 1)));
        assert_eq!(on_request.buckets[0], (0.0001, 1));
        assert_eq!(on_request.buckets[5], (0.005, 1), "3 ms");
        assert_eq!(
            on_request.buckets.last(),
            Some(&(f64::INFINITY, 1)),
            "2 s is past every bound"
        );
        assert!((on_request.sum_seconds - 2.00305).abs() < 1e-9);
    }
}
