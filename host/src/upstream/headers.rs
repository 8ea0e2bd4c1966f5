//! Header hygiene between the client side and the upstream side (RFC 9110 §7.6).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use mte_relay_protocol::hop_by_hop::connection_named;

use crate::forwarded::{Provenance, set_forwarding_headers};
use crate::header_rules::{HOP_BY_HOP, is_relay_header};

pub const X_REQUEST_ID: &str = "x-request-id";

/// True for an HTTP/1.1 upgrade request (`Connection: upgrade` plus `Upgrade`).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_lists(headers, "upgrade")
}

fn connection_lists(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}

/// Removes hop-by-hop headers, including those the `Connection` header names.
/// With `keep_upgrade`, an `Upgrade` header survives with `Connection: upgrade`, which
/// is how a proxy forwards a protocol switch.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<HeaderName> = connection_named(
        headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok()),
    )
    .filter_map(|item| HeaderName::from_bytes(item.as_bytes()).ok())
    .collect();
    let upgrade = headers.get(header::UPGRADE).cloned();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
    if keep_upgrade && let Some(upgrade) = upgrade {
        headers.insert(header::UPGRADE, upgrade);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// States how a request body of unknown length is framed. hyper sends such a body
/// chunked, except on `GET`, `HEAD` and `CONNECT`, where it assumes there is none and
/// sends nothing: a `GET` with a body (a query document, say) would reach the upstream
/// empty. An explicit `transfer-encoding: chunked` makes it send the body.
///
/// A request of a method that normally has a body (POST, PUT, PATCH) sent without one
/// states `content-length: 0`, as browsers send it, since some servers refuse such a
/// request without a length (411).
pub fn frame_body<B: http_body::Body>(parts: &mut http::request::Parts, body: &B) {
    if parts.headers.contains_key(header::CONTENT_LENGTH) {
        return;
    }
    if body.is_end_stream() {
        if matches!(
            parts.method,
            http::Method::POST | http::Method::PUT | http::Method::PATCH
        ) {
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        }
    } else if body.size_hint().exact().is_none() {
        parts.headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
    }
}

/// Removes every `x-mte-relay*` header.
pub fn strip_relay_headers(headers: &mut HeaderMap) {
    let relay: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_relay_header(name))
        .cloned()
        .collect();
    for name in relay {
        headers.remove(name);
    }
}

/// The request side of hygiene, applied to every request the relay sends upstream.
#[derive(Clone, Copy, Debug)]
pub struct ForwardedFor<'a> {
    /// Who sent the request (see [`crate::forwarded`]).
    pub provenance: &'a Provenance,
    /// The host the client asked for.
    pub host: &'a str,
    pub request_id: &'a str,
}

/// Prepares request headers for the upstream: no hop-by-hop or relay headers, no
/// client `Host` (the client sets the upstream's), the relay's own forwarding headers
/// (see [`crate::forwarded`]: a client's are dropped, a trusted front proxy's
/// extended) and `x-request-id`, then the domain's configured headers on top.
pub fn prepare_request_headers(
    headers: &mut HeaderMap,
    forwarded: &ForwardedFor<'_>,
    configured: &HeaderMap,
) {
    let upgrade = is_upgrade(headers);
    strip_hop_by_hop(headers, upgrade);
    strip_relay_headers(headers);
    headers.remove(header::HOST);
    set_forwarding_headers(headers, forwarded.provenance, forwarded.host);
    if let Ok(value) = HeaderValue::from_str(forwarded.request_id) {
        headers.insert(X_REQUEST_ID, value);
    }
    for (name, value) in configured {
        headers.insert(name.clone(), value.clone());
    }
}

/// Prepares upstream response headers for the client. A `101 Switching Protocols`
/// keeps its `Upgrade`; relay headers are removed so an upstream cannot forge them.
pub fn prepare_response_headers(headers: &mut HeaderMap, switching_protocols: bool) {
    strip_hop_by_hop(headers, switching_protocols);
    strip_relay_headers(headers);
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::config::TrustedProxies;
    use crate::forwarded::{X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO};

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        headers
    }

    fn provenance() -> Provenance {
        Provenance::of(
            IpAddr::from([127, 0, 0, 9]),
            &HeaderMap::new(),
            &TrustedProxies::default(),
        )
    }

    fn forwarded(provenance: &Provenance) -> ForwardedFor<'_> {
        ForwardedFor {
            provenance,
            host: "api.example.com",
            request_id: "req-1",
        }
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut headers = map(&[
            ("connection", "keep-alive, x-secret-hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("te", "trailers"),
            ("proxy-authorization", "Basic abc"),
            ("x-mte-relay", "abc"),
            ("x-mte-relay-head", "abc"),
            ("host", "api.example.com"),
            ("accept", "text/plain"),
        ]);
        prepare_request_headers(&mut headers, &forwarded(&provenance()), &HeaderMap::new());
        for gone in [
            "connection",
            "keep-alive",
            "x-secret-hop",
            "te",
            "proxy-authorization",
            "x-mte-relay",
            "x-mte-relay-head",
            "host",
        ] {
            assert!(!headers.contains_key(gone), "{gone} survived");
        }
        assert_eq!(headers["accept"], "text/plain");
        assert_eq!(headers[X_FORWARDED_FOR], "127.0.0.9");
        assert_eq!(headers[X_FORWARDED_PROTO], "http");
        assert_eq!(headers[X_FORWARDED_HOST], "api.example.com");
        assert_eq!(headers[X_REQUEST_ID], "req-1");
    }

    #[test]
    fn forwarding_headers_of_a_client_are_replaced() {
        let mut headers = map(&[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "public.example.com"),
            ("forwarded", "for=203.0.113.7"),
        ]);
        prepare_request_headers(&mut headers, &forwarded(&provenance()), &HeaderMap::new());
        assert_eq!(headers[X_FORWARDED_FOR], "127.0.0.9");
        assert_eq!(headers[X_FORWARDED_PROTO], "http");
        assert_eq!(headers[X_FORWARDED_HOST], "api.example.com");
        assert_eq!(
            headers["forwarded"],
            "for=127.0.0.9;proto=http;host=\"api.example.com\""
        );
    }

    #[test]
    fn configured_headers_replace_client_ones() {
        let mut headers = map(&[("x-api-key", "from-client")]);
        let configured = map(&[("x-api-key", "from-config")]);
        prepare_request_headers(&mut headers, &forwarded(&provenance()), &configured);
        assert_eq!(headers.get_all("x-api-key").iter().count(), 1);
        assert_eq!(headers["x-api-key"], "from-config");
    }

    #[test]
    fn upgrades_keep_their_upgrade_header() {
        let mut headers = map(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "abc"),
        ]);
        prepare_request_headers(&mut headers, &forwarded(&provenance()), &HeaderMap::new());
        assert_eq!(headers[header::UPGRADE], "websocket");
        assert_eq!(headers[header::CONNECTION], "upgrade");
        assert_eq!(headers["sec-websocket-key"], "abc");
    }

    #[test]
    fn responses_lose_hop_by_hop_and_forged_relay_headers() {
        let mut headers = map(&[
            ("connection", "close"),
            ("upgrade", "websocket"),
            ("x-mte-relay-error", "replay"),
            ("content-type", "text/plain"),
        ]);
        prepare_response_headers(&mut headers, false);
        assert!(!headers.contains_key("upgrade"));
        assert!(!headers.contains_key("x-mte-relay-error"));
        assert_eq!(headers["content-type"], "text/plain");
    }
}
