//! Sleeps (a host-side wait, not a busy loop) for the milliseconds given in the
//! `x-sleep-ms` header, then continues.

use mte_relay_adapter::{Config, Filter, RequestAction, RequestInfo};

struct SlowHook;

impl Filter for SlowHook {
    fn init(_config: Config) -> Result<Self, String> {
        Ok(SlowHook)
    }

    fn on_request(&mut self, request: &RequestInfo) -> Result<RequestAction, String> {
        let ms: u64 = request
            .header("x-sleep-ms")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        std::thread::sleep(std::time::Duration::from_millis(ms));
        Ok(RequestAction::proceed())
    }
}

mte_relay_adapter::export_filter!(SlowHook);
