//! Timeouts on MTE routes (docs/configuration.md, "Timeouts"): the response timeout
//! starts when the encrypted request body has been forwarded whole, and a client that
//! stops sending its body is `408 request-body-timeout`.

use std::time::{Duration, Instant};

use http::{Request, StatusCode};
use mte_relay_client::{ClientError, ErrorReason, RequestBody};
use mte_relay_tests::bodies::{stalls_after, trickle};
use mte_relay_tests::within;

use crate::support::{client_for, demo_upstream, relay_for};

#[tokio::test]
async fn an_encrypted_upload_slower_than_the_response_timeout_succeeds() {
    let upstream = demo_upstream().await;
    let relay = relay_for(
        &upstream,
        &[
            ("UPSTREAM_RESPONSE_TIMEOUT_SECS", "0.5"),
            ("BODY_IDLE_TIMEOUT_SECS", "5"),
        ],
    );
    let client = client_for(&relay);
    let started = Instant::now();
    // At least 12 x 250 ms = 3 s of uploading, six times the response timeout.
    let request = Request::post("/upload")
        .body(RequestBody::streaming(trickle(
            12,
            1024,
            Duration::from_millis(250),
        )))
        .expect("request");
    let response = within("a slow upload", client.send(request))
        .await
        .expect("the slow upload is answered");
    assert_eq!(response.status(), StatusCode::OK);
    let answer = response.into_body().collect_bytes().await.expect("answer");
    let answer: serde_json::Value = serde_json::from_slice(&answer).expect("JSON");
    assert_eq!(answer["bytes"], 12 * 1024);
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(3), "paced as asked: {took:?}");
}

#[tokio::test]
async fn an_encrypted_upload_that_stops_is_408() {
    let upstream = demo_upstream().await;
    let relay = relay_for(&upstream, &[("BODY_IDLE_TIMEOUT_SECS", "0.5")]);
    let client = client_for(&relay);
    let request = Request::post("/upload")
        .body(RequestBody::streaming(stalls_after(1000)))
        .expect("request");
    let outcome = within("a stalled upload", client.send(request)).await;
    match outcome {
        Err(ClientError::Registry { reason, status, .. }) => {
            assert_eq!(reason, ErrorReason::RequestBodyTimeout);
            assert_eq!(status, 408);
        }
        other => panic!("expected request-body-timeout, got {other:?}"),
    }
    // The relay keeps serving this client.
    let request = Request::post("/upload")
        .body(RequestBody::streaming(trickle(
            2,
            10,
            Duration::from_millis(10),
        )))
        .expect("request");
    let response = within("an upload after the stall", client.send(request))
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::OK);
}
