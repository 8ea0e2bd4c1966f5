//! Subcommands that act as a client or a demo, beside the relay itself.

pub mod demo;
pub mod health;
pub mod keygen;
pub mod request;
