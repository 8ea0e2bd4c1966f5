//! On `/bomb`, keeps allocating 1 MiB blocks until the host refuses to grow memory.

use mte_relay_adapter::{Config, Filter, RequestAction, RequestInfo};

struct MemoryBomb {
    hoard: Vec<Vec<u8>>,
}

impl Filter for MemoryBomb {
    fn init(_config: Config) -> Result<Self, String> {
        Ok(MemoryBomb { hoard: Vec::new() })
    }

    fn on_request(&mut self, request: &RequestInfo) -> Result<RequestAction, String> {
        if request.path() == "/bomb" {
            loop {
                self.hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
            }
        }
        Ok(RequestAction::proceed())
    }
}

mte_relay_adapter::export_filter!(MemoryBomb);
