//! End-to-end tests of adapters in the relay: the real binary configured through
//! `ADAPTERS`/`ADAPTERS_FILE`/`ADAPTER_CHAIN`/`DOMAIN_MAP`, guest components built from
//! `adapters/` by the test build, the real Rust client, real upstreams, loopback sockets.

mod chain;
mod config;
mod metrics;
mod misbehaviour;
mod observability;
mod python;
mod reload;
mod shared_kv;
mod support;
