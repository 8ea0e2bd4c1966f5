//! The capabilities document served by `GET /api/mte-relay`, and version negotiation.
//!
//! Minor versions only add fields, so parsers ignore unknown fields; a client refuses a
//! document whose major version it does not speak.

use crate::header::PROTOCOL_MAJOR;
use crate::keys::EPOCH_LEN;
use crate::message::MAX_HEAD_BLOCK_CHARS;
use crate::padding::MTE_MAX_MESSAGE;
use crate::replay::{MAX_SEQUENCE_AHEAD, WINDOW_SIZE};
use crate::stream::CHUNK_SIZE;

/// The route that serves the document.
pub const CAPABILITIES_ROUTE: &str = "/api/mte-relay";
/// The protocol name in the document.
pub const PROTOCOL_NAME: &str = "mte-relay";
/// The full version this crate implements.
pub const PROTOCOL_VERSION: &str = "1.2";

/// Limits a relay enforces, announced so that clients stay within them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Most offers in one pairing request.
    pub max_pairs_per_batch: u32,
    /// Most live pairs per client id; pairing more evicts the oldest.
    pub max_pairs_per_client: u32,
    /// Seconds a pair lives after pairing.
    pub pair_ttl_secs: u64,
    /// Longest `x-mte-relay-head` value, in characters.
    pub max_head_block: u32,
    /// Largest request body in bytes, when limited.
    pub max_body: Option<u64>,
    /// Largest MTE-mode message (head or body) in bytes.
    pub mte_max_message: u32,
    /// How far a sequence number may run ahead of the highest accepted one.
    pub max_sequence_ahead: u64,
    /// Seconds for which the relay remembers the resend token of each non-idempotent
    /// request it forwarded. A client resends such a request only within this time of
    /// its first send. Absent (0) from a relay that keeps no tokens: a client then
    /// never resends a non-idempotent request.
    #[serde(default)]
    pub resend_window_secs: u64,
}

/// The resend window a relay announces unless configured otherwise.
pub const DEFAULT_RESEND_WINDOW_SECS: u64 = 60;

impl Limits {
    /// Limits with the protocol's fixed values and the relay's configurable ones.
    pub fn new(
        max_pairs_per_batch: u32,
        max_pairs_per_client: u32,
        pair_ttl_secs: u64,
        max_body: Option<u64>,
    ) -> Self {
        Limits {
            max_pairs_per_batch,
            max_pairs_per_client,
            pair_ttl_secs,
            max_head_block: MAX_HEAD_BLOCK_CHARS as u32,
            max_body,
            mte_max_message: MTE_MAX_MESSAGE as u32,
            max_sequence_ahead: MAX_SEQUENCE_AHEAD,
            resend_window_secs: DEFAULT_RESEND_WINDOW_SECS,
        }
    }
}

/// The capabilities document.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Capabilities {
    /// Always `mte-relay`.
    pub protocol: String,
    /// `major.minor`.
    pub version: String,
    /// Key encapsulation mechanism: `X-Wing` (X25519 + ML-KEM-768).
    pub kem: String,
    /// AEAD: `AES-256-GCM`.
    pub aead: String,
    /// KDF: `HKDF-SHA256`.
    pub kdf: String,
    /// Encode modes the relay accepts.
    pub modes: Vec<String>,
    /// Largest plaintext of one MKE body record.
    pub chunk_size: u32,
    /// Width of the replay window.
    pub replay_window: u32,
    /// Sequence numbers per MTE ratchet epoch.
    pub mte_epoch_length: u32,
    /// The relay's limits.
    pub limits: Limits,
    /// The client id issued or refreshed for the caller.
    pub client_id: String,
    /// Unix time at which `client_id` expires.
    pub client_id_expires_at: u64,
    /// The relay's Unix time when it wrote the document, so that a client can state a
    /// request's `not_after` on the relay's clock. Absent (0) from older relays.
    #[serde(default)]
    pub server_time: u64,
    /// base64url of the relay's public identity key ([`crate::identity`]), when the
    /// domain has one; its pairing answers are then signed. Unauthenticated: a client
    /// believes it only when it matches the client's pin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_key: Option<String>,
}

/// Why a capabilities document was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CapabilitiesError {
    /// Not JSON of the expected shape.
    #[error("capabilities document is malformed: {0}")]
    Malformed(String),
    /// Another protocol.
    #[error("relay speaks protocol `{0}`, not mte-relay")]
    WrongProtocol(String),
    /// A major version this client does not speak.
    #[error("relay speaks protocol version {0}; this client speaks {PROTOCOL_MAJOR}.x")]
    UnsupportedVersion(String),
}

impl Capabilities {
    /// The document a relay with `limits` serves to a client holding `client_id`.
    pub fn new(limits: Limits, client_id: String, client_id_expires_at: u64) -> Self {
        Capabilities {
            protocol: PROTOCOL_NAME.into(),
            version: PROTOCOL_VERSION.into(),
            kem: "X-Wing".into(),
            aead: "AES-256-GCM".into(),
            kdf: "HKDF-SHA256".into(),
            modes: vec!["mke".into(), "mte".into()],
            chunk_size: CHUNK_SIZE as u32,
            replay_window: WINDOW_SIZE as u32,
            mte_epoch_length: EPOCH_LEN as u32,
            limits,
            client_id,
            client_id_expires_at,
            server_time: 0,
            identity_key: None,
        }
    }

    /// Parses a document and refuses other protocols and unknown major versions.
    pub fn parse(body: &[u8]) -> Result<Capabilities, CapabilitiesError> {
        let document: Capabilities = serde_json::from_slice(body)
            .map_err(|error| CapabilitiesError::Malformed(error.to_string()))?;
        if document.protocol != PROTOCOL_NAME {
            return Err(CapabilitiesError::WrongProtocol(document.protocol));
        }
        match parse_version(&document.version) {
            Some((major, _)) if major == u64::from(PROTOCOL_MAJOR) => Ok(document),
            Some(_) => Err(CapabilitiesError::UnsupportedVersion(document.version)),
            None => Err(CapabilitiesError::Malformed(format!(
                "version `{}` is not major.minor",
                document.version
            ))),
        }
    }
}

/// Parses `major.minor` with canonical decimal numbers.
pub fn parse_version(text: &str) -> Option<(u64, u64)> {
    let (major, minor) = text.split_once('.')?;
    Some((
        crate::header::parse_decimal(major.as_bytes())?,
        crate::header::parse_decimal(minor.as_bytes())?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> Capabilities {
        Capabilities::new(Limits::new(32, 64, 86_400, None), "Y2xpZW50".into(), 99)
    }

    #[test]
    fn round_trip_and_minor_versions_are_accepted() {
        let mut doc = document();
        let json = serde_json::to_vec(&doc).expect("serialises");
        assert_eq!(Capabilities::parse(&json), Ok(doc.clone()));
        doc.version = "1.7".into();
        let mut value = serde_json::to_value(&doc).expect("serialises");
        value["future_field"] = serde_json::json!(true);
        let json = serde_json::to_vec(&value).expect("serialises");
        assert_eq!(
            Capabilities::parse(&json).map(|d| d.version),
            Ok("1.7".into())
        );
    }

    #[test]
    fn unknown_major_and_other_protocols_are_refused() {
        let mut doc = document();
        doc.version = "2.0".into();
        let json = serde_json::to_vec(&doc).expect("serialises");
        assert_eq!(
            Capabilities::parse(&json),
            Err(CapabilitiesError::UnsupportedVersion("2.0".into()))
        );
        doc.version = "1".into();
        let json = serde_json::to_vec(&doc).expect("serialises");
        assert!(matches!(
            Capabilities::parse(&json),
            Err(CapabilitiesError::Malformed(_))
        ));
        doc.version = "1.0".into();
        doc.protocol = "other".into();
        let json = serde_json::to_vec(&doc).expect("serialises");
        assert_eq!(
            Capabilities::parse(&json),
            Err(CapabilitiesError::WrongProtocol("other".into()))
        );
    }
}
