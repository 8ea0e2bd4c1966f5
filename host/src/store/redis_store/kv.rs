//! The adapters' key-value store in Redis, so counters and flags add up across
//! replicas. Each operation is one Redis command (or one script), so each is atomic.
//!
//! Keys are `{prefix}:kv:<namespace length>:<namespace>:<key>`: the length prefix keeps
//! one adapter instance's keys out of another's whatever their names contain. The
//! relay names the namespace (the adapter instance), never the guest.

use std::time::Duration;

use mte_relay_adapter_runtime::kv::KvFuture;
use mte_relay_adapter_runtime::{KvError, KvStore};
use redis::Script;

use super::connection::Connection;

/// `KEYS[1]` the counter, `ARGV[1]` the delta, `ARGV[2]` the time to live in
/// milliseconds or empty. The time to live applies only when the counter is created.
const INCREMENT: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then
  if ARGV[2] ~= '' then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  else
    redis.call('SET', KEYS[1], ARGV[1])
  end
  return tonumber(ARGV[1])
end
return redis.call('INCRBY', KEYS[1], ARGV[1])
"#;

/// Adapter key-value data in Redis.
pub struct RedisKv {
    connection: Connection,
    prefix: String,
    increment: Script,
}

impl RedisKv {
    pub(super) fn new(connection: Connection, prefix: &str) -> RedisKv {
        RedisKv {
            connection,
            prefix: prefix.to_owned(),
            increment: Script::new(INCREMENT),
        }
    }

    fn key(&self, namespace: &str, key: &str) -> String {
        format!("{}:kv:{}:{namespace}:{key}", self.prefix, namespace.len())
    }

    fn connection(&self) -> Connection {
        self.connection.clone()
    }
}

fn unavailable(error: redis::RedisError) -> KvError {
    if error.code() == Some("ERR") && error.to_string().contains("not an integer") {
        return KvError::NotACounter;
    }
    KvError::Unavailable(format!("redis: {error}"))
}

fn millis(ttl: Duration) -> u64 {
    // Redis refuses a zero expiry; the shortest it takes is one millisecond.
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl KvStore for RedisKv {
    fn get<'a>(&'a self, namespace: &'a str, key: &'a str) -> KvFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            redis::cmd("GET")
                .arg(self.key(namespace, key))
                .query_async(&mut self.connection())
                .await
                .map_err(unavailable)
        })
    }

    fn set<'a>(
        &'a self,
        namespace: &'a str,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> KvFuture<'a, ()> {
        Box::pin(async move {
            let mut command = redis::cmd("SET");
            command.arg(self.key(namespace, key)).arg(value);
            if let Some(ttl) = ttl {
                command.arg("PX").arg(millis(ttl));
            }
            command
                .query_async::<()>(&mut self.connection())
                .await
                .map_err(unavailable)
        })
    }

    fn delete<'a>(&'a self, namespace: &'a str, key: &'a str) -> KvFuture<'a, bool> {
        Box::pin(async move {
            let removed: i64 = redis::cmd("DEL")
                .arg(self.key(namespace, key))
                .query_async(&mut self.connection())
                .await
                .map_err(unavailable)?;
            Ok(removed > 0)
        })
    }

    fn increment<'a>(
        &'a self,
        namespace: &'a str,
        key: &'a str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> KvFuture<'a, i64> {
        Box::pin(async move {
            let mut invocation = self.increment.key(self.key(namespace, key));
            invocation
                .arg(delta)
                .arg(ttl.map(|ttl| millis(ttl).to_string()).unwrap_or_default());
            invocation
                .invoke_async(&mut self.connection())
                .await
                .map_err(unavailable)
        })
    }

    fn set_if_absent<'a>(
        &'a self,
        namespace: &'a str,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> KvFuture<'a, bool> {
        Box::pin(async move {
            let mut command = redis::cmd("SET");
            command.arg(self.key(namespace, key)).arg(value).arg("NX");
            if let Some(ttl) = ttl {
                command.arg("PX").arg(millis(ttl));
            }
            let set: Option<String> = command
                .query_async(&mut self.connection())
                .await
                .map_err(unavailable)?;
            Ok(set.is_some())
        })
    }
}
