//! Many concurrent requests over few pairs, and the `POOL_SIZE` bound on in-flight MTE
//! requests.

use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};
use mte_relay_tests::client;
use mte_relay_tests::upstream::{Upstream, full};
use mte_relay_tests::within;
use tokio::sync::{mpsc, watch};

use crate::support::{access_lines, client_with_pairs, demo_upstream, get_through, relay_for};

const REQUESTS: usize = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_over_four_pairs_all_succeed() {
    let upstream = demo_upstream().await;
    // The bounds on in-flight requests (in all, and of this one client) are set to
    // their maximum, 1000, so that no request is shed: this test is about sequence
    // numbers, not load shedding.
    let relay = relay_for(
        &upstream,
        &[("POOL_SIZE", "1000"), ("MAX_IN_FLIGHT_PER_CLIENT", "1000")],
    );
    let client = client_with_pairs(relay.addr(), 4);
    within("pairing", client.connect())
        .await
        .expect("client connects");
    assert_eq!(client.pair_count(), 4);

    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..REQUESTS {
        let client = client.clone();
        tasks.spawn(async move {
            let (status, body) = get_through(&client, &format!("/echo?n={n}")).await;
            (n, status, body)
        });
    }
    let mut answered = vec![false; REQUESTS];
    while let Some(joined) = tasks.join_next().await {
        let (n, status, body) = joined.expect("request task");
        assert_eq!(status, StatusCode::OK, "request {n}");
        let echoed: serde_json::Value = serde_json::from_slice(&body).expect("echo is JSON");
        assert_eq!(
            echoed["query"],
            format!("n={n}"),
            "request {n} got its own answer"
        );
        answered[n] = true;
    }
    assert!(answered.iter().all(|done| *done));
    assert_eq!(client.pair_count(), 4, "no pair was replaced");

    // Every request left an access line; none was refused (replay or anything else).
    let logged = within("the relay's access lines", async {
        loop {
            let lines = access_lines(&relay);
            let mte = lines.iter().filter(|json| json["route"] == "mte").count();
            if mte >= REQUESTS {
                return lines;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    let mte: Vec<_> = logged
        .iter()
        .filter(|json| json["route"] == "mte")
        .collect();
    assert_eq!(
        mte.len(),
        REQUESTS,
        "one MTE request per send, none retried"
    );
    let replays = mte.iter().filter(|json| json["status"] == 565).count();
    assert_eq!(replays, 0, "no request was refused as a replay");
    let refused: Vec<_> = mte.iter().filter(|json| json["status"] != 200).collect();
    assert!(refused.is_empty(), "refused: {refused:?}");
}

/// An upstream whose every request waits until `release` turns true; `arrived` gets
/// one message per request received.
struct BlockingUpstream {
    upstream: Upstream,
    arrived: mpsc::UnboundedReceiver<()>,
    release: watch::Sender<bool>,
}

impl BlockingUpstream {
    async fn start() -> BlockingUpstream {
        let (arrive, arrived) = mpsc::unbounded_channel();
        let (release, released) = watch::channel(false);
        let upstream = Upstream::start(move |_request| {
            let arrive = arrive.clone();
            let mut released = released.clone();
            async move {
                let _ = arrive.send(());
                let _ = released.wait_for(|go| *go).await;
                Response::new(full("released"))
            }
        })
        .await;
        BlockingUpstream {
            upstream,
            arrived,
            release,
        }
    }
}

/// A request classified MTE (it carries `x-mte-relay`) whose relay header is garbage:
/// it takes a `POOL_SIZE` permit before it is decoded.
async fn garbage_mte_request(addr: std::net::SocketAddr) -> Response<hyper::body::Incoming> {
    let request = client::request("GET", &addr.to_string(), "/")
        .header("x-mte-relay", "not-a-relay-header")
        .body(full(Bytes::new()))
        .expect("request");
    client::send(addr, request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_pool_size_the_relay_answers_overloaded_with_retry_after() {
    let mut blocking = BlockingUpstream::start().await;
    // One client may hold the whole pool here: the per-client bound has its own test.
    let relay = relay_for(
        &blocking.upstream.url(),
        &[("POOL_SIZE", "2"), ("MAX_IN_FLIGHT_PER_CLIENT", "2")],
    );
    let client = Arc::new(client_with_pairs(relay.addr(), 2));
    within("pairing", client.connect())
        .await
        .expect("client connects");

    // Below the bound, a garbage relay header is decoded and refused as malformed.
    let response = garbage_mte_request(relay.addr()).await;
    assert_eq!(response.status().as_u16(), 559);
    assert_eq!(
        response.headers()["x-mte-relay-error"],
        "relay-header-malformed"
    );

    // Two MTE requests held in flight by the upstream fill the pool.
    let held: Vec<_> = (0..2)
        .map(|n| {
            let client = client.clone();
            tokio::spawn(async move { get_through(&client, &format!("/held/{n}")).await })
        })
        .collect();
    for _ in 0..2 {
        within("a held request at the upstream", blocking.arrived.recv())
            .await
            .expect("upstream alive");
    }

    let response = garbage_mte_request(relay.addr()).await;
    assert_eq!(response.status().as_u16(), 568, "the third is shed");
    assert_eq!(response.headers()["x-mte-relay-error"], "overloaded");
    assert_eq!(response.headers()["retry-after"], "1");
    // Local routes are not counted against the bound.
    let capabilities = client::get(relay.addr(), &relay.addr().to_string(), "/api/mte-relay").await;
    assert_eq!(capabilities.status(), StatusCode::OK);

    blocking.release.send(true).expect("upstream alive");
    for task in held {
        let (status, body) = within("a released request", task).await.expect("task");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body.as_ref(), b"released");
    }

    // The permits come back with the responses: the relay decodes requests again. (A
    // permit is returned when the relay drops the response body, a moment after the
    // client has read it, hence the bounded retry.)
    let status = within("a permit to come back", async {
        loop {
            let response = garbage_mte_request(relay.addr()).await;
            if response.status().as_u16() != 568 {
                return response;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(status.status().as_u16(), 559);
    assert!(
        blocking.arrived.try_recv().is_err(),
        "no refused request reached the upstream"
    );
}
