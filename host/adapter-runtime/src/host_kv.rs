//! The `kv` import: forwards to the configured [`KvStore`] under the adapter's
//! namespace, with size limits so a guest cannot hoard host memory.

use std::time::Duration;

use crate::bindings::wit_kv::{Host, KvError as WitKvError};
use crate::host_state::HostState;
use crate::kv::KvError;

pub const MAX_KEY_BYTES: usize = 512;
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

fn to_wit(e: KvError) -> WitKvError {
    match e {
        KvError::NotACounter => WitKvError::NotACounter,
        KvError::TooLarge => WitKvError::TooLarge,
        KvError::Unavailable(why) => WitKvError::Unavailable(why),
    }
}

fn check(key: &str, value: Option<&[u8]>) -> Result<(), WitKvError> {
    if key.len() > MAX_KEY_BYTES || value.is_some_and(|v| v.len() > MAX_VALUE_BYTES) {
        return Err(WitKvError::TooLarge);
    }
    Ok(())
}

fn ttl(ms: Option<u64>) -> Option<Duration> {
    ms.map(Duration::from_millis)
}

impl Host for HostState {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, WitKvError> {
        check(&key, None)?;
        let id = &self.identity;
        id.kv.get(&id.name, &key).await.map_err(to_wit)
    }

    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Result<(), WitKvError> {
        check(&key, Some(&value))?;
        let id = &self.identity;
        id.kv
            .set(&id.name, &key, value, ttl(ttl_ms))
            .await
            .map_err(to_wit)
    }

    async fn delete(&mut self, key: String) -> Result<bool, WitKvError> {
        check(&key, None)?;
        let id = &self.identity;
        id.kv.delete(&id.name, &key).await.map_err(to_wit)
    }

    async fn increment(
        &mut self,
        key: String,
        delta: i64,
        ttl_ms: Option<u64>,
    ) -> Result<i64, WitKvError> {
        check(&key, None)?;
        let id = &self.identity;
        id.kv
            .increment(&id.name, &key, delta, ttl(ttl_ms))
            .await
            .map_err(to_wit)
    }

    async fn set_if_absent(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Result<bool, WitKvError> {
        check(&key, Some(&value))?;
        let id = &self.identity;
        id.kv
            .set_if_absent(&id.name, &key, value, ttl(ttl_ms))
            .await
            .map_err(to_wit)
    }
}
