//! Bodies of the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs` at the repository root).
//!
//! They live in the crate so that an ordinary `cargo test` replays every seed corpus
//! through them (`tests/fuzz_corpus.rs`). Each function accepts arbitrary bytes, must
//! never panic, and asserts the invariants of the parser it drives: what parses
//! formats back to the same bytes, what is sealed opens to the same value, and a
//! decoder never produces more plaintext than it was given.
//!
//! Not part of the API: everything here is for fuzzing and tests only.

use crate::capabilities::Capabilities;
use crate::head::{RequestHead, ResponseHead};
use crate::header::{Flags, Mode, RelayHeader};
use crate::identity::{IdentityPublicKey, Pin, RelayIdentity};
use crate::ids::PairId;
use crate::keys::PairKeys;
use crate::message::{RequestContext, SealError};
use crate::padding::MTE_MAX_MESSAGE;
use crate::pairing::{PairingRequest, PairingResponse, PairingScope, PendingPair, accept_offer};
use crate::registry::{ErrorReason, parse_error_header};
use crate::secret::Secret32;
use crate::stream::{BodyDecoder, BodyError};

/// The body of a fuzz target.
pub type Target = fn(&[u8]);

/// Every target: its name (the file stem under `fuzz/fuzz_targets/` and the corpus
/// directory under `fuzz/corpus/`) and its body.
pub const TARGETS: &[(&str, Target)] = &[
    ("relay_header", relay_header),
    ("error_header", error_header),
    ("capabilities", capabilities),
    ("pairing_request", pairing_request),
    ("pairing_response", pairing_response),
    ("head_block", head_block),
    ("body_stream", body_stream),
    ("identity", identity),
];

/// Domain of the fixed fuzzing context.
pub const DOMAIN: &str = "fuzz.example";
/// Method of the fixed fuzzing context.
pub const METHOD: &str = "POST";
/// Client id of the fixed fuzzing context and pairing scope.
pub const CLIENT_ID: &str = "fuzz-client";
/// Sequence number of the fixed fuzzing context.
pub const SEQ: u64 = 7;
/// Seed of the [`FuzzRng`] that generates the pending pair of the response target.
pub const PENDING_SEED: u8 = 2;
/// Largest batch the pairing target accepts.
pub const MAX_PAIRS: usize = 4;
/// Every byte of the identity key of the relay whose signatures the identity target
/// checks.
pub const IDENTITY_KEY_BYTE: u8 = 4;
/// Seed of the [`FuzzRng`] behind the relay's answer in [`signed_pairing`].
pub const ANSWER_SEED: u8 = 9;
/// `expires_at` of the answer in [`signed_pairing`].
pub const ANSWER_EXPIRES_AT: u64 = 1_700_000_000;

/// The request context every head and body target uses: fixed keys, fixed header.
pub fn request_context(mode: Mode) -> RequestContext {
    let keys = PairKeys::from_roots(
        Secret32::from_bytes([0x11; 32]),
        Secret32::from_bytes([0x22; 32]),
    );
    let (secret, _) = keys
        .message_secret(mode, SEQ)
        .expect("sequence 7 lies in MTE epoch 0");
    let header = RelayHeader {
        mode,
        flags: Flags::HAS_BODY,
        seq: SEQ,
        pair_id: PairId([5; 16]),
        client_id: CLIENT_ID.into(),
    };
    RequestContext::new(secret, &header, METHOD, DOMAIN)
}

/// The body encoder of [`request_context`] with padded records, as the body-stream
/// target decodes with selector bit 3 (for its seed corpus).
pub fn padded_body_encoder(mode: Mode) -> crate::stream::BodyEncoder {
    request_context(mode).body_encoder().padding_records(true)
}

/// The pairing scope of the pairing targets.
pub fn scope() -> PairingScope<'static> {
    PairingScope {
        domain: DOMAIN,
        client_id: CLIENT_ID,
        psk: None,
    }
}

/// A deterministic generator (SHA-256 in counter mode over a seed) so that fuzzing runs
/// reproduce exactly.
///
/// **Not a secure source of randomness**: its output is a function of a public seed.
/// It implements `CryptoRng` only because the pairing API requires one.
pub struct FuzzRng {
    seed: [u8; 32],
    counter: u64,
}

impl FuzzRng {
    /// A generator whose whole output is determined by `seed`.
    pub fn new(seed: u8) -> Self {
        FuzzRng {
            seed: [seed; 32],
            counter: 0,
        }
    }
}

impl rand_core::TryRng for FuzzRng {
    type Error = core::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut bytes = [0u8; 4];
        self.try_fill_bytes(&mut bytes)?;
        Ok(u32::from_le_bytes(bytes))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut bytes = [0u8; 8];
        self.try_fill_bytes(&mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for piece in dst.chunks_mut(32) {
            let mut input = [0u8; 40];
            input[..32].copy_from_slice(&self.seed);
            input[32..].copy_from_slice(&self.counter.to_be_bytes());
            self.counter += 1;
            let block = crate::kdf::sha256(&input);
            piece.copy_from_slice(&block[..piece.len()]);
        }
        Ok(())
    }
}

impl rand_core::TryCryptoRng for FuzzRng {}

/// A tiny xorshift generator that turns one input byte into a sequence of split points.
struct Splitter(u64);

impl Splitter {
    fn new(seed: u8) -> Self {
        Splitter(0x9E37_79B9_7F4A_7C15 ^ u64::from(seed).wrapping_mul(0x100_0000_01B3))
    }

    /// The length of the next piece of a split: mostly small, sometimes large.
    fn next_len(&mut self) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        match self.0 % 8 {
            0 => 0,
            1..=5 => (self.0 >> 8) as usize % 64 + 1,
            6 => (self.0 >> 8) as usize % 5000 + 1,
            _ => (self.0 >> 8) as usize % 70_000 + 1,
        }
    }

    /// Cuts `data` into pieces (empty pieces included).
    fn split<'a>(&mut self, mut data: &'a [u8]) -> Vec<&'a [u8]> {
        let mut pieces = Vec::new();
        while !data.is_empty() {
            let (piece, rest) = data.split_at(self.next_len().min(data.len()));
            pieces.push(piece);
            data = rest;
        }
        pieces
    }
}

/// `x-mte-relay`: whatever parses formats back to exactly the same bytes.
pub fn relay_header(data: &[u8]) {
    if let Ok(header) = RelayHeader::parse(data) {
        assert_eq!(
            header.format().as_bytes(),
            data,
            "relay header is canonical"
        );
    }
}

/// `x-mte-relay-error`: whatever parses is exactly a registered token.
pub fn error_header(data: &[u8]) {
    if let Ok(reason) = parse_error_header(data) {
        assert_eq!(reason.token().as_bytes(), data);
        assert_eq!(ErrorReason::from_token(reason.token()), Some(reason));
    }
}

/// The capabilities document: what parses serialises and parses back to itself.
pub fn capabilities(data: &[u8]) {
    if let Ok(document) = Capabilities::parse(data) {
        let json = serde_json::to_vec(&document).expect("a document serialises");
        assert_eq!(Capabilities::parse(&json), Ok(document));
    }
}

/// The pairing request: what parses obeys the batch rules, serialises and parses back
/// to itself, and its first offer is either refused cleanly or answered for its id.
pub fn pairing_request(data: &[u8]) {
    let Ok(request) = PairingRequest::parse(data, MAX_PAIRS) else {
        return;
    };
    assert!(!request.pairs.is_empty() && request.pairs.len() <= MAX_PAIRS);
    let json = serde_json::to_vec(&request).expect("a request serialises");
    assert_eq!(PairingRequest::parse(&json, MAX_PAIRS), Ok(request.clone()));
    if let Ok(accepted) = accept_offer(scope(), &request.pairs[0], 1, &mut FuzzRng::new(1)) {
        assert_eq!(accepted.pair_id.to_string(), request.pairs[0].pair_id);
        assert_eq!(accepted.answer.pair_id, request.pairs[0].pair_id);
    }
}

/// The pairing response: what parses serialises and parses back to itself, and
/// completing a fixed pending pair from its first answer never panics (the seed corpus
/// holds a genuine answer for that pair, so both outcomes are reachable).
pub fn pairing_response(data: &[u8]) {
    let Ok(response) = PairingResponse::parse(data) else {
        return;
    };
    let json = serde_json::to_vec(&response).expect("a response serialises");
    assert_eq!(PairingResponse::parse(&json), Ok(response.clone()));
    if let Some(answer) = response.pairs.first() {
        let pending = PendingPair::generate(&mut FuzzRng::new(PENDING_SEED));
        let expected_id = pending.pair_id().to_string();
        if pending.complete(scope(), answer).is_ok() {
            assert_eq!(answer.pair_id, expected_id);
        }
    }
}

/// The fixed relay identity of the identity target.
pub fn relay_identity() -> &'static RelayIdentity {
    static IDENTITY: std::sync::OnceLock<RelayIdentity> = std::sync::OnceLock::new();
    IDENTITY.get_or_init(|| RelayIdentity::from_key(&Secret32::from_bytes([IDENTITY_KEY_BYTE; 32])))
}

/// The genuine signed pairing of the identity target: the relay's signed answer to the
/// offer of the pending pair seeded with [`PENDING_SEED`].
pub fn signed_pairing() -> &'static PairingResponse {
    static SIGNED: std::sync::OnceLock<PairingResponse> = std::sync::OnceLock::new();
    SIGNED.get_or_init(|| {
        let offer = PendingPair::generate(&mut FuzzRng::new(PENDING_SEED)).offer();
        let accepted = accept_offer(
            scope(),
            &offer,
            ANSWER_EXPIRES_AT,
            &mut FuzzRng::new(ANSWER_SEED),
        )
        .expect("the fixed offer is valid");
        let signature = relay_identity()
            .sign_pairing(
                scope(),
                &[accepted.transcript_hash],
                core::slice::from_ref(&accepted.answer),
                &mut FuzzRng::new(ANSWER_SEED),
            )
            .expect("signs");
        PairingResponse {
            pairs: vec![accepted.answer],
            signature: Some(signature),
        }
    })
}

/// The relay identity: pins and public keys that parse print back to text that parses
/// to the same value, and a pairing response's signature verifies under the fixed
/// relay's key, as a client checks it, only over exactly the answers that relay signed.
///
/// The first byte selects the case: 0 a pin, 1 a relay public key, anything else a
/// pairing response (JSON) answering the offer of [`signed_pairing`].
pub fn identity(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector {
        0 => {
            let Ok(text) = core::str::from_utf8(rest) else {
                return;
            };
            if let Ok(pin) = Pin::parse(text) {
                assert_eq!(Pin::parse(&pin.to_string()), Ok(pin));
            }
        }
        1 => {
            if let Ok(key) = IdentityPublicKey::parse(rest) {
                let text = key.to_text();
                assert_eq!(IdentityPublicKey::parse(text.as_bytes()).as_ref(), Ok(&key));
                assert_eq!(key.pin().check(Some(&text)), Ok(key));
            }
        }
        _ => {
            let Ok(response) = PairingResponse::parse(rest) else {
                return;
            };
            let Some(signature) = &response.signature else {
                return;
            };
            let genuine = signed_pairing();
            // What a client does: the transcript hash from its own pending pair and the
            // answer received, then the signature over it.
            let pending = PendingPair::generate(&mut FuzzRng::new(PENDING_SEED));
            let Some(Ok(hash)) = response
                .pairs
                .first()
                .map(|answer| pending.transcript_hash(scope(), answer))
            else {
                return;
            };
            let hashes = vec![hash; response.pairs.len()];
            let verified = relay_identity().public_key().verify_pairing(
                scope(),
                &hashes,
                &response.pairs,
                signature,
            );
            if verified.is_ok() {
                assert_eq!(
                    response.pairs, genuine.pairs,
                    "only the signed answers verify"
                );
            }
        }
    }
}

/// The encrypted head block, and the head encoding inside it.
///
/// The first byte selects the case: bit 0 the mode (MTE when set), bits 1 and 2 what
/// the rest is: 0 a request `x-mte-relay-head` value to open, 1 a response one (status
/// in the next two bytes), 2 a plaintext request head, 3 a plaintext response head.
pub fn head_block(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mode = if selector & 1 == 0 {
        Mode::Mke
    } else {
        Mode::Mte
    };
    let context = request_context(mode);
    match (selector >> 1) & 3 {
        0 => {
            // Sealing is deterministic for a fixed context, so whatever opens must be
            // exactly what sealing the opened head produces.
            if let Ok(head) = context.open_head(rest) {
                let sealed = context.seal_head(&head).expect("an opened head reseals");
                assert_eq!(sealed.as_bytes(), rest);
            }
        }
        1 => {
            let Some((status, value)) = rest.split_at_checked(2) else {
                return;
            };
            let status = u16::from_be_bytes([status[0], status[1]]);
            if let Ok((response, head)) = context.open_response(status, value) {
                let sealed = response.seal_head(&head).expect("an opened head reseals");
                assert_eq!(sealed.as_bytes(), value);
            }
        }
        2 => {
            if let Ok(head) = RequestHead::decode(rest) {
                let mut encoded = Vec::new();
                head.encode_into(&mut encoded)
                    .expect("a decoded head encodes");
                assert_eq!(encoded, rest, "request head encoding is canonical");
                match context.seal_head(&head) {
                    Ok(sealed) => {
                        assert_eq!(context.open_head(sealed.as_bytes()), Ok(head));
                    }
                    Err(error) => assert_eq!(error, SealError::TooLarge),
                }
            }
        }
        _ => {
            if let Ok(head) = ResponseHead::decode(rest) {
                let mut encoded = Vec::new();
                head.encode_into(&mut encoded)
                    .expect("a decoded head encodes");
                assert_eq!(encoded, rest, "response head encoding is canonical");
                let sealer = context.response_sealer(&mut FuzzRng::new(3), 200, false);
                match sealer.seal_head(&head) {
                    Ok(sealed) => {
                        let (_, opened) = context
                            .open_response(200, sealed.as_bytes())
                            .expect("a sealed response head opens");
                        assert_eq!(opened, head);
                    }
                    Err(error) => assert_eq!(error, SealError::TooLarge),
                }
            }
        }
    }
}

/// The body stream decoder, fed in arbitrary splits.
///
/// The first byte selects the case: bit 0 the mode (MTE when set); bit 1 clear feeds
/// the rest to a decoder as received bytes, bit 1 set encodes the rest as a body and
/// decodes it back; bit 2 sets a plaintext limit (the second byte, times 1024) on the
/// raw decoder; bit 3 pads every record (the response flag `PADDED_RECORDS`, MKE only).
/// The second byte also seeds the split points.
pub fn body_stream(data: &[u8]) {
    let Some((&[selector, seed], rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let mode = if selector & 1 == 0 {
        Mode::Mke
    } else {
        Mode::Mte
    };
    let context = request_context(mode);
    let padded = selector & 8 != 0;
    let decoder = |limit| context.body_decoder(limit).padding_records(padded);
    if selector & 2 == 0 {
        let limit = (selector & 4 != 0).then_some(u64::from(seed) * 1024);
        let (whole, whole_end) = decode_in_pieces(decoder(limit), &[rest]);
        let pieces = Splitter::new(seed).split(rest);
        let (split, split_end) = decode_in_pieces(decoder(limit), &pieces);
        assert_eq!(whole, split, "plaintext does not depend on the split");
        assert_eq!(
            whole_end, split_end,
            "the outcome does not depend on the split"
        );
    } else {
        let plaintext = match mode {
            Mode::Mke => rest,
            Mode::Mte => &rest[..rest.len().min(MTE_MAX_MESSAGE)],
        };
        let mut splitter = Splitter::new(seed);
        let mut encoder = context.body_encoder().padding_records(padded);
        let mut wire = Vec::new();
        for (index, piece) in splitter.split(plaintext).into_iter().enumerate() {
            encoder.push(piece, &mut wire).expect("push within the cap");
            if index % 3 == 2 {
                encoder.flush(&mut wire).expect("flush before finish");
            }
        }
        encoder.finish(&mut wire).expect("finish within the cap");
        let pieces = splitter.split(&wire);
        let (decoded, end) = decode_in_pieces(decoder(None), &pieces);
        assert_eq!(end, Ok(()));
        assert_eq!(decoded, plaintext);
    }
}

/// Pushes `pieces` into `decoder`; returns the plaintext and the outcome of `finish`.
/// Checks on the way that a failed decoder stays failed and that the plaintext never
/// outgrows the input.
fn decode_in_pieces(
    mut decoder: BodyDecoder,
    pieces: &[&[u8]],
) -> (Vec<u8>, Result<(), BodyError>) {
    let mut out = Vec::new();
    let mut consumed = 0usize;
    let mut failure = None;
    for piece in pieces {
        consumed += piece.len();
        let result = decoder.push(piece, &mut out);
        if let Some(first) = failure {
            assert_eq!(result, Err(first), "a failed stream stays failed");
        } else if let Err(error) = result {
            failure = Some(error);
        }
        assert!(out.len() <= consumed, "more plaintext than input");
        assert_eq!(decoder.plaintext_len(), out.len() as u64);
    }
    let end = decoder.finish();
    match failure {
        Some(error) => assert_eq!(end, Err(error)),
        None => assert_eq!(end.is_ok(), decoder.is_finished()),
    }
    (out, end)
}
