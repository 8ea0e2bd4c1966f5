//! Identifiers: pair ids and client ids, which travel in the clear, and the resend
//! token, which travels only inside a sealed request head.

use core::fmt;

use crate::encoding::{b64_decode_array, b64_encode, is_b64url};

/// Length of a pair id in bytes.
pub const PAIR_ID_LEN: usize = 16;

/// Longest client id a relay accepts, in characters. Minted ids are 76 characters.
pub const MAX_CLIENT_ID_LEN: usize = 128;

/// A pair id: 16 random bytes chosen by the client, written as 22 base64url characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PairId(pub [u8; PAIR_ID_LEN]);

impl PairId {
    /// Draws a fresh random pair id.
    pub fn random(rng: &mut impl rand_core::CryptoRng) -> Self {
        let mut bytes = [0u8; PAIR_ID_LEN];
        rng.fill_bytes(&mut bytes);
        PairId(bytes)
    }

    /// Parses the base64url text form strictly.
    pub fn parse(text: &[u8]) -> Option<Self> {
        b64_decode_array(text).map(PairId)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; PAIR_ID_LEN] {
        &self.0
    }
}

impl fmt::Display for PairId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&b64_encode(&self.0))
    }
}

impl fmt::Debug for PairId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PairId({self})")
    }
}

/// Length of a resend token in bytes.
pub const RESEND_TOKEN_LEN: usize = 16;

/// The token that makes one request recognisable across resends: 16 random bytes the
/// client draws once per request and repeats, unchanged, in every resend of it. It
/// travels only inside the sealed request head, so no one on the path can read or
/// reuse it. A relay forwards a non-idempotent request with a given token at most once
/// per client id within its resend window (docs/protocol.md §4.6).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ResendToken(pub [u8; RESEND_TOKEN_LEN]);

impl ResendToken {
    /// Draws a fresh random token.
    pub fn random(rng: &mut impl rand_core::CryptoRng) -> Self {
        let mut bytes = [0u8; RESEND_TOKEN_LEN];
        rng.fill_bytes(&mut bytes);
        ResendToken(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; RESEND_TOKEN_LEN] {
        &self.0
    }
}

impl fmt::Debug for ResendToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not secret, but nothing outside the sealed head needs it: print no bytes.
        f.write_str("ResendToken(..)")
    }
}

/// True when `text` can be a client id on the wire: 1 to 128 base64url characters.
///
/// This is only the syntactic check; [`crate::client_id`] verifies authenticity.
pub fn is_client_id_syntax(text: &[u8]) -> bool {
    !text.is_empty() && text.len() <= MAX_CLIENT_ID_LEN && is_b64url(text)
}
