//! `/api/mte-echo`: the relay's own echo, answered in the clear on a plain request and
//! sealed on an MTE one (a client's check that the relay and its pairs work).

use http::Response;
use serde_json::json;

use crate::body::RelayBody;
use crate::response;

/// The message echoed when the query has no `msg`.
const DEFAULT_ECHO_MESSAGE: &str = "mte-relay echo";

/// `GET /api/mte-echo[?msg=...]`: `{"message": ..., "timestamp": <unix ms>}`.
pub fn echo(query: Option<&str>) -> Response<RelayBody> {
    let message = query
        .and_then(|query| query_param(query, "msg"))
        .unwrap_or_else(|| DEFAULT_ECHO_MESSAGE.to_owned());
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis());
    response::json(&json!({ "message": message, "timestamp": timestamp }))
}

/// The first value of `name` in an `application/x-www-form-urlencoded` query.
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key) == name).then(|| percent_decode(value))
    })
}

fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_decoded() {
        assert_eq!(
            query_param("msg=hello+world%21", "msg").as_deref(),
            Some("hello world!")
        );
        assert_eq!(query_param("a=1&msg=x", "msg").as_deref(), Some("x"));
        assert_eq!(query_param("a=1", "msg"), None);
        assert_eq!(query_param("msg=100%", "msg").as_deref(), Some("100%"));
        assert_eq!(query_param("msg=%e2%9c%93", "msg").as_deref(), Some("✓"));
        assert_eq!(query_param("msg=%zz", "msg").as_deref(), Some("%zz"));
    }
}
