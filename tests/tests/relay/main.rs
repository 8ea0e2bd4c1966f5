//! End-to-end tests of the relay binary: real sockets, real upstreams, the real binary.

mod admin;
mod config;
mod cors;
mod data_tls;
mod errors;
mod host_matching;
mod image;
mod logs;
mod manifests;
mod passthrough;
mod shutdown;
mod support;
mod timeouts;
mod tls;
