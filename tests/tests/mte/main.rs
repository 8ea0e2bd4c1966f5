//! End-to-end tests of MTE traffic: the real relay binary, the real Rust client, real
//! upstream servers, all over loopback sockets.

mod api_relay;
mod bounds;
mod cli;
mod concurrency;
mod forged;
mod identity;
mod metrics;
mod padding;
mod raw;
mod recovery;
mod refusals;
mod replicas;
mod resend;
mod round_trips;
mod soak;
mod streaming;
mod support;
mod timeouts;
mod trace;
mod verify_first;
