//! Admission: whether a caller may take a shared resource now.
//!
//! Each limit here answers at once (admit, or refuse with how long to wait) and never
//! queues, so a flood costs the relay a map lookup per request, not a waiting task.

pub mod in_flight;
pub mod rate;

pub use in_flight::{Slot, SlotCounter, SlotRefused};
pub use rate::{KeyedRateLimiter, Refused, address_key};

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Lets a log line about a limit through at most once per interval: a limit hit a
/// thousand times a second is reported, not turned into a log flood. The line that
/// gets through says how many were held back since the last one.
#[derive(Debug)]
pub struct LogThrottle {
    interval_ms: u64,
    last_ms: AtomicU64,
    held_back: AtomicU64,
}

impl LogThrottle {
    pub const fn new(interval: Duration) -> Self {
        LogThrottle {
            interval_ms: interval.as_millis() as u64,
            last_ms: AtomicU64::new(0),
            held_back: AtomicU64::new(0),
        }
    }

    /// `Some(held back since the last line)` when a line may be written now.
    pub fn admit(&self) -> Option<u64> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            });
        let last = self.last_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= self.interval_ms
            && self
                .last_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.held_back.swap(0, Ordering::Relaxed));
        }
        self.held_back.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_admits_one_line_per_interval_and_counts_the_rest() {
        let throttle = LogThrottle::new(Duration::from_secs(3600));
        assert_eq!(throttle.admit(), Some(0));
        assert_eq!(throttle.admit(), None);
        assert_eq!(throttle.admit(), None);
        // Pretend the interval passed.
        throttle.last_ms.store(0, Ordering::Relaxed);
        assert_eq!(throttle.admit(), Some(2));
    }
}
