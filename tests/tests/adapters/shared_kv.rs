//! The adapters' key-value store in Redis: a meter on two replicas counts into the same
//! counters, so usage adds up across the fleet.

use http::StatusCode;
use mte_relay_tests::client::get;
use mte_relay_tests::guests::declaration;
use mte_relay_tests::redis::RedisServer;
use mte_relay_tests::relay::Relay;
use serde_json::json;

use crate::support::{RecordingUpstream, adapters_json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meter_on_two_replicas_counts_into_one_redis_counter() {
    let redis = RedisServer::start();
    let upstream = RecordingUpstream::start().await;
    let adapters = adapters_json(vec![declaration(
        "usage",
        "usage-log",
        json!({ "config": { "reset_on_tick": false } }),
    )]);
    let (upstream_url, redis_url) = (upstream.url(), redis.url());
    let replica = || {
        Relay::start(&[
            ("UPSTREAM", upstream_url.as_str()),
            ("CLIENT_ID_SECRET", crate::support::CLIENT_ID_SECRET),
            ("PASS_THROUGH_ROUTES", "/plain/*"),
            ("ADAPTERS", adapters.as_str()),
            ("ADAPTER_CHAIN", "usage"),
            ("ADAPTER_TICK_SECS", "1"),
            ("REDIS_URL", redis_url.as_str()),
            ("STORE_KEY", "a-store-key-for-the-shared-kv-test-0123456789"),
        ])
    };
    let (a, b) = (replica(), replica());
    for (relay, requests) in [(&a, 3), (&b, 4)] {
        for _ in 0..requests {
            let answer = get(relay.addr(), "localhost", "/plain/metered").await;
            assert_eq!(answer.status(), StatusCode::OK);
        }
    }
    // Each replica's meter adds its batch to the shared counter; a tick on either then
    // logs the fleet's total.
    let summary = a.wait_for_log(|json| {
        json["adapter"] == "usage"
            && json["message"]
                .as_str()
                .is_some_and(|line| line.starts_with("usage domain=* requests=7 "))
    });
    assert!(
        summary.is_some(),
        "no fleet total of 7 in replica A's summaries: {:?}",
        a.json_logs()
            .into_iter()
            .filter(|json| json["adapter"] == "usage")
            .collect::<Vec<_>>()
    );
    let counters: Vec<String> = redis
        .keys()
        .into_iter()
        .filter(|key| key.contains(":kv:5:usage:requests:"))
        .collect();
    assert_eq!(
        counters.len(),
        1,
        "one counter, namespaced by instance: {counters:?}"
    );
    let value = redis.command(&["GET", &counters[0]]).expect("GET");
    assert!(value.contains("\r\n7\r\n"), "{value:?}");
}
