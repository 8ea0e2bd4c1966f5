//! Panics on any request whose path starts with `/trap`; everything else passes.
//! Lets the tests show a trap neither kills the host nor poisons other calls.

use mte_relay_adapter::{Config, Filter, RequestAction, RequestInfo};

struct TrapOnRequest;

impl Filter for TrapOnRequest {
    fn init(_config: Config) -> Result<Self, String> {
        Ok(TrapOnRequest)
    }

    fn on_request(&mut self, request: &RequestInfo) -> Result<RequestAction, String> {
        if request.path().starts_with("/trap") {
            panic!("deliberate trap for {}", request.path());
        }
        Ok(RequestAction::proceed())
    }
}

mte_relay_adapter::export_filter!(TrapOnRequest);
