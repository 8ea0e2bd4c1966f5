//! Returns the invalid output named by the path; `/ok` returns a valid edit.

use mte_relay_adapter::{
    Config, Filter, Header, HeaderEdit, RequestAction, RequestInfo, ResponseInfo,
};

struct BadHeaders;

impl Filter for BadHeaders {
    fn init(_config: Config) -> Result<Self, String> {
        Ok(BadHeaders)
    }

    fn on_request(&mut self, request: &RequestInfo) -> Result<RequestAction, String> {
        let edit = match request.path() {
            "/bad-name" => HeaderEdit::set("bad header\n", "v"),
            "/bad-value" => HeaderEdit::set("x-fine", "line\r\nbreak"),
            "/reserved" => HeaderEdit::set("content-length", "0"),
            "/bad-status" => {
                return Ok(RequestAction::respond(
                    42,
                    vec![Header {
                        name: "x-a".into(),
                        value: "b".into(),
                    }],
                    Vec::new(),
                ));
            }
            _ => HeaderEdit::set("x-checked", "yes"),
        };
        Ok(RequestAction::proceed_with(vec![edit]))
    }

    fn on_response(
        &mut self,
        _request: &RequestInfo,
        _response: &ResponseInfo,
    ) -> Result<Vec<HeaderEdit>, String> {
        Ok(vec![HeaderEdit::append("x-bad\u{0}", "v")])
    }
}

mte_relay_adapter::export_filter!(BadHeaders);
