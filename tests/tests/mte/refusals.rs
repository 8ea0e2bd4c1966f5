//! Bad input, each answered with its registry error (docs/protocol.md §11) while the
//! relay keeps serving and the upstream sees nothing of the failed request.
//!
//! The requests are crafted with the raw client ([`crate::raw`]) so that each test
//! alters exactly one thing. Every test first shows that the untampered request
//! succeeds, and after each refusal that a valid request still does.

use std::time::Duration;

use http::Request;
use mte_relay_client::RelayClient;
use mte_relay_protocol::client_id::ClientIdAuthority;
use mte_relay_protocol::encoding::b64_encode;
use mte_relay_protocol::header::{Flags, Mode};
use mte_relay_protocol::ids::PairId;
use mte_relay_protocol::pairing::{PairingRequest, PendingPair};
use mte_relay_protocol::rng::os_rng;
use mte_relay_protocol::secret::SecretBytes;
use mte_relay_tests::relay::Relay;
use mte_relay_tests::upstream::{Upstream, full};
use mte_relay_tests::within;

use crate::raw::{RawClient, Sealed, Session, Spec, unix_now};
use crate::support::{
    BodyEvent, BreakingUpstream, CLIENT_ID_SECRET, RecordingUpstream, StreamingUpstream,
    refusing_port, relay_for,
};

/// A relay in front of a recording upstream, and a raw session with two pairs.
async fn setup(extra: &[(&str, &str)]) -> (RecordingUpstream, Relay, Session) {
    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(&upstream.upstream.url(), extra);
    let session = RawClient::new(&relay).session(2).await;
    (upstream, relay, session)
}

/// The request most tests tamper with: a path with a query, an end-to-end header and a
/// body of several records.
fn order_spec() -> Spec {
    Spec::new("PUT", "/orders/7?expand=items")
        .header("content-type", "application/json")
        .header("x-trace", "abc123")
        .body(vec![b'7'; 3000])
        .records_of(1000)
}

/// Sends `spec` untampered on pair 0 and asserts the upstream received it (it is the
/// `expected_seen`-th completed request).
async fn assert_served(
    session: &mut Session,
    upstream: &RecordingUpstream,
    spec: &Spec,
    expected_seen: usize,
    what: &str,
) {
    let addr = session.client.addr;
    let sealed = session.seal(0, spec);
    let answer = sealed.send(addr).await;
    answer.assert_sealed_ok(what);
    let seen = upstream.seen();
    assert_eq!(
        seen.len(),
        expected_seen,
        "{what}: upstream saw the request"
    );
    let last = seen.last().expect("recorded");
    assert_eq!(last.target, spec.path, "{what}");
    assert_eq!(
        last.body.len(),
        spec.body.as_ref().map_or(0, Vec::len),
        "{what}"
    );
}

/// `client_id` with one character changed: well formed, but its MAC fails.
fn forge(client_id: &str) -> String {
    let mut bytes = client_id.as_bytes().to_vec();
    bytes[40] = if bytes[40] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("ascii")
}

/// One tampering case: a name, what it does to the sealed request, and the answer.
struct Case {
    what: &'static str,
    tamper: Box<dyn FnOnce(Sealed) -> Sealed>,
    status: u16,
    token: &'static str,
}

fn case(
    what: &'static str,
    status: u16,
    token: &'static str,
    tamper: impl FnOnce(Sealed) -> Sealed + 'static,
) -> Case {
    Case {
        what,
        tamper: Box::new(tamper),
        status,
        token,
    }
}

/// For each case: seal `spec` on the next sequence number, tamper, expect the registry
/// error and an upstream that saw nothing; then send the untampered request on the SAME
/// sequence number (a refused request must not burn it) and expect success.
async fn refuse_then_serve(
    session: &mut Session,
    upstream: &RecordingUpstream,
    spec: &Spec,
    cases: Vec<Case>,
) {
    let addr = session.client.addr;
    let mut seen = upstream.seen().len();
    for case in cases {
        let seq = session.take_seq(0);
        let tampered = (case.tamper)(session.seal_at(0, seq, spec));
        let answer = tampered.send(addr).await;
        answer.assert_registry(case.status, case.token, case.what);
        assert_eq!(
            upstream.seen().len(),
            seen,
            "{}: the upstream saw nothing",
            case.what
        );
        let answer = session.seal_at(0, seq, spec).send(addr).await;
        answer.assert_sealed_ok(&format!("{}: then the untampered request", case.what));
        seen += 1;
        assert_eq!(upstream.seen().len(), seen, "{}: then served", case.what);
    }
}

#[tokio::test]
async fn tampered_head_block_is_decode_failed() {
    let (upstream, _relay, mut session) = setup(&[]).await;
    for mode in [Mode::Mke, Mode::Mte] {
        let spec = order_spec().mode(mode);
        assert_served(
            &mut session,
            &upstream,
            &spec,
            upstream.seen().len() + 1,
            "untampered",
        )
        .await;
        let cases = vec![
            case("a bit of the path", 564, "decode-failed", |s: Sealed| {
                let at = s.path_byte(3);
                s.flip_head_byte(at)
            }),
            case("a bit of the query", 564, "decode-failed", |s: Sealed| {
                let at = s.path_byte("/orders/7?ex".len());
                s.flip_head_byte(at)
            }),
            case(
                "a bit of a header value",
                564,
                "decode-failed",
                |s: Sealed| {
                    let at = s.header_value_byte("x-trace", 2);
                    s.flip_head_byte(at)
                },
            ),
            case(
                "a bit of the content-type",
                564,
                "decode-failed",
                |s: Sealed| {
                    let at = s.header_value_byte("content-type", 0);
                    s.flip_head_byte(at)
                },
            ),
            case("a bit of the tag", 564, "decode-failed", |s: Sealed| {
                let last = s.head_block_len() - 1;
                s.flip_head_byte(last)
            }),
            case("a head from another request", 564, "decode-failed", {
                // Same pair, same content, but sealed for sequence number 1000.
                let other = session.seal_at(0, 1000, &spec).head;
                move |mut s: Sealed| {
                    s.head = other;
                    s
                }
            }),
        ];
        refuse_then_serve(&mut session, &upstream, &spec, cases).await;
    }
}

#[tokio::test]
async fn tampered_authenticated_fields_are_refused() {
    let (upstream, relay, mut session) = setup(&[]).await;
    let spec = order_spec();
    assert_served(&mut session, &upstream, &spec, 1, "untampered").await;

    let other_pair = session.pairs[1].id;
    let unknown_pair = PairId::random(&mut os_rng());
    // A valid client id of the same relay, but not the one the pair is bound to.
    let other_client_id = RawClient::new(&relay).client_id().await;
    assert_ne!(other_client_id, session.client_id);
    let forged_client_id = forge(&session.client_id);
    let port = relay.addr().port();

    let cases = vec![
        case("mode mke -> mte", 564, "decode-failed", |s: Sealed| {
            s.with_header(|h| h.mode = Mode::Mte)
        }),
        case("HAS_BODY cleared", 564, "decode-failed", |s: Sealed| {
            s.with_header(|h| h.flags = Flags::empty())
        }),
        case("sequence number + 1", 564, "decode-failed", |s: Sealed| {
            s.with_header(|h| h.seq += 1)
        }),
        case(
            "another pair of the client",
            564,
            "decode-failed",
            move |s| s.with_header(|h| h.pair_id = other_pair),
        ),
        case("the method", 564, "decode-failed", |mut s: Sealed| {
            s.method = "POST".to_owned();
            s
        }),
        case("an unknown pair", 562, "pair-unknown", move |s: Sealed| {
            s.with_header(|h| h.pair_id = unknown_pair)
        }),
        case("a forged client id", 560, "client-id-invalid", move |s| {
            s.with_header(|h| h.client_id = forged_client_id)
        }),
        case("another valid client id", 562, "pair-unknown", move |s| {
            s.with_header(|h| h.client_id = other_client_id)
        }),
        case(
            "the domain (Host)",
            560,
            "client-id-invalid",
            move |mut s| {
                s.host = format!("localhost:{port}");
                s
            },
        ),
    ];
    refuse_then_serve(&mut session, &upstream, &spec, cases).await;

    // HAS_BODY set on a request without a body.
    let get = Spec::get("/orders/7");
    let cases = vec![case("HAS_BODY set", 564, "decode-failed", |s: Sealed| {
        s.with_header(|h| h.flags = Flags::HAS_BODY)
    })];
    refuse_then_serve(&mut session, &upstream, &get, cases).await;
}

#[tokio::test]
async fn tampered_body_records_are_decode_failed() {
    let (upstream, _relay, mut session) = setup(&[]).await;
    let addr = session.client.addr;
    let spec = order_spec();
    assert_served(&mut session, &upstream, &spec, 1, "untampered").await;
    assert_eq!(
        session.seal(0, &spec).records.len(),
        4,
        "3 records and a final one"
    );

    type Tamper = Box<dyn FnOnce(Sealed) -> Sealed>;
    let cases: Vec<(&str, Tamper)> = vec![
        (
            "a bit of the first record",
            Box::new(|s: Sealed| s.flip_record_byte(0, 10)),
        ),
        (
            "a bit of a middle record",
            Box::new(|s: Sealed| s.flip_record_byte(1, 500)),
        ),
        (
            "a bit of the final record's tag",
            Box::new(|s: Sealed| s.flip_record_byte(3, 19)),
        ),
        (
            "a record header's length",
            Box::new(|s: Sealed| s.flip_record_byte(1, 3)),
        ),
        (
            "records reordered",
            Box::new(|mut s: Sealed| {
                s.records.swap(0, 1);
                s
            }),
        ),
        (
            "a record dropped",
            Box::new(|mut s: Sealed| {
                s.records.remove(1);
                s
            }),
        ),
        (
            "truncated: no final record",
            Box::new(|mut s: Sealed| {
                s.records.pop();
                s
            }),
        ),
        (
            "truncated inside a record",
            Box::new(|mut s: Sealed| {
                s.records[3].truncate(10);
                s
            }),
        ),
        (
            "bytes after the final record",
            Box::new(|mut s: Sealed| {
                s.records.push(vec![0, 0, 0, 16]);
                s
            }),
        ),
    ];
    let mut seen = 1;
    for (what, tamper) in cases {
        let answer = tamper(session.seal(0, &spec)).send(addr).await;
        answer.assert_sealed_registry(564, "decode-failed", what);
        assert_eq!(
            upstream.seen().len(),
            seen,
            "{what}: no completed upstream request"
        );
        seen += 1;
        assert_served(&mut session, &upstream, &spec, seen, what).await;
    }

    // MTE mode: the body is one padded record.
    let mte = order_spec().mode(Mode::Mte);
    seen += 1;
    assert_served(&mut session, &upstream, &mte, seen, "untampered MTE").await;
    let answer = session
        .seal(0, &mte)
        .flip_record_byte(0, 100)
        .send(addr)
        .await;
    answer.assert_sealed_registry(564, "decode-failed", "a bit of the MTE body");
    assert_eq!(
        upstream.seen().len(),
        seen,
        "MTE body: no completed upstream request"
    );
    seen += 1;
    assert_served(&mut session, &upstream, &mte, seen, "after the MTE body").await;
}

/// Waits until the upstream has started the request and received `bytes` of its body.
async fn await_upstream_bytes(upstream: &StreamingUpstream, bytes: usize) {
    assert!(
        matches!(upstream.next().await, BodyEvent::Started(_)),
        "the upstream request starts"
    );
    let mut received = 0;
    while received < bytes {
        match upstream.next().await {
            BodyEvent::Data(n) => received += n,
            other => panic!("upstream: unexpected {other:?} after {received} bytes"),
        }
    }
}

#[tokio::test]
async fn a_bad_record_mid_stream_aborts_the_upstream_request() {
    let upstream = StreamingUpstream::start().await;
    let relay = relay_for(&upstream.upstream.url(), &[]);
    let mut session = RawClient::new(&relay).session(1).await;
    let addr = relay.addr();
    let spec = Spec::post("/upload", vec![b'u'; 8000]).records_of(1000);

    // Untampered, streamed record by record: the upstream completes it.
    let sealed = session.seal(0, &spec);
    assert_eq!(sealed.records.len(), 9);
    let (sender, response) = sealed.send_streaming(addr);
    for record in &sealed.records {
        sender.send(record.clone().into()).expect("send record");
    }
    drop(sender);
    await_upstream_bytes(&upstream, 8000).await;
    assert_eq!(upstream.next().await, BodyEvent::Completed(8000));
    let answer = sealed.open(response.await.expect("response task")).await;
    answer.assert_sealed_ok("untampered stream");

    // Bad: three good records reach the upstream, then a tampered one.
    for (what, tampered_third) in [
        ("a tampered record", true),
        ("a stream ending without its final record", false),
    ] {
        let sealed = session.seal(0, &spec).flip_record_byte(3, 100);
        let (sender, response) = sealed.send_streaming(addr);
        for record in &sealed.records[..3] {
            sender.send(record.clone().into()).expect("send record");
        }
        await_upstream_bytes(&upstream, 3000).await;
        if tampered_third {
            sender
                .send(sealed.records[3].clone().into())
                .expect("send record");
        }
        // Either way the client stops: the relay must see a failed or truncated stream.
        drop(sender);
        assert_eq!(
            upstream.next().await,
            BodyEvent::Aborted,
            "{what}: the upstream's body read fails"
        );
        let answer = sealed.open(response.await.expect("response task")).await;
        answer.assert_sealed_registry(564, "decode-failed", what);
        let later = upstream.drain().await;
        assert!(
            !later
                .iter()
                .any(|event| matches!(event, BodyEvent::Completed(_))),
            "{what}: no completed request: {later:?}"
        );
    }

    // The relay keeps serving.
    let answer = session.seal(0, &spec).send(addr).await;
    answer.assert_sealed_ok("after the aborted streams");
    assert!(matches!(upstream.next().await, BodyEvent::Started(_)));
}

#[tokio::test]
async fn replayed_request_is_refused() {
    let (upstream, _relay, mut session) = setup(&[]).await;
    let addr = session.client.addr;
    let spec = order_spec();

    let sealed = session.seal(0, &spec);
    sealed.send(addr).await.assert_sealed_ok("first time");
    assert_eq!(upstream.seen().len(), 1);
    let duplicate = sealed.send(addr).await;
    duplicate.assert_registry(564, "decode-failed", "the same request again");
    assert_eq!(
        upstream.seen().len(),
        1,
        "the replay never reached the upstream"
    );

    // Too far ahead of the window.
    let ahead = session.seal_at(0, 65_537, &spec).send(addr).await;
    ahead.assert_registry(564, "decode-failed", "a sequence number too far ahead");
    assert_eq!(upstream.seen().len(), 1);
    // Before the head authenticated, nothing tells a duplicate from a number too far
    // ahead, or from a head that fails to open: the sender may not be the client.
    let forged = session.seal(0, &spec).flip_head_byte(3).send(addr).await;
    forged.assert_registry(564, "decode-failed", "a forged head");
    // The same status, token and body for all three: nothing on the wire tells them
    // apart.
    let on_the_wire: Vec<_> = [&duplicate, &ahead, &forged]
        .iter()
        .map(|answer| {
            (
                answer.status,
                answer.header("x-mte-relay-error"),
                answer.body.clone(),
            )
        })
        .collect();
    assert!(
        on_the_wire.iter().all(|refusal| *refusal == on_the_wire[0]),
        "one answer for every unauthenticated refusal: {on_the_wire:?}"
    );

    assert_served(&mut session, &upstream, &spec, 2, "the next request").await;
    // Replay in MTE mode too.
    let mte = Spec::get("/ping").mode(Mode::Mte);
    let sealed = session.seal(0, &mte);
    sealed.send(addr).await.assert_sealed_ok("MTE first time");
    sealed
        .send(addr)
        .await
        .assert_registry(564, "decode-failed", "the same MTE request again");
    assert_eq!(upstream.seen().len(), 3);
    assert_served(&mut session, &upstream, &spec, 4, "after the MTE replay").await;
}

#[tokio::test]
async fn expired_and_future_client_ids_are_refused() {
    let (upstream, relay, mut session) = setup(&[]).await;
    let raw = RawClient::new(&relay);
    let addr = relay.addr();
    let spec = order_spec();
    assert_served(&mut session, &upstream, &spec, 1, "untampered").await;

    // The test knows the relay's secret, so it can mint ids with any issue time.
    let authority = ClientIdAuthority::new(
        SecretBytes::new(CLIENT_ID_SECRET.as_bytes().to_vec()),
        Vec::new(),
        30 * 86_400,
    );
    let domain = raw.domain();
    let now = unix_now();
    let fresh = authority.mint_with(&domain, now, [7; 16]);
    let expired = authority.mint_with(&domain, now - 31 * 86_400, [7; 16]);
    let future = authority.mint_with(&domain, now + 3600, [7; 16]);

    // Control: an id minted by the test with the relay's secret and a current time is
    // accepted for pairing.
    raw.pair(&fresh, 1).await;

    for (what, id, status, token) in [
        ("expired", &expired, 561, "client-id-expired"),
        ("issued in the future", &future, 560, "client-id-invalid"),
    ] {
        let offer = PendingPair::generate(&mut os_rng()).offer();
        let document = PairingRequest {
            client_id: id.clone(),
            pairs: vec![offer],
        };
        raw.post_pairing(serde_json::to_vec(&document).expect("json"))
            .await
            .assert_registry(status, token, &format!("pairing with an id {what}"));

        let id = id.clone();
        let answer = session
            .seal(0, &spec)
            .with_header(move |h| h.client_id = id)
            .send(addr)
            .await;
        answer.assert_registry(status, token, &format!("a request with an id {what}"));
        assert_eq!(upstream.seen().len(), 1, "{what}: the upstream saw nothing");
    }
    assert_served(&mut session, &upstream, &spec, 2, "after the refusals").await;
}

#[tokio::test]
async fn a_client_id_expires_while_in_use() {
    let (upstream, relay, mut session) = setup(&[("CLIENT_ID_MAX_AGE_SECS", "5")]).await;
    let addr = relay.addr();
    let spec = Spec::get("/tick");
    assert_served(&mut session, &upstream, &spec, 1, "while the id is fresh").await;

    // Keep sending until the id ages out; every answer before that is a success.
    let mut served = 1;
    let expired = within("the client id to expire", async {
        loop {
            let answer = session.seal(0, &spec).send(addr).await;
            if answer.status == 561 {
                return answer;
            }
            answer.assert_sealed_ok("before expiry");
            served += 1;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await;
    expired.assert_registry(561, "client-id-expired", "after the maximum age");
    assert_eq!(
        upstream.seen().len(),
        served,
        "the refused request never arrived"
    );

    // A new id and new pairs work again.
    let mut renewed = RawClient::new(&relay).session(1).await;
    assert_served(&mut renewed, &upstream, &spec, served + 1, "with a new id").await;
}

#[tokio::test]
async fn missing_or_malformed_relay_headers_are_refused() {
    let (upstream, relay, mut session) = setup(&[]).await;
    let raw = RawClient::new(&relay);
    let spec = order_spec();
    assert_served(&mut session, &upstream, &spec, 1, "untampered").await;

    let plain = raw.plain("GET", "/orders/7", &[], Vec::new()).await;
    plain.assert_registry(559, "relay-header-missing", "a plain request");
    assert_eq!(upstream.seen().len(), 1);

    let malformed = |value: &'static str| {
        move |mut s: Sealed| {
            let valid = s.relay_header.take().expect("relay header");
            s.relay_header = Some(value.replace("{valid}", &valid));
            s
        }
    };
    let cases = vec![
        case(
            "relay header omitted",
            559,
            "relay-header-missing",
            |mut s: Sealed| {
                s.relay_header = None;
                s
            },
        ),
        case(
            "head block omitted",
            559,
            "relay-header-malformed",
            |mut s: Sealed| {
                s.head = None;
                s
            },
        ),
        case(
            "empty relay header",
            559,
            "relay-header-malformed",
            malformed(""),
        ),
        case(
            "trailing field",
            559,
            "relay-header-malformed",
            malformed("{valid};x=1"),
        ),
        case(
            "whitespace between fields",
            559,
            "relay-header-malformed",
            |mut s: Sealed| {
                let valid = s.header.format();
                s.relay_header = Some(valid.replacen(";m=", "; m=", 1));
                s
            },
        ),
        case(
            "unknown version",
            559,
            "version-unsupported",
            |mut s: Sealed| {
                let valid = s.header.format();
                s.relay_header = Some(valid.replacen("v=1;", "v=2;", 1));
                s
            },
        ),
        case(
            "fields out of order",
            559,
            "relay-header-malformed",
            |mut s: Sealed| {
                let h = s.header.clone();
                s.relay_header = Some(format!(
                    "v=1;f={};m={};s={};p={};c={}",
                    h.flags.bits(),
                    h.mode.token(),
                    h.seq,
                    h.pair_id,
                    h.client_id
                ));
                s
            },
        ),
        case(
            "unknown flag bit",
            559,
            "relay-header-malformed",
            |mut s: Sealed| {
                let valid = s.header.format();
                s.relay_header = Some(valid.replacen(";f=1;", ";f=3;", 1));
                s
            },
        ),
        case(
            "unknown mode",
            559,
            "relay-header-malformed",
            |mut s: Sealed| {
                let valid = s.header.format();
                s.relay_header = Some(valid.replacen(";m=mke;", ";m=xyz;", 1));
                s
            },
        ),
        case(
            "sequence with a leading zero",
            559,
            "relay-header-malformed",
            |mut s: Sealed| {
                let valid = s.header.format();
                let seq = s.header.seq;
                s.relay_header =
                    Some(valid.replacen(&format!(";s={seq};"), &format!(";s=0{seq};"), 1));
                s
            },
        ),
        case(
            "pair id of the wrong length",
            559,
            "relay-header-malformed",
            |mut s: Sealed| {
                let valid = s.header.format();
                let pair = s.header.pair_id.to_string();
                s.relay_header = Some(valid.replacen(&pair, &pair[..21], 1));
                s
            },
        ),
        case(
            "client id with a character outside base64url",
            559,
            "relay-header-malformed",
            |mut s: Sealed| {
                let valid = s.header.format();
                s.relay_header = Some(format!("{valid}="));
                s
            },
        ),
    ];
    refuse_then_serve(&mut session, &upstream, &spec, cases).await;
}

#[tokio::test]
async fn head_block_that_is_not_base64url_is_malformed() {
    // docs/protocol.md §11: 559 relay-header-malformed covers a head block that "does
    // not parse"; the registry's own description says the same of `x-mte-relay-head`.
    let (upstream, _relay, mut session) = setup(&[]).await;
    let spec = order_spec();
    assert_served(&mut session, &upstream, &spec, 1, "untampered").await;
    let cases = vec![case(
        "head block with a character outside base64url",
        559,
        "relay-header-malformed",
        |mut s: Sealed| {
            let head = s.head.take().expect("head");
            s.head = Some(format!("{head}!"));
            s
        },
    )];
    refuse_then_serve(&mut session, &upstream, &spec, cases).await;
}

#[tokio::test]
async fn oversized_head_block_is_head_too_large() {
    // MAX_HEAD_BYTES defaults to 16384.
    let (upstream, _relay, mut session) = setup(&[]).await;
    let addr = session.client.addr;
    let fits = Spec::get("/big").header("x-big", vec![b'b'; 10_000]);
    assert_served(&mut session, &upstream, &fits, 1, "a 10 KB header").await;

    let too_big = Spec::get("/big").header("x-big", vec![b'b'; 13_000]);
    let sealed = session.seal(0, &too_big);
    assert!(sealed.head.as_ref().expect("head").len() > 16_384);
    sealed.send(addr).await.assert_registry(
        566,
        "head-too-large",
        "a head block over MAX_HEAD_BYTES",
    );
    assert_eq!(upstream.seen().len(), 1, "the upstream saw nothing");
    assert_served(&mut session, &upstream, &fits, 2, "after the refusal").await;
}

#[tokio::test]
async fn head_block_over_the_protocol_cap_is_head_too_large() {
    // With the relay's own limit raised, the protocol's 65536-character cap still holds.
    let (upstream, _relay, mut session) = setup(&[("MAX_HEAD_BYTES", "1048576")]).await;
    let addr = session.client.addr;
    let fits = Spec::get("/big").header("x-big", vec![b'b'; 40_000]);
    assert_served(&mut session, &upstream, &fits, 1, "a 40 KB header").await;
    let mut sealed = session.seal(0, &fits);
    // The client library refuses to seal more, so pad a valid block past the cap.
    let head = sealed.head.take().expect("head");
    sealed.head = Some(format!("{head}{}", "A".repeat(65_537 - head.len())));
    sealed.send(addr).await.assert_registry(
        566,
        "head-too-large",
        "a head block over 65536 characters",
    );
    assert_eq!(upstream.seen().len(), 1, "the upstream saw nothing");
    assert_served(&mut session, &upstream, &fits, 2, "after the refusal").await;
}

/// A pairing document of `offers` fresh offers for `client_id`.
fn pairing_document(client_id: &str, offers: usize) -> Vec<u8> {
    crate::raw::pairing_document(client_id, offers).1
}

#[tokio::test]
async fn oversized_pairing_batch_is_pairing_limit() {
    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(&upstream.upstream.url(), &[("MAX_PAIRS_PER_BATCH", "4")]);
    let raw = RawClient::new(&relay);
    let client_id = raw.client_id().await;

    let answer = raw.post_pairing(pairing_document(&client_id, 4)).await;
    assert_eq!(answer.status, 200, "a full batch pairs: {answer:?}");
    raw.post_pairing(pairing_document(&client_id, 5))
        .await
        .assert_registry(567, "pairing-limit", "one offer over the batch limit");
    // A document far larger than any batch the relay allows is refused unread.
    let huge = format!(
        r#"{{"client_id":"{client_id}","pairs":[{{"pair_id":"{}","public_key":"{}"}}]}}"#,
        PairId::random(&mut os_rng()),
        "A".repeat(64 * 1024)
    );
    raw.post_pairing(huge.into_bytes()).await.assert_registry(
        567,
        "pairing-limit",
        "an oversized pairing document",
    );

    // The relay keeps serving, and the default limit (32) holds on another relay.
    let mut session = raw.session(1).await;
    assert_served(&mut session, &upstream, &Spec::get("/after"), 1, "after").await;
    let relay = relay_for(&upstream.upstream.url(), &[]);
    let raw = RawClient::new(&relay);
    let client_id = raw.client_id().await;
    let answer = raw.post_pairing(pairing_document(&client_id, 32)).await;
    assert_eq!(answer.status, 200, "32 offers pair by default: {answer:?}");
    raw.post_pairing(pairing_document(&client_id, 33))
        .await
        .assert_registry(567, "pairing-limit", "33 offers by default");
    assert_eq!(
        upstream.seen().len(),
        1,
        "pairing never reaches the upstream"
    );
}

#[tokio::test]
async fn malformed_pairing_documents_are_pairing_malformed() {
    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(&upstream.upstream.url(), &[]);
    let raw = RawClient::new(&relay);
    let client_id = raw.client_id().await;
    let answer = raw.post_pairing(pairing_document(&client_id, 1)).await;
    assert_eq!(answer.status, 200, "a valid document pairs: {answer:?}");

    let offer = PendingPair::generate(&mut os_rng()).offer();
    let pair_id = offer.pair_id.clone();
    let key = offer.public_key.clone();
    let short_key = b64_encode(&[1u8; 1215]);
    let documents: Vec<(&str, String)> = vec![
        ("not JSON", "pairs please".to_owned()),
        ("empty body", String::new()),
        ("JSON of another shape", r#"[1, 2, 3]"#.to_owned()),
        (
            "an unknown field",
            format!(
                r#"{{"client_id":"{client_id}","pairs":[{{"pair_id":"{pair_id}","public_key":"{key}"}}],"extra":1}}"#
            ),
        ),
        (
            "an unknown field in an offer",
            format!(
                r#"{{"client_id":"{client_id}","pairs":[{{"pair_id":"{pair_id}","public_key":"{key}","x":1}}]}}"#
            ),
        ),
        (
            "no pairs field",
            format!(r#"{{"client_id":"{client_id}"}}"#),
        ),
        (
            "an empty batch",
            format!(r#"{{"client_id":"{client_id}","pairs":[]}}"#),
        ),
        (
            "a repeated pair id",
            format!(
                r#"{{"client_id":"{client_id}","pairs":[{{"pair_id":"{pair_id}","public_key":"{key}"}},{{"pair_id":"{pair_id}","public_key":"{key}"}}]}}"#
            ),
        ),
        (
            "a pair id of 15 bytes",
            format!(
                r#"{{"client_id":"{client_id}","pairs":[{{"pair_id":"{}","public_key":"{key}"}}]}}"#,
                b64_encode(&[9u8; 15])
            ),
        ),
        (
            "a key of 1215 bytes",
            format!(
                r#"{{"client_id":"{client_id}","pairs":[{{"pair_id":"{pair_id}","public_key":"{short_key}"}}]}}"#
            ),
        ),
        (
            "a key that is not base64url",
            format!(
                r#"{{"client_id":"{client_id}","pairs":[{{"pair_id":"{pair_id}","public_key":"{}+"}}]}}"#,
                &key[..key.len() - 1]
            ),
        ),
        (
            "a client id that is not base64url",
            format!(
                r#"{{"client_id":"not a client id","pairs":[{{"pair_id":"{pair_id}","public_key":"{key}"}}]}}"#
            ),
        ),
    ];
    for (what, document) in documents {
        raw.post_pairing(document.into_bytes())
            .await
            .assert_registry(567, "pairing-malformed", what);
    }
    // Well formed, but the client id does not verify.
    raw.post_pairing(pairing_document(&forge(&client_id), 1))
        .await
        .assert_registry(560, "client-id-invalid", "a forged client id");

    // None of the refused offers was paired, and the relay keeps serving.
    let mut session = raw.session(1).await;
    assert_served(&mut session, &upstream, &Spec::get("/after"), 1, "after").await;
}

#[tokio::test]
async fn upstream_down_is_upstream_unreachable() {
    let upstream = RecordingUpstream::start().await;
    let (_socket, down_url) = refusing_port();
    let domain_map = serde_json::json!({
        "up.test": { "upstream": upstream.upstream.url(), "client_id_secret": CLIENT_ID_SECRET },
        "down.test": { "upstream": down_url, "client_id_secret": CLIENT_ID_SECRET },
    })
    .to_string();
    let relay = Relay::start(&[("DOMAIN_MAP", &domain_map)]);
    let mut up = RawClient::for_host(&relay, "up.test").session(1).await;
    let mut down = RawClient::for_host(&relay, "down.test").session(1).await;
    let addr = relay.addr();
    let spec = order_spec();

    assert_served(
        &mut up,
        &upstream,
        &spec,
        1,
        "the request, to a live upstream",
    )
    .await;
    for mode in [Mode::Mke, Mode::Mte] {
        down.seal(0, &spec.clone().mode(mode))
            .send(addr)
            .await
            .assert_sealed_registry(
                502,
                "upstream-unreachable",
                &format!("{mode} to a closed port"),
            );
    }
    // The relay keeps serving: the down domain still answers its echo, the other its
    // upstream.
    down.seal(0, &Spec::get("/api/mte-echo?msg=still"))
        .send(addr)
        .await
        .assert_sealed_ok("echo on the down domain");
    assert_served(&mut up, &upstream, &spec, 2, "after").await;
}

#[tokio::test]
async fn upstream_timeout_is_upstream_timeout() {
    let upstream = Upstream::start(|request| async move {
        if request.uri().path() == "/slow" {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        http::Response::new(full("done"))
    })
    .await;
    let relay = relay_for(&upstream.url(), &[("UPSTREAM_RESPONSE_TIMEOUT_SECS", "2")]);
    let mut session = RawClient::new(&relay).session(1).await;
    let addr = relay.addr();

    let fast = session.seal(0, &Spec::get("/fast")).send(addr).await;
    fast.assert_sealed_ok("a fast upstream answer");
    assert_eq!(fast.body, b"done");
    for mode in [Mode::Mke, Mode::Mte] {
        session
            .seal(0, &Spec::post("/slow", vec![1u8; 100]).mode(mode))
            .send(addr)
            .await
            .assert_sealed_registry(
                504,
                "upstream-timeout",
                &format!("{mode} to a slow upstream"),
            );
    }
    let fast = session.seal(0, &Spec::get("/fast")).send(addr).await;
    fast.assert_sealed_ok("the relay keeps serving");
}

#[tokio::test]
async fn upstream_reset_mid_body_is_never_a_complete_response() {
    // The upstream announces 100000 bytes, sends 5000, and closes the connection.
    let upstream = BreakingUpstream::start(100_000, 5000).await;
    let relay = relay_for(&upstream.url, &[]);
    let mut session = RawClient::new(&relay).session(1).await;
    let addr = relay.addr();
    // The relay works: its echo through MTE succeeds.
    let echo = Spec::get("/api/mte-echo?msg=ok");
    session
        .seal(0, &echo)
        .send(addr)
        .await
        .assert_sealed_ok("echo");

    // MKE: the response has started (status 200, sealed head), and its body fails.
    let answer = session.seal(0, &Spec::get("/download")).send(addr).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(
        answer.sealed.is_some(),
        "the head was sealed before the body broke"
    );
    assert!(
        answer.body_result.is_err(),
        "a broken body is never accepted as complete ({} bytes)",
        answer.body.len()
    );

    // MTE: the whole message is read before answering, so the failure is a registry error.
    session
        .seal(0, &Spec::get("/download").mode(Mode::Mte))
        .send(addr)
        .await
        .assert_sealed_registry(502, "upstream-failed", "MTE response body broken");

    // The real client reports an error too.
    let client = RelayClient::builder(format!("http://{addr}"))
        .pairs(1)
        .build()
        .expect("client builds");
    let response = client
        .send(Request::get("/download").body(Vec::new()).expect("request"))
        .await
        .expect("the response head arrives");
    assert_eq!(response.status(), 200);
    let body = within("the broken body", response.into_body().collect_bytes()).await;
    assert!(
        body.is_err(),
        "the client refuses a truncated body: {body:?}"
    );

    session
        .seal(0, &echo)
        .send(addr)
        .await
        .assert_sealed_ok("the relay keeps serving");
}

#[tokio::test]
async fn client_id_of_one_domain_is_refused_on_another() {
    let upstream = RecordingUpstream::start().await;
    let domain_map = serde_json::json!({
        "a.test": { "upstream": upstream.upstream.url(),
                    "client_id_secret": "the-secret-of-domain-a-0123456789abcdef" },
        "b.test": { "upstream": upstream.upstream.url(),
                    "client_id_secret": "the-secret-of-domain-b-0123456789abcdef" },
    })
    .to_string();
    let relay = Relay::start(&[("DOMAIN_MAP", &domain_map)]);
    let a = RawClient::for_host(&relay, "a.test");
    let b = RawClient::for_host(&relay, "b.test");
    let mut session = a.session(1).await;
    let addr = relay.addr();
    let spec = order_spec();
    assert_served(&mut session, &upstream, &spec, 1, "on its own domain").await;

    // The same request, sent to b.test.
    let mut moved = session.seal(0, &spec);
    moved.host = b.host.clone();
    moved.send(addr).await.assert_registry(
        560,
        "client-id-invalid",
        "a.test's client id on b.test",
    );
    // Pairing on b.test with a.test's id.
    b.post_pairing(pairing_document(&session.client_id, 1))
        .await
        .assert_registry(
            560,
            "client-id-invalid",
            "pairing on b.test with a.test's id",
        );
    // Presented to b.test's capabilities, it is replaced.
    let answer = b
        .plain(
            "GET",
            "/api/mte-relay",
            &[("x-mte-relay-client-id", &session.client_id)],
            Vec::new(),
        )
        .await;
    assert_eq!(answer.status, 200);
    assert_ne!(
        answer.header("x-mte-relay-client-id").as_deref(),
        Some(session.client_id.as_str()),
        "b.test issues its own id"
    );
    // An unknown host is refused.
    let c = RawClient::for_host(&relay, "c.test");
    c.plain("GET", "/api/mte-relay", &[], Vec::new())
        .await
        .assert_registry(404, "domain-unknown", "a host outside DOMAIN_MAP");
    let mut moved = session.seal(0, &spec);
    moved.host = c.host.clone();
    moved.send(addr).await.assert_registry(
        404,
        "domain-unknown",
        "an MTE request to an unknown host",
    );

    assert_eq!(upstream.seen().len(), 1, "the upstream saw nothing");
    let mut on_b = b.session(1).await;
    assert_served(&mut on_b, &upstream, &spec, 2, "b.test with its own id").await;
    assert_served(&mut session, &upstream, &spec, 3, "a.test still").await;
}

#[tokio::test]
async fn mte_routes_limit_what_is_proxied() {
    let (upstream, relay, mut session) = setup(&[("MTE_ROUTES", "/api/*")]).await;
    let raw = RawClient::new(&relay);
    let addr = relay.addr();
    let allowed = Spec::get("/api/orders?page=2");
    assert_served(&mut session, &upstream, &allowed, 1, "an allowed route").await;
    assert_served(
        &mut session,
        &upstream,
        &Spec::get("/api"),
        2,
        "the prefix itself",
    )
    .await;

    for path in [
        "/admin",
        "/apix",
        "/",
        "/api/../admin",
        "/api/%2e%2e/admin",
        "/API/orders",
    ] {
        session
            .seal(0, &Spec::get(path))
            .send(addr)
            .await
            .assert_sealed_registry(404, "route-not-found", &format!("MTE request to {path}"));
    }
    raw.plain("GET", "/admin", &[], Vec::new())
        .await
        .assert_registry(404, "route-not-found", "a plain request outside the routes");
    raw.plain("GET", "/api/orders", &[], Vec::new())
        .await
        .assert_registry(
            559,
            "relay-header-missing",
            "a plain request inside the routes",
        );
    assert_eq!(upstream.seen().len(), 2, "the upstream saw nothing of them");
    assert_served(&mut session, &upstream, &allowed, 3, "after").await;
}

#[tokio::test]
async fn echo_is_plain_or_encrypted() {
    let (upstream, relay, mut session) = setup(&[]).await;
    let raw = RawClient::new(&relay);

    let plain = raw
        .plain("GET", "/api/mte-echo?msg=hi", &[], Vec::new())
        .await;
    assert_eq!(plain.status, 200, "{plain:?}");
    assert!(plain.header("x-mte-relay-head").is_none());
    let json = plain.json();
    assert_eq!(json["message"], "hi");
    assert!(json["timestamp"].as_u64().is_some(), "{json}");

    for mode in [Mode::Mke, Mode::Mte] {
        let sealed = session.seal(0, &Spec::get("/api/mte-echo?msg=hi").mode(mode));
        let answer = sealed.send(session.client.addr).await;
        answer.assert_sealed_ok(&format!("{mode} echo"));
        assert_eq!(
            answer.header("content-type").as_deref(),
            Some("application/octet-stream"),
            "{mode}: the outer content-type is opaque"
        );
        assert_eq!(
            answer.sealed_header("content-type").as_deref(),
            Some("application/json"),
            "{mode}: the real content-type is inside the head"
        );
        let json = answer.json();
        assert_eq!(json["message"], "hi", "{mode}");
        assert!(json["timestamp"].as_u64().is_some(), "{json}");

        // On the wire the body is ciphertext: resend the request's twin and look.
        let twin = session.seal(0, &Spec::get("/api/mte-echo?msg=hi").mode(mode));
        let request = mte_relay_tests::client::request("GET", &twin.host, "/")
            .header("x-mte-relay", twin.relay_header.clone().expect("header"))
            .header("x-mte-relay-head", twin.head.clone().expect("head"))
            .body(full(Vec::new()))
            .expect("request");
        let response = mte_relay_tests::client::send(session.client.addr, request).await;
        assert_eq!(response.status(), 200);
        let wire = mte_relay_tests::client::body_bytes(response).await;
        assert!(
            !wire.windows(b"\"hi\"".len()).any(|w| w == b"\"hi\""),
            "{mode}: the echoed message is not in the clear"
        );
    }
    assert!(
        upstream.seen().is_empty(),
        "the echo never reaches the upstream"
    );
}

#[tokio::test]
async fn the_client_refuses_a_head_over_the_relays_announced_limit_without_sending_it() {
    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(&upstream.upstream.url(), &[("MAX_HEAD_BYTES", "1024")]);
    let client = RelayClient::builder(format!("http://{}", relay.addr()))
        .pairs(1)
        .build()
        .expect("client builds");
    let big = http::Request::get("/big")
        .header("x-large", "v".repeat(2000))
        .body(())
        .expect("request");
    let error = within("a refused request", client.send(big))
        .await
        .expect_err("over the announced limit");
    assert!(
        matches!(&error, mte_relay_client::ClientError::InvalidRequest { message }
            if message.contains("1024") && message.contains("head-too-large")),
        "{error:?}"
    );
    assert!(upstream.seen().is_empty(), "nothing was sent upstream");
    // A head within the limit goes through on the same client.
    let small = http::Request::get("/small").body(()).expect("request");
    let response = within("a small request", client.send(small))
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
}
