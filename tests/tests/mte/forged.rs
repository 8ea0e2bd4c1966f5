//! Forged registry errors: an on-path attacker who adds an error token to a genuine
//! sealed answer cannot make a client send a request twice, and the relay's own
//! refusals after the head opened are sealed, so the client can tell them apart
//! (docs/protocol.md §11).

use http::HeaderValue;
use mte_relay_client::{ClientError, RelayClient};
use mte_relay_protocol::header::HEAD_HEADER;
use mte_relay_protocol::registry::{ClientReaction, ERROR_HEADER, ErrorReason};
use mte_relay_tests::mitm::Interceptor;
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
        .assert_registry(565, "replay", "the second copy");
    assert_eq!(
        upstream.seen().len(),
        1,
        "only the allowed request reached the upstream"
    );
}
