//! Timeouts on pass-through routes measure one phase each (docs/configuration.md,
//! "Timeouts"): an upload that keeps moving is never cut off by the response timeout,
//! an upstream that stops answering or reading is `504`, a client that stops sending
//! is `408`, and a client that stops reading its response loses its connection.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Response;
use http_body_util::BodyExt;
use mte_relay_tests::bodies::{endless, stalls_after, trickle};
use mte_relay_tests::client::{body_bytes, request, send};
use mte_relay_tests::relay::Relay;
use mte_relay_tests::upstream::{Upstream, full};
use mte_relay_tests::within;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{assert_registry_error, pass_all_map};

const HOST: &str = "timeouts.example";

/// An upstream that reads each request body whole and answers with its length; on
/// `/hang` it then never answers, on `/stop-reading` it reads one piece and then holds
/// the body without reading on.
async fn counting_upstream() -> Upstream {
    Upstream::start(|request| async move {
        let path = request.uri().path().to_owned();
        let mut body = request.into_body();
        if path == "/stop-reading" {
            let _first = body.frame().await;
            tokio::time::sleep(Duration::from_secs(120)).await;
            return Response::new(full("too late"));
        }
        let mut total = 0;
        while let Some(Ok(frame)) = body.frame().await {
            total += frame.data_ref().map_or(0, Bytes::len);
        }
        if path == "/hang" {
            tokio::time::sleep(Duration::from_secs(120)).await;
        }
        Response::new(full(total.to_string()))
    })
    .await
}

/// Waits for the relay's log line about a failed upstream exchange whose cause says
/// `cause`.
fn logged_failure(relay: &Relay, cause: &str) -> bool {
    relay
        .wait_for_log(|json| {
            let line = json.to_string();
            line.contains("upstream request failed") && line.contains(cause)
        })
        .is_some()
}

fn relay(upstream: &Upstream, response_timeout: &str, body_idle: &str) -> Relay {
    Relay::start(&[
        ("DOMAIN_MAP", &pass_all_map(HOST, &upstream.url())),
        ("UPSTREAM_RESPONSE_TIMEOUT_SECS", response_timeout),
        ("BODY_IDLE_TIMEOUT_SECS", body_idle),
    ])
}

#[tokio::test]
async fn an_upload_slower_than_the_response_timeout_succeeds() {
    let upstream = counting_upstream().await;
    // The upload takes at least 12 x 250 ms = 3 s, six times the response timeout; the
    // gap between chunks is a twentieth of the idle timeout.
    let relay = relay(&upstream, "0.5", "5");
    let started = Instant::now();
    let upload = request("POST", HOST, "/upload")
        .body(trickle(12, 1024, Duration::from_millis(250)))
        .expect("request");
    let response = send(relay.addr(), upload).await;
    assert_eq!(response.status(), 200);
    assert_eq!(body_bytes(response).await, (12 * 1024).to_string());
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(3000),
        "the upload was paced as asked: {took:?}"
    );
}

#[tokio::test]
async fn an_upstream_that_reads_the_body_and_never_answers_is_504() {
    let upstream = counting_upstream().await;
    let relay = relay(&upstream, "1", "5");
    let started = Instant::now();
    let upload = request("POST", HOST, "/hang")
        .body(trickle(4, 1024, Duration::from_millis(250)))
        .expect("request");
    let response = send(relay.addr(), upload).await;
    let took = started.elapsed();
    assert_registry_error(response, 504, "upstream-timeout").await;
    // The response timeout starts when the body has been sent (after at least 1 s),
    // so the 504 comes no sooner than 1 s + 1 s after the request started.
    assert!(
        took >= Duration::from_millis(2000),
        "the response timeout counted from the end of the body: {took:?}"
    );
    assert!(
        logged_failure(&relay, "did not answer within"),
        "the cause is logged"
    );
}

/// Sends a request head announcing `length` body bytes and then `sent` of them on a raw
/// connection, and returns what the relay answered (head and as much body as came)
/// once it stops answering or closes. The writer keeps sending in the background until
/// the connection breaks; its errors are expected.
async fn raw_upload(relay: &Relay, path: &str, length: usize, sent: usize) -> String {
    let stream = tokio::net::TcpStream::connect(relay.addr())
        .await
        .expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let head = format!("POST {path} HTTP/1.1\r\nhost: {HOST}\r\ncontent-length: {length}\r\n\r\n");
    writer.write_all(head.as_bytes()).await.expect("write head");
    let body_writer = tokio::spawn(async move {
        let chunk = vec![b'x'; 64 * 1024];
        let mut left = sent;
        while left > 0 {
            let n = left.min(chunk.len());
            if writer.write_all(&chunk[..n]).await.is_err() {
                return;
            }
            left -= n;
        }
        // Hold the connection open without sending more.
        tokio::time::sleep(Duration::from_secs(120)).await;
        drop(writer);
    });
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    within("the relay's answer", async {
        loop {
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buffer[..n]),
            }
            if String::from_utf8_lossy(&answer).contains("}") {
                break;
            }
        }
    })
    .await;
    body_writer.abort();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn an_upstream_that_stops_reading_the_body_is_504() {
    let upstream = counting_upstream().await;
    // A long response timeout: only the idle timeout can end this exchange.
    let relay = relay(&upstream, "60", "1");
    // 256 MiB: far more than the socket buffers on the way can hold, so the relay is
    // left holding a chunk that the upstream does not take.
    let answer = raw_upload(&relay, "/stop-reading", 256 << 20, 256 << 20).await;
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    assert!(
        answer.contains("x-mte-relay-error: upstream-timeout"),
        "{answer}"
    );
    assert!(
        logged_failure(&relay, "read none of the request body"),
        "the cause is logged"
    );
}

#[tokio::test]
async fn a_client_that_stops_sending_its_body_is_408() {
    let upstream = counting_upstream().await;
    let relay = relay(&upstream, "60", "0.5");
    let answer = raw_upload(&relay, "/upload", 100_000, 1000).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("x-mte-relay-error: request-body-timeout"),
        "{answer}"
    );

    // The same through a client that holds its body open after one chunk.
    let stalled = request("POST", HOST, "/upload")
        .body(stalls_after(1000))
        .expect("request");
    let response = send(relay.addr(), stalled).await;
    assert_registry_error(response, 408, "request-body-timeout").await;

    // And the relay keeps serving.
    let upload = request("POST", HOST, "/upload")
        .body(trickle(2, 10, Duration::from_millis(10)))
        .expect("request");
    let response = send(relay.addr(), upload).await;
    assert_eq!(response.status(), 200);
    assert_eq!(body_bytes(response).await, "20");
}

#[tokio::test]
async fn a_client_that_stops_reading_the_response_is_dropped() {
    let (dropped_tx, dropped_rx) = tokio::sync::mpsc::unbounded_channel();
    let upstream = Upstream::start(move |_request| {
        let dropped_tx = dropped_tx.clone();
        async move {
            let (body, dropped) = endless(64 * 1024);
            tokio::spawn(async move {
                if dropped.await.is_ok() {
                    let _ = dropped_tx.send(());
                }
            });
            Response::new(body.map_err(Into::into).boxed())
        }
    })
    .await;
    let relay = relay(&upstream, "60", "1");
    let mut stream = tokio::net::TcpStream::connect(relay.addr())
        .await
        .expect("connect");
    let head = format!("GET /endless HTTP/1.1\r\nhost: {HOST}\r\n\r\n");
    stream.write_all(head.as_bytes()).await.expect("write head");
    // Read the response head and a little, then read no more: the socket buffers on
    // the way fill, and the relay's writes wait.
    let mut buffer = [0u8; 4096];
    let n = within("the response head", stream.read(&mut buffer))
        .await
        .expect("read");
    assert!(
        String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"),
        "the response started"
    );
    let mut dropped_rx = dropped_rx;
    within(
        "the relay dropping the upstream response of a client that stopped reading",
        dropped_rx.recv(),
    )
    .await
    .expect("upstream alive");

    // The relay keeps serving others (this response head is all the test reads).
    let response = send(
        relay.addr(),
        request("GET", HOST, "/another")
            .body(full(""))
            .expect("request"),
    )
    .await;
    assert_eq!(response.status(), 200);
    drop(stream);
}
