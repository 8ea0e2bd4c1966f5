//! What the access log records, and what it must never record.

use bytes::Bytes;
use mte_relay_tests::client::{body_bytes, request, send};
use mte_relay_tests::relay::Relay;
use mte_relay_tests::upstream::full;

use crate::support::named_upstream;

#[tokio::test]
async fn mte_requests_never_log_their_path() {
    let upstream = named_upstream("u").await;
    let relay = Relay::start(&[("UPSTREAM", &upstream.url())]);
    let secret_path = "/patients/4711/diagnosis-secret-path";
    let response = send(
        relay.addr(),
        request("POST", "mte.example", secret_path)
            .header("x-mte-relay", "not-a-real-relay-header")
            .header("x-request-id", "mte-log-1")
            .body(full(Bytes::from_static(b"ciphertext")))
            .expect("request"),
    )
    .await;
    assert!(response.headers().contains_key("x-mte-relay-error"));
    drop(body_bytes(response).await);

    let line = relay.access_line("mte-log-1").expect("access line");
    assert_eq!(line["route"], "mte");
    assert_eq!(line["path"], "-");
    assert!(
        relay
            .logs()
            .iter()
            .all(|l| !l.contains("diagnosis-secret-path")),
        "the outer path of an MTE request reached the logs"
    );
}

#[tokio::test]
async fn pass_through_lines_record_route_status_and_sizes() {
    let upstream = named_upstream("twelve bytes").await;
    let map = crate::support::pass_all_map("p.example", &upstream.url());
    let relay = Relay::start(&[("DOMAIN_MAP", &map)]);
    let response = send(
        relay.addr(),
        request("PUT", "p.example", "/items/1")
            .header("x-request-id", "pass-log-1")
            .body(full(Bytes::from_static(b"0123456789")))
            .expect("request"),
    )
    .await;
    assert_eq!(body_bytes(response).await, "twelve bytes");

    let line = relay.access_line("pass-log-1").expect("access line");
    assert_eq!(line["domain"], "p.example");
    assert_eq!(line["route"], "pass-through");
    assert_eq!(line["method"], "PUT");
    assert_eq!(line["path"], "/items/1");
    assert_eq!(line["status"], 200);
    assert_eq!(line["bytes_in"], 10);
    assert_eq!(line["bytes_out"], 12);
    assert_eq!(line["completed"], true);
    assert!(
        line["upstream_ms"].as_f64().is_some_and(|ms| ms > 0.0),
        "{line}"
    );
    for field in ["duration_ms", "decode_ms", "encode_ms"] {
        assert!(line[field].is_number(), "{field}: {line}");
    }
}

/// A client that gives up while the upstream is still working leaves an access line
/// with status 499 and `completed: false`.
#[tokio::test]
async fn abandoned_requests_are_logged_as_499() {
    let (arrived_tx, arrived_rx) = tokio::sync::oneshot::channel::<()>();
    let arrived_tx = std::sync::Arc::new(std::sync::Mutex::new(Some(arrived_tx)));
    let upstream = mte_relay_tests::upstream::Upstream::start(move |_request| {
        let arrived_tx = arrived_tx.clone();
        async move {
            if let Some(tx) = arrived_tx.lock().expect("lock").take() {
                let _ = tx.send(());
            }
            // Far beyond the test; the task is aborted when the test ends.
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            http::Response::new(full(Bytes::from_static(b"too late")))
        }
    })
    .await;
    let map = crate::support::pass_all_map("slow.example", &upstream.url());
    let relay = Relay::start(&[("DOMAIN_MAP", &map)]);

    // A raw connection, so that dropping it really closes the socket.
    let mut stream = tokio::net::TcpStream::connect(relay.addr())
        .await
        .expect("connect");
    tokio::io::AsyncWriteExt::write_all(
        &mut stream,
        b"GET /slow HTTP/1.1\r\nhost: slow.example\r\nx-request-id: abandoned-1\r\n\r\n",
    )
    .await
    .expect("write request");
    mte_relay_tests::within("the request to reach the upstream", arrived_rx)
        .await
        .expect("upstream saw the request");
    drop(stream);

    let line = relay
        .access_line("abandoned-1")
        .expect("access line for the abandoned request");
    assert_eq!(line["status"], 499);
    assert_eq!(line["completed"], false);
    assert_eq!(line["route"], "pass-through");
}
