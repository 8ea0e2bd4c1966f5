//! Registry errors the relay itself answers: upstream failures and route refusals.

use std::time::Duration;

use bytes::Bytes;
use http::Response;
use mte_relay_tests::client::get;
use mte_relay_tests::relay::Relay;
use mte_relay_tests::upstream::{ClosedPort, Upstream, full};

use crate::support::{assert_registry_error, pass_all_map};

#[tokio::test]
async fn an_unreachable_upstream_is_502_upstream_unreachable() {
    let closed = ClosedPort::new();
    let relay = Relay::start(&[("DOMAIN_MAP", &pass_all_map("down.example", closed.url()))]);
    let response = get(relay.addr(), "down.example", "/").await;
    assert_registry_error(response, 502, "upstream-unreachable").await;
}

#[tokio::test]
async fn a_slow_upstream_is_504_upstream_timeout() {
    // Sleeps far beyond the relay's timeout; the task is aborted when the test ends.
    let upstream = Upstream::start(|_request| async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Response::new(full(Bytes::from_static(b"too late")))
    })
    .await;
    let relay = Relay::start(&[
        ("DOMAIN_MAP", &pass_all_map("slow.example", &upstream.url())),
        ("UPSTREAM_RESPONSE_TIMEOUT_SECS", "0.5"),
    ]);
    let response = get(relay.addr(), "slow.example", "/").await;
    assert_registry_error(response, 504, "upstream-timeout").await;
}

#[tokio::test]
async fn plain_requests_on_mte_paths_are_told_the_relay_header_is_missing() {
    let upstream = crate::support::named_upstream("upstream").await;
    let map = serde_json::json!({
        "open.example": { "upstream": upstream.url(), "pass_through_routes": ["/health"] },
        "strict.example": {
            "upstream": upstream.url(),
            "pass_through_routes": ["/health"],
            "mte_routes": ["/api/*"],
        },
    })
    .to_string();
    let relay = Relay::start(&[("DOMAIN_MAP", &map)]);

    let health = get(relay.addr(), "open.example", "/health").await;
    assert_eq!(health.status(), 200);
    for path in ["/api/users", "/health/", "/anything", "/health/../api"] {
        let response = get(relay.addr(), "open.example", path).await;
        assert_registry_error(response, 559, "relay-header-missing").await;
    }
    let in_mte_routes = get(relay.addr(), "strict.example", "/api/users").await;
    assert_registry_error(in_mte_routes, 559, "relay-header-missing").await;
    let outside = get(relay.addr(), "strict.example", "/admin").await;
    assert_registry_error(outside, 404, "route-not-found").await;

    let wrong_method = mte_relay_tests::client::send(
        relay.addr(),
        mte_relay_tests::client::request("DELETE", "open.example", "/api/mte-pair")
            .body(full(Bytes::new()))
            .expect("request"),
    )
    .await;
    assert_registry_error(wrong_method, 404, "route-not-found").await;
}

/// A client that never finishes its request head is disconnected after
/// `CLIENT_HEADER_TIMEOUT_SECS`, so slow clients cannot hold connections forever.
#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let upstream = crate::support::named_upstream("u").await;
    let relay = Relay::start(&[
        ("UPSTREAM", &upstream.url()),
        ("CLIENT_HEADER_TIMEOUT_SECS", "0.5"),
    ]);
    let mut stream = tokio::net::TcpStream::connect(relay.addr())
        .await
        .expect("connect");
    stream
        .write_all(b"GET /api/mte-echo HTTP/1.1\r\nhost: a.example\r\nx-partial")
        .await
        .expect("write a partial head");
    let mut buffer = Vec::new();
    // The relay closes the connection (possibly after a 408); EOF ends the read.
    mte_relay_tests::within(
        "the relay to close the connection",
        stream.read_to_end(&mut buffer),
    )
    .await
    .ok();
    let answer = String::from_utf8_lossy(&buffer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
}

/// The 559–569 statuses go out with a reason phrase over HTTP/1 (docs/protocol.md §11).
#[tokio::test]
async fn registry_statuses_carry_a_reason_phrase() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let upstream = crate::support::named_upstream("upstream").await;
    let relay = Relay::start(&[("DOMAIN_MAP", &pass_all_map("x.example", &upstream.url()))]);
    let cases = [
        (
            "GET / HTTP/1.1\r\nhost: x.example\r\nx-mte-relay: garbage\r\nconnection: close\r\n\r\n",
            "HTTP/1.1 559 Relay Header Error\r\n",
        ),
        (
            "POST /api/mte-pair HTTP/1.1\r\nhost: x.example\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
            "HTTP/1.1 567 Pairing Refused\r\n",
        ),
    ];
    for (request, status_line) in cases {
        let mut stream = tokio::net::TcpStream::connect(relay.addr())
            .await
            .expect("connect");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut answer = Vec::new();
        mte_relay_tests::within("the answer", stream.read_to_end(&mut answer))
            .await
            .expect("read");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with(status_line), "{answer}");
    }
}

/// A refusal that comes before the relay read the request body does not cut the
/// client off mid-upload: the relay reads the rest and keeps the connection, so a
/// proxy in front of it delivers the refusal rather than a reset of its own.
#[tokio::test]
async fn a_refusal_before_the_body_was_read_keeps_the_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let upstream = crate::support::named_upstream("upstream").await;
    let relay = Relay::start(&[("UPSTREAM", &upstream.url())]);
    let mut stream = tokio::net::TcpStream::connect(relay.addr())
        .await
        .expect("connect");
    let body = vec![b'x'; 256 * 1024];
    let head = format!(
        "POST /api/orders HTTP/1.1\r\nhost: a.example\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    stream
        .write_all(&body[..1024])
        .await
        .expect("a first piece");
    // The refusal (no relay header) arrives while the body is still being written.
    let mut answer = vec![0u8; 4096];
    let read = mte_relay_tests::within("the refusal", stream.read(&mut answer))
        .await
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..read]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 559 "), "{answer}");
    assert!(
        !answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    mte_relay_tests::within("the rest of the body", stream.write_all(&body[1024..]))
        .await
        .expect("the relay kept reading");
    // The same connection serves the next request.
    stream
        .write_all(b"GET /api/mte-relay HTTP/1.1\r\nhost: a.example\r\nconnection: close\r\n\r\n")
        .await
        .expect("next request");
    let mut next = Vec::new();
    mte_relay_tests::within("the next answer", stream.read_to_end(&mut next))
        .await
        .expect("read");
    let next = String::from_utf8_lossy(&next);
    assert!(next.starts_with("HTTP/1.1 200 "), "{next}");
}
