//! Which headers belong to one connection, and which to the relay. A leaf: the
//! configuration (to refuse them in `headers`), the upstream side and the response
//! side all ask here.

use http::header::HeaderName;

/// Hop-by-hop headers: they describe one connection and are never forwarded. One
/// list, in the protocol crate, shared with the client SDK.
pub use mte_relay_protocol::hop_by_hop::HOP_BY_HOP;

/// Prefix of the relay's own protocol headers, which never cross to the upstream.
pub const RELAY_HEADER_PREFIX: &str = "x-mte-relay";

pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    mte_relay_protocol::hop_by_hop::is_hop_by_hop(name.as_str())
}

pub fn is_relay_header(name: &HeaderName) -> bool {
    name.as_str().starts_with(RELAY_HEADER_PREFIX)
}
