//! Writes 100 000 log lines and one 1 MiB line per request.

use mte_relay_adapter::{Config, Filter, RequestAction, RequestInfo};

struct LogFlood;

impl Filter for LogFlood {
    fn init(_config: Config) -> Result<Self, String> {
        Ok(LogFlood)
    }

    fn on_request(&mut self, _request: &RequestInfo) -> Result<RequestAction, String> {
        for i in 0..100_000 {
            mte_relay_adapter::info!("flood line {i}");
        }
        mte_relay_adapter::warn!("{}", "x".repeat(1 << 20));
        Ok(RequestAction::proceed())
    }
}

mte_relay_adapter::export_filter!(LogFlood);
