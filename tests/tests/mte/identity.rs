//! Relay identity (docs/protocol.md §4.7): a relay with an identity key signs its
//! pairing answers; a client that pins the key pairs only with that relay, so an
//! active man in the middle that answers pairing itself is refused. Without a pin the
//! same man in the middle goes unnoticed and reads the requests: this file shows both.

use std::error::Error as _;

use mte_relay_client::{ClientError, RelayClient, RequestOutcome};
use mte_relay_protocol::identity::IdentityError;
use mte_relay_tests::mitm::{Impersonation, PairingImpostor};
use mte_relay_tests::relay::run;
use mte_relay_tests::within;

use crate::support::{CLIENT_ID_SECRET, RecordingUpstream, relay_for};

/// A fresh key from `mte-relay keygen`: (RELAY_IDENTITY_KEY, RELAY_IDENTITY_PIN).
pub(crate) fn keygen() -> (String, String) {
    let finished = run(&["keygen"], &[]);
    assert!(finished.status.success(), "keygen: {}", finished.stderr);
    let value = |name: &str| {
        finished
            .stdout
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("keygen printed no {name}: {}", finished.stdout))
            .to_owned()
    };
    (value("RELAY_IDENTITY_KEY"), value("RELAY_IDENTITY_PIN"))
}

fn pinned(url: String, pin: &str) -> RelayClient {
    RelayClient::builder(url)
        .pairs(2)
        .pin(pin)
        .build()
        .expect("client builds")
}

/// Sends a POST with `client` and expects the pin to refuse the relay's key.
async fn refused_for_its_key(client: &RelayClient, what: &str) -> ClientError {
    let error = within(what, client.send(post("/orders")))
        .await
        .expect_err("refused");
    assert_eq!(
        identity_error(&error),
        Some(IdentityError::PinMismatch),
        "{what}: {error}"
    );
    error
}

/// The identity error behind a client error, if any.
fn identity_error(error: &ClientError) -> Option<IdentityError> {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(identity) = cause.downcast_ref::<IdentityError>() {
            return Some(identity.clone());
        }
        source = cause.source();
    }
    None
}

fn post(path: &str) -> http::Request<bytes::Bytes> {
    http::Request::post(path)
        .body(bytes::Bytes::from_static(b"secret order"))
        .expect("request")
}

#[tokio::test]
async fn a_pinned_client_talks_to_the_relay_that_holds_the_key() {
    let (key, pin) = keygen();
    let (other_key, other_pin) = keygen();
    assert_ne!(key, other_key, "each key is new");
    assert_ne!(pin, other_pin);

    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(&upstream.upstream.url(), &[("RELAY_IDENTITY_KEY", &key)]);
    let url = format!("http://{}", relay.addr());
    for client in [
        pinned(url.clone(), &pin),
        // An unpinned client pairs as before: the signature is there, unchecked.
        RelayClient::builder(url.clone())
            .pairs(1)
            .build()
            .expect("client builds"),
    ] {
        let response = within("a POST to the relay", client.send(post("/orders")))
            .await
            .expect("the relay answers");
        assert_eq!(response.status(), 200);
    }
    assert_eq!(upstream.seen().len(), 2);

    // The CLI pins too, and `check-config` shows the pin of the configured key.
    let target = format!("{url}/orders");
    let pin_arg = pin.clone();
    let sent = tokio::task::spawn_blocking(move || {
        run(&["request", "--pin", &pin_arg, "-d", "1", &target], &[])
    })
    .await
    .expect("cli");
    assert!(sent.status.success(), "{}", sent.stderr);
    assert_eq!(upstream.seen().len(), 3);
    let checked = run(
        &["check-config"],
        &[
            ("UPSTREAM", "http://127.0.0.1:9"),
            ("CLIENT_ID_SECRET", CLIENT_ID_SECRET),
            ("RELAY_IDENTITY_KEY", &key),
        ],
    );
    assert!(checked.status.success(), "{}", checked.stderr);
    assert!(checked.stdout.contains(&pin), "{}", checked.stdout);
    assert!(
        !checked.stdout.contains(&key) && !checked.stderr.contains(&key),
        "the secret key is redacted"
    );

    // During a rotation a client holds both pins and accepts either key.
    let rotating = RelayClient::builder(url.clone())
        .pairs(1)
        .pin(&other_pin)
        .pin(&pin)
        .build()
        .expect("client builds");
    let response = within("a POST with two pins", rotating.send(post("/orders")))
        .await
        .expect("one pin matches");
    assert_eq!(response.status(), 200);
    assert_eq!(upstream.seen().len(), 4);

    // A client pinned to another key refuses this relay before pairing.
    let wrong = pinned(url, &other_pin);
    let error = refused_for_its_key(&wrong, "a POST with the wrong pin").await;
    assert_eq!(error.outcome(), RequestOutcome::NotRun, "{error}");
    assert_eq!(upstream.seen().len(), 4, "nothing was sent");
}

#[tokio::test]
async fn a_pinned_client_refuses_every_impostor_and_sends_nothing() {
    let (key, pin) = keygen();
    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(&upstream.upstream.url(), &[("RELAY_IDENTITY_KEY", &key)]);
    for (how, expected) in [
        (Impersonation::Unsigned, IdentityError::Unsigned),
        (Impersonation::GenuineSignature, IdentityError::BadSignature),
        (Impersonation::OwnIdentity, IdentityError::PinMismatch),
    ] {
        let impostor = PairingImpostor::start(relay.addr(), how).await;
        let client = pinned(impostor.url(), &pin);
        let error = within("a POST through the impostor", client.send(post("/orders")))
            .await
            .expect_err("the impostor is refused");
        assert_eq!(identity_error(&error), Some(expected), "{how:?}: {error}");
        assert_eq!(error.outcome(), RequestOutcome::NotRun, "{how:?}: {error}");
        assert!(
            error.to_string().contains("man in the middle"),
            "{how:?}: the message says what it means: {error}"
        );
        let intercepted = impostor.intercepted();
        assert!(
            intercepted.read.is_empty(),
            "{how:?}: the impostor read nothing"
        );
        if how != Impersonation::OwnIdentity {
            // Its own key was refused at capabilities, before any pairing.
            assert!(
                intercepted.pairings > 0,
                "{how:?}: the impostor did answer pairing"
            );
        }
    }
    assert!(upstream.seen().is_empty(), "nothing reached the upstream");

    // The CLI refuses the same way, exit 1 with one line.
    let impostor = PairingImpostor::start(relay.addr(), Impersonation::Unsigned).await;
    let target = format!("{}/orders", impostor.url());
    let refused = tokio::task::spawn_blocking(move || {
        run(&["request", "--pin", &pin, "-d", "1", &target], &[])
    })
    .await
    .expect("cli");
    assert_eq!(refused.status.code(), Some(1), "{}", refused.stderr);
    assert_eq!(refused.stderr.lines().count(), 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("man in the middle"),
        "{}",
        refused.stderr
    );
    assert!(impostor.intercepted().read.is_empty());
}

/// The documented limit: without a pin (and without `SECRET`), an active man in the
/// middle that answers pairing is the relay as far as the client can tell.
#[tokio::test]
async fn without_a_pin_an_impostor_goes_unnoticed_and_reads_the_requests() {
    let (key, _) = keygen();
    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(&upstream.upstream.url(), &[("RELAY_IDENTITY_KEY", &key)]);
    let impostor = PairingImpostor::start(relay.addr(), Impersonation::Unsigned).await;
    let client = RelayClient::builder(impostor.url())
        .pairs(1)
        .build()
        .expect("client builds");
    let response = within(
        "a POST through the impostor",
        client.send(post("/orders?card=4111")),
    )
    .await
    .expect("the client cannot tell");
    assert_eq!(response.status(), 200);
    assert_eq!(
        impostor.intercepted().read,
        vec!["/orders?card=4111".to_owned()]
    );
    assert!(
        upstream.seen().is_empty(),
        "the impostor answered in the relay's place"
    );
}

#[tokio::test]
async fn a_pinned_client_refuses_a_relay_without_an_identity_key() {
    let (_, pin) = keygen();
    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(&upstream.upstream.url(), &[]);
    let client = pinned(format!("http://{}", relay.addr()), &pin);
    refused_for_its_key(&client, "a POST to an unkeyed relay").await;
    assert!(upstream.seen().is_empty());
}

#[test]
fn identity_keys_that_are_not_keys_stop_startup_naming_the_field() {
    let cases: [(&[(&str, &str)], &str); 3] = [
        (
            &[("UPSTREAM", "http://h"), ("RELAY_IDENTITY_KEY", "short")],
            "RELAY_IDENTITY_KEY: identity key is not 32 bytes",
        ),
        (
            &[
                ("UPSTREAM", "http://h"),
                (
                    "RELAY_IDENTITY_KEY",
                    "sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                ),
            ],
            "mte-relay keygen",
        ),
        (
            &[(
                "DOMAIN_MAP",
                r#"{"api.example.com":{"upstream":"http://h","identity_key":"AAAA"}}"#,
            )],
            "identity_key: identity key is not 32 bytes",
        ),
    ];
    for (env, expected) in cases {
        let mut env = env.to_vec();
        env.push(("CLIENT_ID_SECRET", CLIENT_ID_SECRET));
        let finished = run(&["check-config"], &env);
        assert_eq!(
            finished.status.code(),
            Some(2),
            "{env:?}: {}",
            finished.stderr
        );
        assert_eq!(finished.stderr.lines().count(), 1, "{}", finished.stderr);
        assert!(
            finished.stderr.contains(expected),
            "{env:?}: {}",
            finished.stderr
        );
        assert!(!finished.stderr.contains("AAAA"), "the value is not echoed");
    }
}
