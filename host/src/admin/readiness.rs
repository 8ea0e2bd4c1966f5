//! Whether the relay should receive traffic: the answer of `GET /readyz`.
//!
//! Ready means the data listener is bound (adapters load before it binds, so they
//! are loaded too), the pair store answers, and no graceful shutdown has begun. The
//! moment a shutdown begins the answer turns to 503, so a load balancer that probes it
//! stops sending new requests while the relay drains the ones in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::store::PairStore;

/// How long a readiness probe waits for the pair store.
const STORE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the relay is not ready.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotReady {
    /// The data listener is not bound yet.
    Starting,
    /// A graceful shutdown has begun.
    ShuttingDown,
    /// The pair store did not answer (Redis down, slow, or refusing).
    StoreUnavailable(String),
}

impl NotReady {
    /// A short stable token for the JSON answer and for alerts.
    pub fn token(&self) -> &'static str {
        match self {
            NotReady::Starting => "starting",
            NotReady::ShuttingDown => "shutting-down",
            NotReady::StoreUnavailable(_) => "store-unavailable",
        }
    }
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotReady::Starting => f.write_str("the data listener is not bound yet"),
            NotReady::ShuttingDown => f.write_str("a graceful shutdown has begun"),
            NotReady::StoreUnavailable(cause) => {
                write!(f, "the pair store is unavailable: {cause}")
            }
        }
    }
}

/// The relay's readiness, shared by the admin listener and the serving code.
#[derive(Debug)]
pub struct Readiness {
    store: Arc<dyn PairStore>,
    serving: AtomicBool,
    shutting_down: AtomicBool,
}

impl Readiness {
    pub fn new(store: Arc<dyn PairStore>) -> Readiness {
        Readiness {
            store,
            serving: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
        }
    }

    /// The data listener is bound and accepting.
    pub fn mark_serving(&self) {
        self.serving.store(true, Ordering::Release);
    }

    /// A graceful shutdown has begun: readiness fails from now on.
    pub fn mark_shutting_down(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }

    /// Ready, or the first reason not to be.
    pub async fn check(&self) -> Result<(), NotReady> {
        if self.shutting_down.load(Ordering::Acquire) {
            return Err(NotReady::ShuttingDown);
        }
        if !self.serving.load(Ordering::Acquire) {
            return Err(NotReady::Starting);
        }
        match tokio::time::timeout(STORE_CHECK_TIMEOUT, self.store.check()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(NotReady::StoreUnavailable(error.to_string())),
            Err(_) => Err(NotReady::StoreUnavailable(format!(
                "no answer within {STORE_CHECK_TIMEOUT:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryPairStore;

    #[tokio::test]
    async fn starting_serving_then_shutting_down() {
        let readiness = Readiness::new(Arc::new(MemoryPairStore::new()));
        assert_eq!(readiness.check().await, Err(NotReady::Starting));
        readiness.mark_serving();
        assert_eq!(readiness.check().await, Ok(()));
        readiness.mark_shutting_down();
        assert_eq!(readiness.check().await, Err(NotReady::ShuttingDown));
    }
}
