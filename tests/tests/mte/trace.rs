//! W3C Trace Context through the relay: `traceparent` reaches the upstream unchanged,
//! inside the sealed head for MTE requests, and the access line carries its trace id.

use bytes::Bytes;
use http::Request;
use mte_relay_tests::client;

use crate::support::{RecordingUpstream, access_lines, client_for, relay_for};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test]
async fn the_trace_context_reaches_the_upstream_and_the_access_log() {
    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(
        &upstream.upstream.url(),
        &[("PASS_THROUGH_ROUTES", "/public/*")],
    );
    let client = client_for(&relay);
    let request = Request::post("/orders")
        .header("traceparent", TRACEPARENT)
        .body(Bytes::from_static(b"{}"))
        .expect("request");
    let response = client.send(request).await.expect("answered");
    assert_eq!(response.status(), 200);
    response.into_body().collect_bytes().await.expect("body");
    let plain = client::request("GET", "127.0.0.1", "/public/page")
        .header("traceparent", TRACEPARENT.replace("4bf9", "aaaa"))
        .body(mte_relay_tests::upstream::full(Bytes::new()))
        .expect("request");
    assert_eq!(client::send(relay.addr(), plain).await.status(), 200);
    let forged = client::request("GET", "127.0.0.1", "/public/other")
        .header("traceparent", "00-not-a-trace-id-01")
        .body(mte_relay_tests::upstream::full(Bytes::new()))
        .expect("request");
    assert_eq!(client::send(relay.addr(), forged).await.status(), 200);

    let seen = upstream.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(
        seen[0].headers["traceparent"], TRACEPARENT,
        "inside the MTE head"
    );
    let lines = mte_relay_tests::within("the access lines", async {
        loop {
            let lines = access_lines(&relay);
            if lines
                .iter()
                .filter(|json| json["route"] != "pair" && json["route"] != "capabilities")
                .count()
                >= 3
            {
                return lines;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    let trace_of = |route: &str, nth: usize| {
        lines
            .iter()
            .filter(|json| json["route"] == route)
            .nth(nth)
            .map(|json| json["trace_id"].clone())
    };
    assert_eq!(trace_of("mte", 0), Some(serde_json::json!(TRACE_ID)));
    assert_eq!(
        trace_of("pass-through", 0),
        Some(serde_json::json!(TRACE_ID.replace("4bf9", "aaaa")))
    );
    assert_eq!(
        trace_of("pass-through", 1),
        Some(serde_json::json!("-")),
        "malformed: not logged"
    );
}
