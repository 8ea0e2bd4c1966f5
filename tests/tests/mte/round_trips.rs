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

/// MTE epochs move by time as well as by count (docs/protocol.md §8): with a one-second
/// interval, a request after a pause of a second lands two epochs on, and the relay
/// follows; requests sent together right after are accepted too.
#[tokio::test]
async fn mte_epochs_move_by_time_and_the_relay_follows() {
    use mte_relay_protocol::header::{RELAY_HEADER, RelayHeader};
    use mte_relay_protocol::keys::EPOCH_LEN;
    use std::sync::{Arc, Mutex};

    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(&upstream.upstream.url(), &[]);
    let seqs: Arc<Mutex<Vec<u64>>> = Arc::default();
    let record = seqs.clone();
    let observer = mte_relay_tests::mitm::Interceptor::observing(relay.addr(), move |parts| {
        if let Some(header) = parts.headers.get(RELAY_HEADER) {
            let header = RelayHeader::parse(header.as_bytes()).expect("relay header");
            record.lock().expect("lock").push(header.seq);
        }
    })
    .await;
    let client = mte_relay_client::RelayClient::builder(observer.url())
        .pairs(1)
        .mode(Mode::Mte)
        .mte_epoch_interval(std::time::Duration::from_secs(1))
        .build()
        .expect("client builds");
    let post = || {
        Request::post("/orders")
            .body(bytes::Bytes::from_static(b"{}"))
            .expect("request")
    };
    let send = |request| async {
        let response = client.send(request).await.expect("relay answers");
        assert_eq!(response.status(), 200);
        response
            .into_body()
            .collect_bytes()
            .await
            .expect("body opens");
    };
    send(post()).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    send(post()).await;
    futures_util::future::join_all((0..4).map(|_| send(post()))).await;
    let seqs = seqs.lock().expect("lock").clone();
    let epochs: Vec<u64> = seqs.iter().map(|seq| seq / EPOCH_LEN).collect();
    // The first two are fixed by the pause; the four sent together stay in epoch 2
    // unless this machine took a whole interval between them (then later, never earlier).
    assert_eq!(epochs.len(), 6, "sequence numbers seen: {seqs:?}");
    assert_eq!(epochs[..2], [0, 2], "sequence numbers seen: {seqs:?}");
    assert!(epochs[2..].iter().all(|&epoch| epoch >= 2), "{seqs:?}");
    assert_eq!(upstream.seen().len(), 6, "the relay accepted every one");
}

/// A body on any method arrives with its length, a GET's included (some APIs take a
/// query document in a GET body).
#[tokio::test]
async fn bodies_arrive_with_their_length_on_every_method() {
    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(&upstream.upstream.url(), &[]);
    let client = client_for(&relay);
    for method in ["POST", "DELETE", "GET"] {
        for n in 0..20 {
            let body = format!("{method} body {n}");
            let request = Request::builder()
                .method(method)
                .uri(format!("/item?n={n}"))
                .body(body.clone())
                .expect("request");
            let response = client.send(request).await.unwrap_or_else(|error| {
                panic!("{method} {n}: {error}\n{}", relay.logs().join("\n"))
            });
            assert_eq!(response.status(), 200, "{method} {n}");
            let seen = upstream.seen();
            let last = seen.last().expect("recorded");
            assert_eq!(last.body.as_ref(), body.as_bytes(), "{method} {n}");
            assert_eq!(
                last.headers["content-length"],
                body.len().to_string().as_str(),
                "{method} {n}"
            );
        }
    }
}

/// A POST without a body reaches the upstream with `content-length: 0` (some servers
/// refuse a POST without a length), and a stated length over `MAX_BODY_BYTES` is
/// refused before anything is forwarded.
#[tokio::test]
async fn an_empty_post_states_its_length_and_an_oversized_one_is_refused_first() {
    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(&upstream.upstream.url(), &[("MAX_BODY_BYTES", "1048576")]);
    let client = client_for(&relay);
    let request = Request::post("/empty").body(()).expect("request");
    let response = client.send(request).await.expect("relay answers");
    assert_eq!(response.status(), 200);
    let seen = upstream.seen();
    assert_eq!(
        seen.last().expect("recorded").headers["content-length"],
        "0"
    );

    let stream = http_body_util::StreamBody::new(futures_util::stream::iter(vec![Ok::<
        _,
        std::convert::Infallible,
    >(
        http_body::Frame::data(bytes::Bytes::from_static(b"small")),
    )]));
    let request = Request::post("/big")
        .header("content-length", "2000000")
        .body(mte_relay_client::RequestBody::streaming(stream))
        .expect("request");
    let error = client.send(request).await.expect_err("refused");
    assert_eq!(
        error.reason(),
        Some(mte_relay_client::ErrorReason::BodyTooLarge),
        "{error}"
    );
    assert_eq!(upstream.seen().len(), 1, "nothing more was forwarded");
}
