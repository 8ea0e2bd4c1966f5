//! One request and its response: keys, associated data, heads and body streams.
//!
//! ```text
//! request key  = HKDF-Expand(message secret, "mte-relay/v1 request key", 32)
//! response key = HKDF-Expand(HKDF-Extract(response nonce, message secret),
//!                            "mte-relay/v1 response key", 32)
//! ```
//!
//! The response key mixes the request's message secret with a fresh 32-byte nonce
//! chosen by the relay, so a response is bound to its request (as in RFC 9458) and no
//! (key, nonce) pair can repeat even if a request were processed twice.

use crate::aead::{MessageCipher, NonceKind, TAG_LEN};
use crate::encoding::{b64_decode, b64_encode, put_lp};
use crate::head::{HeadError, RequestHead, ResponseHead};
use crate::header::{Flags, Mode, PROTOCOL_MAJOR, RelayHeader};
use crate::kdf::{
    self, LABEL_REQUEST_AAD, LABEL_REQUEST_KEY, LABEL_RESPONSE_AAD, LABEL_RESPONSE_KEY,
};
use crate::keys::MessageSecret;
use crate::padding;
use crate::registry::ErrorReason;
use crate::stream::{BodyDecoder, BodyEncoder};

/// Longest encrypted head block a relay accepts, in base64url characters.
pub const MAX_HEAD_BLOCK_CHARS: usize = 64 * 1024;
/// Length of the relay's response nonce.
pub const RESPONSE_NONCE_LEN: usize = 32;

/// Why a head could not be sealed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The head itself is invalid.
    #[error(transparent)]
    Head(#[from] HeadError),
    /// The sealed head would exceed [`MAX_HEAD_BLOCK_CHARS`] or the MTE cap.
    #[error("encrypted head block exceeds its size limit")]
    TooLarge,
}

/// Why a received head block could not be opened.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The block is longer than [`MAX_HEAD_BLOCK_CHARS`].
    #[error("encrypted head block exceeds its size limit")]
    TooLarge,
    /// The block is not base64url, or too short to hold its fixed fields.
    #[error("encrypted head block is malformed")]
    Malformed,
    /// The block failed to authenticate.
    #[error("encrypted head block failed to authenticate")]
    Authentication,
    /// The block authenticated but its plaintext is not a valid head.
    #[error("decrypted head is invalid: {0}")]
    Head(#[from] HeadError),
}

impl OpenError {
    /// The registry reason a relay answers with.
    pub fn reason(&self) -> ErrorReason {
        match self {
            OpenError::TooLarge => ErrorReason::HeadTooLarge,
            OpenError::Malformed => ErrorReason::RelayHeaderMalformed,
            OpenError::Authentication | OpenError::Head(_) => ErrorReason::DecodeFailed,
        }
    }
}

/// Keys and associated data of one request, on either side.
pub struct RequestContext {
    secret: MessageSecret,
    mode: Mode,
    flags: Flags,
    aad: Vec<u8>,
    cipher: MessageCipher,
}

impl RequestContext {
    /// The context of the request described by `header`, sent with `method` to `domain`
    /// (the request's host, lowercase, without port).
    pub fn new(secret: MessageSecret, header: &RelayHeader, method: &str, domain: &str) -> Self {
        let aad = request_aad(header, method, domain);
        let key = kdf::expand(secret.0.expose_secret(), LABEL_REQUEST_KEY, b"");
        RequestContext {
            cipher: MessageCipher::new(&key, aad.clone()),
            secret,
            mode: header.mode,
            flags: header.flags,
            aad,
        }
    }

    /// True when the request announces a body stream.
    pub fn has_body(&self) -> bool {
        self.flags.contains(Flags::HAS_BODY)
    }

    /// Seals the head into the value of the `x-mte-relay-head` header.
    pub fn seal_head(&self, head: &RequestHead) -> Result<String, SealError> {
        let mut plain = Vec::new();
        head.encode_into(&mut plain)?;
        seal_head_block(&self.cipher, self.mode, &plain, &[])
    }

    /// Opens a received `x-mte-relay-head` value.
    pub fn open_head(&self, value: &[u8]) -> Result<RequestHead, OpenError> {
        let block = decode_head_block(value)?;
        let plain = open_head_block(&self.cipher, self.mode, &block)?;
        Ok(RequestHead::decode(&plain)?)
    }

    /// An encoder for the request body.
    pub fn body_encoder(&self) -> BodyEncoder {
        BodyEncoder::new(self.cipher.clone(), self.mode)
    }

    /// A decoder for the request body, refusing more than `limit` plaintext bytes.
    pub fn body_decoder(&self, limit: Option<u64>) -> BodyDecoder {
        BodyDecoder::new(self.cipher.clone(), self.mode, limit)
    }

    /// The relay's side of the response: draws a fresh response nonce.
    pub fn response_sealer(
        &self,
        rng: &mut impl rand_core::CryptoRng,
        status: u16,
        has_body: bool,
    ) -> ResponseContext {
        self.response_sealer_with(rng, status, Flags::with_body(has_body))
    }

    /// [`RequestContext::response_sealer`] with explicit response flags, such as
    /// [`Flags::PADDED_RECORDS`] for a streamed MKE body whose record lengths must not
    /// show the size of each write (one token of a model's answer, one event).
    /// `PADDED_RECORDS` is kept only for an MKE response with a body: an MTE body is
    /// one padded message already, and a bodiless response has no records.
    pub fn response_sealer_with(
        &self,
        rng: &mut impl rand_core::CryptoRng,
        status: u16,
        flags: Flags,
    ) -> ResponseContext {
        let has_body = flags.contains(Flags::HAS_BODY);
        let flags = if self.mode == Mode::Mke && has_body {
            flags
        } else {
            Flags::with_body(has_body)
        };
        let mut nonce = [0u8; RESPONSE_NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        self.response_with_nonce(nonce, status, flags)
    }

    /// The client's side of the response: opens the `x-mte-relay-head` value of a
    /// response with HTTP status `status`.
    pub fn open_response(
        &self,
        status: u16,
        value: &[u8],
    ) -> Result<(ResponseContext, ResponseHead), OpenError> {
        let block = decode_head_block(value)?;
        if block.len() < 1 + RESPONSE_NONCE_LEN + TAG_LEN {
            return Err(OpenError::Malformed);
        }
        let flags = Flags::from_response_bits(block[0])
            .filter(|flags| self.mode == Mode::Mke || !flags.contains(Flags::PADDED_RECORDS))
            .ok_or(OpenError::Malformed)?;
        let mut nonce = [0u8; RESPONSE_NONCE_LEN];
        nonce.copy_from_slice(&block[1..1 + RESPONSE_NONCE_LEN]);
        let response = self.response_with_nonce(nonce, status, flags);
        let plain = open_head_block(
            &response.cipher,
            self.mode,
            &block[1 + RESPONSE_NONCE_LEN..],
        )?;
        let head = ResponseHead::decode(&plain)?;
        Ok((response, head))
    }

    fn response_with_nonce(
        &self,
        nonce: [u8; RESPONSE_NONCE_LEN],
        status: u16,
        flags: Flags,
    ) -> ResponseContext {
        let prk = kdf::extract(&nonce, &[self.secret.0.expose_secret()]);
        let key = kdf::expand(prk.expose_secret(), LABEL_RESPONSE_KEY, b"");
        let mut aad = Vec::with_capacity(self.aad.len() + 64);
        put_lp(&mut aad, LABEL_RESPONSE_AAD);
        put_lp(&mut aad, &self.aad);
        aad.extend_from_slice(&status.to_be_bytes());
        aad.push(flags.bits());
        put_lp(&mut aad, &nonce);
        ResponseContext {
            cipher: MessageCipher::new(&key, aad),
            mode: self.mode,
            flags,
            nonce,
        }
    }
}

/// Keys and associated data of one response, on either side.
pub struct ResponseContext {
    cipher: MessageCipher,
    mode: Mode,
    flags: Flags,
    nonce: [u8; RESPONSE_NONCE_LEN],
}

impl ResponseContext {
    /// True when the response carries a body stream.
    pub fn has_body(&self) -> bool {
        self.flags.contains(Flags::HAS_BODY)
    }

    /// Seals the head into the value of the response's `x-mte-relay-head` header:
    /// flags, response nonce, then the sealed head.
    pub fn seal_head(&self, head: &ResponseHead) -> Result<String, SealError> {
        let mut plain = Vec::new();
        head.encode_into(&mut plain)?;
        let mut prefix = Vec::with_capacity(1 + RESPONSE_NONCE_LEN);
        prefix.push(self.flags.bits());
        prefix.extend_from_slice(&self.nonce);
        seal_head_block(&self.cipher, self.mode, &plain, &prefix)
    }

    /// True when the body's records are padded ([`Flags::PADDED_RECORDS`]).
    pub fn pads_records(&self) -> bool {
        self.flags.contains(Flags::PADDED_RECORDS)
    }

    /// An encoder for the response body (padding its records when the flags say so).
    pub fn body_encoder(&self) -> BodyEncoder {
        BodyEncoder::new(self.cipher.clone(), self.mode).padding_records(self.pads_records())
    }

    /// A decoder for the response body, refusing more than `limit` plaintext bytes.
    pub fn body_decoder(&self, limit: Option<u64>) -> BodyDecoder {
        BodyDecoder::new(self.cipher.clone(), self.mode, limit).padding_records(self.pads_records())
    }
}

/// Associated data of a request: every clear field that the relay acts upon.
fn request_aad(header: &RelayHeader, method: &str, domain: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(64 + method.len() + domain.len() + header.client_id.len());
    put_lp(&mut aad, LABEL_REQUEST_AAD);
    aad.push(PROTOCOL_MAJOR);
    aad.push(header.mode.wire_byte());
    aad.push(header.flags.bits());
    put_lp(&mut aad, method.as_bytes());
    put_lp(&mut aad, domain.as_bytes());
    put_lp(&mut aad, header.client_id.as_bytes());
    put_lp(&mut aad, header.pair_id.as_bytes());
    aad.extend_from_slice(&header.seq.to_be_bytes());
    aad
}

fn seal_head_block(
    cipher: &MessageCipher,
    mode: Mode,
    plain: &[u8],
    prefix: &[u8],
) -> Result<String, SealError> {
    let mut block = prefix.to_vec();
    match mode {
        Mode::Mke => cipher.seal_block(NonceKind::Head, plain, &mut block),
        Mode::Mte => {
            let mut padded = Vec::new();
            padding::pad_into(plain, &mut padded).ok_or(SealError::TooLarge)?;
            cipher.seal_block(NonceKind::Head, &padded, &mut block);
        }
    }
    let value = b64_encode(&block);
    if value.len() > MAX_HEAD_BLOCK_CHARS {
        return Err(SealError::TooLarge);
    }
    Ok(value)
}

fn decode_head_block(value: &[u8]) -> Result<Vec<u8>, OpenError> {
    if value.len() > MAX_HEAD_BLOCK_CHARS {
        return Err(OpenError::TooLarge);
    }
    b64_decode(value).ok_or(OpenError::Malformed)
}

fn open_head_block(cipher: &MessageCipher, mode: Mode, block: &[u8]) -> Result<Vec<u8>, OpenError> {
    let plain = cipher
        .open_block(NonceKind::Head, block)
        .map_err(|_| OpenError::Authentication)?;
    match mode {
        Mode::Mke => Ok(plain),
        Mode::Mte => padding::unpad(&plain)
            .map(<[u8]>::to_vec)
            .ok_or(OpenError::Malformed),
    }
}
