//! Async Rust client of MTE Relay.
//!
//! A [`RelayClient`] pairs with a relay (`docs/protocol.md`) and then sends every
//! request encrypted: path and query, end-to-end headers and body. Bodies stream both
//! ways, encrypted and decrypted record by record, so memory stays bounded by one
//! record whatever the payload size.
//!
//! The client keeps a pool of pairs used round-robin, reacts to the relay's registry
//! errors as the protocol prescribes (replace a pair, re-identify and re-pair, back off)
//! and retries a request once when that cannot repeat a side effect: every request
//! carries a resend token, and the relay runs a non-idempotent request with a given
//! token at most once. A failure says, in [`ClientError::outcome`], whether the
//! upstream got the request ([`RequestOutcome`]).
//!
//! ```no_run
//! use mte_relay_client::{Mode, RelayClient};
//!
//! # async fn example() -> Result<(), mte_relay_client::ClientError> {
//! let client = RelayClient::builder("https://api.example.com")
//!     .pairs(4)
//!     .request_timeout(std::time::Duration::from_secs(30))
//!     .build()?;
//!
//! // Path, headers and body travel encrypted; the relay forwards to its upstream.
//! let request = http::Request::post("/orders?priority=high")
//!     .header("content-type", "application/json")
//!     .body(r#"{"item": 7}"#)
//!     .expect("valid request");
//! let response = client.send(request).await?;
//! println!("{}", response.status());
//! let body = response.into_body().collect_bytes().await?;
//! println!("{}", String::from_utf8_lossy(&body));
//!
//! // A small sensitive request in MTE mode (padded, ratcheted keys).
//! let mut request = http::Request::get("/account").body(()).expect("valid request");
//! request.extensions_mut().insert(Mode::Mte);
//! let response = client.send(request).await?;
//! # let _ = response;
//! # Ok(())
//! # }
//! ```
//!
//! Streaming request bodies go through [`RequestBody::streaming`]; they are sent as the
//! body produces data and are retried only if none of it was read yet.

#![deny(missing_docs)]

mod builder;
mod client;
pub mod codec;
mod error;
mod pool;
mod reaction;
mod request;
mod resend;
mod response;
mod session;
mod timing;
mod transport;

pub use builder::{
    DEFAULT_BACKOFF, DEFAULT_MAX_BACKOFF, DEFAULT_MTE_EPOCH_INTERVAL, DEFAULT_PAIRS,
    MIN_MTE_EPOCH_INTERVAL, RelayClientBuilder,
};
pub use client::RelayClient;
pub use error::{BoxError, ClientError, RequestOutcome};
pub use mte_relay_protocol::capabilities::Capabilities;
/// The encode mode; insert one into a request's extensions to override the default.
pub use mte_relay_protocol::header::Mode;
pub use mte_relay_protocol::ids::PairId;
pub use mte_relay_protocol::{ClientReaction, ErrorReason};
pub use request::RequestBody;
pub use response::Body;
pub use timing::{CodecObserver, CodecTimer};
