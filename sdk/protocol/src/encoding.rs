//! Byte-level building blocks shared by every format: unpadded base64url and the
//! length-prefixed encoding used for transcripts and associated data.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Encodes bytes as base64url without padding (RFC 4648 §5).
pub fn b64_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes strict base64url without padding: no `=`, no whitespace, no stray trailing bits.
pub fn b64_decode(text: &[u8]) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// Decodes strict base64url into exactly `N` bytes.
pub fn b64_decode_array<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    // Reject before decoding so an oversized input costs nothing.
    if text.len() != (N * 4).div_ceil(3) {
        return None;
    }
    b64_decode(text)?.try_into().ok()
}

/// True when every byte is in the base64url alphabet.
pub(crate) fn is_b64url(text: &[u8]) -> bool {
    text.iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
}

/// Appends `bytes` preceded by its length as a 32-bit big-endian integer.
///
/// Every variable-length field that enters a hash, a KDF or associated data is framed
/// this way, so no two different field lists can produce the same byte string.
pub(crate) fn put_lp(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// A cursor over a byte slice for the strict binary parsers.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    /// Exactly `N` bytes.
    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A field preceded by a 16-bit big-endian length.
    pub(crate) fn lp16(&mut self) -> Option<&'a [u8]> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_is_strict() {
        assert_eq!(b64_decode(b"AQID"), Some(vec![1, 2, 3]));
        assert_eq!(b64_decode(b"AQI="), None, "padding is refused");
        assert_eq!(b64_decode(b"AQ+/"), None, "standard alphabet is refused");
        assert_eq!(
            b64_decode(b"AR"),
            None,
            "non-canonical trailing bits are refused"
        );
        assert_eq!(b64_decode_array::<3>(b"AQID"), Some([1, 2, 3]));
        assert_eq!(b64_decode_array::<4>(b"AQID"), None);
    }

    #[test]
    fn length_prefix_separates_fields() {
        let mut a = Vec::new();
        put_lp(&mut a, b"ab");
        put_lp(&mut a, b"c");
        let mut b = Vec::new();
        put_lp(&mut b, b"a");
        put_lp(&mut b, b"bc");
        assert_ne!(a, b);
    }
}
