//! `GET /metrics` on the admin listener after real traffic: every family the docs
//! list is there, with bounded labels only.

use bytes::Bytes;
use http::Request;
use mte_relay_client::Mode;
use mte_relay_tests::client::{body_bytes, get};

use crate::support::{RecordingUpstream, client_for, relay_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_after_traffic_shows_every_family_and_no_client_id() {
    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(
        &upstream.upstream.url(),
        &[("PASS_THROUGH_ROUTES", "/public/*")],
    );
    let client = client_for(&relay);
    for mode in [Mode::Mke, Mode::Mte] {
        let mut request = Request::post("/orders")
            .body(Bytes::from_static(b"{\"n\":1}"))
            .expect("request");
        request.extensions_mut().insert(mode);
        let response = client.send(request).await.expect("answered");
        assert_eq!(response.status(), 200);
        response.into_body().collect_bytes().await.expect("body");
    }
    assert_eq!(
        get(relay.addr(), "127.0.0.1", "/public/x").await.status(),
        200
    );
    // A refusal: an MTE route without the relay header.
    let refused = get(relay.addr(), "127.0.0.1", "/orders").await;
    assert_eq!(refused.status(), 559);

    let scrape = get(relay.admin_addr(), "admin", "/metrics").await;
    assert_eq!(scrape.status(), 200);
    assert!(
        scrape.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("application/openmetrics-text")
    );
    let text = String::from_utf8(body_bytes(scrape).await.to_vec()).expect("utf-8");
    for family in [
        r#"mte_relay_requests_total{domain="*",route="mte",method="POST",status="2xx"} 2"#,
        r#"mte_relay_requests_total{domain="*",route="pass-through",method="GET",status="2xx"} 1"#,
        r#"mte_relay_refusals_total{domain="*",reason="relay-header-missing"} 1"#,
        r#"mte_relay_pairings_total{domain="*",result="ok"} 1"#,
        r#"mte_relay_request_duration_seconds_count{domain="*",route="mte"} 2"#,
        r#"mte_relay_upstream_duration_seconds_count{domain="*"} 3"#,
        r#"mte_relay_decode_duration_seconds_count{domain="*",mode="mke",route="mte"} 1"#,
        r#"mte_relay_decode_duration_seconds_count{domain="*",mode="mte",route="mte"} 1"#,
        r#"mte_relay_encode_duration_seconds_count{domain="*",mode="mte",route="mte"} 1"#,
        r#"mte_relay_request_bytes_total{domain="*"}"#,
        r#"mte_relay_response_bytes_total{domain="*"}"#,
        "mte_relay_pairs 2",
        "mte_relay_in_flight 0",
        "mte_relay_pool_size 600",
        r#"mte_relay_store_operation_duration_seconds_count{op="commit"} 2"#,
        r#"mte_relay_store_errors_total{op="commit"} 0"#,
        r#"mte_relay_build_info{version=""#,
        "process_resident_memory_bytes ",
        "process_cpu_seconds_total ",
        "process_open_fds ",
    ] {
        assert!(text.contains(family), "missing {family} in\n{text}");
    }
    let client_id = client.client_id().expect("paired");
    assert!(
        !text.contains(&client_id),
        "a client id never becomes a label"
    );
    assert!(!text.contains("/orders"), "a path never becomes a label");
}
