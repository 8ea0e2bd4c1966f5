//! Guest output is untrusted: header edits and local responses are validated
//! here, and an invalid one is a failure of the adapter (`BadOutput`).

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::bindings::types as wit;

/// Largest body of a local response an adapter may produce.
pub const MAX_LOCAL_BODY_BYTES: usize = 1024 * 1024;
/// Most edits one hook call may return.
pub const MAX_EDITS: usize = 256;

/// Headers that frame the message or belong to the relay; adapters may not touch them.
const RESERVED: [&str; 10] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "upgrade",
    "te",
    "trailer",
    "host",
    "x-request-id",
];
const RESERVED_PREFIX: &str = "x-mte-relay";

/// A header edit that passed validation, ready to apply to a `HeaderMap`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderEdit {
    Set(HeaderName, HeaderValue),
    Append(HeaderName, HeaderValue),
    Remove(HeaderName),
}

impl HeaderEdit {
    /// Apply to a header map (the relay's request or response headers).
    pub fn apply(&self, headers: &mut HeaderMap) {
        match self {
            HeaderEdit::Set(name, value) => {
                headers.insert(name.clone(), value.clone());
            }
            HeaderEdit::Append(name, value) => {
                headers.append(name.clone(), value.clone());
            }
            HeaderEdit::Remove(name) => {
                headers.remove(name);
            }
        }
    }

    /// Apply to the WIT header list, so the next adapter in the chain sees it.
    pub(crate) fn apply_to_list(&self, headers: &mut Vec<wit::Header>) {
        let header = |name: &HeaderName, value: &HeaderValue| wit::Header {
            name: name.as_str().to_owned(),
            value: value.to_str().unwrap_or_default().to_owned(),
        };
        match self {
            HeaderEdit::Set(name, value) => {
                headers.retain(|h| !h.name.eq_ignore_ascii_case(name.as_str()));
                headers.push(header(name, value));
            }
            HeaderEdit::Append(name, value) => headers.push(header(name, value)),
            HeaderEdit::Remove(name) => {
                headers.retain(|h| !h.name.eq_ignore_ascii_case(name.as_str()))
            }
        }
    }
}

/// Apply a list of edits in order.
pub fn apply_edits(headers: &mut HeaderMap, edits: &[HeaderEdit]) {
    for edit in edits {
        edit.apply(headers);
    }
}

/// A response an adapter produced instead of the upstream's.
#[derive(Debug, Clone)]
pub struct LocalReply {
    /// The instance that answered.
    pub adapter: String,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

fn header_name(name: &str) -> Result<HeaderName, String> {
    let parsed = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("invalid header name {:?}", truncate(name)))?;
    let lower = parsed.as_str();
    if RESERVED.contains(&lower) || lower.starts_with(RESERVED_PREFIX) {
        return Err(format!("header `{lower}` is reserved to the relay"));
    }
    Ok(parsed)
}

fn header_value(name: &HeaderName, value: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(value).map_err(|_| format!("invalid value for header `{name}`"))
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

pub(crate) fn validate_edits(edits: Vec<wit::HeaderEdit>) -> Result<Vec<HeaderEdit>, String> {
    if edits.len() > MAX_EDITS {
        return Err(format!(
            "{} header edits (at most {MAX_EDITS})",
            edits.len()
        ));
    }
    edits
        .into_iter()
        .map(|edit| {
            Ok(match edit {
                wit::HeaderEdit::Set(h) => {
                    let name = header_name(&h.name)?;
                    let value = header_value(&name, &h.value)?;
                    HeaderEdit::Set(name, value)
                }
                wit::HeaderEdit::Append(h) => {
                    let name = header_name(&h.name)?;
                    let value = header_value(&name, &h.value)?;
                    HeaderEdit::Append(name, value)
                }
                wit::HeaderEdit::Remove(name) => HeaderEdit::Remove(header_name(&name)?),
            })
        })
        .collect()
}

pub(crate) fn validate_local_response(
    adapter: &str,
    response: wit::LocalResponse,
) -> Result<LocalReply, String> {
    let status = StatusCode::from_u16(response.status)
        .ok()
        .filter(|s| (200..=599).contains(&s.as_u16()))
        .ok_or_else(|| format!("invalid status {}", response.status))?;
    if response.body.len() > MAX_LOCAL_BODY_BYTES {
        return Err(format!(
            "local response body of {} bytes (at most {MAX_LOCAL_BODY_BYTES})",
            response.body.len()
        ));
    }
    if response.headers.len() > MAX_EDITS {
        return Err(format!(
            "{} headers in local response",
            response.headers.len()
        ));
    }
    let mut headers = HeaderMap::with_capacity(response.headers.len());
    for h in response.headers {
        let name = header_name(&h.name)?;
        let value = header_value(&name, &h.value)?;
        headers.append(name, value);
    }
    Ok(LocalReply {
        adapter: adapter.to_owned(),
        status,
        headers,
        body: Bytes::from(response.body),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn set(name: &str, value: &str) -> wit::HeaderEdit {
        wit::HeaderEdit::Set(wit::Header {
            name: name.into(),
            value: value.into(),
        })
    }

    #[test]
    fn rejects_bad_names_values_and_reserved_headers() {
        assert!(validate_edits(vec![set("bad name", "v")]).is_err());
        assert!(validate_edits(vec![set("x-ok", "line\nbreak")]).is_err());
        assert!(validate_edits(vec![set("Content-Length", "1")]).is_err());
        assert!(validate_edits(vec![set("x-mte-relay-error", "x")]).is_err());
        let ok = validate_edits(vec![set("X-Label", "v")]).unwrap();
        let mut map = HeaderMap::new();
        apply_edits(&mut map, &ok);
        assert_eq!(map["x-label"], "v");
    }

    #[test]
    fn list_edits_mirror_map_edits() {
        let mut list = vec![wit::Header {
            name: "X-A".into(),
            value: "1".into(),
        }];
        let edits = validate_edits(vec![
            set("x-a", "2"),
            wit::HeaderEdit::Append(wit::Header {
                name: "x-b".into(),
                value: "3".into(),
            }),
            wit::HeaderEdit::Remove("x-c".into()),
        ])
        .unwrap();
        for e in &edits {
            e.apply_to_list(&mut list);
        }
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].value, "2");
    }

    #[test]
    fn local_response_checks_status_and_size() {
        let ok = wit::LocalResponse {
            status: 401,
            headers: vec![],
            body: b"{}".to_vec(),
        };
        assert_eq!(validate_local_response("a", ok).unwrap().status, 401);
        let bad = wit::LocalResponse {
            status: 1000,
            headers: vec![],
            body: vec![],
        };
        assert!(validate_local_response("a", bad).is_err());
        let big = wit::LocalResponse {
            status: 200,
            headers: vec![],
            body: vec![0; MAX_LOCAL_BODY_BYTES + 1],
        };
        assert!(validate_local_response("a", big).is_err());
    }
}
