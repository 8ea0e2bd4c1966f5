//! Usage records travel off the request path: [`MeterSink::record`] never blocks
//! (a bounded queue; records that do not fit are dropped, counted and logged), and
//! a worker task batches them per meter and calls `on-usage`, plus `on-tick` for
//! every loaded meter on an interval.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::bindings::types::UsageRecord;
use crate::chain::{MeterGroup, deliver_tick, deliver_usage};
use crate::runtime::{AdapterRuntime, Slot};

#[derive(Debug, Clone)]
pub struct MeterSinkOptions {
    /// Records queued at most; beyond this `record` drops.
    pub queue_capacity: usize,
    /// Records per `on-usage` call at most.
    pub batch_size: usize,
    /// A partial batch is delivered after this long.
    pub flush_interval: Duration,
    /// `on-tick` period for every meter.
    pub tick_interval: Duration,
}

impl Default for MeterSinkOptions {
    fn default() -> Self {
        Self {
            queue_capacity: 10_000,
            batch_size: 100,
            flush_interval: Duration::from_secs(1),
            tick_interval: Duration::from_secs(60),
        }
    }
}

struct Queued {
    meters: MeterGroup,
    record: UsageRecord,
}

/// Handle the relay keeps; dropping it stops the worker after a final flush.
pub struct MeterSink {
    tx: mpsc::Sender<Queued>,
    dropped: Arc<AtomicU64>,
    /// Taken by the first [`MeterSink::shutdown`]. The sink is shared by every
    /// request, so stopping cannot wait for the last sender to be dropped.
    stop: Mutex<Option<oneshot::Sender<()>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl MeterSink {
    /// Start the worker on the current tokio runtime.
    pub fn spawn(runtime: &AdapterRuntime, options: MeterSinkOptions) -> Self {
        let (tx, rx) = mpsc::channel(options.queue_capacity.max(1));
        let (stop, stopped) = oneshot::channel();
        let worker = tokio::spawn(run(runtime.clone(), options, rx, stopped));
        Self {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
            stop: Mutex::new(Some(stop)),
            worker: Mutex::new(Some(worker)),
        }
    }

    /// Queue a record for the given meters. Never waits.
    pub fn record(&self, meters: &MeterGroup, record: UsageRecord) {
        if meters.is_empty() {
            return;
        }
        let queued = Queued {
            meters: meters.clone(),
            record,
        };
        if let Err(refused) = self.tx.try_send(queued) {
            let queued = match refused {
                mpsc::error::TrySendError::Full(queued)
                | mpsc::error::TrySendError::Closed(queued) => queued,
            };
            for slot in queued.meters.slots.iter() {
                slot.stats.record_dropped();
            }
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // Log the first drop and then every power of two: visible, not a flood.
            if dropped.is_power_of_two() {
                tracing::warn!(
                    dropped_total = dropped,
                    "usage record dropped: meter queue full or stopped"
                );
            }
        }
    }

    /// Records dropped since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Stop accepting records, deliver what is queued, give every meter a last
    /// `on-tick`, and wait for the worker. Records offered afterwards are dropped and
    /// counted. Later calls return at once.
    pub async fn shutdown(&self) {
        if let Some(stop) = self.stop.lock().ok().and_then(|mut stop| stop.take()) {
            let _ = stop.send(());
        }
        let worker = self.worker.lock().ok().and_then(|mut worker| worker.take());
        if let Some(worker) = worker {
            let _ = worker.await;
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

struct Pending {
    slot: Arc<Slot>,
    batch: Vec<UsageRecord>,
}

async fn run(
    runtime: AdapterRuntime,
    options: MeterSinkOptions,
    mut rx: mpsc::Receiver<Queued>,
    mut stopped: oneshot::Receiver<()>,
) {
    let engine = runtime.inner.engine.clone();
    let batch_size = options.batch_size.max(1);
    let mut pending: HashMap<String, Pending> = HashMap::new();
    let mut flush = tokio::time::interval(options.flush_interval);
    let mut tick = tokio::time::interval(options.tick_interval);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick of a tokio interval fires at once; meters tick after a period.
    tick.tick().await;
    loop {
        tokio::select! {
            received = rx.recv() => {
                let Some(queued) = received else { break };
                enqueue(&engine, &mut pending, batch_size, queued).await;
            }
            _ = &mut stopped => {
                // Refuse new records, deliver every one already queued, then give
                // each meter a last tick to report what it aggregated.
                rx.close();
                while let Some(queued) = rx.recv().await {
                    enqueue(&engine, &mut pending, batch_size, queued).await;
                }
                flush_all(&engine, &mut pending).await;
                let now = now_ms();
                for slot in runtime.meter_slots() {
                    let _ = deliver_tick(&engine, &slot, now).await;
                }
                return;
            }
            _ = flush.tick() => flush_all(&engine, &mut pending).await,
            _ = tick.tick() => {
                flush_all(&engine, &mut pending).await;
                let now = now_ms();
                for slot in runtime.meter_slots() {
                    let _ = deliver_tick(&engine, &slot, now).await;
                }
            }
        }
    }
    flush_all(&engine, &mut pending).await;
}

/// Adds a record to each of its meters' batches, delivering a batch once it is full.
async fn enqueue(
    engine: &Arc<crate::engine::AdapterEngine>,
    pending: &mut HashMap<String, Pending>,
    batch_size: usize,
    queued: Queued,
) {
    for slot in queued.meters.slots.iter() {
        let entry = pending.entry(slot.name.clone()).or_insert_with(|| Pending {
            slot: slot.clone(),
            batch: Vec::with_capacity(batch_size),
        });
        entry.batch.push(queued.record.clone());
        if entry.batch.len() >= batch_size {
            let batch = std::mem::take(&mut entry.batch);
            // Failures are logged, counted and policed by the call itself.
            let _ = deliver_usage(engine, &entry.slot, &batch).await;
        }
    }
}

async fn flush_all(
    engine: &Arc<crate::engine::AdapterEngine>,
    pending: &mut HashMap<String, Pending>,
) {
    for entry in pending.values_mut() {
        if !entry.batch.is_empty() {
            let batch = std::mem::take(&mut entry.batch);
            let _ = deliver_usage(engine, &entry.slot, &batch).await;
        }
    }
}
