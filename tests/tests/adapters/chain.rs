//! The example adapters in the relay's request path: filters on MTE and pass-through
//! routes, the phase order of a chain, local responses, and meters.

use http::StatusCode;
use mte_relay_tests::client::{body_bytes, get};
use mte_relay_tests::guests::declaration;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::support::{
    PLAIN_PREFIX, RecordingUpstream, client, get as get_through, relay_with_chain,
};

const KEY: &str = "e2e-api-key";

fn hex_sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn api_key_auth() -> serde_json::Value {
    declaration(
        "auth",
        "api-key-auth",
        json!({ "config": {
            "public_paths": [format!("{PLAIN_PREFIX}/public")],
            "keys": [{ "label": "team-a", "sha256": hex_sha256(KEY) }],
        }}),
    )
}

#[tokio::test]
async fn api_key_auth_guards_mte_and_pass_through_routes_alike() {
    let upstream = RecordingUpstream::start().await;
    let relay = relay_with_chain(&upstream.url(), vec![api_key_auth()], "auth");
    let client = client(&relay);

    // MTE: refused with the adapter's own 401, which travels back encrypted.
    let refused = get_through(&client, "/orders?id=1", &[]).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = serde_json::from_slice(&refused.body).expect("JSON 401");
    assert_eq!(body["reason"], "missing api key");
    let wrong = get_through(&client, "/orders?id=2", &[("x-api-key", "nope")]).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(
        upstream.seen().is_empty(),
        "refused requests never reach the upstream"
    );

    let allowed = get_through(&client, "/orders?id=3", &[("x-api-key", KEY)]).await;
    assert_eq!(allowed.status, StatusCode::OK);
    assert_eq!(&allowed.body[..], b"upstream");
    let seen = upstream.seen_for("/orders?id=3");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].headers["x-api-key-label"], "team-a");
    assert!(
        !seen[0].headers.contains_key("x-api-key"),
        "the key is stripped"
    );

    // Pass-through: the same chain, in the clear.
    let addr = relay.addr();
    let plain = get(addr, "localhost", &format!("{PLAIN_PREFIX}/data")).await;
    assert_eq!(plain.status(), StatusCode::UNAUTHORIZED);
    assert!(
        body_bytes(plain)
            .await
            .starts_with(b"{\"error\":\"unauthorized\"")
    );
    let public = get(addr, "localhost", &format!("{PLAIN_PREFIX}/public")).await;
    assert_eq!(
        public.status(),
        StatusCode::OK,
        "a public path needs no key"
    );
    let keyed = mte_relay_tests::client::send(
        addr,
        mte_relay_tests::client::request("GET", "localhost", &format!("{PLAIN_PREFIX}/data"))
            .header("x-api-key", KEY)
            .body(mte_relay_tests::upstream::full(bytes::Bytes::new()))
            .expect("request"),
    )
    .await;
    assert_eq!(keyed.status(), StatusCode::OK);
    let seen = upstream.seen_for(&format!("{PLAIN_PREFIX}/data"));
    assert_eq!(
        seen.len(),
        1,
        "only the keyed pass-through request went upstream"
    );
    assert_eq!(seen[0].headers["x-api-key-label"], "team-a");
}

/// Two `header-rewrite` instances that set the same headers: `on-request` runs in chain
/// order (the last one's value reaches the upstream), `on-response` in reverse order
/// (the first one's value reaches the client).
#[tokio::test]
async fn on_request_runs_in_chain_order_and_on_response_in_reverse() {
    let rewrite = |name: &str| {
        declaration(
            name,
            "header-rewrite",
            json!({ "config": {
                "request": [
                    { "op": "set", "name": "x-last-writer", "value": name },
                    { "op": "append", "name": "x-visited", "value": name },
                    { "op": "set", "name": "x-client", "value": "{client_id}" },
                    { "op": "set", "name": "x-correlation", "value": "{correlation_id}" },
                ],
                "response": [
                    { "op": "set", "name": "x-last-writer", "value": name },
                    { "op": "append", "name": "x-visited", "value": name },
                    { "op": "remove", "name": "server" },
                ],
            }}),
        )
    };
    let upstream = RecordingUpstream::start().await;
    let relay = relay_with_chain(
        &upstream.url(),
        vec![rewrite("first"), rewrite("second")],
        "first,second",
    );
    let client = client(&relay);
    let answer = get_through(&client, "/ordered", &[]).await;
    assert_eq!(answer.status, StatusCode::OK);

    let seen = upstream.seen_for("/ordered");
    let headers = &seen[0].headers;
    assert_eq!(headers["x-last-writer"], "second");
    let visited: Vec<_> = headers.get_all("x-visited").iter().collect();
    assert_eq!(visited, ["first", "second"]);
    assert_eq!(
        headers["x-client"].to_str().expect("text"),
        client.client_id().expect("identified"),
        "the verified client id is templated in"
    );
    assert_eq!(
        headers["x-correlation"], headers["x-request-id"],
        "the relay's correlation id, which it also sends upstream"
    );

    assert_eq!(answer.headers["x-last-writer"], "first");
    let visited: Vec<_> = answer.headers.get_all("x-visited").iter().collect();
    assert_eq!(visited, ["second", "first"]);
    assert!(
        !answer.headers.contains_key("server"),
        "removed on the way back"
    );
}

#[tokio::test]
async fn usage_log_counts_requests_per_domain_and_summarises_on_each_tick() {
    let upstream = RecordingUpstream::start().await;
    let adapters = crate::support::adapters_json(vec![declaration(
        "usage",
        "usage-log",
        json!({ "config": { "reset_on_tick": false } }),
    )]);
    let relay = mte_relay_tests::relay::Relay::start(&[
        ("UPSTREAM", upstream.url().as_str()),
        ("CLIENT_ID_SECRET", crate::support::CLIENT_ID_SECRET),
        ("PASS_THROUGH_ROUTES", "/plain/*"),
        ("ADAPTERS", adapters.as_str()),
        ("ADAPTER_CHAIN", "usage"),
        ("ADAPTER_TICK_SECS", "1"),
    ]);
    let client = client(&relay);
    for n in 0..3 {
        let answer = get_through(&client, &format!("/metered?n={n}"), &[]).await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    let plain = get(relay.addr(), "localhost", "/plain/metered").await;
    assert_eq!(plain.status(), StatusCode::OK);

    // Usage records are queued after each response completes and delivered in
    // batches; a tick then logs the running totals.
    let summary = relay
        .wait_for_log(|json| {
            json["adapter"] == "usage"
                && json["message"]
                    .as_str()
                    .is_some_and(|line| line.starts_with("usage domain=* requests=4 "))
        })
        .unwrap_or_else(|| {
            let lines: Vec<_> = relay
                .json_logs()
                .into_iter()
                .filter(|json| json["adapter"] == "usage")
                .collect();
            panic!("no summary of 4 requests: {lines:?}")
        });
    let line = summary["message"].as_str().expect("text");
    assert!(line.contains("errors=0"), "{line}");
    let bytes_out: u64 = line
        .split_whitespace()
        .find_map(|field| field.strip_prefix("bytes_out="))
        .and_then(|value| value.parse().ok())
        .expect("bytes_out field");
    assert!(bytes_out >= 4 * "upstream".len() as u64, "{line}");
}

#[tokio::test]
async fn on_shutdown_queued_usage_is_delivered_and_meters_tick_once_more() {
    let upstream = RecordingUpstream::start().await;
    let adapters = crate::support::adapters_json(vec![declaration(
        "usage",
        "usage-log",
        json!({ "config": {} }),
    )]);
    let mut relay = mte_relay_tests::relay::Relay::start(&[
        ("UPSTREAM", upstream.url().as_str()),
        ("CLIENT_ID_SECRET", crate::support::CLIENT_ID_SECRET),
        ("ADAPTERS", adapters.as_str()),
        ("ADAPTER_CHAIN", "usage"),
        // No tick would come for an hour: the summary below is the shutdown's.
        ("ADAPTER_TICK_SECS", "3600"),
    ]);
    let client = client(&relay);
    for n in 0..2 {
        let answer = get_through(&client, &format!("/before-shutdown?n={n}"), &[]).await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    drop(client);
    relay.terminate();
    let status = relay.wait_exit();
    assert!(
        status.success(),
        "exit {status:?}; stderr:\n{}",
        relay.stderr().join("\n")
    );
    let summaries: Vec<String> = relay
        .json_logs()
        .into_iter()
        .filter(|json| json["adapter"] == "usage")
        .filter_map(|json| json["message"].as_str().map(str::to_owned))
        .collect();
    assert!(
        summaries
            .iter()
            .any(|line| line.starts_with("usage domain=* requests=2 ")),
        "the last tick reports both requests: {summaries:?}"
    );
}
