//! Token buckets per key (a client id, a remote address).
//!
//! A bucket holds up to `burst` tokens and gains `per_second` tokens a second; an
//! action costing `n` tokens is admitted when the bucket holds `n`. A bucket that has
//! refilled to `burst` says nothing a fresh bucket would not, so full buckets are
//! dropped when the map grows: memory follows the number of keys active within about
//! `burst / per_second` seconds, and is capped at `max_keys`.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::RateLimit;

/// The most often the map is scanned for full buckets when it is over `max_keys`.
const PRUNE_EVERY: Duration = Duration::from_secs(1);

/// Why an action was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    /// When the bucket will hold enough tokens (at least one second, for `Retry-After`).
    pub retry_after: Duration,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

#[derive(Debug)]
struct Buckets<K> {
    by_key: HashMap<K, Bucket>,
    last_prune: Option<Instant>,
}

/// One token bucket per key, all with the same limit.
#[derive(Debug)]
pub struct KeyedRateLimiter<K> {
    limit: RateLimit,
    max_keys: usize,
    buckets: Mutex<Buckets<K>>,
}

impl<K: Hash + Eq + Clone> KeyedRateLimiter<K> {
    /// Buckets of `limit`, for at most `max_keys` keys that are not full at once.
    pub fn new(limit: RateLimit, max_keys: usize) -> Self {
        KeyedRateLimiter {
            limit,
            max_keys: max_keys.max(1),
            buckets: Mutex::new(Buckets {
                by_key: HashMap::new(),
                last_prune: None,
            }),
        }
    }

    /// Takes `cost` tokens from `key`'s bucket at `now`, or says how long to wait.
    /// When the map holds `max_keys` partly spent buckets, a key without one is
    /// refused: the keys already tracked keep their share.
    pub fn take(&self, key: &K, cost: u32, now: Instant) -> Result<(), Refused> {
        let cost = f64::from(cost);
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !buckets.by_key.contains_key(key) && buckets.by_key.len() >= self.max_keys {
            self.prune(&mut buckets, now);
            if buckets.by_key.len() >= self.max_keys {
                return Err(Refused {
                    retry_after: Duration::from_secs(1),
                });
            }
        }
        let limit = self.limit;
        let bucket = buckets.by_key.entry(key.clone()).or_insert(Bucket {
            tokens: limit.burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * limit.per_second).min(limit.burst);
        bucket.updated = now;
        if bucket.tokens >= cost {
            bucket.tokens -= cost;
            return Ok(());
        }
        let wait = (cost - bucket.tokens) / limit.per_second;
        Err(Refused {
            retry_after: Duration::from_secs_f64(wait.ceil().max(1.0)),
        })
    }

    /// Number of keys with a bucket.
    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .by_key
            .len()
    }

    fn prune(&self, buckets: &mut Buckets<K>, now: Instant) {
        if buckets
            .last_prune
            .is_some_and(|last| now.saturating_duration_since(last) < PRUNE_EVERY)
        {
            return;
        }
        buckets.last_prune = Some(now);
        let limit = self.limit;
        buckets.by_key.retain(|_, bucket| {
            let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
            bucket.tokens + elapsed * limit.per_second < limit.burst
        });
    }
}

/// The key an address is limited under: the address itself for IPv4, its /64 prefix
/// for IPv6 (one host is usually given a whole /64, so single addresses would let it
/// take any number of buckets). An IPv4-mapped IPv6 address counts as IPv4.
pub fn address_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    const LIMIT: RateLimit = RateLimit {
        per_second: 2.0,
        burst: 10.0,
    };

    #[test]
    fn a_burst_is_admitted_then_the_rate() {
        let limiter = KeyedRateLimiter::new(LIMIT, 100);
        let start = Instant::now();
        assert_eq!(limiter.take(&"a", 8, start), Ok(()));
        let refused = limiter
            .take(&"a", 8, start)
            .expect_err("only 2 tokens left");
        // 6 more tokens at 2 a second.
        assert_eq!(refused.retry_after, Duration::from_secs(3));
        assert_eq!(
            limiter.take(&"b", 8, start),
            Ok(()),
            "another key is not touched"
        );
        assert_eq!(
            limiter.take(&"a", 8, start + Duration::from_secs(3)),
            Ok(())
        );
    }

    #[test]
    fn refill_stops_at_the_burst() {
        let limiter = KeyedRateLimiter::new(LIMIT, 100);
        let start = Instant::now();
        assert_eq!(limiter.take(&"a", 1, start), Ok(()));
        let later = start + Duration::from_secs(3600);
        assert_eq!(limiter.take(&"a", 10, later), Ok(()));
        assert!(limiter.take(&"a", 1, later).is_err());
    }

    #[test]
    fn a_wait_of_under_a_second_is_reported_as_one() {
        let limiter = KeyedRateLimiter::new(LIMIT, 100);
        let start = Instant::now();
        assert_eq!(limiter.take(&"a", 10, start), Ok(()));
        let refused = limiter.take(&"a", 1, start).expect_err("empty");
        assert_eq!(refused.retry_after, Duration::from_secs(1));
    }

    #[test]
    fn full_buckets_make_room_for_new_keys_and_spent_ones_do_not() {
        let limiter = KeyedRateLimiter::new(LIMIT, 2);
        let start = Instant::now();
        assert_eq!(limiter.take(&1, 10, start), Ok(()));
        assert_eq!(limiter.take(&2, 10, start), Ok(()));
        // Both tracked buckets are spent: a third key must wait.
        assert!(limiter.take(&3, 1, start).is_err());
        assert_eq!(limiter.tracked(), 2);
        // Five seconds later both have refilled, so they are dropped for the new key.
        let later = start + Duration::from_secs(5);
        assert_eq!(limiter.take(&3, 1, later), Ok(()));
        assert_eq!(limiter.tracked(), 1);
    }

    #[test]
    fn ipv6_addresses_share_their_64_prefix() {
        let a: Ipv6Addr = "2001:db8:1:2:aaaa::1".parse().expect("v6");
        let b: Ipv6Addr = "2001:db8:1:2:bbbb::9".parse().expect("v6");
        let c: Ipv6Addr = "2001:db8:1:3::1".parse().expect("v6");
        assert_eq!(address_key(a.into()), address_key(b.into()));
        assert_ne!(address_key(a.into()), address_key(c.into()));
        let v4 = Ipv4Addr::new(192, 0, 2, 7);
        assert_eq!(address_key(v4.to_ipv6_mapped().into()), IpAddr::V4(v4));
        assert_eq!(address_key(v4.into()), IpAddr::V4(v4));
    }
}
