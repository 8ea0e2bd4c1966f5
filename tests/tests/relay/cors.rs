//! CORS: preflights answered from the domain's policy; other origins get nothing.

use bytes::Bytes;
use http::StatusCode;
use mte_relay_tests::client::{request, send};
use mte_relay_tests::relay::Relay;
use mte_relay_tests::upstream::full;

use crate::support::named_upstream;

fn cors_map(upstream: &str) -> String {
    serde_json::json!({
        "app.example": {
            "upstream": upstream,
            "pass_through_routes": ["/public/*"],
            "cors_origins": ["https://web.example"],
            "cors_methods": ["GET", "POST"],
        }
    })
    .to_string()
}

async fn preflight(
    relay: &Relay,
    origin: &str,
    method: &str,
) -> http::Response<hyper::body::Incoming> {
    let request = request("OPTIONS", "app.example", "/api/data")
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header(
            "access-control-request-headers",
            "x-mte-relay, content-type",
        )
        .body(full(Bytes::new()))
        .expect("request");
    send(relay.addr(), request).await
}

#[tokio::test]
async fn an_allowed_preflight_gets_the_relay_headers() {
    let upstream = named_upstream("u").await;
    let relay = Relay::start(&[("DOMAIN_MAP", &cors_map(&upstream.url()))]);

    let response = preflight(&relay, "https://web.example", "POST").await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let headers = response.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://web.example"
    );
    let methods = headers["access-control-allow-methods"]
        .to_str()
        .expect("ascii");
    for method in ["OPTIONS", "HEAD", "GET", "POST"] {
        assert!(methods.contains(method), "{methods}");
    }
    assert!(!methods.contains("DELETE"), "{methods}");
    let allowed = headers["access-control-allow-headers"]
        .to_str()
        .expect("ascii");
    for name in [
        "x-mte-relay",
        "x-mte-relay-head",
        "x-request-id",
        "content-type",
    ] {
        assert!(allowed.contains(name), "{allowed}");
    }
}

#[tokio::test]
async fn refused_preflights_get_no_cors_headers() {
    let upstream = named_upstream("u").await;
    let relay = Relay::start(&[("DOMAIN_MAP", &cors_map(&upstream.url()))]);

    for (origin, method) in [
        ("https://evil.example", "GET"),
        ("https://web.example", "DELETE"),
    ] {
        let response = preflight(&relay, origin, method).await;
        let cors: Vec<_> = response
            .headers()
            .keys()
            .filter(|name| name.as_str().starts_with("access-control-"))
            .collect();
        assert!(cors.is_empty(), "{origin} {method}: {cors:?}");
    }
}

#[tokio::test]
async fn actual_responses_expose_relay_headers_to_allowed_origins_only() {
    let upstream = named_upstream("u").await;
    let relay = Relay::start(&[("DOMAIN_MAP", &cors_map(&upstream.url()))]);

    let allowed = send(
        relay.addr(),
        request("GET", "app.example", "/public/x")
            .header("origin", "https://web.example")
            .body(full(Bytes::new()))
            .expect("request"),
    )
    .await;
    assert_eq!(allowed.status(), 200);
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://web.example"
    );
    let exposed = allowed.headers()["access-control-expose-headers"]
        .to_str()
        .expect("ascii");
    assert!(exposed.contains("x-mte-relay-error"), "{exposed}");

    // A registry error must be readable by an allowed browser client too.
    let refused = send(
        relay.addr(),
        request("GET", "app.example", "/private")
            .header("origin", "https://web.example")
            .body(full(Bytes::new()))
            .expect("request"),
    )
    .await;
    assert_eq!(refused.status().as_u16(), 559);
    assert_eq!(
        refused.headers()["access-control-allow-origin"],
        "https://web.example"
    );

    let other = send(
        relay.addr(),
        request("GET", "app.example", "/public/x")
            .header("origin", "https://evil.example")
            .body(full(Bytes::new()))
            .expect("request"),
    )
    .await;
    assert!(other.headers().get("access-control-allow-origin").is_none());
}
