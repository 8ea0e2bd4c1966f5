//! Key derivation: every label of protocol v1 and the HKDF-SHA256 helpers.
//!
//! Labels are ASCII strings prefixed with `mte-relay/v1 `; `docs/protocol.md` lists
//! them all. A label never appears in two roles.

use hkdf::{Hkdf, HkdfExtract};
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::secret::Secret32;

pub(crate) const LABEL_TRANSCRIPT: &[u8] = b"mte-relay/v1 pairing transcript";
pub(crate) const LABEL_PSK: &[u8] = b"mte-relay/v1 psk";
pub(crate) const LABEL_MKE_ROOT: &[u8] = b"mte-relay/v1 mke root";
pub(crate) const LABEL_MTE_EPOCH0: &[u8] = b"mte-relay/v1 mte epoch 0";
pub(crate) const LABEL_CONFIRM: &[u8] = b"mte-relay/v1 pairing confirm";
pub(crate) const LABEL_MTE_RATCHET: &[u8] = b"mte-relay/v1 mte ratchet";
pub(crate) const LABEL_MKE_MESSAGE: &[u8] = b"mte-relay/v1 mke message";
pub(crate) const LABEL_MTE_MESSAGE: &[u8] = b"mte-relay/v1 mte message";
pub(crate) const LABEL_REQUEST_KEY: &[u8] = b"mte-relay/v1 request key";
pub(crate) const LABEL_RESPONSE_KEY: &[u8] = b"mte-relay/v1 response key";
pub(crate) const LABEL_CLIENT_ID: &[u8] = b"mte-relay/v1 client id";
pub(crate) const LABEL_REQUEST_AAD: &[u8] = b"mte-relay/v1 request";
pub(crate) const LABEL_RESPONSE_AAD: &[u8] = b"mte-relay/v1 response";

type HmacSha256 = hmac::Hmac<Sha256>;

/// HKDF-Expand(prk, label || context, 32).
pub(crate) fn expand(prk: &[u8; 32], label: &[u8], context: &[u8]) -> Secret32 {
    let mut okm = [0u8; 32];
    // A 32-byte PRK and a 32-byte output are always within HKDF-SHA256's bounds.
    if let Ok(hkdf) = Hkdf::<Sha256>::from_prk(prk) {
        let _ = hkdf.expand_multi_info(&[label, context], &mut okm);
    }
    Secret32::from_bytes(okm)
}

/// HKDF-Extract(salt, ikm_1 || ikm_2 || ...).
pub(crate) fn extract(salt: &[u8], ikm_parts: &[&[u8]]) -> Secret32 {
    let mut extract = HkdfExtract::<Sha256>::new(Some(salt));
    for part in ikm_parts {
        extract.input_ikm(part);
    }
    let (prk, _) = extract.finalize();
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(&prk);
    Secret32::from_bytes(bytes)
}

/// HMAC-SHA256(key, parts...).
pub(crate) fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = match <HmacSha256 as KeyInit>::new_from_slice(key) {
        Ok(mac) => mac,
        // HMAC accepts keys of every length; this arm is unreachable in practice.
        Err(_) => return [0u8; 32],
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// SHA-256 of a byte string.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}
