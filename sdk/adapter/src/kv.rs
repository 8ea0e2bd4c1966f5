//! The instance's private key-value store, with typed helpers.

use std::time::Duration;

use crate::bindings::common::mte_relay::adapter::kv as wit;
pub use crate::bindings::common::mte_relay::adapter::kv::KvError;

fn ttl_ms(ttl: Option<Duration>) -> Option<u64> {
    ttl.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Raw bytes stored under `key`.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, KvError> {
    wit::get(key)
}

/// The value under `key` as UTF-8 text (`None` when absent or not UTF-8).
pub fn get_string(key: &str) -> Result<Option<String>, KvError> {
    Ok(get(key)?.and_then(|v| String::from_utf8(v).ok()))
}

/// The counter under `key` (0 when absent).
pub fn get_counter(key: &str) -> Result<i64, KvError> {
    match get_string(key)? {
        None => Ok(0),
        Some(text) => text.parse().map_err(|_| KvError::NotACounter),
    }
}

/// Store `value` under `key`, optionally expiring after `ttl`.
pub fn set(key: &str, value: impl AsRef<[u8]>, ttl: Option<Duration>) -> Result<(), KvError> {
    wit::set(key, value.as_ref(), ttl_ms(ttl))
}

/// Remove `key`; returns whether it was present.
pub fn delete(key: &str) -> Result<bool, KvError> {
    wit::delete(key)
}

/// Atomically add `delta` to the counter under `key` and return the new value.
pub fn increment(key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64, KvError> {
    wit::increment(key, delta, ttl_ms(ttl))
}

/// Store `value` only if `key` is absent; returns whether it was stored.
pub fn set_if_absent(
    key: &str,
    value: impl AsRef<[u8]>,
    ttl: Option<Duration>,
) -> Result<bool, KvError> {
    wit::set_if_absent(key, value.as_ref(), ttl_ms(ttl))
}
