//! Pair records encrypted at rest: a dump of Redis holds no key material.
//!
//! Every sealed value is AES-256-GCM under a key derived for its Redis key name from
//! `STORE_KEY`, with that name and the value's context (field, generation, epoch) as
//! associated data, so a value copied to another key, field or generation fails to
//! open. Deriving a key per Redis key keeps the number of encryptions under any one key
//! small (a pair is sealed once and again per ratchet step), so random 96-bit nonces
//! stay far inside GCM's bounds however long a `STORE_KEY` lives.
//!
//! Layout: `version (1) || key id (4) || nonce (12) || ciphertext || tag (16)`. The key
//! id names which of `STORE_KEY` and `STORE_KEY_PREVIOUS` sealed it, so a rotation reads
//! old records without trial decryption.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::config::Secret;

const FORMAT_V1: u8 = 1;
const KEY_ID_LEN: usize = 4;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;
/// Salt of the extraction from `STORE_KEY`: fixes the derivation to this purpose.
const EXTRACT_SALT: &[u8] = b"mte-relay store key v1";

/// Why a sealed value did not open. Either Redis holds a value this relay did not
/// write, or it was sealed under a key this relay does not have.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    #[error("sealed record is malformed")]
    Malformed,
    #[error(
        "sealed record names a store key this relay does not hold (STORE_KEY differs between replicas, or was rotated without STORE_KEY_PREVIOUS)"
    )]
    UnknownKey,
    #[error("sealed record failed authentication (tampered, or moved to another key)")]
    Forged,
}

/// One store key, reduced to a pseudorandom key and its public id.
struct StoreKey {
    id: [u8; KEY_ID_LEN],
    prk: Zeroizing<[u8; 32]>,
}

impl StoreKey {
    fn derive(secret: &Secret) -> StoreKey {
        let (prk, _) = Hkdf::<Sha256>::extract(Some(EXTRACT_SALT), secret.expose().as_bytes());
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(&prk);
        let digest = Sha256::new()
            .chain_update(b"mte-relay store key id")
            .chain_update(bytes.as_ref())
            .finalize();
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        StoreKey { id, prk: bytes }
    }

    /// The AES key for values stored under `redis_key`.
    fn cipher_for(&self, redis_key: &str) -> Aes256Gcm {
        let mut key = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::from_prk(self.prk.as_ref())
            .expect("a 32-byte PRK is a valid HKDF-SHA256 PRK")
            .expand_multi_info(&[b"record key:", redis_key.as_bytes()], key.as_mut())
            .expect("32 bytes are within HKDF-SHA256's output bound");
        let key: &[u8; 32] = &key;
        Aes256Gcm::new(key.into())
    }
}

/// Seals and opens values under `STORE_KEY`, opening with `STORE_KEY_PREVIOUS` too.
pub struct RecordSealer {
    current: StoreKey,
    previous: Option<StoreKey>,
}

impl std::fmt::Debug for RecordSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordSealer").finish_non_exhaustive()
    }
}

impl RecordSealer {
    pub fn new(current: &Secret, previous: Option<&Secret>) -> RecordSealer {
        RecordSealer {
            current: StoreKey::derive(current),
            previous: previous.map(StoreKey::derive),
        }
    }

    /// Seals `plaintext` for field context `context` of Redis key `redis_key`.
    pub fn seal(&self, redis_key: &str, context: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("the OS random generator is available");
        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        out.push(FORMAT_V1);
        out.extend_from_slice(&self.current.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let aad = associated_data(redis_key, context);
        let tag = self
            .current
            .cipher_for(redis_key)
            .encrypt_inout_detached(&Nonce::from(nonce), &aad, out[HEADER_LEN..].as_mut().into())
            // Only messages past GCM's 64 GiB bound fail; a record is under 100 bytes.
            // A panic beats storing the plaintext that is now in `out`.
            .expect("a pair record is far below GCM's length bound");
        out.extend_from_slice(&tag);
        out
    }

    /// Opens a value sealed by [`RecordSealer::seal`] with the same key name and context.
    /// The plaintext is wiped when dropped.
    pub fn open(
        &self,
        redis_key: &str,
        context: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        if sealed.len() < HEADER_LEN + TAG_LEN || sealed[0] != FORMAT_V1 {
            return Err(OpenError::Malformed);
        }
        let id = &sealed[1..1 + KEY_ID_LEN];
        let key = [Some(&self.current), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|key| key.id == id)
            .ok_or(OpenError::UnknownKey)?;
        let nonce: [u8; NONCE_LEN] = sealed[1 + KEY_ID_LEN..HEADER_LEN]
            .try_into()
            .map_err(|_| OpenError::Malformed)?;
        let (body, tag) = sealed[HEADER_LEN..].split_at(sealed.len() - HEADER_LEN - TAG_LEN);
        let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| OpenError::Malformed)?;
        let mut plaintext = Zeroizing::new(body.to_vec());
        key.cipher_for(redis_key)
            .decrypt_inout_detached(
                &Nonce::from(nonce),
                &associated_data(redis_key, context),
                plaintext.as_mut_slice().into(),
                &Tag::from(tag),
            )
            .map_err(|_| OpenError::Forged)?;
        Ok(plaintext)
    }
}

/// `len(key) || key || context`: no (key, context) pair reads as another.
fn associated_data(redis_key: &str, context: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(8 + redis_key.len() + context.len());
    aad.extend_from_slice(&(redis_key.len() as u64).to_be_bytes());
    aad.extend_from_slice(redis_key.as_bytes());
    aad.extend_from_slice(context.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(fill: char) -> Secret {
        Secret::new(std::iter::repeat_n(fill, 32).collect::<String>())
    }

    #[test]
    fn round_trips_and_hides_the_plaintext() {
        let sealer = RecordSealer::new(&secret('a'), None);
        let plaintext = b"thirty-two bytes of a pair root!";
        let sealed = sealer.seal("k:1", "rec/7", plaintext);
        assert!(
            !sealed
                .windows(8)
                .any(|window| plaintext.windows(8).any(|p| p == window)),
            "no run of the plaintext appears in the sealed value"
        );
        assert_eq!(
            sealer
                .open("k:1", "rec/7", &sealed)
                .expect("opens")
                .as_slice(),
            plaintext
        );
        assert_ne!(
            sealed,
            sealer.seal("k:1", "rec/7", plaintext),
            "fresh nonce each time"
        );
    }

    #[test]
    fn a_value_moved_to_another_key_field_or_generation_does_not_open() {
        let sealer = RecordSealer::new(&secret('a'), None);
        let sealed = sealer.seal("k:1", "rec/7", b"root");
        assert_eq!(sealer.open("k:2", "rec/7", &sealed), Err(OpenError::Forged));
        assert_eq!(sealer.open("k:1", "rec/8", &sealed), Err(OpenError::Forged));
        assert_eq!(
            sealer.open("k:1", "ratchet/7", &sealed),
            Err(OpenError::Forged)
        );
        let mut flipped = sealed.clone();
        *flipped.last_mut().expect("non-empty") ^= 1;
        assert_eq!(
            sealer.open("k:1", "rec/7", &flipped),
            Err(OpenError::Forged)
        );
        assert_eq!(
            sealer.open("k:1", "rec/7", &sealed[..10]),
            Err(OpenError::Malformed)
        );
    }

    #[test]
    fn a_rotated_key_still_opens_old_values_and_an_unknown_key_is_named() {
        let old = RecordSealer::new(&secret('a'), None);
        let sealed = old.seal("k", "rec/1", b"root");
        let rotated = RecordSealer::new(&secret('b'), Some(&secret('a')));
        assert_eq!(
            rotated
                .open("k", "rec/1", &sealed)
                .expect("opens")
                .as_slice(),
            b"root"
        );
        let stranger = RecordSealer::new(&secret('c'), None);
        assert_eq!(
            stranger.open("k", "rec/1", &sealed),
            Err(OpenError::UnknownKey)
        );
    }

    proptest::proptest! {
        /// Whatever Redis hands back, opening never panics, and only the exact sealed
        /// value opens: any other bytes, or the sealed value with one byte changed, fail.
        #[test]
        fn only_what_was_sealed_opens(
            noise in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            plaintext in proptest::collection::vec(proptest::num::u8::ANY, 0..100),
            flip in 0usize..1000,
        ) {
            let sealer = RecordSealer::new(&secret('p'), Some(&secret('q')));
            proptest::prop_assert!(sealer.open("k", "c", &noise).is_err());
            let sealed = sealer.seal("k", "c", &plaintext);
            let opened = sealer.open("k", "c", &sealed).expect("opens");
            proptest::prop_assert_eq!(opened.as_slice(), plaintext.as_slice());
            let mut changed = sealed.clone();
            let at = flip % changed.len();
            changed[at] ^= 0x01;
            proptest::prop_assert!(sealer.open("k", "c", &changed).is_err());
        }
    }
}
