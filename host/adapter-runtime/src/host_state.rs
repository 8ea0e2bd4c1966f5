//! What each wasmtime `Store` carries: WASI contexts, the memory limiter, and the
//! identity the host imports use to namespace and tag what the guest does.

use std::sync::Arc;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::host_log::LogLimiter;
use crate::kv::KvStore;
use crate::outbound::OutboundPolicy;

/// Per adapter version, shared by all its instances.
pub(crate) struct AdapterIdentity {
    pub name: String,
    pub version: String,
    pub kv: Arc<dyn KvStore>,
    pub log: LogLimiter,
}

/// Caps linear memory growth and remembers that it refused, so a resulting trap
/// is reported as a memory overrun rather than a generic trap.
pub(crate) struct MemoryCap {
    pub cap_bytes: usize,
    pub exceeded: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap_bytes {
            self.exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; a million is far beyond real programs.
        Ok(desired <= 1_000_000)
    }
}

pub(crate) struct HostState {
    pub identity: Arc<AdapterIdentity>,
    pub memory: MemoryCap,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    outbound: OutboundPolicy,
    table: ResourceTable,
}

impl HostState {
    pub fn new(identity: Arc<AdapterIdentity>, cap_bytes: usize, outbound: OutboundPolicy) -> Self {
        // No files, no sockets, no environment: adapters reach the world only
        // through the imports in the WIT world and allow-listed wasi:http.
        let wasi = WasiCtx::builder()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            identity,
            memory: MemoryCap {
                cap_bytes,
                exceeded: false,
            },
            wasi,
            http: WasiHttpCtx::new(),
            outbound,
            table: ResourceTable::new(),
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}
