//! The client over real sockets against the test fixture in `support/` (a relay-side
//! protocol responder written for these tests, not the relay itself).

mod support;

use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use http_body_util::channel::Channel;
use mte_relay_client::{ClientError, ErrorReason, Mode, RelayClient, RequestBody, RequestOutcome};
use support::{Fault, Fixture, Options, State};

/// Fails a test that hangs instead of letting it block the suite; not a timing check.
async fn within_watchdog<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), future)
        .await
        .expect("test did not finish within the watchdog limit")
}

fn client(fixture: &Fixture) -> RelayClient {
    RelayClient::builder(&fixture.url)
        .max_backoff(Duration::from_millis(20))
        .build()
        .expect("client")
}

fn header<'a>(response: &'a http::Response<mte_relay_client::Body>, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("response has no {name}"))
        .to_str()
        .expect("text")
}

fn registry(fault: ErrorReason) -> Fault {
    Fault::Registry {
        reason: fault,
        retry_after: None,
    }
}

fn post(path: &str, body: &'static str) -> Request<&'static str> {
    Request::post(path).body(body).expect("request")
}

#[tokio::test]
async fn pairs_then_sends_an_encrypted_request_and_opens_the_answer() {
    let fixture = support::start(Options::default()).await;
    let client = client(&fixture);
    client.connect().await.expect("connects");
    assert_eq!(client.pair_count(), 4);
    assert!(client.client_id().is_some());
    assert_eq!(State::count(&fixture.state.capability_requests), 1);
    assert_eq!(
        State::count(&fixture.state.pairing_requests),
        1,
        "one batch"
    );
    assert_eq!(fixture.state.live_pairs(), 4);

    let request = Request::post("http://ignored.example/orders?id=7")
        .header("content-type", "application/json")
        .header("authorization", "Bearer secret")
        .header("connection", "keep-alive")
        .body(r#"{"item":7}"#)
        .expect("request");
    let response = within_watchdog(client.send(request)).await.expect("sends");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "x-echo-method"), "POST");
    assert_eq!(header(&response, "x-echo-path"), "/orders?id=7");
    assert_eq!(header(&response, "x-echo-mode"), "mke");
    assert_eq!(header(&response, "x-echo-content-type"), "application/json");
    assert_eq!(header(&response, "x-echo-authorization"), "Bearer secret");
    // A whole body's length travels in the head, so the relay forwards it unchunked.
    assert_eq!(header(&response, "x-echo-content-length"), "10");
    for stripped in ["x-echo-host", "x-echo-connection"] {
        assert!(
            response.headers().get(stripped).is_none(),
            "{stripped} leaked"
        );
    }
    let body = response.into_body().collect_bytes().await.expect("body");
    assert_eq!(body, r#"{"item":7}"#);
    assert_eq!(fixture.state.accepted().len(), 1);
}

#[tokio::test]
async fn first_send_connects_lazily_and_mode_can_be_overridden_per_request() {
    let fixture = support::start(Options::default()).await;
    let client = client(&fixture);
    let mut request = Request::get("/account").body(()).expect("request");
    request.extensions_mut().insert(Mode::Mte);
    let response = within_watchdog(client.send(request)).await.expect("sends");
    assert_eq!(header(&response, "x-echo-mode"), "mte");
    assert_eq!(header(&response, "x-echo-has-body"), "0");
    assert!(
        response
            .into_body()
            .collect_bytes()
            .await
            .expect("body")
            .is_empty()
    );

    let mte_client = RelayClient::builder(&fixture.url)
        .mode(Mode::Mte)
        .build()
        .expect("client");
    let response = within_watchdog(mte_client.send(post("/card", "4111")))
        .await
        .expect("sends");
    assert_eq!(header(&response, "x-echo-mode"), "mte");
    assert_eq!(
        response.into_body().collect_bytes().await.expect("body"),
        "4111"
    );
}

#[tokio::test]
async fn mte_bodies_over_the_cap_are_refused_before_anything_is_sent() {
    let fixture = support::start(Options::default()).await;
    let client = client(&fixture);
    let mut request = Request::put("/blob")
        .body(vec![0u8; 70_000])
        .expect("request");
    request.extensions_mut().insert(Mode::Mte);
    let error = client.send(request).await.expect_err("too large");
    assert!(
        matches!(error, ClientError::InvalidRequest { .. }),
        "{error}"
    );
    assert_eq!(State::count(&fixture.state.mte_requests), 0);
}

#[tokio::test]
async fn a_streaming_mte_body_over_the_cap_fails_as_an_invalid_request() {
    let fixture = support::start(Options::default()).await;
    let client = client(&fixture);
    let frames =
        (0..3).map(|_| Ok::<_, Infallible>(http_body::Frame::data(Bytes::from(vec![1u8; 30_000]))));
    let mut request = Request::put("/blob")
        .body(RequestBody::streaming(http_body_util::StreamBody::new(
            futures_util::stream::iter(frames),
        )))
        .expect("request");
    request.extensions_mut().insert(Mode::Mte);
    let error = within_watchdog(client.send(request))
        .await
        .expect_err("too large");
    assert!(
        matches!(error, ClientError::InvalidRequest { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn a_failing_caller_body_fails_the_request_without_retry() {
    let fixture = support::start(Options::default()).await;
    let client = client(&fixture);
    let frames = vec![
        Ok(http_body::Frame::data(Bytes::from("first"))),
        Err(std::io::Error::other("disk went away")),
    ];
    let request = Request::post("/upload")
        .body(RequestBody::streaming(http_body_util::StreamBody::new(
            futures_util::stream::iter(frames),
        )))
        .expect("request");
    let error = within_watchdog(client.send(request))
        .await
        .expect_err("body failed");
    assert!(matches!(error, ClientError::Transport { .. }), "{error}");
    assert!(error.to_string().contains("disk went away"), "{error}");
    assert!(!error.is_retry_safe());
}

#[tokio::test]
async fn the_request_timeout_bounds_the_wait_for_the_response_head() {
    let fixture = support::start(Options::default()).await;
    let client = RelayClient::builder(&fixture.url)
        .request_timeout(Duration::from_millis(200))
        .build()
        .expect("client");
    let error = within_watchdog(client.send(Request::get("/stall").body(()).expect("request")))
        .await
        .expect_err("times out");
    assert!(matches!(error, ClientError::Transport { .. }), "{error}");
    assert!(!error.is_retry_safe(), "the relay may have forwarded it");
    assert_eq!(State::count(&fixture.state.mte_requests), 1, "not retried");
}

#[tokio::test]
async fn streaming_bodies_of_several_records_round_trip() {
    let fixture = support::start(Options::default()).await;
    let client = client(&fixture);
    let pieces: Vec<Bytes> = (0..5u8)
        .map(|index| Bytes::from(vec![index; 100_000]))
        .collect();
    let expected: Vec<u8> = pieces.iter().flatten().copied().collect();
    let frames = pieces
        .into_iter()
        .map(|piece| Ok::<_, Infallible>(http_body::Frame::data(piece)));
    let stream = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
    let request = Request::post("/upload")
        .body(RequestBody::streaming(stream))
        .expect("request");
    let response = within_watchdog(client.send(request)).await.expect("sends");
    let body = within_watchdog(response.into_body().collect_bytes())
        .await
        .expect("body");
    assert_eq!(body.len(), expected.len());
    assert!(body == expected, "echoed body differs");
}

#[tokio::test]
async fn interactive_streams_flow_frame_by_frame_in_both_directions() {
    let fixture = support::start(Options::default()).await;
    let client = client(&fixture);
    let (mut sender, channel) = Channel::<Bytes, Infallible>::new(1);
    let request = Request::post("/interactive")
        .body(RequestBody::streaming(channel))
        .expect("request");
    within_watchdog(async move {
        // The first frame must go out before the response head can come back.
        sender.send_data(Bytes::from("ping-1")).await.expect("send");
        let response = client.send(request).await.expect("sends");
        let mut body = response.into_body();
        // Each reply arrives while the request is still open: nothing waits for a
        // full chunk or for the end of the body.
        let first = body.frame().await.expect("frame").expect("data");
        assert_eq!(first.into_data().expect("data"), "ping-1");
        sender.send_data(Bytes::from("ping-2")).await.expect("send");
        let second = body.frame().await.expect("frame").expect("data");
        assert_eq!(second.into_data().expect("data"), "ping-2");
        drop(sender);
        assert!(
            body.frame().await.is_none(),
            "clean end after the final record"
        );
    })
    .await;
}

#[tokio::test]
async fn truncated_response_bodies_fail_and_bodiless_responses_are_empty() {
    let fixture = support::start(Options::default()).await;
    let client = client(&fixture);
    let response =
        within_watchdog(client.send(Request::get("/truncated").body(()).expect("request")))
            .await
            .expect("head opens");
    let error = response
        .into_body()
        .collect_bytes()
        .await
        .expect_err("truncated");
    assert!(matches!(error, ClientError::Protocol { .. }), "{error}");

    let response =
        within_watchdog(client.send(Request::get("/no-content").body(()).expect("request")))
            .await
            .expect("sends");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(
        response
            .into_body()
            .collect_bytes()
            .await
            .expect("empty")
            .is_empty()
    );

    let response = within_watchdog(client.send(Request::head("/thing").body(()).expect("request")))
        .await
        .expect("sends");
    assert_eq!(header(&response, "x-echo-method"), "HEAD");
    assert!(
        response
            .into_body()
            .collect_bytes()
            .await
            .expect("empty")
            .is_empty()
    );
}

#[tokio::test]
async fn pair_unknown_replaces_that_pair_and_retries_on_the_new_one() {
    let fixture = support::start(Options::default()).await;
    let client = client(&fixture);
    client.connect().await.expect("connects");
    fixture.state.push_fault(registry(ErrorReason::PairUnknown));

    let response = within_watchdog(client.send(post("/orders", "x")))
        .await
        .expect("retried");
    assert_eq!(response.status(), StatusCode::OK);
    let refused = fixture.state.faulted_pairs();
    assert_eq!(refused.len(), 1);
    assert!(
        !client.pair_ids().contains(&refused[0]),
        "refused pair dropped"
    );
    assert_eq!(client.pair_count(), 4, "replacement paired");
    assert_eq!(State::count(&fixture.state.pairing_requests), 2);
    let accepted = fixture.state.accepted();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].seq, 0, "the retry used the fresh pair");
    assert!(client.pair_ids().contains(&accepted[0].pair_id));
}

#[tokio::test]
async fn a_restarted_relay_is_survived_by_replacing_pairs_as_they_fail() {
    let fixture = support::start(Options::default()).await;
    let client = client(&fixture);
    client.connect().await.expect("connects");
    fixture.state.push_fault(Fault::ForgetPairs);
    for index in 0..6 {
        let response = within_watchdog(client.send(post("/after-restart", "x")))
            .await
            .unwrap_or_else(|error| panic!("request {index} failed: {error}"));
        assert_eq!(response.status(), StatusCode::OK);
    }
    // Each forgotten pair is refused at most once, and never a fresh one: every
    // refusal was followed by a retry on the pair paired for it.
    let refusals = fixture.state.refusals();
    assert!((1..=4).contains(&refusals.len()), "{refusals:?}");
    assert!(
        refusals
            .iter()
            .all(|reason| *reason == ErrorReason::PairUnknown)
    );
    assert_eq!(client.pair_count(), 4);
    assert_eq!(fixture.state.accepted().len(), 6);
}

#[tokio::test]
async fn an_invalid_client_id_leads_to_a_new_id_and_new_pairs() {
    let fixture = support::start(Options::default()).await;
    let client = client(&fixture);
    client.connect().await.expect("connects");
    let old_id = client.client_id().expect("id");
    let old_pairs: HashSet<_> = client.pair_ids().into_iter().collect();
    fixture.state.push_fault(Fault::RotateClientIdSecret);

    let put = Request::put("/orders/1").body("x").expect("request");
    let response = within_watchdog(client.send(put)).await.expect("retried");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(fixture.state.refusals(), [ErrorReason::ClientIdInvalid]);
    assert_ne!(client.client_id().expect("id"), old_id);
    assert_eq!(State::count(&fixture.state.capability_requests), 2);
    assert_eq!(client.pair_count(), 4);
    assert!(
        client.pair_ids().iter().all(|id| !old_pairs.contains(id)),
        "all re-paired"
    );

    // A POST is not resent under a new client id: the relay scopes resend tokens by
    // client id, so it could not recognise the copy.
    fixture.state.push_fault(Fault::RotateClientIdSecret);
    let error = within_watchdog(client.send(post("/orders", "x")))
        .await
        .expect_err("not resent");
    assert_eq!(error.reason(), Some(ErrorReason::ClientIdInvalid));
    assert_eq!(error.outcome(), RequestOutcome::Unknown, "{error:?}");
    assert_eq!(State::count(&fixture.state.capability_requests), 3);
}

#[tokio::test]
async fn touched_failures_are_retried_only_for_idempotent_replayable_requests() {
    // A relay that keeps no resend tokens: a POST has no guard against running twice.
    let fixture = support::start(Options {
        resend_window_secs: 0,
        ..Options::default()
    })
    .await;
    let client = client(&fixture);
    let state = &fixture.state;
    client.connect().await.expect("connects");

    state.push_fault(registry(ErrorReason::DecodeFailed));
    let put = Request::put("/doc").body("v2").expect("request");
    let response = within_watchdog(client.send(put))
        .await
        .expect("idempotent is retried");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(State::count(&state.mte_requests), 2);

    state.push_fault(registry(ErrorReason::DecodeFailed));
    let error = within_watchdog(client.send(post("/pay", "10")))
        .await
        .expect_err("POST is not retried");
    assert_eq!(error.reason(), Some(ErrorReason::DecodeFailed));
    assert!(!error.is_retry_safe());
    assert_eq!(State::count(&state.mte_requests), 3);

    state.push_fault(registry(ErrorReason::DecodeFailed));
    let stream = http_body_util::Full::new(Bytes::from("v3"));
    let put = Request::put("/doc")
        .body(RequestBody::streaming(stream))
        .expect("request");
    let error = within_watchdog(client.send(put))
        .await
        .expect_err("a read stream cannot be replayed");
    assert_eq!(error.reason(), Some(ErrorReason::DecodeFailed));
    assert_eq!(State::count(&state.mte_requests), 4);
    // Each decode failure still replaced its pair.
    assert_eq!(State::count(&state.pairing_requests), 4);
}

#[tokio::test]
async fn untouched_failures_are_retried_even_for_post() {
    let fixture = support::start(Options::default()).await;
    let client = client(&fixture);
    fixture.state.push_fault(registry(ErrorReason::PairUnknown));
    let response = within_watchdog(client.send(post("/pay", "10")))
        .await
        .expect("retried");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(fixture.state.accepted().len(), 1);
}

#[tokio::test]
async fn a_replay_is_not_retried_for_post_without_a_resend_window() {
    // A client never reuses a sequence number, so `replay` means an earlier copy was
    // accepted: resending a POST to a relay that keeps no tokens could run it twice.
    let fixture = support::start(Options {
        resend_window_secs: 0,
        ..Options::default()
    })
    .await;
    let client = client(&fixture);
    fixture.state.push_fault(registry(ErrorReason::Replay));
    let error = within_watchdog(client.send(post("/pay", "10")))
        .await
        .expect_err("surfaced");
    assert_eq!(error.reason(), Some(ErrorReason::Replay));
    assert!(!error.is_retry_safe());
    assert_eq!(State::count(&fixture.state.mte_requests), 1, "sent once");
    // An idempotent request on the same fault is resent on a fresh pair.
    fixture.state.push_fault(registry(ErrorReason::Replay));
    let response = within_watchdog(client.send(Request::get("/x").body(()).expect("request")))
        .await
        .expect("retried");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_second_registry_error_is_surfaced() {
    let fixture = support::start(Options::default()).await;
    let client = client(&fixture);
    fixture.state.push_fault(registry(ErrorReason::PairUnknown));
    fixture.state.push_fault(registry(ErrorReason::PairExpired));
    let error = within_watchdog(client.send(Request::get("/x").body(()).expect("request")))
        .await
        .expect_err("surfaced");
    assert_eq!(error.reason(), Some(ErrorReason::PairExpired));
    assert_eq!(
        State::count(&fixture.state.mte_requests),
        2,
        "exactly one retry"
    );
}

#[tokio::test]
async fn surfaced_reasons_are_not_retried() {
    let fixture = support::start(Options::default()).await;
    let client = client(&fixture);
    fixture
        .state
        .push_fault(registry(ErrorReason::AdapterFailed));
    let error = within_watchdog(client.send(Request::get("/x").body(()).expect("request")))
        .await
        .expect_err("surfaced");
    let ClientError::Registry {
        reason,
        status,
        message,
        ..
    } = &error
    else {
        panic!("registry error expected, got {error}");
    };
    assert_eq!(*reason, ErrorReason::AdapterFailed);
    assert_eq!(*status, 569);
    assert_eq!(message, "refused by the test fixture");
    assert_eq!(State::count(&fixture.state.mte_requests), 1);
}

#[tokio::test]
async fn overloaded_backs_off_then_retries_and_reports_retry_after() {
    let fixture = support::start(Options::default()).await;
    let client = client(&fixture);
    fixture.state.push_fault(Fault::Registry {
        reason: ErrorReason::Overloaded,
        retry_after: Some("1"),
    });
    let response = within_watchdog(client.send(post("/busy", "x")))
        .await
        .expect("retried");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(State::count(&fixture.state.mte_requests), 2);

    for _ in 0..2 {
        fixture.state.push_fault(Fault::Registry {
            reason: ErrorReason::Overloaded,
            retry_after: Some("7"),
        });
    }
    let error = within_watchdog(client.send(post("/busy", "x")))
        .await
        .expect_err("second overload surfaces");
    let ClientError::Registry { retry_after, .. } = error else {
        panic!("registry error expected");
    };
    assert_eq!(retry_after, Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn overloaded_pairing_backs_off_then_pairs() {
    let fixture = support::start(Options::default()).await;
    let client = client(&fixture);
    fixture.state.push_pairing_fault(Fault::Registry {
        reason: ErrorReason::Overloaded,
        retry_after: Some("1"),
    });
    within_watchdog(client.connect())
        .await
        .expect("pairs after backing off");
    assert_eq!(State::count(&fixture.state.pairing_requests), 2);
    assert_eq!(client.pair_count(), 4);
}

#[tokio::test]
async fn pairing_is_split_into_batches_the_relay_accepts() {
    let fixture = support::start(Options {
        max_pairs_per_batch: 3,
        ..Options::default()
    })
    .await;
    let client = RelayClient::builder(&fixture.url)
        .pairs(7)
        .build()
        .expect("client");
    within_watchdog(client.connect()).await.expect("connects");
    assert_eq!(client.pair_count(), 7);
    assert_eq!(State::count(&fixture.state.pairing_requests), 3);
}

#[tokio::test]
async fn a_secret_mismatch_is_reported_as_such() {
    let fixture = support::start(Options {
        psk: Some(b"relay-secret".to_vec()),
        ..Options::default()
    })
    .await;
    let wrong = RelayClient::builder(&fixture.url)
        .secret(b"other-secret".to_vec())
        .build()
        .expect("client");
    let error = within_watchdog(wrong.connect())
        .await
        .expect_err("mismatch");
    assert_eq!(error.reason(), Some(ErrorReason::SecretMismatch), "{error}");
    assert!(error.is_secret_mismatch(), "{error}");

    // A client without the SECRET offers no proof: refused the same way.
    let without = client(&fixture);
    let error = within_watchdog(without.connect())
        .await
        .expect_err("mismatch");
    assert!(error.is_secret_mismatch(), "{error}");

    let right = RelayClient::builder(&fixture.url)
        .secret(b"relay-secret".to_vec())
        .build()
        .expect("client");
    let response = within_watchdog(right.send(post("/api", "x")))
        .await
        .expect("pairs");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_unknown_major_version_is_refused() {
    let fixture = support::start(Options {
        version: "2.0",
        ..Options::default()
    })
    .await;
    let error = within_watchdog(client(&fixture).connect())
        .await
        .expect_err("refused");
    assert!(matches!(error, ClientError::Protocol { .. }), "{error}");
    assert_eq!(State::count(&fixture.state.pairing_requests), 0);
}

#[tokio::test]
async fn a_refused_connection_is_a_retry_safe_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    let client = RelayClient::builder(format!("http://{address}"))
        .build()
        .expect("client");
    let error = within_watchdog(client.send(post("/x", "y")))
        .await
        .expect_err("refused");
    assert!(matches!(error, ClientError::Transport { .. }), "{error}");
    assert!(error.is_retry_safe());
}

#[tokio::test]
async fn an_unanswered_idempotent_request_is_sent_again_on_a_new_connection() {
    let fixture = support::start(Options::default()).await;
    let client = client(&fixture);
    client.connect().await.expect("connects");
    fixture.state.push_fault(Fault::HangUp);
    let request = Request::put("/orders/7").body("replace").expect("request");
    let response = within_watchdog(client.send(request))
        .await
        .expect("retried after the hang-up");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "x-echo-method"), "PUT");
    assert_eq!(State::count(&fixture.state.mte_requests), 2, "sent twice");
    assert_eq!(fixture.state.accepted().len(), 1, "answered once");
}

#[tokio::test]
async fn an_unanswered_post_is_surfaced_when_the_relay_keeps_no_resend_tokens() {
    let fixture = support::start(Options {
        resend_window_secs: 0,
        ..Options::default()
    })
    .await;
    let client = client(&fixture);
    client.connect().await.expect("connects");
    fixture.state.push_fault(Fault::HangUp);
    let error = within_watchdog(client.send(post("/orders", "create")))
        .await
        .expect_err("not retried");
    assert!(
        matches!(
            error,
            ClientError::Transport {
                closed_before_response: true,
                retry_safe: false,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(!error.is_retry_safe());
    assert_eq!(error.outcome(), RequestOutcome::Unknown);
    assert_eq!(State::count(&fixture.state.mte_requests), 1, "sent once");
    // The client stays usable: the next request takes a new connection.
    let response = within_watchdog(client.send(post("/orders", "again")))
        .await
        .expect("next request");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_post_is_resent_with_its_token_and_deadline_after_an_unanswered_attempt() {
    let fixture = support::start(Options::default()).await;
    let client = client(&fixture);
    client.connect().await.expect("connects");
    fixture.state.push_fault(Fault::HangUp);
    let response = within_watchdog(client.send(post("/orders", "create")))
        .await
        .expect("resent under its token");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(State::count(&fixture.state.mte_requests), 2, "sent twice");
    let accepted = fixture.state.accepted();
    assert_eq!(accepted.len(), 1, "the fixture hung up on the first copy");

    // Another fault, another request: each copy of one request carries one token, and
    // each request its own.
    fixture.state.push_fault(registry(ErrorReason::PairUnknown));
    within_watchdog(client.send(post("/orders", "again")))
        .await
        .expect("resent");
    let accepted = fixture.state.accepted();
    assert_eq!(accepted.len(), 2);
    assert_ne!(accepted[0].token, accepted[1].token, "a token per request");
    let relay_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    for copy in &accepted {
        assert!(
            (relay_now + 50..=relay_now + 61).contains(&copy.not_after),
            "not_after is the relay's time plus its 60 s window: {copy:?}"
        );
    }
}

#[tokio::test]
async fn every_copy_of_one_request_carries_the_same_token() {
    // The fixture refuses the first copy *after* opening it (as a relay refuses a
    // replay), so both copies are seen opened.
    let fixture = support::start(Options::default()).await;
    let client = client(&fixture);
    client.connect().await.expect("connects");
    fixture
        .state
        .push_fault(Fault::RefuseAfterOpening(ErrorReason::PairExpired));
    within_watchdog(client.send(post("/pay", "10")))
        .await
        .expect("resent");
    let accepted = fixture.state.accepted();
    assert_eq!(accepted.len(), 2, "{accepted:?}");
    assert_eq!(accepted[0].token, accepted[1].token);
    assert_eq!(accepted[0].not_after, accepted[1].not_after);
    assert_ne!(accepted[0].pair_id, accepted[1].pair_id, "on a new pair");
}

async fn thousand_concurrent_requests(client: RelayClient, fixture: &Fixture) {
    let tasks: Vec<_> = (0..1000)
        .map(|index| {
            let client = client.clone();
            tokio::spawn(async move {
                let method = if index % 3 == 0 {
                    Method::GET
                } else {
                    Method::POST
                };
                let mut request = Request::builder()
                    .method(method)
                    .uri(format!("/item/{index}"))
                    .body(if index % 3 == 0 {
                        String::new()
                    } else {
                        index.to_string()
                    })
                    .expect("request");
                if index % 5 == 0 {
                    request.extensions_mut().insert(Mode::Mte);
                }
                let response = client.send(request).await.expect("sends");
                assert_eq!(header(&response, "x-echo-path"), format!("/item/{index}"));
                let body = response.into_body().collect_bytes().await.expect("body");
                let expected = if index % 3 == 0 {
                    String::new()
                } else {
                    index.to_string()
                };
                assert_eq!(body, expected);
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    assert!(fixture.state.refusals().is_empty(), "no replay refusals");
    let accepted = fixture.state.accepted();
    assert_eq!(accepted.len(), 1000);
    let mut per_pair: BTreeMap<_, Vec<u64>> = BTreeMap::new();
    for request in &accepted {
        per_pair
            .entry(request.pair_id)
            .or_default()
            .push(request.seq);
    }
    assert_eq!(per_pair.len(), 4, "every pair took part");
    for seqs in per_pair.values_mut() {
        seqs.sort_unstable();
        // Unique and gap-free: 0, 1, 2, ... per pair.
        let expected: Vec<u64> = (0..seqs.len() as u64).collect();
        assert_eq!(*seqs, expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_never_reuse_a_sequence_number() {
    let fixture = support::start(Options::default()).await;
    let client = client(&fixture);
    within_watchdog(thousand_concurrent_requests(client, &fixture)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_over_h2c() {
    let fixture = support::start(Options::default()).await;
    let client = RelayClient::builder(&fixture.url)
        .http2_prior_knowledge(true)
        .build()
        .expect("client");
    within_watchdog(thousand_concurrent_requests(client, &fixture)).await;
}
