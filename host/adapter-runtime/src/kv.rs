//! The adapters' key-value store. [`KvStore`] is the seam for a shared backend
//! (Redis); [`MemoryKv`] is the embedded default. Namespacing per adapter
//! instance is done by the caller (the host imports), never by the guest.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A boxed future, so the trait stays object safe.
pub type KvFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, KvError>> + Send + 'a>>;

/// Store failures visible to guests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    #[error("value is not a decimal 64-bit counter")]
    NotACounter,
    #[error("key or value too large")]
    TooLarge,
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

/// Operations every backend provides atomically. `namespace` isolates instances.
pub trait KvStore: Send + Sync + 'static {
    fn get<'a>(&'a self, namespace: &'a str, key: &'a str) -> KvFuture<'a, Option<Vec<u8>>>;
    fn set<'a>(
        &'a self,
        namespace: &'a str,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> KvFuture<'a, ()>;
    fn delete<'a>(&'a self, namespace: &'a str, key: &'a str) -> KvFuture<'a, bool>;
    /// Add `delta` to the counter (absent = 0); `ttl` applies when the key is created.
    fn increment<'a>(
        &'a self,
        namespace: &'a str,
        key: &'a str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> KvFuture<'a, i64>;
    fn set_if_absent<'a>(
        &'a self,
        namespace: &'a str,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> KvFuture<'a, bool>;
}

struct Entry {
    value: Vec<u8>,
    expires: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|t| t > now)
    }
}

/// In-process store. Expired entries are dropped lazily and by a sweep when the
/// map grows, so memory stays bounded by the live data.
#[derive(Default)]
pub struct MemoryKv {
    entries: Mutex<HashMap<(String, String), Entry>>,
    max_entries: Option<usize>,
}

impl MemoryKv {
    pub fn new() -> Self {
        Self::default()
    }

    /// Refuse new keys (with `TooLarge`) past `max` live entries.
    pub fn with_max_entries(max: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            max_entries: Some(max),
        }
    }

    fn with_map<T>(
        &self,
        f: impl FnOnce(&mut HashMap<(String, String), Entry>, Instant) -> Result<T, KvError>,
    ) -> Result<T, KvError> {
        let mut map = self
            .entries
            .lock()
            .map_err(|_| KvError::Unavailable("memory store lock poisoned".into()))?;
        f(&mut map, Instant::now())
    }

    fn room_for_new(
        &self,
        map: &mut HashMap<(String, String), Entry>,
        now: Instant,
    ) -> Result<(), KvError> {
        if let Some(max) = self.max_entries
            && map.len() >= max
        {
            map.retain(|_, e| e.live(now));
            if map.len() >= max {
                return Err(KvError::TooLarge);
            }
        }
        Ok(())
    }
}

fn expiry(now: Instant, ttl: Option<Duration>) -> Option<Instant> {
    ttl.and_then(|d| now.checked_add(d))
}

fn key(namespace: &str, key: &str) -> (String, String) {
    (namespace.to_owned(), key.to_owned())
}

impl KvStore for MemoryKv {
    fn get<'a>(&'a self, namespace: &'a str, k: &'a str) -> KvFuture<'a, Option<Vec<u8>>> {
        let result = self.with_map(|map, now| {
            Ok(map
                .get(&key(namespace, k))
                .filter(|e| e.live(now))
                .map(|e| e.value.clone()))
        });
        Box::pin(std::future::ready(result))
    }

    fn set<'a>(
        &'a self,
        namespace: &'a str,
        k: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> KvFuture<'a, ()> {
        let result = self.with_map(|map, now| {
            let full_key = key(namespace, k);
            if !map.contains_key(&full_key) {
                self.room_for_new(map, now)?;
            }
            map.insert(
                full_key,
                Entry {
                    value,
                    expires: expiry(now, ttl),
                },
            );
            Ok(())
        });
        Box::pin(std::future::ready(result))
    }

    fn delete<'a>(&'a self, namespace: &'a str, k: &'a str) -> KvFuture<'a, bool> {
        let result = self
            .with_map(|map, now| Ok(map.remove(&key(namespace, k)).is_some_and(|e| e.live(now))));
        Box::pin(std::future::ready(result))
    }

    fn increment<'a>(
        &'a self,
        namespace: &'a str,
        k: &'a str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> KvFuture<'a, i64> {
        let result = self.with_map(|map, now| {
            let full_key = key(namespace, k);
            let current = match map.get(&full_key).filter(|e| e.live(now)) {
                None => None,
                Some(entry) => Some((
                    std::str::from_utf8(&entry.value)
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok())
                        .ok_or(KvError::NotACounter)?,
                    entry.expires,
                )),
            };
            let (value, expires) = match current {
                Some((n, expires)) => (n.wrapping_add(delta), expires),
                None => {
                    self.room_for_new(map, now)?;
                    (delta, expiry(now, ttl))
                }
            };
            map.insert(
                full_key,
                Entry {
                    value: value.to_string().into_bytes(),
                    expires,
                },
            );
            Ok(value)
        });
        Box::pin(std::future::ready(result))
    }

    fn set_if_absent<'a>(
        &'a self,
        namespace: &'a str,
        k: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> KvFuture<'a, bool> {
        let result = self.with_map(|map, now| {
            let full_key = key(namespace, k);
            if map.get(&full_key).is_some_and(|e| e.live(now)) {
                return Ok(false);
            }
            self.room_for_new(map, now)?;
            map.insert(
                full_key,
                Entry {
                    value,
                    expires: expiry(now, ttl),
                },
            );
            Ok(true)
        });
        Box::pin(std::future::ready(result))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn namespaces_are_isolated_and_counters_are_atomic() {
        let kv = MemoryKv::new();
        kv.set("a", "k", b"1".to_vec(), None).await.unwrap();
        assert_eq!(kv.get("b", "k").await.unwrap(), None);
        assert_eq!(kv.increment("a", "k", 4, None).await.unwrap(), 5);
        assert_eq!(kv.increment("b", "k", -2, None).await.unwrap(), -2);
        kv.set("a", "text", b"hello".to_vec(), None).await.unwrap();
        assert_eq!(
            kv.increment("a", "text", 1, None).await.unwrap_err(),
            KvError::NotACounter
        );
        assert!(
            kv.set_if_absent("a", "once", b"x".to_vec(), None)
                .await
                .unwrap()
        );
        assert!(
            !kv.set_if_absent("a", "once", b"y".to_vec(), None)
                .await
                .unwrap()
        );
        assert_eq!(kv.get("a", "once").await.unwrap(), Some(b"x".to_vec()));
        assert!(kv.delete("a", "once").await.unwrap());
        assert!(!kv.delete("a", "once").await.unwrap());
    }

    #[tokio::test]
    async fn entries_expire_and_bounded_store_refuses_new_keys() {
        let kv = MemoryKv::with_max_entries(1);
        kv.set("a", "k", b"v".to_vec(), Some(Duration::from_millis(1)))
            .await
            .unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(kv.get("a", "k").await.unwrap(), None);
        // The expired entry is swept to make room.
        kv.set("a", "k2", b"v".to_vec(), None).await.unwrap();
        assert_eq!(
            kv.set("a", "k3", b"v".to_vec(), None).await.unwrap_err(),
            KvError::TooLarge
        );
    }
}
