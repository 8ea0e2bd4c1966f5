//! The wasmtime host for MTE Relay adapters.
//!
//! The relay builds one [`AdapterRuntime`], [`load`](AdapterRuntime::load)s the
//! declarations from `ADAPTERS_FILE`/`ADAPTERS`, resolves each domain's
//! [`Chain`] once, and per request calls [`FilterChain::on_request`] and
//! [`FilterChain::on_response`]; usage records go to a [`MeterSink`]. SIGHUP
//! maps to [`AdapterRuntime::reload`]; [`AdapterRuntime::watch`] polls files.
//! See `docs/adapters.md`.

mod bindings;
mod chain;
pub mod config;
mod edits;
mod engine;
pub mod error;
pub mod examples;
mod health;
mod host_kv;
mod host_log;
mod host_state;
mod instance;
pub mod kv;
mod meter_sink;
mod outbound;
mod runtime;
mod stats;
mod watch;

pub use bindings::types::{
    Header, LocalResponse, RequestInfo, ResponseInfo, RouteClass, UsageRecord,
};
pub use chain::{Chain, FilterChain, MeterGroup, RequestOutcome};
pub use config::{AdapterSpec, AdaptersSource, FailurePolicy, InstanceReuse, parse_adapters};
pub use edits::{HeaderEdit, LocalReply, apply_edits};
pub use engine::EngineOptions;
pub use error::{ChainError, ConfigError, Disposition, FailureKind, Hook, HookError, LoadError};
pub use instance::World;
pub use kv::{KvError, KvStore, MemoryKv};
pub use meter_sink::{MeterSink, MeterSinkOptions};
pub use runtime::{AdapterRuntime, ReloadOutcome, ReloadReport, RuntimeOptions};
pub use stats::{AdapterStatsSnapshot, HOOK_DURATION_BUCKETS, HOOK_OUTCOMES, HookSnapshot};
pub use watch::WatchHandle;
