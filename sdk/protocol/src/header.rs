//! The relay header `x-mte-relay`: version, mode, flags, sequence, pair id and client id.
//!
//! Wire form (one exact order, no whitespace, no optional fields):
//!
//! ```text
//! v=1;m=mke;f=1;s=42;p=<pair id, 22 base64url chars>;c=<client id>
//! ```

use core::fmt;

use crate::ids::{PairId, is_client_id_syntax};
use crate::registry::ErrorReason;

/// Name of the header that carries the [`RelayHeader`] on MTE requests.
pub const RELAY_HEADER: &str = "x-mte-relay";
/// Name of the header that carries an encrypted head block (requests and responses).
pub const HEAD_HEADER: &str = "x-mte-relay-head";
/// Name of the header in which a relay hands a client its client id.
pub const CLIENT_ID_HEADER: &str = "x-mte-relay-client-id";

/// The protocol major version this crate speaks.
pub const PROTOCOL_MAJOR: u8 = 1;

/// How a message is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Streaming chunked AEAD, any size.
    Mke,
    /// One padded message up to a cap, with per-epoch ratcheted keys.
    Mte,
}

impl Mode {
    /// The token used in the relay header and documents.
    pub const fn token(self) -> &'static str {
        match self {
            Mode::Mke => "mke",
            Mode::Mte => "mte",
        }
    }

    /// The byte used in associated data.
    pub(crate) const fn wire_byte(self) -> u8 {
        match self {
            Mode::Mke => 1,
            Mode::Mte => 2,
        }
    }

    /// Parses `mke` or `mte`.
    pub fn from_token(token: &[u8]) -> Option<Mode> {
        match token {
            b"mke" => Some(Mode::Mke),
            b"mte" => Some(Mode::Mte),
            _ => None,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}

/// Message flags. Unknown bits are refused so that a future flag cannot be silently ignored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flags(u8);

impl Flags {
    /// The message carries an encrypted body stream after its head.
    pub const HAS_BODY: Flags = Flags(0b0000_0001);
    /// Responses only: every record of the (MKE) body stream holds padded plaintext
    /// (docs/protocol.md §6.5), so record lengths show only size buckets.
    pub const PADDED_RECORDS: Flags = Flags(0b0000_0010);
    const KNOWN: u8 = Flags::HAS_BODY.0;
    const KNOWN_IN_RESPONSES: u8 = Flags::HAS_BODY.0 | Flags::PADDED_RECORDS.0;

    /// No flag set.
    pub const fn empty() -> Flags {
        Flags(0)
    }

    /// Request flags from their byte, refusing unknown bits.
    pub const fn from_bits(bits: u8) -> Option<Flags> {
        if bits & !Flags::KNOWN == 0 {
            Some(Flags(bits))
        } else {
            None
        }
    }

    /// Response flags from their byte, refusing unknown bits, and `PADDED_RECORDS`
    /// without a body.
    pub const fn from_response_bits(bits: u8) -> Option<Flags> {
        let padded_without_body =
            bits & Flags::PADDED_RECORDS.0 != 0 && bits & Flags::HAS_BODY.0 == 0;
        if bits & !Flags::KNOWN_IN_RESPONSES == 0 && !padded_without_body {
            Some(Flags(bits))
        } else {
            None
        }
    }

    /// These flags with `other`'s set too.
    #[must_use]
    pub const fn union(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    /// The byte form.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// True when every flag of `other` is set.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// `HAS_BODY` when `has_body`, otherwise empty.
    pub const fn with_body(has_body: bool) -> Flags {
        if has_body { Flags::HAS_BODY } else { Flags(0) }
    }
}

/// The clear, authenticated fields of one MTE request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RelayHeader {
    /// Encode mode of the request and its response.
    pub mode: Mode,
    /// Request flags.
    pub flags: Flags,
    /// The client's sequence number for this pair; never reused.
    pub seq: u64,
    /// The pair whose keys protect this request.
    pub pair_id: PairId,
    /// The client id the pair is bound to.
    pub client_id: String,
}

/// Why a relay header failed to parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// A field is missing, misnamed, out of order, or malformed.
    #[error("relay header field `{0}` is missing or malformed")]
    Field(&'static str),
    /// The version field names a major version this implementation does not speak.
    #[error("relay header announces unsupported protocol version")]
    UnsupportedVersion,
    /// Bytes follow the last field.
    #[error("relay header has trailing data")]
    Trailing,
}

impl HeaderError {
    /// The registry reason a relay answers with.
    pub fn reason(&self) -> ErrorReason {
        match self {
            HeaderError::UnsupportedVersion => ErrorReason::VersionUnsupported,
            HeaderError::Field(_) | HeaderError::Trailing => ErrorReason::RelayHeaderMalformed,
        }
    }
}

impl RelayHeader {
    /// The header value.
    pub fn format(&self) -> String {
        format!(
            "v={};m={};f={};s={};p={};c={}",
            PROTOCOL_MAJOR,
            self.mode.token(),
            self.flags.bits(),
            self.seq,
            self.pair_id,
            self.client_id
        )
    }

    /// Parses a header value strictly: the exact field order of [`RelayHeader::format`],
    /// canonical decimal numbers (no sign, no leading zero), nothing else.
    pub fn parse(value: &[u8]) -> Result<RelayHeader, HeaderError> {
        let mut fields = value.split(|b| *b == b';');
        let mut next = |name: &'static str| -> Result<&[u8], HeaderError> {
            let field = fields.next().ok_or(HeaderError::Field(name))?;
            field
                .strip_prefix(name.as_bytes())
                .and_then(|rest| rest.strip_prefix(b"="))
                .ok_or(HeaderError::Field(name))
        };

        let version = parse_decimal(next("v")?).ok_or(HeaderError::Field("v"))?;
        if version != u64::from(PROTOCOL_MAJOR) {
            return Err(HeaderError::UnsupportedVersion);
        }
        let mode = Mode::from_token(next("m")?).ok_or(HeaderError::Field("m"))?;
        let flags = parse_decimal(next("f")?)
            .and_then(|bits| u8::try_from(bits).ok())
            .and_then(Flags::from_bits)
            .ok_or(HeaderError::Field("f"))?;
        let seq = parse_decimal(next("s")?).ok_or(HeaderError::Field("s"))?;
        let pair_id = PairId::parse(next("p")?).ok_or(HeaderError::Field("p"))?;
        let client_id = next("c")?;
        if !is_client_id_syntax(client_id) {
            return Err(HeaderError::Field("c"));
        }
        if fields.next().is_some() {
            return Err(HeaderError::Trailing);
        }
        Ok(RelayHeader {
            mode,
            flags,
            seq,
            pair_id,
            // The syntax check above admits only ASCII.
            client_id: String::from_utf8_lossy(client_id).into_owned(),
        })
    }
}

/// Canonical unsigned decimal: digits only, no leading zero except "0" itself, fits u64.
pub(crate) fn parse_decimal(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 20 || (text.len() > 1 && text[0] == b'0') {
        return None;
    }
    text.iter().try_fold(0u64, |acc, b| {
        let digit = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        acc.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RelayHeader {
        RelayHeader {
            mode: Mode::Mte,
            flags: Flags::HAS_BODY,
            seq: 18_446_744_073_709_551_615,
            pair_id: PairId([7; 16]),
            client_id: "AbC-_9".into(),
        }
    }

    #[test]
    fn format_and_parse_round_trip() {
        let header = sample();
        let text = header.format();
        assert_eq!(
            text,
            "v=1;m=mte;f=1;s=18446744073709551615;p=BwcHBwcHBwcHBwcHBwcHBw;c=AbC-_9"
        );
        assert_eq!(RelayHeader::parse(text.as_bytes()), Ok(header));
    }

    #[test]
    fn parser_refuses_every_deviation() {
        let good = sample().format();
        let cases: Vec<(String, HeaderError)> = vec![
            (good.replace("v=1", "v=2"), HeaderError::UnsupportedVersion),
            (good.replace("v=1", "v=01"), HeaderError::Field("v")),
            (good.replace("m=mte", "m=MTE"), HeaderError::Field("m")),
            (good.replace("f=1", "f=2"), HeaderError::Field("f")),
            (good.replace("f=1", "f=256"), HeaderError::Field("f")),
            (
                good.replace("s=18446744073709551615", "s=18446744073709551616"),
                HeaderError::Field("s"),
            ),
            (
                good.replace("s=18446744073709551615", "s=+1"),
                HeaderError::Field("s"),
            ),
            (
                good.replace("s=18446744073709551615", "s=07"),
                HeaderError::Field("s"),
            ),
            (good.replace(";p=", "; p="), HeaderError::Field("p")),
            (
                good.replace("BwcHBwcHBwcHBwcHBwcHBw", "BwcHBwcHBwcHBwcHBwcHBx"),
                HeaderError::Field("p"),
            ),
            (good.replace("c=AbC-_9", "c="), HeaderError::Field("c")),
            (good.replace("c=AbC-_9", "c=a b"), HeaderError::Field("c")),
            (format!("{good};x=1"), HeaderError::Trailing),
            ("m=mte;v=1".into(), HeaderError::Field("v")),
            (String::new(), HeaderError::Field("v")),
        ];
        for (text, expected) in cases {
            assert_eq!(RelayHeader::parse(text.as_bytes()), Err(expected), "{text}");
        }
    }
}
