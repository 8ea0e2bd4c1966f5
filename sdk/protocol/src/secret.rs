//! Key material that zeroizes itself on drop and never prints.

use core::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// 32 bytes of secret key material.
///
/// `Debug` prints a placeholder, never the bytes; the memory is wiped on drop.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Secret32([u8; 32]);

impl Secret32 {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Secret32(bytes)
    }

    /// The raw bytes, for persisting pair state (encrypted at rest) or test vectors.
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Secret32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret32(<redacted>)")
    }
}

/// A secret of arbitrary length (HMAC keys, the relay `SECRET`).
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Wraps raw secret bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        SecretBytes(bytes.into())
    }

    /// The raw bytes.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<redacted {} bytes>)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_contains_key_bytes() {
        let secret = Secret32::from_bytes([0xAB; 32]);
        let printed = format!("{secret:?}");
        assert!(!printed.to_lowercase().contains("ab"), "{printed}");
        let bytes = SecretBytes::new(b"hunter2-hunter2".to_vec());
        assert!(!format!("{bytes:?}").contains("hunter2"));
    }
}
