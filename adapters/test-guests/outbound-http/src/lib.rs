//! GETs the URL in the `x-target` header through wasi:http and reports the result
//! to the upstream as `x-outbound-status` or `x-outbound-error`.

use mte_relay_adapter::wasi::http::outgoing_handler;
use mte_relay_adapter::wasi::http::types::{Fields, OutgoingRequest, Scheme};
use mte_relay_adapter::{Config, Filter, HeaderEdit, RequestAction, RequestInfo};

struct OutboundHttp;

fn fetch(url: &str) -> Result<u16, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("not a URL: {url}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    request
        .set_scheme(Some(&if scheme == "https" {
            Scheme::Https
        } else {
            Scheme::Http
        }))
        .map_err(|()| "scheme refused".to_string())?;
    request
        .set_authority(Some(authority))
        .map_err(|()| "authority refused".to_string())?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| "path refused".to_string())?;
    let pending = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or("no response")?
        .map_err(|()| "response taken twice".to_string())?
        .map_err(|e| format!("{e:?}"))?;
    Ok(response.status())
}

impl Filter for OutboundHttp {
    fn init(_config: Config) -> Result<Self, String> {
        Ok(OutboundHttp)
    }

    fn on_request(&mut self, request: &RequestInfo) -> Result<RequestAction, String> {
        let Some(target) = request.header("x-target") else {
            return Ok(RequestAction::proceed());
        };
        let edit = match fetch(target) {
            Ok(status) => HeaderEdit::set("x-outbound-status", status.to_string()),
            Err(error) => HeaderEdit::set("x-outbound-error", error.replace(['\r', '\n'], " ")),
        };
        Ok(RequestAction::proceed_with(vec![edit]))
    }
}

mte_relay_adapter::export_filter!(OutboundHttp);
