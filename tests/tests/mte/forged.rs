//! Forged registry errors: an on-path attacker who adds an error token to a genuine
//! sealed answer, or drops the answer and forges an error in its place, cannot make a
//! POST run twice; the caller learns whether it ran. The relay's own refusals after
//! the head opened are sealed, so the client can tell them apart (docs/protocol.md
//! §4.6, §11).

use http::HeaderValue;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use mte_relay_client::{ClientError, RelayClient, RequestOutcome};
use mte_relay_protocol::header::HEAD_HEADER;
use mte_relay_protocol::registry::{ClientReaction, ERROR_HEADER, ErrorReason};
use mte_relay_tests::mitm::{Interceptor, forged_error};
use mte_relay_tests::relay::run;
use mte_relay_tests::within;

use crate::raw::{RawClient, Spec};
use crate::support::{RecordingUpstream, relay_for};

/// The reasons a client would act on by resending, were it to believe them.
fn reasons_a_client_acts_on() -> Vec<ErrorReason> {
    ErrorReason::ALL
        .iter()
        .copied()
        .filter(|reason| reason.reaction() != ClientReaction::Surface)
        .collect()
}

/// An interceptor that adds `x-mte-relay-error: <reason>` (and `Retry-After: 0`) to
/// every sealed answer from the relay.
async fn forging(relay_addr: std::net::SocketAddr, reason: ErrorReason) -> Interceptor {
    Interceptor::start(relay_addr, move |parts| {
        if parts.headers.contains_key(HEAD_HEADER) {
            parts
                .headers
                .insert(ERROR_HEADER, HeaderValue::from_static(reason.token()));
            parts
                .headers
                .insert("retry-after", HeaderValue::from_static("0"));
        }
    })
    .await
}

#[tokio::test]
async fn an_error_token_added_to_a_genuine_answer_never_runs_a_post_twice() {
    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(&upstream.upstream.url(), &[]);
    for reason in reasons_a_client_acts_on() {
        let interceptor = forging(relay.addr(), reason).await;
        let client = RelayClient::builder(interceptor.url())
            .pairs(1)
            .build()
            .expect("client builds");
        let before = upstream.seen().len();
        let request = http::Request::post(format!("/pay?reason={reason}"))
            .body(bytes::Bytes::from_static(b"10"))
            .expect("request");
        let response = within("a POST through the forger", client.send(request))
            .await
            .unwrap_or_else(|error| panic!("with `{reason}` forged: {error:?}"));
        assert_eq!(response.status(), 200, "with `{reason}` forged");
        let body = within("the body", response.into_body().collect_bytes())
            .await
            .expect("the genuine body opens");
        let summary: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(summary["method"], "POST", "the genuine answer: {summary}");
        assert_eq!(
            upstream.seen().len(),
            before + 1,
            "with `{reason}` forged, the upstream saw the POST exactly once"
        );
    }
}

/// An interceptor that lets the first MTE request reach the relay (and the upstream),
/// drops the relay's sealed answer and sends `reason` in the clear instead. Later
/// answers pass untouched.
async fn dropping_the_first_answer(
    relay_addr: std::net::SocketAddr,
    reason: ErrorReason,
) -> Interceptor {
    let forged_once = Arc::new(AtomicBool::new(false));
    Interceptor::replacing(relay_addr, move |parts| {
        let sealed = parts.headers.contains_key(HEAD_HEADER);
        (sealed && !forged_once.swap(true, Ordering::SeqCst))
            .then(|| forged_error(reason.status(), reason.token()))
    })
    .await
}

/// The reasons the relay raises saying the upstream saw nothing: those an attacker
/// would forge to get a request sent again.
fn untouched_reasons() -> Vec<ErrorReason> {
    ErrorReason::ALL
        .iter()
        .copied()
        .filter(|reason| reason.upstream_untouched())
        .collect()
}

#[tokio::test]
async fn an_error_forged_in_place_of_the_answer_never_runs_a_post_twice() {
    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(&upstream.upstream.url(), &[]);
    for reason in untouched_reasons() {
        let interceptor = dropping_the_first_answer(relay.addr(), reason).await;
        let client = RelayClient::builder(interceptor.url())
            .pairs(1)
            .build()
            .expect("client builds");
        let before = upstream.seen().len();
        let request = http::Request::post(format!("/pay?reason={reason}"))
            .body(bytes::Bytes::from_static(b"10"))
            .expect("request");
        let error = within("a POST through the forger", client.send(request))
            .await
            .expect_err("the genuine answer was dropped");
        assert_eq!(
            upstream.seen().len(),
            before + 1,
            "with `{reason}` forged, the upstream saw the POST exactly once"
        );
        // Resent under its token where the reaction keeps the client id: the relay
        // refuses the copy, authenticated, and the caller learns the POST ran. Where
        // it does not resend, the caller learns that it cannot know.
        let resent = matches!(
            reason.reaction(),
            ClientReaction::ReplacePair | ClientReaction::BackOff
        );
        if resent {
            assert_eq!(
                error.reason(),
                Some(ErrorReason::AlreadyProcessed),
                "with `{reason}` forged: {error:?}"
            );
            assert_eq!(
                error.outcome(),
                RequestOutcome::Ran,
                "with `{reason}` forged"
            );
        } else {
            assert_eq!(error.reason(), Some(reason), "with `{reason}` forged");
            assert_eq!(
                error.outcome(),
                RequestOutcome::Unknown,
                "with `{reason}` forged, unauthenticated: {error:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_dropped_answer_and_a_forged_pair_unknown_tell_the_caller_the_post_ran() {
    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(&upstream.upstream.url(), &[]);
    let interceptor = dropping_the_first_answer(relay.addr(), ErrorReason::PairUnknown).await;
    let client = RelayClient::builder(interceptor.url())
        .pairs(1)
        .build()
        .expect("client builds");
    client.connect().await.expect("connects");
    let first_pair = client.pair_ids();
    let request = http::Request::post("/pay")
        .body(bytes::Bytes::from_static(b"10"))
        .expect("request");
    let error = within("a POST through the forger", client.send(request))
        .await
        .expect_err("the answer was lost");
    let ClientError::Registry {
        reason,
        authenticated,
        status,
        ..
    } = &error
    else {
        panic!("a registry error expected: {error:?}");
    };
    assert_eq!((*reason, *status), (ErrorReason::AlreadyProcessed, 565));
    assert!(authenticated, "the relay sealed its refusal of the copy");
    assert_eq!(error.outcome(), RequestOutcome::Ran);
    assert!(!error.is_retry_safe());
    assert_ne!(
        client.pair_ids(),
        first_pair,
        "the copy went out on a new pair"
    );
    assert_eq!(upstream.seen().len(), 1, "the upstream saw the POST once");
    assert!(
        relay
            .wait_for_log(|json| json["target"] == "mte_relay::access" && json["status"] == 565)
            .is_some(),
        "the relay logged its refusal of the copy"
    );
}

#[tokio::test]
async fn the_cli_says_a_post_ran_when_its_answer_was_replaced_by_a_forged_error() {
    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(&upstream.upstream.url(), &[]);
    let interceptor = dropping_the_first_answer(relay.addr(), ErrorReason::PairUnknown).await;
    let url = format!("{}/pay", interceptor.url());
    let finished =
        tokio::task::spawn_blocking(move || run(&["request", "-X", "POST", "-d", "10", &url], &[]))
            .await
            .expect("the CLI ran");
    assert!(!finished.status.success(), "{}", finished.stdout);
    assert!(
        finished.stderr.contains("already-processed")
            && finished.stderr.contains("do not send it again"),
        "{}",
        finished.stderr
    );
    assert_eq!(upstream.seen().len(), 1, "the upstream saw the POST once");
}

#[tokio::test]
async fn the_cli_ignores_an_error_token_added_to_a_genuine_answer() {
    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(&upstream.upstream.url(), &[]);
    let interceptor = forging(relay.addr(), ErrorReason::PairUnknown).await;
    let url = format!("{}/pay", interceptor.url());
    let finished =
        tokio::task::spawn_blocking(move || run(&["request", "-X", "POST", "-d", "10", &url], &[]))
            .await
            .expect("the CLI ran");
    assert!(finished.status.success(), "{}", finished.stderr);
    let summary: serde_json::Value =
        serde_json::from_str(&finished.stdout).expect("the genuine answer");
    assert_eq!(summary["method"], "POST");
    assert_eq!(upstream.seen().len(), 1, "the upstream saw the POST once");
}

#[tokio::test]
async fn refusals_after_the_head_opened_are_sealed_and_authenticated() {
    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(&upstream.upstream.url(), &[("MTE_ROUTES", "/allowed/*")]);

    // The raw client sees the token inside the sealed head, repeated in the clear.
    let mut session = RawClient::new(&relay).session(1).await;
    let addr = relay.addr();
    session
        .seal(0, &Spec::post("/elsewhere", "10"))
        .send(addr)
        .await
        .assert_sealed_registry(404, "route-not-found", "a path outside MTE_ROUTES");

    // The Rust client reports it as authenticated.
    let client = RelayClient::builder(format!("http://{addr}"))
        .pairs(1)
        .build()
        .expect("client builds");
    let request = http::Request::post("/elsewhere")
        .body(bytes::Bytes::from_static(b"10"))
        .expect("request");
    let error = within("a refused request", client.send(request))
        .await
        .expect_err("refused");
    let ClientError::Registry {
        reason,
        authenticated,
        status,
        ..
    } = error
    else {
        panic!("a registry error expected: {error:?}");
    };
    assert_eq!((reason, status), (ErrorReason::RouteNotFound, 404));
    assert!(authenticated, "a sealed refusal is authenticated");

    // A refusal before the head opens stays plain: the same request sent twice is
    // refused by the replay window before its head is opened.
    let sealed = session.seal(0, &Spec::get("/allowed/x"));
    sealed.send(addr).await.assert_sealed_ok("the first copy");
    sealed
        .send(addr)
        .await
        .assert_registry(564, "decode-failed", "the second copy");
    assert_eq!(
        upstream.seen().len(),
        1,
        "only the allowed request reached the upstream"
    );
}
