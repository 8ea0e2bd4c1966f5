//! The plaintext of request and response heads, before sealing.
//!
//! Layout (all integers big-endian):
//!
//! ```text
//! request head  = token (16 bytes), u64 not_after, u16 path_len, path, fields
//! response head = fields
//! fields        = u16 count, count × (u16 name_len, name, u16 value_len, value)
//! ```
//!
//! Names are lowercase RFC 9110 tokens; values are RFC 9110 field values (no control
//! characters other than tab). Repeated names
//! are kept in order, so `set-cookie` survives. The token is the request's
//! [`ResendToken`] and `not_after` the Unix time (on the relay's clock) after which a
//! relay must not forward it, both the same in every resend of one request.

use crate::encoding::Reader;
use crate::ids::{RESEND_TOKEN_LEN, ResendToken};

/// A `content-length` value (RFC 9110 §8.6): one or more ASCII digits, nothing else
/// (no sign, no spaces, no list). The one reading of it shared by the client, which
/// states a body's length in the sealed head, and the relay, which holds the body to
/// it.
pub fn parse_content_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    core::str::from_utf8(value).ok()?.parse().ok()
}

/// One header field.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HeaderField {
    /// Lowercase field name.
    pub name: String,
    /// Raw field value.
    pub value: Vec<u8>,
}

impl HeaderField {
    /// A field from a name and a value.
    pub fn new(name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        HeaderField {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// What a request head protects: the resend token, the path with its query, and the
/// end-to-end headers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RequestHead {
    /// The request's resend token.
    pub token: ResendToken,
    /// Unix time, on the relay's clock, after which the relay must not forward the
    /// request (enforced for non-idempotent methods, whose tokens the relay keeps until
    /// then, so that no copy held back on the path can run after its token is gone).
    pub not_after: u64,
    /// Origin-form target, `/path?query`.
    pub path: String,
    /// End-to-end header fields in order.
    pub headers: Vec<HeaderField>,
}

/// What a response head protects: the end-to-end headers (the status is authenticated
/// as associated data and travels as the HTTP status).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ResponseHead {
    /// End-to-end header fields in order.
    pub headers: Vec<HeaderField>,
}

/// Why a head could not be encoded or decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// The path is empty, does not start with `/`, or has bytes outside visible ASCII.
    #[error("request path is not a valid origin-form target")]
    InvalidPath,
    /// A header name is not a lowercase token.
    #[error("header name is not a lowercase token")]
    InvalidName,
    /// A header value contains a control character other than tab.
    #[error("header value contains a control character")]
    InvalidValue,
    /// A field, or the number of fields, exceeds 65535.
    #[error("head field is longer than 65535 bytes")]
    TooLong,
    /// The encoding ended early or has trailing bytes.
    #[error("head encoding is truncated or has trailing bytes")]
    Malformed,
}

impl RequestHead {
    /// Appends the encoded head to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), HeadError> {
        if !is_valid_path(self.path.as_bytes()) {
            return Err(HeadError::InvalidPath);
        }
        out.extend_from_slice(self.token.as_bytes());
        out.extend_from_slice(&self.not_after.to_be_bytes());
        put_lp16(out, self.path.as_bytes())?;
        encode_fields(&self.headers, out)
    }

    /// Decodes a whole encoded head; trailing bytes are an error.
    pub fn decode(bytes: &[u8]) -> Result<RequestHead, HeadError> {
        let mut reader = Reader::new(bytes);
        let token = reader
            .array::<RESEND_TOKEN_LEN>()
            .ok_or(HeadError::Malformed)?;
        let not_after = u64::from_be_bytes(reader.array::<8>().ok_or(HeadError::Malformed)?);
        let path = reader.lp16().ok_or(HeadError::Malformed)?;
        if !is_valid_path(path) {
            return Err(HeadError::InvalidPath);
        }
        let headers = decode_fields(&mut reader)?;
        if !reader.is_empty() {
            return Err(HeadError::Malformed);
        }
        Ok(RequestHead {
            token: ResendToken(token),
            not_after,
            path: String::from_utf8_lossy(path).into_owned(),
            headers,
        })
    }
}

impl ResponseHead {
    /// Appends the encoded head to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), HeadError> {
        encode_fields(&self.headers, out)
    }

    /// Decodes a whole encoded head; trailing bytes are an error.
    pub fn decode(bytes: &[u8]) -> Result<ResponseHead, HeadError> {
        let mut reader = Reader::new(bytes);
        let headers = decode_fields(&mut reader)?;
        if !reader.is_empty() {
            return Err(HeadError::Malformed);
        }
        Ok(ResponseHead { headers })
    }
}

fn encode_fields(fields: &[HeaderField], out: &mut Vec<u8>) -> Result<(), HeadError> {
    let count = u16::try_from(fields.len()).map_err(|_| HeadError::TooLong)?;
    out.extend_from_slice(&count.to_be_bytes());
    for field in fields {
        if !is_valid_name(field.name.as_bytes()) {
            return Err(HeadError::InvalidName);
        }
        if !is_valid_value(&field.value) {
            return Err(HeadError::InvalidValue);
        }
        put_lp16(out, field.name.as_bytes())?;
        put_lp16(out, &field.value)?;
    }
    Ok(())
}

fn decode_fields(reader: &mut Reader<'_>) -> Result<Vec<HeaderField>, HeadError> {
    let count = reader.u16().ok_or(HeadError::Malformed)?;
    // Each field needs at least 5 bytes; cap the allocation by what can be present.
    let mut fields = Vec::with_capacity(usize::from(count).min(1024));
    for _ in 0..count {
        let name = reader.lp16().ok_or(HeadError::Malformed)?;
        let value = reader.lp16().ok_or(HeadError::Malformed)?;
        if !is_valid_name(name) {
            return Err(HeadError::InvalidName);
        }
        if !is_valid_value(value) {
            return Err(HeadError::InvalidValue);
        }
        fields.push(HeaderField {
            name: String::from_utf8_lossy(name).into_owned(),
            value: value.to_vec(),
        });
    }
    Ok(fields)
}

fn put_lp16(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), HeadError> {
    let len = u16::try_from(bytes.len()).map_err(|_| HeadError::TooLong)?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

fn is_valid_path(path: &[u8]) -> bool {
    path.first() == Some(&b'/') && path.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// RFC 9110 `token`, restricted to lowercase so that names have one spelling.
fn is_valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(b))
}

/// RFC 9110 `field-value`: visible characters, obs-text, space and tab; no other
/// control character (so CR, LF and NUL are refused).
fn is_valid_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|b| *b == b'\t' || (*b >= 0x20 && *b != 0x7f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_lengths_are_digits_only() {
        assert_eq!(parse_content_length(b"0"), Some(0));
        assert_eq!(parse_content_length(b"1048576"), Some(1_048_576));
        for bad in [
            &b""[..],
            b"+5",
            b" 5",
            b"5 ",
            b"5,5",
            b"-1",
            b"0x10",
            b"99999999999999999999",
        ] {
            assert_eq!(parse_content_length(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn request_head_round_trips_with_repeated_fields() {
        let head = RequestHead {
            token: ResendToken([7; 16]),
            not_after: 1_700_000_060,
            path: "/a/b?x=1&y=%20".into(),
            headers: vec![
                HeaderField::new("set-cookie", "a=1"),
                HeaderField::new("set-cookie", "b=2"),
                HeaderField::new("content-type", "application/json"),
                HeaderField::new("x-empty", ""),
            ],
        };
        let mut bytes = Vec::new();
        head.encode_into(&mut bytes).expect("valid head");
        assert_eq!(RequestHead::decode(&bytes), Ok(head));
    }

    #[test]
    fn invalid_heads_are_refused() {
        let mut out = Vec::new();
        let bad_path = RequestHead {
            path: "no-slash".into(),
            ..RequestHead::default()
        };
        assert_eq!(bad_path.encode_into(&mut out), Err(HeadError::InvalidPath));
        let upper = ResponseHead {
            headers: vec![HeaderField::new("X-Up", "v")],
        };
        assert_eq!(upper.encode_into(&mut out), Err(HeadError::InvalidName));
        let crlf = ResponseHead {
            headers: vec![HeaderField::new("x", "a\r\nb: c")],
        };
        assert_eq!(crlf.encode_into(&mut out), Err(HeadError::InvalidValue));
        let bell = ResponseHead {
            headers: vec![HeaderField::new("x", "a\u{7}")],
        };
        assert_eq!(bell.encode_into(&mut out), Err(HeadError::InvalidValue));
        let tab_and_obs_text = ResponseHead {
            headers: vec![HeaderField::new("x", "a\tb \u{e9}")],
        };
        assert_eq!(tab_and_obs_text.encode_into(&mut out), Ok(()));
        assert_eq!(ResponseHead::decode(&[0, 1, 0]), Err(HeadError::Malformed));
        assert_eq!(ResponseHead::decode(&[0, 0, 9]), Err(HeadError::Malformed));
    }
}
