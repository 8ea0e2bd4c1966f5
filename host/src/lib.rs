//! MTE Relay host: configuration, server, MTE pipeline, upstream client, pair store.

pub mod adapters;
pub mod admin;
pub mod admission;
pub mod body;
pub mod cli;
pub mod config;
pub mod context;
pub mod demo;
pub mod forwarded;
pub mod header_rules;
pub mod metrics;
pub mod observe;
pub mod outbound;
pub mod pipeline;
pub mod response;
pub mod server;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod trace_context;
pub mod upstream;
