//! MTE Relay protocol v1: the sans-IO wire format and cryptography shared by the relay,
//! the Rust client and the browser SDK. See `docs/protocol.md` for the specification.

pub mod registry;

pub use registry::{ClientReaction, ERROR_HEADER, ErrorBody, ErrorReason};
