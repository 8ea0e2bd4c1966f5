//! The admin listener (docs/operations.md, "Health checks"): liveness and readiness on
//! a port of their own, and `mte-relay health` probing them.

use std::time::Duration;

use bytes::Bytes;
use http::Response;
use mte_relay_tests::client::{body_json, get};
use mte_relay_tests::redis::RedisServer;
use mte_relay_tests::relay::{self, Relay};
use mte_relay_tests::upstream::{Upstream, full};
use mte_relay_tests::within;

use crate::support::{GatedUpstream, pass_all_map};

const SECRET: &str = "an-admin-test-client-id-secret-0123456789abcdef";
const STORE_KEY: &str = "an-admin-test-store-key-0123456789abcdefghij";

async fn admin_get(relay: &Relay, path: &str) -> (u16, serde_json::Value) {
    let response = get(relay.admin_addr(), "admin", path).await;
    let status = response.status().as_u16();
    (status, body_json(response).await)
}

/// Polls `/readyz` (bounded) until it stops answering 200; returns that answer.
async fn readiness_failure(relay: &Relay) -> (u16, serde_json::Value) {
    within("readiness to fail", async {
        loop {
            let answer = admin_get(relay, "/readyz").await;
            if answer.0 != 200 {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

fn health(relay: &Relay, args: &[&str]) -> relay::Finished {
    let address = relay.admin_addr().to_string();
    let mut all = vec!["health", "--address", address.as_str()];
    all.extend_from_slice(args);
    relay::run(&all, &[])
}

#[tokio::test]
async fn liveness_and_readiness_answer_on_the_admin_port_only() {
    let upstream =
        Upstream::start(|_| async { Response::new(full(Bytes::from_static(b"up"))) }).await;
    let relay = Relay::start(&[("DOMAIN_MAP", &pass_all_map("api.example", &upstream.url()))]);
    assert_ne!(relay.admin_addr().port(), relay.addr().port());
    let (status, body) = admin_get(&relay, "/healthz").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = admin_get(&relay, "/readyz").await;
    assert_eq!(
        (status, body["ready"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    let (status, _) = admin_get(&relay, "/nothing").await;
    assert_eq!(status, 404);
    // The data port knows nothing of them: its routes are the domains'.
    let data = get(relay.addr(), "unknown.example", "/healthz").await;
    assert_eq!(data.status(), 404);
    assert_eq!(data.headers()["x-mte-relay-error"], "domain-unknown");

    let live = health(&relay, &[]);
    assert_eq!(live.status.code(), Some(0), "{}", live.stderr);
    let ready = health(&relay, &["--ready"]);
    assert_eq!(ready.status.code(), Some(0), "{}", ready.stderr);
}

#[tokio::test]
async fn readiness_follows_the_pair_store() {
    let port = relay::free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let relay = Relay::start(&[
        ("UPSTREAM", "http://127.0.0.1:9"),
        ("CLIENT_ID_SECRET", SECRET),
        ("REDIS_URL", url.as_str()),
        ("STORE_KEY", STORE_KEY),
    ]);
    let (status, body) = admin_get(&relay, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["reason"], "store-unavailable", "{body}");
    let (status, _) = admin_get(&relay, "/healthz").await;
    assert_eq!(status, 200, "alive while not ready");
    let not_ready = health(&relay, &["--ready"]);
    assert_eq!(not_ready.status.code(), Some(1));
    assert!(not_ready.stderr.contains("503"), "{}", not_ready.stderr);

    let _redis = RedisServer::start_on_port(port);
    within("readiness once Redis answers", async {
        loop {
            if admin_get(&relay, "/readyz").await.0 == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn readiness_fails_as_soon_as_a_graceful_shutdown_begins() {
    let mut upstream = GatedUpstream::start(b"done").await;
    let mut relay = Relay::start(&[
        (
            "DOMAIN_MAP",
            &pass_all_map("slow.example", &upstream.upstream.url()),
        ),
        ("SHUTDOWN_GRACE_SECS", "15"),
    ]);
    let addr = relay.addr();
    let in_flight = tokio::spawn(async move { get(addr, "slow.example", "/slow").await });
    upstream.arrived().await;
    assert_eq!(admin_get(&relay, "/readyz").await.0, 200);

    relay.terminate();
    let (status, body) = readiness_failure(&relay).await;
    assert_eq!(status, 503);
    assert_eq!(body["reason"], "shutting-down", "{body}");
    assert_eq!(
        admin_get(&relay, "/healthz").await.0,
        200,
        "still alive while draining"
    );

    upstream.release();
    let finished = in_flight.await.expect("task");
    assert_eq!(finished.status(), 200, "the in-flight request finished");
    assert!(relay.wait_exit().success());
}

#[test]
fn health_fails_when_nothing_listens_and_the_admin_port_cannot_be_the_data_port() {
    let closed = relay::free_port().to_string();
    let address = format!("127.0.0.1:{closed}");
    let nobody = relay::run(&["health", "--address", address.as_str()], &[]);
    assert_eq!(nobody.status.code(), Some(1));
    assert!(!nobody.stderr.is_empty());

    let same = relay::run(
        &["serve"],
        &[
            ("UPSTREAM", "http://127.0.0.1:9"),
            ("CLIENT_ID_SECRET", SECRET),
            ("PORT", "8181"),
            ("ADMIN_PORT", "8181"),
        ],
    );
    assert_eq!(same.status.code(), Some(2));
    assert!(same.stderr.contains("ADMIN_PORT"), "{}", same.stderr);
}

#[tokio::test]
async fn metrics_can_be_turned_off_and_probes_stay() {
    let upstream =
        Upstream::start(|_| async { Response::new(full(Bytes::from_static(b"up"))) }).await;
    let on = Relay::start(&[("DOMAIN_MAP", &pass_all_map("api.example", &upstream.url()))]);
    let off = Relay::start(&[
        ("DOMAIN_MAP", &pass_all_map("api.example", &upstream.url())),
        ("METRICS", "false"),
    ]);
    for relay in [&on, &off] {
        assert_eq!(get(relay.addr(), "api.example", "/x").await.status(), 200);
    }
    let scrape = get(on.admin_addr(), "admin", "/metrics").await;
    assert_eq!(scrape.status(), 200);
    let text = String::from_utf8(mte_relay_tests::client::body_bytes(scrape).await.to_vec())
        .expect("utf-8");
    assert!(
        text.contains(r#"mte_relay_requests_total{domain="api.example",route="pass-through",method="GET",status="2xx"} 1"#),
        "{text}"
    );
    let (status, body) = admin_get(&off, "/metrics").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(admin_get(&off, "/readyz").await.0, 200);
}

#[tokio::test]
async fn a_shutdown_delay_keeps_accepting_while_readiness_fails() {
    let upstream =
        Upstream::start(|_| async { Response::new(full(Bytes::from_static(b"up"))) }).await;
    let mut relay = Relay::start(&[
        ("DOMAIN_MAP", &pass_all_map("api.example", &upstream.url())),
        ("SHUTDOWN_DELAY_SECS", "2"),
    ]);
    relay.terminate();
    let (status, body) = readiness_failure(&relay).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (503, Some("shutting-down"))
    );
    // Within the delay, a new connection is still served.
    let late = get(relay.addr(), "api.example", "/late").await;
    assert_eq!(late.status(), 200);
    assert!(relay.wait_exit().success());
}

#[tokio::test]
async fn an_upstream_error_header_on_a_pass_through_answer_is_not_a_refusal() {
    let upstream = Upstream::start(|_| async {
        let mut response = Response::new(full(Bytes::from_static(b"a relay behind a relay")));
        *response.status_mut() = http::StatusCode::from_u16(565).expect("status");
        response.headers_mut().insert(
            "x-mte-relay-error",
            http::HeaderValue::from_static("replay"),
        );
        response
    })
    .await;
    let relay = Relay::start(&[("DOMAIN_MAP", &pass_all_map("api.example", &upstream.url()))]);
    assert_eq!(get(relay.addr(), "api.example", "/x").await.status(), 565);
    // The relay's own refusal (no domain) is counted.
    assert_eq!(get(relay.addr(), "other.example", "/x").await.status(), 404);
    let scrape = get(relay.admin_addr(), "admin", "/metrics").await;
    let text = String::from_utf8(mte_relay_tests::client::body_bytes(scrape).await.to_vec())
        .expect("utf-8");
    assert!(!text.contains(r#"reason="replay""#), "{text}");
    assert!(
        text.contains(r#"mte_relay_refusals_total{domain="-",reason="domain-unknown"} 1"#),
        "{text}"
    );
}
