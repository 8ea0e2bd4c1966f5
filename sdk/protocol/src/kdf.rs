//! Key derivation: every label of protocol v1 and the HKDF-SHA256 helpers.
//!
//! Labels are ASCII strings prefixed with `mte-relay/v1 `; `docs/protocol.md` lists
//! them all. A label never appears in two roles.

use hkdf::{Hkdf, HkdfExtract};
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};

use zeroize::{Zeroize, Zeroizing};

use crate::secret::Secret32;

pub(crate) const LABEL_TRANSCRIPT: &[u8] = b"mte-relay/v1 pairing transcript";
pub(crate) const LABEL_PSK: &[u8] = b"mte-relay/v1 psk";
pub(crate) const LABEL_PSK_PROOF: &[u8] = b"mte-relay/v1 psk proof";
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
pub(crate) const LABEL_IDENTITY_ED25519: &[u8] = b"mte-relay/v1 identity ed25519";
pub(crate) const LABEL_IDENTITY_ML_DSA: &[u8] = b"mte-relay/v1 identity ml-dsa-65";
pub(crate) const LABEL_PAIRING_SIGNATURE: &[u8] = b"mte-relay/v1 pairing signature";

type HmacSha256 = hmac::Hmac<Sha256>;

/// HKDF-Expand(prk, label || context, 32).
///
/// The stack copies of key material are zeroized when they go out of scope; the
/// result lives on in a [`Secret32`], which zeroizes itself.
pub(crate) fn expand(prk: &[u8; 32], label: &[u8], context: &[u8]) -> Secret32 {
    let mut okm = Zeroizing::new([0u8; 32]);
    // Both cannot fail: a 32-byte PRK and a 32-byte output are always within
    // HKDF-SHA256's bounds. Were they to, a panic beats a key of zeros.
    Hkdf::<Sha256>::from_prk(prk)
        .expect("a 32-byte PRK is a valid HKDF-SHA256 PRK")
        .expand_multi_info(&[label, context], okm.as_mut())
        .expect("32 bytes are within HKDF-SHA256's output bound");
    Secret32::from_bytes(*okm)
}

/// HKDF-Extract(salt, ikm_1 || ikm_2 || ...).
pub(crate) fn extract(salt: &[u8], ikm_parts: &[&[u8]]) -> Secret32 {
    let mut extract = HkdfExtract::<Sha256>::new(Some(salt));
    for part in ikm_parts {
        extract.input_ikm(part);
    }
    let (prk, _) = extract.finalize();
    let mut bytes = Zeroizing::new([0u8; 32]);
    bytes.copy_from_slice(&prk);
    let mut prk = prk;
    prk.as_mut_slice().zeroize();
    Secret32::from_bytes(*bytes)
}

/// HMAC-SHA256(key, parts...).
pub(crate) fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of every length, so this cannot fail; were it to, a panic
    // beats a tag of zeros.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// SHA-256 of a byte string.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}
