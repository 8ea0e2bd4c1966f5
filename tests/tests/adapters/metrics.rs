//! The adapters' metrics in a real scrape: hook calls by outcome, their durations,
//! and dropped usage records, per configured instance.

use http::StatusCode;
use mte_relay_tests::client::{body_bytes, get};
use mte_relay_tests::guests::declaration;
use serde_json::json;

use crate::support::{RecordingUpstream, client, get as get_through, relay_with_chain};

#[tokio::test]
async fn hook_calls_and_durations_are_exported_per_adapter() {
    let upstream = RecordingUpstream::start().await;
    let rewrite = declaration(
        "rewrite",
        "header-rewrite",
        json!({ "config": {
            "request": [{ "op": "set", "name": "x-seen", "value": "yes" }],
            "response": [{ "op": "remove", "name": "server" }],
        }}),
    );
    let usage = declaration("usage", "usage-log", json!({ "config": {} }));
    let relay = relay_with_chain(&upstream.url(), vec![rewrite, usage], "rewrite,usage");
    let client = client(&relay);
    for n in 0..3 {
        let answer = get_through(&client, &format!("/metered?n={n}"), &[]).await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    let text = mte_relay_tests::within("the adapter counters", async {
        loop {
            let scrape = get(relay.admin_addr(), "admin", "/metrics").await;
            let text = String::from_utf8(body_bytes(scrape).await.to_vec()).expect("utf-8");
            // Usage records reach the meter in batches, after the responses.
            if text.contains(
                r#"mte_relay_adapter_calls_total{adapter="usage",hook="on-usage",outcome="ok"}"#,
            ) {
                return text;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await;
    for expected in [
        r#"mte_relay_adapter_calls_total{adapter="rewrite",hook="on-request",outcome="ok"} 3"#,
        r#"mte_relay_adapter_calls_total{adapter="rewrite",hook="on-request",outcome="timeout"} 0"#,
        r#"mte_relay_adapter_call_duration_seconds_count{adapter="rewrite",hook="on-request"} 3"#,
        r#"mte_relay_adapter_call_duration_seconds_bucket{le="+Inf",adapter="rewrite",hook="on-request"} 3"#,
        r#"mte_relay_meter_records_dropped_total{adapter="usage"} 0"#,
    ] {
        assert!(text.contains(expected), "missing {expected} in\n{text}");
    }
}
