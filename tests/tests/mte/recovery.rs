//! A relay restart (its memory pair store lost) and a client id secret rotation: the
//! same client recovers on its own and completes its next requests.

use http::StatusCode;
use mte_relay_tests::relay::{Relay, free_port};

use crate::support::{
    RecordingUpstream, client_with_pairs, demo_upstream, get_through, logged_statuses,
};

const SECRET_A: &str = "recovery-test-client-id-secret-A-0123456789abcdef";
const SECRET_B: &str = "recovery-test-client-id-secret-B-0123456789abcdef";

/// A relay on the fixed `port` in front of `upstream` with these secrets.
fn relay_on(port: u16, upstream: &str, secret: &str, previous: Option<&str>) -> Relay {
    let mut env = vec![("UPSTREAM", upstream), ("CLIENT_ID_SECRET", secret)];
    if let Some(previous) = previous {
        env.push(("CLIENT_ID_PREVIOUS_SECRETS", previous));
    }
    Relay::start_on_port(port, &env)
}

/// Stops `relay` the hard way (SIGKILL) and waits for it to exit: its memory pair
/// store is lost. (A SIGTERM would wait for the client's idle keep-alive connection
/// up to the shutdown grace period.)
fn stop(mut relay: Relay) {
    relay.kill();
}

/// Waits (bounded) for an access line with `status`; true when there is one.
fn logged(relay: &Relay, status: u16) -> bool {
    relay
        .wait_for_log(|json| json["target"] == "mte_relay::access" && json["status"] == status)
        .is_some()
}

/// The restarted `relay` refused the forgotten pairs (`pair-unknown`, so the client
/// re-paired) and never refused the client id (`client-id-invalid`).
fn assert_re_paired_keeping_the_client_id(relay: &Relay) {
    assert!(
        logged(relay, 562),
        "the relay refused the forgotten pairs: {:?}",
        logged_statuses(relay)
    );
    let statuses = logged_statuses(relay);
    assert!(
        !statuses.contains(&560),
        "the client id was never refused: {statuses:?}"
    );
}

/// Sends `GET /echo?n=<n>` and checks the upstream saw exactly that request.
async fn echo(client: &mte_relay_client::RelayClient, n: u32) {
    let (status, body) = get_through(client, &format!("/echo?n={n}")).await;
    assert_eq!(status, StatusCode::OK, "request {n}");
    let echoed: serde_json::Value = serde_json::from_slice(&body).expect("echo is JSON");
    assert_eq!(echoed["query"], format!("n={n}"), "request {n}");
}

#[tokio::test]
async fn a_client_re_pairs_on_its_own_after_the_relay_restarts() {
    let upstream = demo_upstream().await;
    let port = free_port();
    let relay = relay_on(port, &upstream, SECRET_A, None);
    let client = client_with_pairs(relay.addr(), 2);
    echo(&client, 1).await;
    echo(&client, 2).await;
    let client_id = client.client_id().expect("identified");
    let pairs_before = client.pair_ids();
    stop(relay);

    let relay = relay_on(port, &upstream, SECRET_A, None);
    // The very next request succeeds, then more, over every pair the client holds.
    for n in 3..9 {
        echo(&client, n).await;
    }
    assert_eq!(
        client.client_id().as_deref(),
        Some(client_id.as_str()),
        "same secret: the client id stays valid across the restart"
    );
    assert_re_paired_keeping_the_client_id(&relay);
    let pairs_after = client.pair_ids();
    assert!(
        pairs_after.iter().all(|pair| !pairs_before.contains(pair)),
        "every forgotten pair was replaced: before {pairs_before:?}, after {pairs_after:?}"
    );
}

#[tokio::test]
async fn a_post_sent_after_the_relay_restarted_runs_once() {
    // The restarted relay has forgotten the client's pairs: its kept-alive connection is
    // gone and its pair is unknown. The client resends under the POST's token and the
    // upstream sees it exactly once.
    let upstream = RecordingUpstream::start().await;
    let port = free_port();
    let relay = relay_on(port, &upstream.upstream.url(), SECRET_A, None);
    let client = client_with_pairs(relay.addr(), 1);
    let post = |n: u32| {
        http::Request::post(format!("/orders?n={n}"))
            .body(bytes::Bytes::from_static(b"{\"item\": 7}"))
            .expect("request")
    };
    let response = mte_relay_tests::within("the first POST", client.send(post(1)))
        .await
        .expect("the first POST");
    assert_eq!(response.status(), StatusCode::OK);
    stop(relay);

    let relay = relay_on(port, &upstream.upstream.url(), SECRET_A, None);
    let response = mte_relay_tests::within("the POST after the restart", client.send(post(2)))
        .await
        .expect("the client recovers by itself");
    assert_eq!(response.status(), StatusCode::OK);
    assert_re_paired_keeping_the_client_id(&relay);
    let seen: Vec<_> = upstream
        .seen()
        .iter()
        .map(|seen| seen.target.clone())
        .collect();
    assert_eq!(
        seen,
        ["/orders?n=1", "/orders?n=2"],
        "each POST reached the upstream once"
    );
}

#[tokio::test]
async fn a_client_id_signed_with_a_previous_secret_keeps_working_after_rotation() {
    let upstream = demo_upstream().await;
    let port = free_port();
    let relay = relay_on(port, &upstream, SECRET_A, None);
    let client = client_with_pairs(relay.addr(), 2);
    echo(&client, 1).await;
    let client_id = client.client_id().expect("identified");
    stop(relay);

    let relay = relay_on(port, &upstream, SECRET_B, Some(SECRET_A));
    echo(&client, 2).await;
    echo(&client, 3).await;
    assert_eq!(
        client.client_id().as_deref(),
        Some(client_id.as_str()),
        "the id signed with the previous secret is still accepted"
    );
    assert_re_paired_keeping_the_client_id(&relay);
}

#[tokio::test]
async fn without_the_previous_secret_the_client_re_identifies_and_succeeds() {
    let upstream = demo_upstream().await;
    let port = free_port();
    let relay = relay_on(port, &upstream, SECRET_A, None);
    let client = client_with_pairs(relay.addr(), 2);
    echo(&client, 1).await;
    let client_id = client.client_id().expect("identified");
    stop(relay);

    let relay = relay_on(port, &upstream, SECRET_B, None);
    echo(&client, 2).await;
    echo(&client, 3).await;
    let new_id = client.client_id().expect("identified");
    assert_ne!(new_id, client_id, "the old id was refused and replaced");
    assert!(
        logged(&relay, 560),
        "the relay refused the id signed with the dropped secret (client-id-invalid): {:?}",
        logged_statuses(&relay)
    );
}
