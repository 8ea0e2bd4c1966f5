//! Spins forever on `/spin`; other paths pass. Only epoch interruption stops it.

use mte_relay_adapter::{Config, Filter, RequestAction, RequestInfo};

struct InfiniteLoop;

impl Filter for InfiniteLoop {
    fn init(_config: Config) -> Result<Self, String> {
        Ok(InfiniteLoop)
    }

    fn on_request(&mut self, request: &RequestInfo) -> Result<RequestAction, String> {
        if request.path() == "/spin" {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        Ok(RequestAction::proceed())
    }
}

mte_relay_adapter::export_filter!(InfiniteLoop);
