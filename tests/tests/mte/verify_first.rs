//! `verify_body_before_forward` (docs/configuration.md, docs/protocol.md §13): the relay
//! authenticates a whole request body before the upstream sees a byte of it, so an
//! upstream never acts on a prefix that later fails. Compare
//! `refusals::a_bad_record_mid_stream_aborts_the_upstream_request`, the streaming
//! default, where the upstream sees the authenticated prefix and then an abort.

use crate::raw::{RawClient, Spec};
use crate::support::{RecordingUpstream, StreamingUpstream, relay_for};

/// Eight records of 1000 bytes and the final one.
fn upload() -> Spec {
    Spec::post("/upload", vec![b'u'; 8000]).records_of(1000)
}

#[tokio::test]
async fn a_body_that_fails_anywhere_reaches_the_upstream_not_at_all() {
    let upstream = StreamingUpstream::start().await;
    let relay = relay_for(
        &upstream.upstream.url(),
        &[("VERIFY_BODY_BEFORE_FORWARD", "65536")],
    );
    let mut session = RawClient::new(&relay).session(1).await;
    let addr = relay.addr();

    for (what, record, index) in [
        ("the first record tampered", 0, 10),
        ("the eighth record tampered", 7, 100),
        ("the final record's tag tampered", 8, 19),
    ] {
        let sealed = session.seal(0, &upload()).flip_record_byte(record, index);
        // Streamed record by record, as a slow client would send it.
        let (sender, response) = sealed.send_streaming(addr);
        for record in &sealed.records {
            // The relay may answer (and stop reading) before the last record is sent.
            let _ = sender.send(record.clone().into());
        }
        drop(sender);
        let answer = sealed.open(response.await.expect("response task")).await;
        answer.assert_sealed_registry(564, "decode-failed", what);
        assert_eq!(
            upstream.drain().await,
            [],
            "{what}: the upstream saw nothing"
        );
    }

    let sealed = session.seal(0, &upload());
    let truncated = sealed.records[..8].to_vec();
    let (sender, response) = sealed.send_streaming(addr);
    for record in truncated {
        let _ = sender.send(record.into());
    }
    drop(sender);
    let answer = sealed.open(response.await.expect("response task")).await;
    answer.assert_sealed_registry(564, "decode-failed", "no final record");
    assert_eq!(
        upstream.drain().await,
        [],
        "no final record: the upstream saw nothing"
    );

    // The untampered body is forwarded whole.
    let answer = session.seal(0, &upload()).send(addr).await;
    answer.assert_sealed_ok("untampered");
    let events = upstream.drain().await;
    assert!(
        events.last() == Some(&crate::support::BodyEvent::Completed(8000)),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_verified_body_goes_upstream_with_its_length_and_a_longer_one_is_refused() {
    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(
        &upstream.upstream.url(),
        &[("VERIFY_BODY_BEFORE_FORWARD", "8000")],
    );
    let mut session = RawClient::new(&relay).session(1).await;
    let addr = relay.addr();

    session
        .seal(0, &upload())
        .send(addr)
        .await
        .assert_sealed_ok("at the limit");
    let seen = upstream.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body.len(), 8000);
    assert_eq!(
        seen[0].headers["content-length"], "8000",
        "{:?}",
        seen[0].headers
    );
    assert!(!seen[0].headers.contains_key("transfer-encoding"));

    let longer = Spec::post("/upload", vec![b'u'; 8001]).records_of(1000);
    let answer = session.seal(0, &longer).send(addr).await;
    answer.assert_sealed_registry(566, "body-too-large", "one byte over the limit");
    let message = String::from_utf8_lossy(&answer.body).into_owned();
    assert!(
        message.contains("8000 bytes"),
        "the limit is named: {message}"
    );
    assert_eq!(upstream.seen().len(), 1, "the upstream saw nothing of it");

    // Bodiless requests and MTE messages pass as before.
    session
        .seal(0, &Spec::get("/orders"))
        .send(addr)
        .await
        .assert_sealed_ok("GET");
    let mte = Spec::post("/orders", vec![b'm'; 300]).mode(mte_relay_client::Mode::Mte);
    session
        .seal(0, &mte)
        .send(addr)
        .await
        .assert_sealed_ok("MTE");
    assert_eq!(upstream.seen().len(), 3);
}

#[tokio::test]
async fn a_stalled_body_times_out_before_anything_is_forwarded() {
    let upstream = StreamingUpstream::start().await;
    let relay = relay_for(
        &upstream.upstream.url(),
        &[
            ("VERIFY_BODY_BEFORE_FORWARD", "65536"),
            ("BODY_IDLE_TIMEOUT_SECS", "0.5"),
        ],
    );
    let mut session = RawClient::new(&relay).session(1).await;
    let sealed = session.seal(0, &upload());
    let (sender, response) = sealed.send_streaming(relay.addr());
    for record in &sealed.records[..3] {
        sender.send(record.clone().into()).expect("send record");
    }
    // The client holds the rest back; the relay gives up after the idle timeout.
    let answer = sealed.open(response.await.expect("response task")).await;
    answer.assert_sealed_registry(408, "request-body-timeout", "stalled");
    drop(sender);
    assert_eq!(upstream.drain().await, [], "the upstream saw nothing");
}
