//! The `log` import: guest lines go to `tracing`, tagged with the adapter, after
//! a token-bucket rate limit and truncation so a chatty guest cannot flood logs.

use std::sync::Mutex;
use std::time::Instant;

use crate::bindings::wit_log::{Host, Level};
use crate::host_state::HostState;

/// Longest line kept, in bytes; longer lines are cut at a char boundary.
pub const MAX_LINE_BYTES: usize = 2048;
/// Sustained lines per second per adapter.
pub const LINES_PER_SECOND: f64 = 100.0;
/// Burst allowance per adapter.
pub const BURST_LINES: f64 = 200.0;

struct Bucket {
    tokens: f64,
    refilled: Instant,
    suppressed: u64,
}

/// Shared by every instance of one adapter version.
pub(crate) struct LogLimiter {
    bucket: Mutex<Bucket>,
}

impl LogLimiter {
    pub fn new() -> Self {
        Self {
            bucket: Mutex::new(Bucket {
                tokens: BURST_LINES,
                refilled: Instant::now(),
                suppressed: 0,
            }),
        }
    }

    /// `Some(n)` when the line may be written; `n` lines were dropped before it.
    fn admit(&self) -> Option<u64> {
        let Ok(mut bucket) = self.bucket.lock() else {
            return None;
        };
        let now = Instant::now();
        let elapsed = now.duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * LINES_PER_SECOND).min(BURST_LINES);
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Some(std::mem::take(&mut bucket.suppressed))
        } else {
            bucket.suppressed += 1;
            None
        }
    }

    /// Lines dropped since the last admitted one.
    #[cfg(test)]
    pub fn suppressed(&self) -> u64 {
        self.bucket.lock().map(|b| b.suppressed).unwrap_or(0)
    }
}

fn truncate(message: &str) -> (&str, bool) {
    if message.len() <= MAX_LINE_BYTES {
        return (message, false);
    }
    let mut end = MAX_LINE_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    (&message[..end], true)
}

impl Host for HostState {
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let id = &self.identity;
        let Some(dropped) = id.log.admit() else {
            return Ok(());
        };
        if dropped > 0 {
            tracing::warn!(
                adapter = %id.name,
                version = %id.version,
                dropped,
                "adapter log lines dropped by the rate limit"
            );
        }
        let (line, truncated) = truncate(&message);
        let (adapter, version) = (id.name.as_str(), id.version.as_str());
        match level {
            Level::Trace => tracing::trace!(adapter, version, truncated, "{line}"),
            Level::Debug => tracing::debug!(adapter, version, truncated, "{line}"),
            Level::Info => tracing::info!(adapter, version, truncated, "{line}"),
            Level::Warn => tracing::warn!(adapter, version, truncated, "{line}"),
            Level::Error => tracing::error!(adapter, version, truncated, "{line}"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_at_char_boundary() {
        let long = "é".repeat(MAX_LINE_BYTES);
        let (cut, truncated) = truncate(&long);
        assert!(truncated);
        assert!(cut.len() <= MAX_LINE_BYTES);
        assert_eq!(truncate("short"), ("short", false));
    }

    #[test]
    fn bucket_admits_a_burst_then_counts_drops() {
        let limiter = LogLimiter::new();
        let admitted = (0..1000).filter(|_| limiter.admit().is_some()).count();
        // The burst plus whatever refilled while looping; never the whole flood.
        assert!((200..400).contains(&admitted), "{admitted}");
        assert!(limiter.suppressed() > 0);
    }
}
