//! Relay identity: a hybrid signature over each pairing answer, so that a client that
//! pins the relay's public key cannot be paired by anyone else (a TLS-terminating CDN,
//! a corporate proxy, any active man in the middle).
//!
//! ```text
//! identity key     = 32 random bytes, the relay's secret (`identity_key`)
//! ed25519 secret   = HKDF-Expand(identity key, "mte-relay/v1 identity ed25519", 32)
//! ml-dsa seed      = HKDF-Expand(identity key, "mte-relay/v1 identity ml-dsa-65", 32)
//! public key       = Ed25519 public key (32) || ML-DSA-65 verification key (1952)
//! pin              = "sha256:" || base64url(SHA-256(public key))
//!
//! batch transcript = lp("mte-relay/v1 pairing signature") || lp(domain) || lp(client id)
//!                    || lp(public key) || u32(n)
//!                    || n × ( th || lp(pair id) || lp(confirm) || u64(expires_at) )
//! th               = the pair's transcript hash (docs/protocol.md §4.3), which binds the
//!                    domain, client id, pair id, X-Wing public key and ciphertext; both
//!                    sides compute it anyway, so signing it costs no second pass over
//!                    the keys
//! message          = SHA-256(batch transcript)
//! signature        = Ed25519.Sign(message) (64)
//!                    || ML-DSA-65.Sign(message, context "mte-relay/v1 pairing") (3309)
//! ```
//!
//! A signature holds only if both halves verify, so it stands as long as either
//! scheme does, as X-Wing's confidentiality does. One signature covers a whole batch
//! of pairs, so its cost is shared by up to `max_pairs_per_batch` key exchanges.

use core::fmt;

use ed25519_dalek::Signer as _;
use libcrux_ml_dsa::ml_dsa_65::{
    self, MLDSA65Signature, MLDSA65SigningKey, MLDSA65VerificationKey,
};
use zeroize::Zeroize;

use crate::encoding::{b64_decode, b64_decode_array, b64_encode, put_lp};
use crate::kdf::{self, LABEL_IDENTITY_ED25519, LABEL_IDENTITY_ML_DSA, LABEL_PAIRING_SIGNATURE};
use crate::pairing::{PairAnswer, PairingScope};
use crate::secret::Secret32;

/// Length of an Ed25519 public key.
const ED25519_PUBLIC_LEN: usize = 32;
/// Length of an ML-DSA-65 verification key (FIPS 204).
const ML_DSA_65_PUBLIC_LEN: usize = 1952;
/// Length of the relay's hybrid public key.
pub const PUBLIC_KEY_LEN: usize = ED25519_PUBLIC_LEN + ML_DSA_65_PUBLIC_LEN;
/// Length of an ML-DSA-65 signing key (FIPS 204).
const ML_DSA_65_SIGNING_KEY_LEN: usize = 4032;
/// Length of an Ed25519 signature.
const ED25519_SIGNATURE_LEN: usize = 64;
/// Length of an ML-DSA-65 signature (FIPS 204).
const ML_DSA_65_SIGNATURE_LEN: usize = 3309;
/// Length of a hybrid signature.
pub const SIGNATURE_LEN: usize = ED25519_SIGNATURE_LEN + ML_DSA_65_SIGNATURE_LEN;
/// The ML-DSA context string of pairing signatures (FIPS 204 domain separation).
const ML_DSA_CONTEXT: &[u8] = b"mte-relay/v1 pairing";
/// The prefix of a pin's text form.
const PIN_PREFIX: &str = "sha256:";

/// Why an identity key, public key, pin or signature was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The secret identity key is not 32 bytes of base64url (43 characters).
    #[error("identity key is not 32 bytes of base64url (43 characters)")]
    InvalidKey,
    /// The public key is not a base64url hybrid key of the right length.
    #[error("relay public key is not {PUBLIC_KEY_LEN} bytes of base64url")]
    InvalidPublicKey,
    /// The pin is not `sha256:` followed by 32 bytes of base64url, nor a public key.
    #[error("pin is neither `sha256:<43 base64url characters>` nor a relay public key")]
    InvalidPin,
    /// The relay announced no public key, or another than the pinned one.
    #[error("the relay's identity key does not match the pin")]
    PinMismatch,
    /// A pinned client received a pairing answer without a signature.
    #[error("the pairing answer is not signed, and the relay is pinned")]
    Unsigned,
    /// The signature is malformed or does not verify.
    #[error("the pairing answer's signature does not verify under the pinned relay key")]
    BadSignature,
    /// Signing failed (ML-DSA's rejection sampling gave up: practically never).
    #[error("signing the pairing answer failed")]
    SigningFailed,
}

/// A relay's public identity key: the Ed25519 and ML-DSA-65 public keys.
#[derive(Clone)]
pub struct IdentityPublicKey {
    ed25519: ed25519_dalek::VerifyingKey,
    ml_dsa: Box<MLDSA65VerificationKey>,
}

impl IdentityPublicKey {
    /// Parses the base64url text form, as capabilities announce it.
    pub fn parse(text: &[u8]) -> Result<Self, IdentityError> {
        let bytes = b64_decode(text)
            .filter(|bytes| bytes.len() == PUBLIC_KEY_LEN)
            .ok_or(IdentityError::InvalidPublicKey)?;
        let (ed25519, ml_dsa) = bytes.split_at(ED25519_PUBLIC_LEN);
        let ed25519: [u8; ED25519_PUBLIC_LEN] = ed25519
            .try_into()
            .map_err(|_| IdentityError::InvalidPublicKey)?;
        let ml_dsa: [u8; ML_DSA_65_PUBLIC_LEN] = ml_dsa
            .try_into()
            .map_err(|_| IdentityError::InvalidPublicKey)?;
        Ok(IdentityPublicKey {
            ed25519: ed25519_dalek::VerifyingKey::from_bytes(&ed25519)
                .map_err(|_| IdentityError::InvalidPublicKey)?,
            ml_dsa: Box::new(MLDSA65VerificationKey::new(ml_dsa)),
        })
    }

    /// The raw public key: Ed25519 then ML-DSA-65.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(PUBLIC_KEY_LEN);
        bytes.extend_from_slice(self.ed25519.as_bytes());
        bytes.extend_from_slice(self.ml_dsa.as_slice());
        bytes
    }

    /// The base64url text form.
    pub fn to_text(&self) -> String {
        b64_encode(&self.to_bytes())
    }

    /// The pin of this key: its SHA-256 fingerprint.
    pub fn pin(&self) -> Pin {
        Pin(kdf::sha256(&self.to_bytes()))
    }

    /// Verifies the relay's signature over a pairing batch: the transcript hash of each
    /// pair the client offered ([`crate::pairing::PendingPair::transcript_hash`]) and
    /// the answers it received, in order.
    pub fn verify_pairing(
        &self,
        scope: PairingScope<'_>,
        transcript_hashes: &[[u8; 32]],
        answers: &[PairAnswer],
        signature: &str,
    ) -> Result<(), IdentityError> {
        let signature = b64_decode(signature.as_bytes())
            .filter(|bytes| bytes.len() == SIGNATURE_LEN)
            .ok_or(IdentityError::BadSignature)?;
        let (ed25519, ml_dsa) = signature.split_at(ED25519_SIGNATURE_LEN);
        let message = batch_message(scope, &self.to_bytes(), transcript_hashes, answers)?;
        let ed25519 = ed25519_dalek::Signature::from_slice(ed25519)
            .map_err(|_| IdentityError::BadSignature)?;
        self.ed25519
            .verify_strict(&message, &ed25519)
            .map_err(|_| IdentityError::BadSignature)?;
        let ml_dsa: [u8; ML_DSA_65_SIGNATURE_LEN] =
            ml_dsa.try_into().map_err(|_| IdentityError::BadSignature)?;
        ml_dsa_65::verify(
            &self.ml_dsa,
            &message,
            ML_DSA_CONTEXT,
            &MLDSA65Signature::new(ml_dsa),
        )
        .map_err(|_| IdentityError::BadSignature)
    }
}

impl fmt::Debug for IdentityPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityPublicKey({})", self.pin())
    }
}

impl PartialEq for IdentityPublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.to_bytes() == other.to_bytes()
    }
}

impl Eq for IdentityPublicKey {}

/// What a client pins: the SHA-256 fingerprint of the relay's public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pin([u8; 32]);

impl Pin {
    /// Parses `sha256:<base64url fingerprint>`, or a whole public key in its text form
    /// (then pinned by its fingerprint).
    pub fn parse(text: &str) -> Result<Pin, IdentityError> {
        let text = text.trim();
        match text.strip_prefix(PIN_PREFIX) {
            Some(fingerprint) => b64_decode_array(fingerprint.as_bytes())
                .map(Pin)
                .ok_or(IdentityError::InvalidPin),
            None => IdentityPublicKey::parse(text.as_bytes())
                .map(|key| key.pin())
                .map_err(|_| IdentityError::InvalidPin),
        }
    }

    /// Checks that `announced` (the capabilities' `identity_key`) matches one of
    /// `pins` (several during a key rotation).
    pub fn check_any(
        pins: &[Pin],
        announced: Option<&str>,
    ) -> Result<IdentityPublicKey, IdentityError> {
        let key = IdentityPublicKey::parse(announced.ok_or(IdentityError::PinMismatch)?.as_bytes())
            .map_err(|_| IdentityError::PinMismatch)?;
        if pins.contains(&key.pin()) {
            Ok(key)
        } else {
            Err(IdentityError::PinMismatch)
        }
    }

    /// Checks that `announced` (the capabilities' `identity_key`) is the pinned key.
    pub fn check(&self, announced: Option<&str>) -> Result<IdentityPublicKey, IdentityError> {
        Pin::check_any(core::slice::from_ref(self), announced)
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PIN_PREFIX}{}", b64_encode(&self.0))
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pin({self})")
    }
}

/// The relay's secret identity: both signing keys, derived from one 32-byte key.
pub struct RelayIdentity {
    ed25519: ed25519_dalek::SigningKey,
    ml_dsa: Box<MLDSA65SigningKey>,
    public: IdentityPublicKey,
}

impl RelayIdentity {
    /// Parses the secret text form (`identity_key`, `RELAY_IDENTITY_KEY`): 32 bytes of
    /// base64url.
    pub fn parse(text: &str) -> Result<RelayIdentity, IdentityError> {
        let mut seed =
            b64_decode_array::<32>(text.trim().as_bytes()).ok_or(IdentityError::InvalidKey)?;
        let identity = RelayIdentity::from_key(&Secret32::from_bytes(seed));
        seed.zeroize();
        Ok(identity)
    }

    /// A fresh identity, and its secret text form.
    pub fn generate(rng: &mut impl rand_core::CryptoRng) -> (RelayIdentity, String) {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let text = b64_encode(&seed);
        let identity = RelayIdentity::from_key(&Secret32::from_bytes(seed));
        seed.zeroize();
        (identity, text)
    }

    /// Derives both signing keys from the identity key.
    pub fn from_key(key: &Secret32) -> RelayIdentity {
        let ed25519_secret = kdf::expand(key.expose_secret(), LABEL_IDENTITY_ED25519, b"");
        let ml_dsa_seed = kdf::expand(key.expose_secret(), LABEL_IDENTITY_ML_DSA, b"");
        let ed25519 = ed25519_dalek::SigningKey::from_bytes(ed25519_secret.expose_secret());
        let mut pair = ml_dsa_65::generate_key_pair(*ml_dsa_seed.expose_secret());
        // The signing key is copied into its box and the stack original wiped, so the
        // only copy left is the one `Drop` zeroizes.
        let mut ml_dsa = Box::new(MLDSA65SigningKey::new([0; ML_DSA_65_SIGNING_KEY_LEN]));
        ml_dsa
            .as_mut_slice()
            .copy_from_slice(pair.signing_key.as_slice());
        pair.signing_key.as_mut_slice().zeroize();
        let public = IdentityPublicKey {
            ed25519: ed25519.verifying_key(),
            ml_dsa: Box::new(pair.verification_key),
        };
        RelayIdentity {
            ed25519,
            ml_dsa,
            public,
        }
    }

    /// The public half, which capabilities announce and clients pin.
    pub fn public_key(&self) -> &IdentityPublicKey {
        &self.public
    }

    /// Signs a pairing batch: the transcript hash of each accepted offer
    /// ([`crate::pairing::AcceptedOffer::transcript_hash`]) and the answers about to be
    /// sent, in order. 32 bytes from `rng` hedge the ML-DSA signature (FIPS 204's
    /// default, "hedged" variant; the test vectors supply them).
    pub fn sign_pairing(
        &self,
        scope: PairingScope<'_>,
        transcript_hashes: &[[u8; 32]],
        answers: &[PairAnswer],
        rng: &mut impl rand_core::CryptoRng,
    ) -> Result<String, IdentityError> {
        let mut randomness = [0u8; 32];
        rng.fill_bytes(&mut randomness);
        let message = batch_message(scope, &self.public.to_bytes(), transcript_hashes, answers)?;
        let ed25519 = self.ed25519.sign(&message);
        let ml_dsa = ml_dsa_65::sign(&self.ml_dsa, &message, ML_DSA_CONTEXT, randomness)
            .map_err(|_| IdentityError::SigningFailed)?;
        let mut signature = Vec::with_capacity(SIGNATURE_LEN);
        signature.extend_from_slice(&ed25519.to_bytes());
        signature.extend_from_slice(ml_dsa.as_slice());
        Ok(b64_encode(&signature))
    }
}

impl Drop for RelayIdentity {
    fn drop(&mut self) {
        // The expanded ML-DSA key is plain bytes; the Ed25519 key zeroizes itself.
        self.ml_dsa.as_mut_slice().zeroize();
    }
}

impl fmt::Debug for RelayIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelayIdentity")
            .field("pin", &self.public.pin())
            .finish_non_exhaustive()
    }
}

/// SHA-256 of the batch transcript. Hashes and answers must pair up one to one.
fn batch_message(
    scope: PairingScope<'_>,
    public_key: &[u8],
    transcript_hashes: &[[u8; 32]],
    answers: &[PairAnswer],
) -> Result<[u8; 32], IdentityError> {
    if transcript_hashes.len() != answers.len() {
        return Err(IdentityError::BadSignature);
    }
    let count = u32::try_from(answers.len()).map_err(|_| IdentityError::BadSignature)?;
    let mut transcript = Vec::with_capacity(PUBLIC_KEY_LEN + 128 + answers.len() * 96);
    put_lp(&mut transcript, LABEL_PAIRING_SIGNATURE);
    put_lp(&mut transcript, scope.domain.as_bytes());
    put_lp(&mut transcript, scope.client_id.as_bytes());
    put_lp(&mut transcript, public_key);
    transcript.extend_from_slice(&count.to_be_bytes());
    for (transcript_hash, answer) in transcript_hashes.iter().zip(answers) {
        let field = |text: &str| b64_decode(text.as_bytes()).ok_or(IdentityError::BadSignature);
        transcript.extend_from_slice(transcript_hash);
        put_lp(&mut transcript, &field(&answer.pair_id)?);
        put_lp(&mut transcript, &field(&answer.confirm)?);
        transcript.extend_from_slice(&answer.expires_at.to_be_bytes());
    }
    Ok(kdf::sha256(&transcript))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(byte: u8) -> RelayIdentity {
        RelayIdentity::from_key(&Secret32::from_bytes([byte; 32]))
    }

    fn scope() -> PairingScope<'static> {
        PairingScope {
            domain: "api.example.com",
            client_id: "Y2xpZW50",
            psk: None,
        }
    }

    fn batch() -> (Vec<[u8; 32]>, Vec<PairAnswer>) {
        let hashes = vec![[2; 32]];
        let answers = vec![PairAnswer {
            pair_id: b64_encode(&[1; 16]),
            ciphertext: b64_encode(&[3; 1120]),
            confirm: b64_encode(&[4; 32]),
            expires_at: 99,
        }];
        (hashes, answers)
    }

    #[test]
    fn a_signed_batch_verifies_and_any_change_breaks_it() {
        let relay = identity(7);
        let (hashes, answers) = batch();
        let signature = relay
            .sign_pairing(scope(), &hashes, &answers, &mut crate::rng::os_rng())
            .expect("signs");
        let public = relay.public_key();
        assert_eq!(
            public.verify_pairing(scope(), &hashes, &answers, &signature),
            Ok(())
        );

        let mut renamed = answers.clone();
        renamed[0].pair_id = b64_encode(&[9; 16]);
        assert_eq!(
            public.verify_pairing(scope(), &hashes, &renamed, &signature),
            Err(IdentityError::BadSignature),
            "the answer's pair id is signed"
        );

        let mut other_exchange = hashes.clone();
        other_exchange[0][0] ^= 1;
        assert_eq!(
            public.verify_pairing(scope(), &other_exchange, &answers, &signature),
            Err(IdentityError::BadSignature),
            "another key exchange (another ciphertext or offer) is another transcript"
        );

        let mut later = answers.clone();
        later[0].expires_at += 1;
        assert_eq!(
            public.verify_pairing(scope(), &hashes, &later, &signature),
            Err(IdentityError::BadSignature)
        );
        let other_domain = PairingScope {
            domain: "evil.example",
            ..scope()
        };
        assert_eq!(
            public.verify_pairing(other_domain, &hashes, &answers, &signature),
            Err(IdentityError::BadSignature)
        );
        let other_key = identity(8);
        assert_eq!(
            other_key
                .public_key()
                .verify_pairing(scope(), &hashes, &answers, &signature),
            Err(IdentityError::BadSignature)
        );
        // Either half alone is not enough.
        let mut bytes = b64_decode(signature.as_bytes()).expect("base64url");
        for index in [0, ED25519_SIGNATURE_LEN + 10] {
            bytes[index] ^= 1;
            let tampered = b64_encode(&bytes);
            assert_eq!(
                public.verify_pairing(scope(), &hashes, &answers, &tampered),
                Err(IdentityError::BadSignature),
                "byte {index}"
            );
            bytes[index] ^= 1;
        }
    }

    #[test]
    fn keys_and_pins_round_trip_through_their_text_forms() {
        let (relay, secret) = RelayIdentity::generate(&mut crate::rng::os_rng());
        let again = RelayIdentity::parse(&secret).expect("parses");
        assert_eq!(again.public_key(), relay.public_key());
        let text = relay.public_key().to_text();
        let public = IdentityPublicKey::parse(text.as_bytes()).expect("parses");
        assert_eq!(&public, relay.public_key());
        let pin = public.pin();
        assert_eq!(Pin::parse(&pin.to_string()), Ok(pin));
        assert_eq!(
            Pin::parse(&text),
            Ok(pin),
            "a whole key pins by its fingerprint"
        );
        assert_eq!(pin.check(Some(&text)), Ok(public));
        assert_eq!(
            identity(1).public_key().pin().check(Some(&text)),
            Err(IdentityError::PinMismatch)
        );
        assert_eq!(pin.check(None), Err(IdentityError::PinMismatch));
        let other = identity(1).public_key().pin();
        assert_eq!(
            Pin::check_any(&[other, pin], Some(&text)).map(|key| key.pin()),
            Ok(pin),
            "any of several pins"
        );
        assert_eq!(
            Pin::check_any(&[other], Some(&text)),
            Err(IdentityError::PinMismatch)
        );
        for bad in ["", "sha256:", "sha256:abc", "md5:AAAA", "not a key"] {
            assert_eq!(Pin::parse(bad), Err(IdentityError::InvalidPin), "{bad:?}");
        }
        for bad in ["", "AAAA", &secret[1..]] {
            assert!(RelayIdentity::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_sizes_are_those_of_fips_204_and_rfc_8032() {
        let relay = identity(3);
        assert_eq!(relay.public_key().to_bytes().len(), 1984);
        let (hashes, answers) = batch();
        let signature = relay
            .sign_pairing(scope(), &hashes, &answers, &mut crate::rng::os_rng())
            .expect("signs");
        assert_eq!(
            b64_decode(signature.as_bytes()).map(|s| s.len()),
            Some(3373)
        );
    }
}
