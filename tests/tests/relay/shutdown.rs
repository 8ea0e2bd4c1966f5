//! Graceful shutdown: SIGTERM lets in-flight requests finish, then the relay exits 0.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::Response;
use mte_relay_tests::client::{body_bytes, get};
use mte_relay_tests::relay::Relay;
use mte_relay_tests::upstream::{Upstream, full};
use mte_relay_tests::within;
use tokio::sync::oneshot;

use crate::support::pass_all_map;

#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let (arrived_tx, arrived_rx) = oneshot::channel::<()>();
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let arrived_tx = Arc::new(Mutex::new(Some(arrived_tx)));
    let release_rx = Arc::new(tokio::sync::Mutex::new(Some(release_rx)));
    let upstream = Upstream::start(move |_request| {
        let arrived_tx = arrived_tx.clone();
        let release_rx = release_rx.clone();
        async move {
            if let Some(tx) = arrived_tx.lock().expect("lock").take() {
                let _ = tx.send(());
            }
            if let Some(rx) = release_rx.lock().await.take() {
                let _ = rx.await;
            }
            Response::new(full(Bytes::from_static(b"finished after SIGTERM")))
        }
    })
    .await;
    let mut relay = Relay::start(&[
        ("DOMAIN_MAP", &pass_all_map("slow.example", &upstream.url())),
        ("SHUTDOWN_GRACE_SECS", "15"),
    ]);

    let addr = relay.addr();
    let in_flight = tokio::spawn(async move { get(addr, "slow.example", "/slow").await });
    within("the request to reach the upstream", arrived_rx)
        .await
        .expect("upstream saw the request");

    relay.terminate();
    relay
        .wait_for_log(|line| {
            line["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("shutting down"))
        })
        .expect("shutdown began");
    // New connections are refused once the listener is closed.
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting"
    );

    release_tx.send(()).expect("upstream waiting");
    let response = within("the in-flight response", in_flight)
        .await
        .expect("task");
    assert_eq!(response.status(), 200);
    assert_eq!(body_bytes(response).await, "finished after SIGTERM");

    let status = tokio::task::spawn_blocking(move || relay.wait_exit())
        .await
        .expect("join");
    assert_eq!(status.code(), Some(0));
}
