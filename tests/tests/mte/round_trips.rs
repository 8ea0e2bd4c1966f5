//! Encrypted requests and responses through the relay, in both modes.

use http::Request;
use mte_relay_client::Mode;

use crate::support::{RecordingUpstream, client_for, relay_for};

#[tokio::test]
async fn methods_round_trip_in_both_modes() {
    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(&upstream.upstream.url(), &[]);
    let client = client_for(&relay);

    let binary: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    let mut expected_seen = 0;
    for mode in [Mode::Mke, Mode::Mte] {
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            let body = if method == "GET" {
                Vec::new()
            } else {
                binary.clone()
            };
            let mut request = Request::builder()
                .method(method)
                .uri("/orders/7?expand=items&q=a%20b")
                .header("content-type", "application/octet-stream")
                .header("x-trace", "one")
                .header("x-trace", "two")
                .body(body.clone())
                .expect("request");
            request.extensions_mut().insert(mode);
            let response = client.send(request).await.expect("relay answers");
            assert_eq!(response.status(), 200, "{mode} {method}");
            let cookies: Vec<_> = response.headers().get_all("set-cookie").iter().collect();
            assert_eq!(
                cookies.len(),
                2,
                "repeated set-cookie survives ({mode} {method})"
            );
            let summary: serde_json::Value = serde_json::from_slice(
                &response
                    .into_body()
                    .collect_bytes()
                    .await
                    .expect("body decrypts"),
            )
            .expect("json");
            assert_eq!(summary["method"], method);
            assert_eq!(summary["body_bytes"], body.len());

            expected_seen += 1;
            let seen = upstream.seen();
            assert_eq!(seen.len(), expected_seen);
            let last = seen.last().expect("recorded");
            assert_eq!(last.target, "/orders/7?expand=items&q=a%20b");
            assert_eq!(last.body.as_ref(), body.as_slice(), "{mode} {method} body");
            let traces: Vec<_> = last.headers.get_all("x-trace").iter().collect();
            assert_eq!(traces, ["one", "two"]);
            assert_eq!(last.headers["content-type"], "application/octet-stream");
            assert!(
                last.headers
                    .keys()
                    .all(|name| !name.as_str().starts_with("x-mte-relay")),
                "relay headers never reach the upstream: {:?}",
                last.headers
            );
        }
    }
}
