//! Where a caller learns how long the client spent on the cryptography of one request:
//! sealing its head and body, opening its response's head and body. A relay sending a
//! request on to a peer (API Relay) logs these beside its own times.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// Told the time spent on each piece of cryptography of a request. Called on the task
/// that drives the request or its body: keep it short.
pub trait CodecObserver: Send + Sync + 'static {
    /// Time spent sealing (the head, or a piece of the body).
    fn sealed(&self, took: Duration);
    /// Time spent opening (the response head, or a piece of its body).
    fn opened(&self, took: Duration);
}

/// Insert one in a request's extensions to have its cryptography timed.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use mte_relay_client::{CodecObserver, CodecTimer};
///
/// #[derive(Default)]
/// struct Totals { sealed: AtomicU64, opened: AtomicU64 }
/// impl CodecObserver for Totals {
///     fn sealed(&self, took: std::time::Duration) {
///         self.sealed.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
///     }
///     fn opened(&self, took: std::time::Duration) {
///         self.opened.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
///     }
/// }
///
/// let totals = Arc::new(Totals::default());
/// let mut request = http::Request::get("/").body(()).expect("request");
/// request.extensions_mut().insert(CodecTimer::new(totals.clone()));
/// ```
#[derive(Clone)]
pub struct CodecTimer(Arc<dyn CodecObserver>);

impl CodecTimer {
    /// A timer reporting to `observer`.
    pub fn new(observer: Arc<dyn CodecObserver>) -> Self {
        CodecTimer(observer)
    }

    /// Runs `work` and reports its time as sealing.
    pub(crate) fn seal<T>(timer: Option<&CodecTimer>, work: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let outcome = work();
        if let Some(timer) = timer {
            timer.0.sealed(started.elapsed());
        }
        outcome
    }

    /// Runs `work` and reports its time as opening.
    pub(crate) fn open<T>(timer: Option<&CodecTimer>, work: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let outcome = work();
        if let Some(timer) = timer {
            timer.0.opened(started.elapsed());
        }
        outcome
    }
}

impl std::fmt::Debug for CodecTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodecTimer")
    }
}
