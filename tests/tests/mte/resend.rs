//! The relay's side of resend tokens, through raw sealed requests: a non-idempotent
//! request runs at most once per token and client id, whichever pair carries each
//! copy, and never after its `not_after`; idempotent requests are not recorded
//! (docs/protocol.md §4.6).

use std::time::Duration;

use crate::raw::{RawClient, Spec, unix_now};
use crate::support::{RecordingUpstream, relay_for};

#[tokio::test]
async fn a_second_copy_of_a_post_is_refused_on_any_pair() {
    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(&upstream.upstream.url(), &[]);
    let mut session = RawClient::new(&relay).session(2).await;
    let addr = relay.addr();
    let spec = Spec::post("/pay", "10").copies();
    session
        .seal(0, &spec)
        .send(addr)
        .await
        .assert_sealed_ok("the first copy");
    // The copy an attacker made the client send: same token, another pair.
    session
        .seal(1, &spec)
        .send(addr)
        .await
        .assert_sealed_registry(565, "already-processed", "the second copy");
    session
        .seal(0, &spec)
        .send(addr)
        .await
        .assert_sealed_registry(565, "already-processed", "a third copy on the first pair");
    assert_eq!(upstream.seen().len(), 1, "the upstream saw the POST once");

    // Another token is another request.
    session
        .seal(1, &Spec::post("/pay", "10"))
        .send(addr)
        .await
        .assert_sealed_ok("a new request");
    assert_eq!(upstream.seen().len(), 2);
}

#[tokio::test]
async fn tokens_are_scoped_to_the_client_id() {
    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(&upstream.upstream.url(), &[]);
    let addr = relay.addr();
    let spec = Spec::post("/pay", "10").copies();
    let mut alice = RawClient::new(&relay).session(1).await;
    let mut bob = RawClient::new(&relay).session(1).await;
    alice
        .seal(0, &spec)
        .send(addr)
        .await
        .assert_sealed_ok("alice");
    bob.seal(0, &spec)
        .send(addr)
        .await
        .assert_sealed_ok("bob's token is his own, even with the same bytes");
    assert_eq!(upstream.seen().len(), 2);
}

#[tokio::test]
async fn idempotent_requests_keep_no_token() {
    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(&upstream.upstream.url(), &[]);
    let mut session = RawClient::new(&relay).session(1).await;
    let addr = relay.addr();
    for spec in [
        Spec::get("/doc").copies(),
        Spec::new("PUT", "/doc").body("v2").copies(),
    ] {
        for copy in ["first", "second"] {
            session
                .seal(0, &spec)
                .send(addr)
                .await
                .assert_sealed_ok(&format!("{} {copy}", spec.method));
        }
    }
    assert_eq!(upstream.seen().len(), 4, "repeating them is harmless");
}

#[tokio::test]
async fn a_post_past_its_deadline_or_with_one_beyond_the_window_is_refused() {
    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(&upstream.upstream.url(), &[("RESEND_WINDOW_SECS", "10")]);
    let mut session = RawClient::new(&relay).session(1).await;
    let addr = relay.addr();
    let mut late = Spec::post("/pay", "10");
    late.not_after = unix_now() - 2;
    session
        .seal(0, &late)
        .send(addr)
        .await
        .assert_sealed_registry(408, "request-expired", "past not_after");
    let mut far = Spec::post("/pay", "10");
    // Window 10 s plus 30 s for the client's clock estimate.
    far.not_after = unix_now() + 120;
    session
        .seal(0, &far)
        .send(addr)
        .await
        .assert_sealed_registry(408, "request-expired", "beyond the window");
    assert!(upstream.seen().is_empty(), "neither was forwarded");
    // A GET carries the same fields but is not held to them.
    let mut get = Spec::get("/doc");
    get.not_after = 0;
    session
        .seal(0, &get)
        .send(addr)
        .await
        .assert_sealed_ok("a GET");
}

#[tokio::test]
async fn a_copy_held_back_past_the_deadline_does_not_run() {
    // The attack the deadline closes: an attacker holds the first copy, forges an error
    // so the client resends, lets the resend run, and releases the held copy once the
    // relay has forgotten the token. The token outlives the deadline, and no copy runs
    // after it.
    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(&upstream.upstream.url(), &[("RESEND_WINDOW_SECS", "1")]);
    let mut session = RawClient::new(&relay).session(2).await;
    let addr = relay.addr();
    let mut spec = Spec::post("/pay", "10").copies();
    spec.not_after = unix_now() + 1;
    let held = session.seal(0, &spec);
    session
        .seal(1, &spec)
        .send(addr)
        .await
        .assert_sealed_ok("the resend runs");
    while unix_now() <= spec.not_after {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    held.send(addr)
        .await
        .assert_sealed_registry(408, "request-expired", "the held copy");
    assert_eq!(upstream.seen().len(), 1, "the upstream saw the POST once");
}

#[tokio::test]
async fn past_its_cap_of_tokens_the_relay_sheds_posts_before_forwarding() {
    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(&upstream.upstream.url(), &[("MAX_RESEND_TOKENS", "2")]);
    let mut session = RawClient::new(&relay).session(1).await;
    let addr = relay.addr();
    for n in 0..2 {
        session
            .seal(0, &Spec::post("/pay", "10"))
            .send(addr)
            .await
            .assert_sealed_ok(&format!("POST {n}"));
    }
    let refused = session.seal(0, &Spec::post("/pay", "10")).send(addr).await;
    refused.assert_sealed_registry(568, "overloaded", "the third POST");
    session
        .seal(0, &Spec::get("/doc"))
        .send(addr)
        .await
        .assert_sealed_ok("a GET needs no token");
    assert_eq!(upstream.seen().len(), 3);
}
