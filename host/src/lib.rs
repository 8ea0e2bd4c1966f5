//! MTE Relay host: configuration, server, MTE pipeline, upstream client, pair store.

pub mod config;
