//! MTE Relay protocol v1: the sans-IO wire format and cryptography shared by the relay,
//! the Rust client and the browser SDK. `docs/protocol.md` is the specification.
//!
//! No I/O happens here: callers feed bytes in and take bytes out, so the crate builds
//! for native targets and for `wasm32-unknown-unknown` alike.
//!
//! The life of one MTE request, client side:
//!
//! 1. [`capabilities::Capabilities`] from `GET /api/mte-relay` gives the client id.
//! 2. [`pairing::PendingPair`] offers X-Wing keys in a [`pairing::PairingRequest`]; the
//!    relay answers with [`pairing::accept_offer`]; [`pairing::PendingPair::complete`]
//!    yields the [`keys::PairKeys`].
//! 3. Per request: a [`header::RelayHeader`], the message secret from
//!    [`keys::PairKeys::message_secret`], a [`message::RequestContext`] that seals the
//!    head and the body; the relay opens them with the same context, checks the
//!    [`replay::ReplayWindow`], and answers through a [`message::ResponseContext`].

pub mod aead;
pub mod capabilities;
pub mod client_id;
pub mod encoding;
#[doc(hidden)]
pub mod fuzzing;
pub mod head;
pub mod header;
pub mod hop_by_hop;
pub mod host;
pub mod identity;
pub mod ids;
mod kdf;
pub mod keys;
pub mod message;
pub mod padding;
pub mod pairing;
pub mod registry;
pub mod replay;
pub mod rng;
pub mod secret;
pub mod stream;
pub mod xwing;

pub use registry::{ClientReaction, ERROR_HEADER, ErrorBody, ErrorReason};

/// The relay's echo route (`GET`, plain or through MTE; docs/protocol.md §2). The
/// capabilities and pairing routes are [`capabilities::CAPABILITIES_ROUTE`] and
/// [`pairing::PAIR_ROUTE`].
pub const ECHO_ROUTE: &str = "/api/mte-echo";
