//! Harness for end-to-end tests of the `mte-relay` binary: start the real binary with an
//! environment and read its bound address from its logs ([`relay`]), run real upstream
//! HTTP servers ([`upstream`]), and talk to both over loopback sockets ([`client`]).
//! Every wait is bounded, so a broken relay fails a test instead of hanging it.

pub mod balancer;
pub mod bodies;
pub mod client;
pub mod guests;
pub mod memory;
pub mod mitm;
pub mod redis;
pub mod relay;
pub mod tls;
pub mod upstream;

use std::time::Duration;

/// Upper bound for any single wait in a test (startup, a response, an exit).
pub const WAIT: Duration = Duration::from_secs(20);

/// Awaits `future` for at most [`WAIT`], panicking with `what` when it takes longer.
pub async fn within<F: std::future::Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(WAIT, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

/// Like [`within`], with an explicit bound for waits that are legitimately long (bodies
/// of hundreds of megabytes through a debug build).
pub async fn within_for<F: std::future::Future>(
    limit: Duration,
    what: &str,
    future: F,
) -> F::Output {
    match tokio::time::timeout(limit, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// A duration in whole seconds from the environment variable `name`, or `default`:
/// how long scripts run a bounded load test that CI runs briefly.
pub fn seconds_from_env(name: &str, default: u64) -> Duration {
    let seconds = std::env::var(name)
        .ok()
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(default);
    Duration::from_secs(seconds)
}
