//! AES-256-GCM with the protocol's nonce layout.
//!
//! Every message direction has its own key, so a nonce only has to be unique within
//! one message: `kind (1) || counter (8, big-endian) || 0x00 0x00 || final (1)`.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};

use crate::secret::Secret32;

/// Length of an AES-GCM tag.
pub const TAG_LEN: usize = 16;

/// What a nonce protects.
#[derive(Clone, Copy)]
pub(crate) enum NonceKind {
    Head = 1,
    Body = 2,
}

pub(crate) fn nonce(kind: NonceKind, counter: u64, last: bool) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[0] = kind as u8;
    nonce[1..9].copy_from_slice(&counter.to_be_bytes());
    nonce[11] = u8::from(last);
    nonce
}

/// One message direction's cipher and associated data.
#[derive(Clone)]
pub(crate) struct MessageCipher {
    cipher: Aes256Gcm,
    aad: std::sync::Arc<[u8]>,
}

/// The tag did not verify: wrong key, tampered ciphertext, nonce or associated data.
#[derive(Debug)]
pub(crate) struct AuthFailed;

impl MessageCipher {
    pub(crate) fn new(key: &Secret32, aad: Vec<u8>) -> Self {
        MessageCipher {
            // Borrowed straight from the secret: no stack copy of the key is left.
            cipher: Aes256Gcm::new(key.expose_secret().into()),
            aad: aad.into(),
        }
    }

    /// Encrypts `buffer` in place and returns the tag.
    pub(crate) fn seal_in_place(&self, nonce: [u8; 12], buffer: &mut [u8]) -> [u8; TAG_LEN] {
        let nonce = Nonce::from(nonce);
        // Encryption only fails for messages longer than GCM's 64 GiB bound, which the
        // chunk size and head limits make impossible. Failing loudly matters: on that
        // path the buffer still holds the plaintext.
        self.cipher
            .encrypt_inout_detached(&nonce, &self.aad, buffer.into())
            .expect("a record or head is far below GCM's length bound")
            .into()
    }

    /// Decrypts `buffer` in place after checking `tag`.
    pub(crate) fn open_in_place(
        &self,
        nonce: [u8; 12],
        buffer: &mut [u8],
        tag: &[u8],
    ) -> Result<(), AuthFailed> {
        let nonce = Nonce::from(nonce);
        let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| AuthFailed)?;
        let tag = Tag::from(tag);
        self.cipher
            .decrypt_inout_detached(&nonce, &self.aad, buffer.into(), &tag)
            .map_err(|_| AuthFailed)
    }

    /// Seals `plaintext` as one block: ciphertext followed by the tag.
    pub(crate) fn seal_block(&self, kind: NonceKind, plaintext: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(plaintext);
        let tag = self.seal_in_place(nonce(kind, 0, true), &mut out[start..]);
        out.extend_from_slice(&tag);
    }

    /// Opens a block sealed by [`MessageCipher::seal_block`].
    pub(crate) fn open_block(&self, kind: NonceKind, block: &[u8]) -> Result<Vec<u8>, AuthFailed> {
        let body_len = block.len().checked_sub(TAG_LEN).ok_or(AuthFailed)?;
        let (ciphertext, tag) = block.split_at(body_len);
        let mut plaintext = ciphertext.to_vec();
        self.open_in_place(nonce(kind, 0, true), &mut plaintext, tag)?;
        Ok(plaintext)
    }
}
