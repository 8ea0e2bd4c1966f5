//! The one wasmtime `Engine` (pooling allocator, copy-on-write memory images,
//! epoch interruption), the linker with every host import, and the epoch ticker
//! that turns per-call deadlines into traps.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings::{wit_kv, wit_log};
use crate::error::LoadError;
use crate::host_state::HostState;

/// Engine-wide limits. The pool reserves address space for these up front.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Live component instances across all adapters (warm pools + in-flight calls).
    pub max_instances: u32,
    /// Largest linear memory any adapter may reach; per-adapter caps must fit under it.
    pub max_memory_bytes: u64,
    /// Granularity of deadlines.
    pub epoch_tick: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            max_instances: 1000,
            max_memory_bytes: 1 << 30,
            epoch_tick: Duration::from_millis(1),
        }
    }
}

pub(crate) struct AdapterEngine {
    pub engine: Engine,
    pub linker: Linker<HostState>,
    pub options: EngineOptions,
    ticker_stop: Arc<AtomicBool>,
}

impl AdapterEngine {
    pub fn new(options: EngineOptions) -> Result<Self, LoadError> {
        let engine_err = |e: wasmtime::Error| LoadError::Engine(format!("{e:#}"));
        let mut pool = PoolingAllocationConfig::default();
        let slots = options.max_instances;
        let max_memory = usize::try_from(options.max_memory_bytes)
            .map_err(|_| LoadError::Engine("max_memory_bytes does not fit in usize".into()))?;
        pool.total_component_instances(slots)
            // Components built by toolchains other than rustc (e.g. componentize-py)
            // link several core modules; leave room for them.
            .total_core_instances(slots.saturating_mul(8))
            .total_memories(slots.saturating_mul(2))
            .total_tables(slots.saturating_mul(4))
            .total_stacks(slots)
            .max_core_instances_per_component(64)
            .max_memories_per_component(4)
            .max_tables_per_component(16)
            .max_core_instance_size(4 << 20)
            .max_component_instance_size(4 << 20)
            .table_elements(200_000)
            .max_memory_size(max_memory);

        let mut config = Config::new();
        config
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .memory_init_cow(true)
            .epoch_interruption(true)
            .wasm_component_model(true)
            // Hooks are plain async calls; the component-model-async machinery
            // (concurrent tasks, streams) is not used and costs on every call.
            .concurrency_support(false);
        let engine = Engine::new(&config).map_err(engine_err)?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_err)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(engine_err)?;
        wit_log::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(engine_err)?;
        wit_kv::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(engine_err)?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_epoch_ticker(&engine, options.epoch_tick, ticker_stop.clone())?;
        Ok(Self {
            engine,
            linker,
            options,
            ticker_stop,
        })
    }

    /// Epoch ticks for a deadline, rounded up, at least one.
    pub fn ticks_for(&self, deadline: Duration) -> u64 {
        let tick = self.options.epoch_tick.as_nanos().max(1);
        u64::try_from(deadline.as_nanos().div_ceil(tick))
            .unwrap_or(u64::MAX)
            .max(1)
    }
}

impl Drop for AdapterEngine {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// A plain thread, not a tokio task: it must keep ticking even when every runtime
/// worker is busy inside a guest that never yields.
fn spawn_epoch_ticker(
    engine: &Engine,
    tick: Duration,
    stop: Arc<AtomicBool>,
) -> Result<(), LoadError> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("adapter-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => return,
                }
            }
        })
        .map(|_| ())
        .map_err(|e| LoadError::Engine(format!("cannot start the epoch ticker: {e}")))
}
