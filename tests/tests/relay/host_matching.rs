//! Host matching: exact, case-insensitive, with port, wildcard, and no match.

use mte_relay_tests::client::{body_bytes, get};
use mte_relay_tests::relay::Relay;

use crate::support::{assert_registry_error, named_upstream};

#[tokio::test]
async fn hosts_match_exactly_then_by_port_then_wildcard() {
    let plain = named_upstream("plain").await;
    let with_port = named_upstream("with-port").await;
    let fallback = named_upstream("fallback").await;
    let map = serde_json::json!({
        "api.example.com": { "upstream": plain.url(), "pass_through_routes": ["/who"] },
        "API.example.com:9443": { "upstream": with_port.url(), "pass_through_routes": ["/who"] },
        "*": { "upstream": fallback.url(), "pass_through_routes": ["/who"] },
    })
    .to_string();
    let relay = Relay::start(&[("DOMAIN_MAP", &map)]);

    for (host, expected) in [
        ("api.example.com", "plain"),
        ("Api.Example.COM", "plain"),
        ("api.example.com:8080", "plain"),
        ("api.example.com:9443", "with-port"),
        ("API.EXAMPLE.COM:9443", "with-port"),
        ("other.example.com", "fallback"),
        ("example.com", "fallback"),
    ] {
        let response = get(relay.addr(), host, "/who").await;
        assert_eq!(response.status(), 200, "Host: {host}");
        assert_eq!(
            body_bytes(response).await,
            expected.as_bytes(),
            "Host: {host}"
        );
    }
}

#[tokio::test]
async fn an_unknown_host_without_wildcard_is_domain_unknown() {
    let upstream = named_upstream("known").await;
    let map = serde_json::json!({
        "known.example": { "upstream": upstream.url(), "pass_through_routes": ["/*"] },
    })
    .to_string();
    let relay = Relay::start(&[("DOMAIN_MAP", &map)]);

    let known = get(relay.addr(), "known.example", "/").await;
    assert_eq!(body_bytes(known).await, "known".as_bytes());
    for host in ["unknown.example", "known.example.evil", "sub.known.example"] {
        let response = get(relay.addr(), host, "/").await;
        assert_registry_error(response, 404, "domain-unknown").await;
    }
}
