//! Correlation ids: accepted from `x-request-id` when sane, otherwise minted.

use http::HeaderMap;

pub const MAX_REQUEST_ID_CHARS: usize = 128;

/// The client's id when it is 1–128 characters of `[A-Za-z0-9._:/+=@-]`, else a new one.
/// Anything else is replaced, since the id lands in logs and upstream headers.
pub fn accept_or_mint(headers: &HeaderMap) -> String {
    headers
        .get(crate::upstream::headers::X_REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| is_sane(id))
        .map_or_else(mint, str::to_owned)
}

pub fn is_sane(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_CHARS
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:/+=@-".contains(&b))
}

/// 128 random bits as 32 hex characters. Falls back to a time-and-counter id if the OS
/// generator fails: a correlation id needs uniqueness, not secrecy.
pub fn mint() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        return format!("{nanos:x}-{count:x}");
    }
    crate::config::secret::hex_encode(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with_id(id: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-request-id", HeaderValue::from_str(id).expect("value"));
        headers
    }

    #[test]
    fn sane_ids_are_kept() {
        assert_eq!(accept_or_mint(&with_id("abc-123_x.y")), "abc-123_x.y");
        let longest = "a".repeat(MAX_REQUEST_ID_CHARS);
        assert_eq!(accept_or_mint(&with_id(&longest)), longest);
    }

    #[test]
    fn odd_ids_are_replaced() {
        for bad in [
            "",
            "has space",
            "quote\"",
            &"a".repeat(MAX_REQUEST_ID_CHARS + 1),
        ] {
            let id = accept_or_mint(&with_id(bad));
            assert_ne!(id, bad);
            assert_eq!(id.len(), 32);
        }
        assert_eq!(accept_or_mint(&HeaderMap::new()).len(), 32);
    }
}
