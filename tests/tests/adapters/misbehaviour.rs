//! One test guest per misbehaviour, each inside the real relay. Every test runs the
//! guest twice: as a `closed` instance on `localhost` (the request is refused with
//! `adapter-failed` and the upstream sees nothing) and as an `open` instance on
//! `127.0.0.1` (the request proceeds as if the adapter were absent). Afterwards the
//! relay keeps serving requests that do not trigger the misbehaviour.

use http::StatusCode;
use mte_relay_tests::guests::declaration;
use mte_relay_tests::relay::Relay;
use serde_json::{Value, json};

use crate::support::{
    RecordingUpstream, client_via, expect_adapter_failed, get, relay_with_two_policies,
    wait_for_failure,
};

/// The closed and open instances of `package`, with the extra fields given.
fn both_policies(package: &str, extra: Value) -> Vec<Value> {
    let with_policy = |policy: &str| {
        let mut fields = extra.clone();
        fields["failure_policy"] = json!(policy);
        fields
    };
    vec![
        declaration("closed", package, with_policy("closed")),
        declaration("open", package, with_policy("open")),
    ]
}

/// Triggers the misbehaviour through both instances and checks each policy, then
/// that the relay still serves a request that does not misbehave.
async fn policies_apply(
    package: &str,
    extra: Value,
    trigger: (&str, &[(&str, &str)]),
    failure: &str,
) -> (Relay, RecordingUpstream) {
    let upstream = RecordingUpstream::start().await;
    let relay = relay_with_two_policies(
        &upstream.url(),
        both_policies(package, extra),
        "closed",
        "open",
    );
    let (path, headers) = trigger;

    let closed = client_via(&relay, "localhost");
    expect_adapter_failed(&closed, path, headers).await;
    let logged = wait_for_failure(&relay, "closed", failure);
    assert_eq!(logged["disposition"], "Deny", "{logged}");
    assert!(logged["version"].as_str().is_some_and(|v| !v.is_empty()));
    assert!(
        upstream.seen_for(path).is_empty(),
        "the upstream saw nothing"
    );

    let open = client_via(&relay, "127.0.0.1");
    let proceeded = get(&open, path, headers).await;
    assert_eq!(
        proceeded.status,
        StatusCode::OK,
        "the open policy lets it through"
    );
    let logged = wait_for_failure(&relay, "open", failure);
    assert_eq!(logged["disposition"], "Proceed", "{logged}");
    assert_eq!(upstream.seen_for(path).len(), 1);

    let healthy = get(&closed, "/fine", &[]).await;
    assert_eq!(healthy.status, StatusCode::OK, "the relay keeps serving");
    assert_eq!(upstream.seen_for("/fine").len(), 1);
    (relay, upstream)
}

#[tokio::test]
async fn a_trap_in_on_request() {
    let (relay, _upstream) =
        policies_apply("trap-on-request", json!({}), ("/trap", &[]), "trap").await;
    let logged = wait_for_failure(&relay, "closed", "trap");
    assert!(
        logged["backtrace"]
            .as_str()
            .is_some_and(|trace| !trace.is_empty()),
        "a trap is logged with its backtrace: {logged}"
    );
}

#[tokio::test]
async fn an_infinite_loop_is_interrupted_at_the_deadline() {
    policies_apply(
        "infinite-loop",
        json!({ "deadline_ms": 100 }),
        ("/spin", &[]),
        "timeout",
    )
    .await;
}

#[tokio::test]
async fn memory_growth_past_the_cap() {
    policies_apply(
        "memory-bomb",
        json!({ "memory_mb": 16 }),
        ("/bomb", &[]),
        "memory",
    )
    .await;
}

#[tokio::test]
async fn a_hook_slower_than_its_deadline() {
    policies_apply(
        "slow-hook",
        json!({ "deadline_ms": 100 }),
        ("/slow", &[("x-sleep-ms", "2000")]),
        "timeout",
    )
    .await;
}

#[tokio::test]
async fn invalid_header_edits_and_local_responses() {
    let (relay, upstream) =
        policies_apply("bad-headers", json!({}), ("/bad-name", &[]), "bad_output").await;
    let closed = client_via(&relay, "localhost");
    for path in ["/bad-value", "/reserved", "/bad-status"] {
        expect_adapter_failed(&closed, path, &[]).await;
        assert!(upstream.seen_for(path).is_empty(), "{path}");
    }
    // A local response may not carry relay headers: inside the sealed head
    // `x-mte-relay-error` would read as the relay's own authenticated refusal.
    expect_adapter_failed(&closed, "/forged-relay-error", &[]).await;
    assert!(upstream.seen_for("/forged-relay-error").is_empty());
    // Valid edits from the same guest apply both ways.
    let answer = get(&closed, "/good", &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(upstream.seen_for("/good")[0].headers["x-checked"], "yes");
    assert_eq!(answer.headers["x-response-checked"], "yes");

    // An invalid edit in on-response: the upstream answered, the client gets the
    // closed policy's refusal instead (open: the answer, without the edit).
    expect_adapter_failed(&closed, "/bad-response", &[]).await;
    assert_eq!(upstream.seen_for("/bad-response").len(), 1);
    let open = client_via(&relay, "127.0.0.1");
    let answer = get(&open, "/bad-response", &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(!answer.headers.contains_key("x-bad"));
}

#[test]
fn a_failing_init_stops_startup_and_check_config() {
    let adapters = crate::support::adapters_json(vec![declaration(
        "picky",
        "init-fails",
        json!({ "config": { "ok": false } }),
    )]);
    // The line names the adapter and gives the guest's own reason.
    crate::config::refused(
        &[("ADAPTERS", adapters.as_str()), ("ADAPTER_CHAIN", "picky")],
        &["ADAPTERS", "picky", "init failed", "ok=false"],
    );

    // The same guest with a configuration it accepts starts.
    let adapters = crate::support::adapters_json(vec![declaration(
        "picky",
        "init-fails",
        json!({ "config": { "ok": true } }),
    )]);
    let relay = Relay::start(&[
        ("UPSTREAM", "http://127.0.0.1:9"),
        ("CLIENT_ID_SECRET", crate::support::CLIENT_ID_SECRET),
        ("ADAPTERS", adapters.as_str()),
        ("ADAPTER_CHAIN", "picky"),
    ]);
    drop(relay);
}

#[tokio::test]
async fn outbound_http_only_to_allowed_hosts() {
    let upstream = RecordingUpstream::start().await;
    let allowed = upstream.upstream.addr().to_string();
    let declarations = vec![declaration(
        "caller",
        "outbound-http",
        json!({ "allowed_hosts": [allowed], "deadline_ms": 5000 }),
    )];
    let relay = crate::support::relay_with_chain(&upstream.url(), declarations, "caller");
    let client = crate::support::client(&relay);

    let target = format!("http://{allowed}/from-adapter");
    let answer = get(&client, "/call-allowed", &[("x-target", &target)]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        upstream.seen_for("/from-adapter").len(),
        1,
        "the adapter's call"
    );
    let seen = &upstream.seen_for("/call-allowed")[0];
    assert_eq!(seen.headers["x-outbound-status"], "200");

    // Another port on the same machine is not on the list: the host refuses it.
    let closed = mte_relay_tests::upstream::ClosedPort::new();
    let forbidden = format!("{}/secret", closed.url());
    let answer = get(&client, "/call-forbidden", &[("x-target", &forbidden)]).await;
    assert_eq!(answer.status, StatusCode::OK);
    let seen = &upstream.seen_for("/call-forbidden")[0];
    let error = seen.headers["x-outbound-error"].to_str().expect("text");
    assert!(error.contains("HttpRequestDenied"), "{error}");
    assert!(!seen.headers.contains_key("x-outbound-status"));
    relay
        .wait_for_log(|json| {
            json["adapter"] == "caller"
                && json["message"]
                    .as_str()
                    .is_some_and(|line| line.starts_with("outbound request refused"))
        })
        .expect("the refusal is logged");
}

#[tokio::test]
async fn a_flood_of_log_lines_is_rate_limited() {
    let upstream = RecordingUpstream::start().await;
    let declarations = vec![declaration(
        "chatty",
        "log-flood",
        json!({ "deadline_ms": 10_000 }),
    )];
    let relay = crate::support::relay_with_chain(&upstream.url(), declarations, "chatty");
    let client = crate::support::client(&relay);
    let answer = get(&client, "/flood", &[]).await;
    assert_eq!(answer.status, StatusCode::OK, "the request is served");
    let answer = get(&client, "/flood-again", &[]).await;
    assert_eq!(answer.status, StatusCode::OK);

    let lines: Vec<Value> = relay
        .json_logs()
        .into_iter()
        .filter(|json| json["adapter"] == "chatty")
        .collect();
    // 200,000 lines and two 1 MiB lines were logged by the guest.
    assert!(
        lines.len() < 1_000,
        "the rate limit bounds the relay's log: {} lines",
        lines.len()
    );
    assert!(
        lines.iter().all(|json| json["message"]
            .as_str()
            .is_some_and(|message| message.len() <= 2048)),
        "no line is longer than the 2 KiB truncation limit"
    );
}
