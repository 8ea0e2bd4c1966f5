//! Removing expired pairs on a schedule.
//!
//! Expired pairs are refused on lookup whether or not they were swept; the sweep is
//! what frees their memory and erases their key material (keys zeroize on drop), and
//! its log line is how an operator sees how many pairs the relay holds.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::{PairStore, unix_now};

/// How often expired pairs are swept: a quarter of the pair time to live, between one
/// second and one minute. An expired pair then lingers for at most that long.
pub fn sweep_interval(pair_ttl: Duration) -> Duration {
    (pair_ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// The sweep task; stops when dropped.
#[derive(Debug)]
pub struct Sweeper {
    task: JoinHandle<()>,
}

impl Sweeper {
    /// Sweeps `store` every `interval` on the current runtime.
    pub fn spawn(store: Arc<dyn PairStore>, interval: Duration) -> Sweeper {
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                sweep_once(store.as_ref()).await;
            }
        });
        Sweeper { task }
    }
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn sweep_once(store: &dyn PairStore) {
    let swept = match store.sweep_expired(unix_now()).await {
        Ok(swept) => swept,
        Err(error) => {
            tracing::warn!(%error, "pair sweep failed; expired pairs stay until the next one");
            return;
        }
    };
    let (removed, tokens_removed) = (swept.pairs, swept.tokens);
    match store.pair_count().await {
        Ok(pairs) => tracing::info!(removed, tokens_removed, pairs, "pair sweep"),
        Err(error) => {
            tracing::warn!(removed, tokens_removed, %error, "pair sweep: cannot count pairs");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_follows_the_ttl_within_bounds() {
        assert_eq!(
            sweep_interval(Duration::from_secs(2)),
            Duration::from_secs(1)
        );
        assert_eq!(
            sweep_interval(Duration::from_secs(100)),
            Duration::from_secs(25)
        );
        assert_eq!(
            sweep_interval(Duration::from_secs(86_400)),
            Duration::from_secs(60)
        );
    }
}
