//! Returns the invalid output named by the path; any other path gets a valid edit.
//! `on-response` returns an invalid edit only for `/bad-response`. On
//! `/forged-relay-error` it answers locally with a relay header (`x-mte-relay-error`), which the
//! runtime refuses like any other edit of a relay header.

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
            "/forged-relay-error" => {
                return Ok(RequestAction::respond(
                    200,
                    vec![Header {
                        name: "x-mte-relay-error".into(),
                        value: "replay".into(),
                    }],
                    b"local".to_vec(),
                ));
            }
            _ => HeaderEdit::set("x-checked", "yes"),
        };
        Ok(RequestAction::proceed_with(vec![edit]))
    }

    fn on_response(
        &mut self,
        request: &RequestInfo,
        _response: &ResponseInfo,
    ) -> Result<Vec<HeaderEdit>, String> {
        if request.path() == "/bad-response" {
            return Ok(vec![HeaderEdit::append("x-bad\u{0}", "v")]);
        }
        Ok(vec![HeaderEdit::set("x-response-checked", "yes")])
    }
}

mte_relay_adapter::export_filter!(BadHeaders);
