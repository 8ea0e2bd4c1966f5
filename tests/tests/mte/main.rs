//! End-to-end tests of MTE traffic: the real relay binary, the real Rust client, real
//! upstream servers, all over loopback sockets.

mod cli;
mod raw;
mod refusals;
mod round_trips;
mod support;
