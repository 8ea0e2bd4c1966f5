//! Padded records for streamed responses (`pad_stream_records`, docs/protocol.md §6.5):
//! by default a `text/event-stream` response's records show only size buckets, so an
//! observer cannot read each event's length; other responses stream unpadded unless
//! the domain says `always`.

use bytes::Bytes;
use http::Response;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use mte_relay_tests::upstream::{BoxError, TestBody, Upstream, full};

use crate::raw::{RawClient, Spec, padded_records, record_plaintext_lengths};
use crate::support::relay_for;

/// Events of different lengths, as a model streaming its answer token by token.
const EVENTS: [&str; 4] = [
    "data: Hi\n\n",
    "data: there, how\n\n",
    "data: can I help you today with your order number 1234?\n\n",
    "event: done\ndata: {}\n\n",
];

/// `/events` answers the events one frame each as `text/event-stream`; anything else
/// a small JSON document.
async fn upstream() -> Upstream {
    Upstream::start(|request| async move {
        if request.uri().path() != "/events" {
            let mut response = Response::new(full(r#"{"ok":true,"n":7}"#));
            response.headers_mut().insert(
                "content-type",
                http::HeaderValue::from_static("application/json"),
            );
            return response;
        }
        let frames = EVENTS
            .iter()
            .map(|event| Ok::<_, BoxError>(Frame::data(Bytes::from_static(event.as_bytes()))));
        let body: TestBody = StreamBody::new(futures_util::stream::iter(frames)).boxed();
        let mut response = Response::new(body);
        response.headers_mut().insert(
            "content-type",
            http::HeaderValue::from_static("text/event-stream; charset=utf-8"),
        );
        response
    })
    .await
}

/// The wire and plaintext of `GET path` through a relay with `setting`.
async fn fetch(setting: Option<&str>, path: &str) -> (Vec<u8>, Vec<u8>) {
    let upstream = upstream().await;
    let env: Vec<(&str, &str)> = setting
        .map(|value| ("PAD_STREAM_RECORDS", value))
        .into_iter()
        .collect();
    let relay = relay_for(&upstream.url(), &env);
    let mut session = RawClient::new(&relay).session(1).await;
    let answer = session.seal(0, &Spec::get(path)).send(relay.addr()).await;
    answer.assert_sealed_ok(path);
    (answer.wire, answer.body)
}

fn events() -> Vec<u8> {
    EVENTS.concat().into_bytes()
}

#[tokio::test]
async fn event_streams_are_padded_by_default_and_open_to_the_same_events() {
    let (wire, body) = fetch(None, "/events").await;
    assert_eq!(body, events());
    assert!(
        padded_records(&wire),
        "records: {:?}",
        record_plaintext_lengths(&wire)
    );
    // Events of 10 to 58 bytes all travel as 256-byte records.
    assert!(
        record_plaintext_lengths(&wire)
            .iter()
            .all(|&len| len == 256)
    );

    // Other media types stream unpadded: the records add up to the body.
    let (wire, body) = fetch(None, "/other").await;
    assert_eq!(body, br#"{"ok":true,"n":7}"#);
    assert_eq!(
        record_plaintext_lengths(&wire).iter().sum::<usize>(),
        body.len()
    );
}

#[tokio::test]
async fn the_domain_can_pad_every_stream_or_none() {
    let (wire, body) = fetch(Some("never"), "/events").await;
    assert_eq!(body, events());
    assert!(!padded_records(&wire));
    assert_eq!(
        record_plaintext_lengths(&wire).iter().sum::<usize>(),
        events().len(),
        "unpadded records show the events' lengths"
    );

    let (wire, body) = fetch(Some("always"), "/other").await;
    assert_eq!(body, br#"{"ok":true,"n":7}"#);
    assert!(
        padded_records(&wire),
        "{:?}",
        record_plaintext_lengths(&wire)
    );
}
