//! Polling file watcher: reloads when the adapters file or any declared
//! component changes (mtime or size). Polling is portable and cheap at this scale.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tokio::task::JoinHandle;

use crate::config::AdaptersSource;
use crate::runtime::AdapterRuntime;

/// Stops the watcher when dropped.
pub struct WatchHandle {
    task: JoinHandle<()>,
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &PathBuf) -> Stamp {
    std::fs::metadata(path)
        .ok()
        .and_then(|m| Some((m.modified().ok()?, m.len())))
}

fn watched_paths(runtime: &AdapterRuntime) -> Vec<PathBuf> {
    let mut paths = runtime.component_paths();
    if let Some(AdaptersSource::File(file)) = runtime.source() {
        paths.push(file);
    }
    paths
}

fn snapshot(runtime: &AdapterRuntime) -> HashMap<PathBuf, Stamp> {
    watched_paths(runtime)
        .into_iter()
        .map(|p| {
            let s = stamp(&p);
            (p, s)
        })
        .collect()
}

impl AdapterRuntime {
    /// Start polling every `interval`; on a change, [`AdapterRuntime::reload`].
    pub fn watch(&self, interval: Duration) -> WatchHandle {
        let runtime = self.clone();
        let task = tokio::spawn(async move {
            let mut seen = snapshot(&runtime);
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let now = snapshot(&runtime);
                if now != seen {
                    tracing::info!("adapter files changed; reloading");
                    let report = runtime.reload().await;
                    if !report.is_clean() {
                        tracing::warn!("adapter reload after file change was partial: {report:?}");
                    }
                    // Re-read: the reload may have changed the set of paths.
                    seen = snapshot(&runtime);
                }
            }
        });
        WatchHandle { task }
    }
}
