//! Graceful shutdown: SIGTERM lets in-flight requests finish, then the relay exits 0.

use mte_relay_tests::client::{body_bytes, get};
use mte_relay_tests::relay::Relay;
use mte_relay_tests::within;

use crate::support::{GatedUpstream, pass_all_map};

#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let mut upstream = GatedUpstream::start(b"finished after SIGTERM").await;
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

    upstream.release();
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
