//! W3C Trace Context (https://www.w3.org/TR/trace-context/): a request's
//! `traceparent`, for the access log's trace id and as the parent of the request's
//! exported span. The headers themselves reach the upstream unchanged (pass-through
//! headers, or those inside an MTE head); the relay only reads them.

use http::HeaderMap;

/// The `traceparent` header.
pub const TRACEPARENT: &str = "traceparent";

/// A valid version-00 `traceparent`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceParent {
    /// 32 lowercase hex digits, not all zero.
    pub trace_id: String,
    /// The caller's span: 16 lowercase hex digits, not all zero.
    pub parent_id: String,
    /// The trace flags' sampled bit.
    pub sampled: bool,
}

/// A valid version-00 `traceparent`. Anything else (absent, malformed, an unknown
/// version) is `None`, so a client cannot put arbitrary text in the access log or a
/// span through it.
pub fn parse(headers: &HeaderMap) -> Option<TraceParent> {
    let value = headers.get(TRACEPARENT)?.to_str().ok()?.trim();
    let mut parts = value.split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |text: &str, len: usize| {
        text.len() == len
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let valid = parts.next().is_none()
        && version == "00"
        && hex(trace, 32)
        && hex(parent, 16)
        && hex(flags, 2)
        && trace.bytes().any(|b| b != b'0')
        && parent.bytes().any(|b| b != b'0');
    let sampled = u8::from_str_radix(flags, 16).ok()? & 1 == 1;
    valid.then(|| TraceParent {
        trace_id: trace.to_owned(),
        parent_id: parent.to_owned(),
        sampled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(value: &str) -> Option<String> {
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, value.parse().expect("header value"));
        parse(&headers).map(|parent| parent.trace_id)
    }

    #[test]
    fn only_a_valid_traceparent_yields_its_trace_id() {
        assert_eq!(
            id("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "hello world",
        ] {
            assert_eq!(id(bad), None, "{bad}");
        }
        assert_eq!(parse(&HeaderMap::new()), None);
    }
}
