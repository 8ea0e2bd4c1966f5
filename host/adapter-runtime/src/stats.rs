//! Counters per adapter instance name, kept across reloads, for metrics export.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub(crate) struct AdapterStats {
    calls: AtomicU64,
    failures: AtomicU64,
    proceeded_after_failure: AtomicU64,
    unavailable: AtomicU64,
    instances_created: AtomicU64,
    reloads: AtomicU64,
}

/// A point-in-time copy of one adapter's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    pub fn snapshot(&self, name: &str) -> AdapterStatsSnapshot {
        AdapterStatsSnapshot {
            name: name.to_owned(),
            calls: self.calls.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            proceeded_after_failure: self.proceeded_after_failure.load(Ordering::Relaxed),
            unavailable: self.unavailable.load(Ordering::Relaxed),
            instances_created: self.instances_created.load(Ordering::Relaxed),
            reloads: self.reloads.load(Ordering::Relaxed),
        }
    }
}
