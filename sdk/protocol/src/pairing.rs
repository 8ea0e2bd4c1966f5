//! Pairing: the client offers fresh X-Wing public keys, the relay encapsulates to each,
//! and both sides derive the pair's keys from the shared secret bound to a transcript.
//!
//! ```text
//! th         = SHA-256(lp(label) || lp(domain) || lp(client id) || lp(pair id)
//!                      || lp(public key) || lp(ciphertext) || psk flag)
//! psk key    = HMAC-SHA256(SECRET, "mte-relay/v1 psk")        (only when SECRET is set)
//! prk        = HKDF-Extract(salt = th, ikm = shared secret || psk key)
//! mke root   = HKDF-Expand(prk, "mte-relay/v1 mke root", 32)
//! mte epoch0 = HKDF-Expand(prk, "mte-relay/v1 mte epoch 0", 32)
//! confirm    = HKDF-Expand(prk, "mte-relay/v1 pairing confirm", 32)
//! ```
//!
//! `confirm` travels to the client, which compares it in constant time: a mismatch
//! means the two sides hold different `SECRET`s, or someone altered the exchange.
//!
//! With a `SECRET`, each offer also proves the client holds it, so the relay refuses a
//! pairing under another `SECRET` (`secret-mismatch`) instead of keeping pairs the
//! client cannot use:
//!
//! ```text
//! psk proof  = HMAC-SHA256(psk key, lp("mte-relay/v1 psk proof") || lp(domain)
//!                          || lp(client id) || lp(pair id) || lp(public key))
//! ```

use subtle::ConstantTimeEq;

use crate::encoding::{b64_decode, b64_decode_array, b64_encode, put_lp};
use crate::ids::{PairId, is_client_id_syntax};
use crate::kdf::{
    self, LABEL_CONFIRM, LABEL_MKE_ROOT, LABEL_MTE_EPOCH0, LABEL_PSK, LABEL_PSK_PROOF,
    LABEL_TRANSCRIPT,
};
use crate::keys::PairKeys;
use crate::registry::ErrorReason;
use crate::xwing;

/// Length of an X-Wing public (encapsulation) key.
pub const PUBLIC_KEY_LEN: usize = xwing::PUBLIC_KEY_LEN;
/// Length of an X-Wing ciphertext.
pub const CIPHERTEXT_LEN: usize = xwing::CIPHERTEXT_LEN;
/// The route that accepts pairing documents.
pub const PAIR_ROUTE: &str = "/api/mte-pair";

/// What a pair is bound to besides the key exchange itself.
#[derive(Clone, Copy, Debug)]
pub struct PairingScope<'a> {
    /// The relay's domain as the client addressed it (lowercase, without port).
    pub domain: &'a str,
    /// The client id the pair belongs to.
    pub client_id: &'a str,
    /// The pre-shared `SECRET` of API Relay mode, when configured.
    pub psk: Option<&'a [u8]>,
}

/// `POST /api/mte-pair` request body.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairingRequest {
    /// The client id every pair of this batch is bound to.
    pub client_id: String,
    /// One offer per pair wanted.
    pub pairs: Vec<PairOffer>,
}

/// One pair the client wants: its id and a fresh public key.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairOffer {
    /// base64url of the 16-byte pair id.
    pub pair_id: String,
    /// base64url of the 1216-byte X-Wing encapsulation key.
    pub public_key: String,
    /// base64url of the 32-byte proof that the client holds the relay's `SECRET`;
    /// present exactly when the client was given one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psk_proof: Option<String>,
}

/// `POST /api/mte-pair` response body: one answer per offer, in order.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairingResponse {
    /// Answers in the order of the offers.
    pub pairs: Vec<PairAnswer>,
    /// base64url of the relay's hybrid signature over the batch
    /// ([`crate::identity`]), when the relay has an identity key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// The relay's answer to one offer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairAnswer {
    /// base64url of the pair id, echoing the offer.
    pub pair_id: String,
    /// base64url of the 1120-byte X-Wing ciphertext.
    pub ciphertext: String,
    /// base64url of the 32-byte key confirmation.
    pub confirm: String,
    /// Unix time (seconds) after which the relay forgets the pair.
    pub expires_at: u64,
}

/// Why pairing failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PairingError {
    /// The document is not JSON of the expected shape.
    #[error("pairing document is malformed: {0}")]
    Malformed(String),
    /// The batch is empty.
    #[error("pairing batch is empty")]
    Empty,
    /// The batch has more offers than allowed.
    #[error("pairing batch has {count} pairs, more than the limit of {max}")]
    TooManyPairs {
        /// Offers in the batch.
        count: usize,
        /// The relay's limit.
        max: usize,
    },
    /// Two offers share a pair id.
    #[error("pairing batch repeats a pair id")]
    DuplicatePairId,
    /// A pair id is not 22 base64url characters.
    #[error("pair id is not 16 bytes of base64url")]
    InvalidPairId,
    /// The client id is not syntactically valid.
    #[error("client id is malformed")]
    InvalidClientId,
    /// A public key has the wrong length or encoding.
    #[error("public key is not a {PUBLIC_KEY_LEN}-byte X-Wing key in base64url")]
    InvalidPublicKey,
    /// A ciphertext has the wrong length or encoding.
    #[error("ciphertext is not a {CIPHERTEXT_LEN}-byte X-Wing ciphertext in base64url")]
    InvalidCiphertext,
    /// The answer is for another pair.
    #[error("pairing answer is for another pair id")]
    PairIdMismatch,
    /// The key confirmation does not match: different `SECRET`s, or tampering.
    #[error(
        "pairing key confirmation failed: the peers' SECRET values differ or the exchange was altered"
    )]
    ConfirmationFailed,
    /// The relay has a `SECRET` and the offer proves none.
    #[error(
        "this relay pairs only with clients that hold its SECRET (API Relay mode), and the \
         offer carries no proof of one"
    )]
    SecretRequired,
    /// The offer's proof is for another `SECRET`.
    #[error("the offer proves a different SECRET than this relay's; set the same SECRET on both")]
    SecretMismatch,
    /// The offer proves a `SECRET`, and the relay has none.
    #[error(
        "the offer proves a SECRET, and this relay has none; set the same SECRET on both, or none"
    )]
    SecretUnexpected,
}

impl PairingError {
    /// The registry reason a relay answers with.
    pub fn reason(&self) -> ErrorReason {
        match self {
            PairingError::TooManyPairs { .. } => ErrorReason::PairingLimit,
            PairingError::SecretRequired
            | PairingError::SecretMismatch
            | PairingError::SecretUnexpected => ErrorReason::SecretMismatch,
            _ => ErrorReason::PairingMalformed,
        }
    }
}

impl PairingRequest {
    /// Parses and checks a request body: shape, batch size, pair ids, client id syntax.
    /// Keys are checked when each offer is accepted.
    pub fn parse(body: &[u8], max_pairs: usize) -> Result<PairingRequest, PairingError> {
        let request: PairingRequest = serde_json::from_slice(body)
            .map_err(|error| PairingError::Malformed(error.to_string()))?;
        if !is_client_id_syntax(request.client_id.as_bytes()) {
            return Err(PairingError::InvalidClientId);
        }
        if request.pairs.is_empty() {
            return Err(PairingError::Empty);
        }
        if request.pairs.len() > max_pairs {
            return Err(PairingError::TooManyPairs {
                count: request.pairs.len(),
                max: max_pairs,
            });
        }
        let mut ids = std::collections::HashSet::with_capacity(request.pairs.len());
        for offer in &request.pairs {
            let id = PairId::parse(offer.pair_id.as_bytes()).ok_or(PairingError::InvalidPairId)?;
            if !ids.insert(id) {
                return Err(PairingError::DuplicatePairId);
            }
        }
        Ok(request)
    }
}

impl PairingResponse {
    /// Parses a response body.
    pub fn parse(body: &[u8]) -> Result<PairingResponse, PairingError> {
        serde_json::from_slice(body).map_err(|error| PairingError::Malformed(error.to_string()))
    }
}

/// The client's half of a pair in progress: the id and the X-Wing decapsulation key.
pub struct PendingPair {
    pair_id: PairId,
    decapsulation_key: xwing::DecapsulationKey,
}

impl core::fmt::Debug for PendingPair {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PendingPair")
            .field("pair_id", &self.pair_id)
            .finish_non_exhaustive()
    }
}

impl PendingPair {
    /// Draws a pair id and a fresh key pair.
    pub fn generate(rng: &mut impl rand_core::CryptoRng) -> Self {
        let pair_id = PairId::random(rng);
        let decapsulation_key = xwing::DecapsulationKey::generate(rng);
        PendingPair {
            pair_id,
            decapsulation_key,
        }
    }

    /// The pair id.
    pub fn pair_id(&self) -> PairId {
        self.pair_id
    }

    /// The offer to a relay without a `SECRET`.
    pub fn offer(&self) -> PairOffer {
        PairOffer {
            pair_id: self.pair_id.to_string(),
            public_key: b64_encode(self.public_key()),
            psk_proof: None,
        }
    }

    /// The offer to send to the relay of `scope`, with the proof of its `SECRET` when
    /// it has one.
    pub fn offer_in(&self, scope: PairingScope<'_>) -> PairOffer {
        PairOffer {
            pair_id: self.pair_id.to_string(),
            public_key: b64_encode(self.public_key()),
            psk_proof: scope
                .psk
                .map(|psk| b64_encode(&psk_proof(psk, scope, &self.pair_id, self.public_key()))),
        }
    }

    fn public_key(&self) -> &[u8; PUBLIC_KEY_LEN] {
        self.decapsulation_key.public_key()
    }

    /// The transcript hash of this pair under the relay's `answer`, as the relay's
    /// identity signs it (§4.7); checks that the answer is for this pair.
    pub fn transcript_hash(
        &self,
        scope: PairingScope<'_>,
        answer: &PairAnswer,
    ) -> Result<[u8; 32], PairingError> {
        let ciphertext = self.answered_ciphertext(answer)?;
        Ok(transcript_hash(
            scope,
            &self.pair_id,
            self.public_key(),
            &ciphertext,
        ))
    }

    /// The ciphertext of `answer`, once its pair id is this pair's.
    fn answered_ciphertext(
        &self,
        answer: &PairAnswer,
    ) -> Result<[u8; CIPHERTEXT_LEN], PairingError> {
        let answered_id =
            PairId::parse(answer.pair_id.as_bytes()).ok_or(PairingError::InvalidPairId)?;
        if answered_id != self.pair_id {
            return Err(PairingError::PairIdMismatch);
        }
        b64_decode_array(answer.ciphertext.as_bytes()).ok_or(PairingError::InvalidCiphertext)
    }

    /// Completes the pair from the relay's answer.
    pub fn complete(
        &self,
        scope: PairingScope<'_>,
        answer: &PairAnswer,
    ) -> Result<PairKeys, PairingError> {
        let ciphertext = self.answered_ciphertext(answer)?;
        let confirm: [u8; 32] =
            b64_decode_array(answer.confirm.as_bytes()).ok_or(PairingError::ConfirmationFailed)?;
        let shared = self.decapsulation_key.decapsulate(&ciphertext);
        let derived = derive(
            scope,
            &self.pair_id,
            self.public_key(),
            &ciphertext,
            shared.as_slice(),
        );
        if !bool::from(derived.confirm.ct_eq(&confirm)) {
            return Err(PairingError::ConfirmationFailed);
        }
        Ok(derived.keys)
    }
}

/// One offer the relay accepted.
pub struct AcceptedOffer {
    /// The offer's pair id.
    pub pair_id: PairId,
    /// The pair's keys, for the relay's store.
    pub keys: PairKeys,
    /// The answer for the client.
    pub answer: PairAnswer,
    /// The pair's transcript hash, which a relay identity signs (§4.7).
    pub transcript_hash: [u8; 32],
}

impl core::fmt::Debug for AcceptedOffer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AcceptedOffer")
            .field("pair_id", &self.pair_id)
            .field("answer", &self.answer)
            .finish_non_exhaustive()
    }
}

/// The relay's side: encapsulates to one offer.
pub fn accept_offer(
    scope: PairingScope<'_>,
    offer: &PairOffer,
    expires_at: u64,
    rng: &mut impl rand_core::CryptoRng,
) -> Result<AcceptedOffer, PairingError> {
    let pair_id = PairId::parse(offer.pair_id.as_bytes()).ok_or(PairingError::InvalidPairId)?;
    let public_key = b64_decode(offer.public_key.as_bytes())
        .filter(|key| key.len() == PUBLIC_KEY_LEN)
        .ok_or(PairingError::InvalidPublicKey)?;
    check_psk_proof(scope, offer, &pair_id, &public_key)?;
    let encapsulation_key =
        xwing::EncapsulationKey::from_bytes(&public_key).ok_or(PairingError::InvalidPublicKey)?;
    let (ciphertext, shared) = encapsulation_key.encapsulate(rng);
    let derived = derive(
        scope,
        &pair_id,
        &public_key,
        ciphertext.as_slice(),
        shared.as_slice(),
    );
    let answer = PairAnswer {
        pair_id: pair_id.to_string(),
        ciphertext: b64_encode(ciphertext.as_slice()),
        confirm: b64_encode(&derived.confirm),
        expires_at,
    };
    Ok(AcceptedOffer {
        pair_id,
        keys: derived.keys,
        answer,
        transcript_hash: derived.transcript_hash,
    })
}

/// The proof, in an offer, that the client holds `psk` (see the module's table).
fn psk_proof(psk: &[u8], scope: PairingScope<'_>, pair_id: &PairId, public_key: &[u8]) -> [u8; 32] {
    let psk_key = zeroize::Zeroizing::new(kdf::hmac(psk, &[LABEL_PSK]));
    let mut message = Vec::with_capacity(1400);
    put_lp(&mut message, LABEL_PSK_PROOF);
    put_lp(&mut message, scope.domain.as_bytes());
    put_lp(&mut message, scope.client_id.as_bytes());
    put_lp(&mut message, pair_id.as_bytes());
    put_lp(&mut message, public_key);
    kdf::hmac(psk_key.as_slice(), &[&message])
}

/// Checks, before any key work, that an offer proves the relay's `SECRET` when it has
/// one and proves none when it has none (compared in constant time).
fn check_psk_proof(
    scope: PairingScope<'_>,
    offer: &PairOffer,
    pair_id: &PairId,
    public_key: &[u8],
) -> Result<(), PairingError> {
    match (scope.psk, &offer.psk_proof) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(PairingError::SecretUnexpected),
        (Some(_), None) => Err(PairingError::SecretRequired),
        (Some(psk), Some(proof)) => {
            let given: [u8; 32] =
                b64_decode_array(proof.as_bytes()).ok_or(PairingError::SecretMismatch)?;
            let expected = psk_proof(psk, scope, pair_id, public_key);
            if bool::from(expected.ct_eq(&given)) {
                Ok(())
            } else {
                Err(PairingError::SecretMismatch)
            }
        }
    }
}

/// What pairing derives; exposed for test vectors.
pub struct PairingDerivation {
    /// SHA-256 of the transcript.
    pub transcript_hash: [u8; 32],
    /// The pair's keys.
    pub keys: PairKeys,
    /// The key confirmation value.
    pub confirm: [u8; 32],
}

/// The hash of one pair's transcript (`th`, docs/protocol.md §4.3): what binds the pair
/// to its domain, client id, pair id, public key and ciphertext, and what the relay's
/// identity signs for it (§4.7).
fn transcript_hash(
    scope: PairingScope<'_>,
    pair_id: &PairId,
    public_key: &[u8],
    ciphertext: &[u8],
) -> [u8; 32] {
    let mut transcript = Vec::with_capacity(2500);
    put_lp(&mut transcript, LABEL_TRANSCRIPT);
    put_lp(&mut transcript, scope.domain.as_bytes());
    put_lp(&mut transcript, scope.client_id.as_bytes());
    put_lp(&mut transcript, pair_id.as_bytes());
    put_lp(&mut transcript, public_key);
    put_lp(&mut transcript, ciphertext);
    transcript.push(u8::from(scope.psk.is_some()));
    kdf::sha256(&transcript)
}

/// Derives the pair keys from an X-Wing shared secret and the transcript.
pub fn derive(
    scope: PairingScope<'_>,
    pair_id: &PairId,
    public_key: &[u8],
    ciphertext: &[u8],
    shared_secret: &[u8],
) -> PairingDerivation {
    let transcript_hash = transcript_hash(scope, pair_id, public_key, ciphertext);
    let psk_key = scope
        .psk
        .map(|psk| zeroize::Zeroizing::new(kdf::hmac(psk, &[LABEL_PSK])));
    let prk = match &psk_key {
        Some(psk_key) => kdf::extract(&transcript_hash, &[shared_secret, psk_key.as_slice()]),
        None => kdf::extract(&transcript_hash, &[shared_secret]),
    };
    let mke_root = kdf::expand(prk.expose_secret(), LABEL_MKE_ROOT, b"");
    let mte_epoch0 = kdf::expand(prk.expose_secret(), LABEL_MTE_EPOCH0, b"");
    let confirm = *kdf::expand(prk.expose_secret(), LABEL_CONFIRM, b"").expose_secret();
    PairingDerivation {
        transcript_hash,
        keys: PairKeys::from_roots(mke_root, mte_epoch0),
        confirm,
    }
}
