//! The API Relay: a service sends plain HTTP to relay A with the outbound token, A sends
//! it encrypted to relay B, B forwards it to its upstream, and the answer comes back the
//! same way. Two real relay processes, a real upstream, and a tap between A and B that
//! records every byte on the wire.

use bytes::Bytes;
use http::{Request, StatusCode};
use mte_relay_tests::client::{body_bytes, body_json, send};
use mte_relay_tests::mitm::WireTap;
use mte_relay_tests::relay::Relay;
use mte_relay_tests::upstream::{TestBody, full};

use crate::support::{CLIENT_ID_SECRET, RecordingUpstream};

/// What a service of A's side sends in `x-mte-outbound-token`.
const TOKEN: &str = "an-outbound-token-for-the-api-relay-tests";
/// The pre-shared key both relays hold.
const SECRET: &str = "an-api-relay-pre-shared-secret-0123456789";

/// An upstream behind relay B, relay B with `SECRET`, a tap in front of B, and relay A
/// sending to B through the tap by default.
struct ApiRelay {
    upstream: RecordingUpstream,
    b: Relay,
    tap: WireTap,
    a: Relay,
}

impl ApiRelay {
    async fn start(a_extra: &[(&str, &str)], b_extra: &[(&str, &str)]) -> ApiRelay {
        let upstream = RecordingUpstream::start().await;
        let upstream_url = upstream.upstream.url();
        let mut b_env = vec![
            ("UPSTREAM", upstream_url.as_str()),
            ("CLIENT_ID_SECRET", CLIENT_ID_SECRET),
            ("SECRET", SECRET),
        ];
        b_env.extend_from_slice(b_extra);
        let b = Relay::start(&b_env);
        let tap = WireTap::start(b.addr()).await;
        let a = relay_a(&tap.url(), a_extra);
        ApiRelay {
            upstream,
            b,
            tap,
            a,
        }
    }
}

/// Relay A: outbound to `peer` by default (and only there), with the shared `SECRET`
/// unless `extra` sets another. Its own inbound upstream is never used here.
fn relay_a(peer: &str, extra: &[(&str, &str)]) -> Relay {
    let mut env = vec![
        ("UPSTREAM", "http://127.0.0.1:9"),
        ("CLIENT_ID_SECRET", CLIENT_ID_SECRET),
        ("OUTBOUND_TOKEN", TOKEN),
        ("OUTBOUND_UPSTREAM", peer),
        ("OUTBOUND_PEERS", peer),
    ];
    if !extra.iter().any(|(name, _)| *name == "SECRET") {
        env.push(("SECRET", SECRET));
    }
    env.extend_from_slice(extra);
    Relay::start(&env)
}

/// A plain request to relay A carrying the outbound token.
fn outbound(method: &str, target: &str) -> http::request::Builder {
    Request::builder()
        .method(method)
        .uri(target)
        .header("host", "service-a.internal")
        .header("x-mte-outbound-token", TOKEN)
}

fn assert_refused(response: &http::Response<hyper::body::Incoming>, status: u16, token: &str) {
    assert_eq!(response.status(), status, "{response:?}");
    assert_eq!(
        response.headers()["x-mte-relay-error"],
        token,
        "{response:?}"
    );
}

#[tokio::test]
async fn requests_arrive_exactly_and_nothing_crosses_between_the_relays_in_the_clear() {
    let relays = ApiRelay::start(&[], &[]).await;
    // Marked bytes, so the tap can look for them: a plaintext body would show them.
    let body: Vec<u8> = b"BODY-MARKER-7c1e"
        .iter()
        .copied()
        .chain((0..=255u8).cycle().take(5000))
        .collect();
    let target = "/orders/7?expand=items&q=query-marker-5d2a";
    let mut expected_seen = 0;
    for mode in ["MKE", "MTE"] {
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            let sent = if method == "GET" {
                Vec::new()
            } else {
                body.clone()
            };
            let request = outbound(method, target)
                .header("x-mte-encode-type", mode)
                .header("content-type", "application/octet-stream")
                .header("x-trace", "header-marker-one")
                .header("x-trace", "header-marker-two")
                .body(full(sent.clone()))
                .expect("request");
            let response = send::<TestBody>(relays.a.addr(), request).await;
            assert_eq!(response.status(), StatusCode::OK, "{mode} {method}");
            let cookies: Vec<_> = response.headers().get_all("set-cookie").iter().collect();
            assert_eq!(cookies, ["a=1; Path=/", "b=2; Path=/"], "{mode} {method}");
            assert!(
                response
                    .headers()
                    .keys()
                    .all(|name| !name.as_str().starts_with("x-mte-")),
                "no x-mte-* header reaches the caller: {:?}",
                response.headers()
            );
            let summary = body_json(response).await;
            assert_eq!(summary["method"], method);
            assert_eq!(summary["target"], target);
            assert_eq!(summary["body_bytes"], sent.len());

            expected_seen += 1;
            let seen = relays.upstream.seen();
            assert_eq!(seen.len(), expected_seen, "each request ran once");
            let last = seen.last().expect("recorded");
            assert_eq!(last.target, target);
            assert_eq!(last.body.as_ref(), sent.as_slice(), "{mode} {method} body");
            let traces: Vec<_> = last.headers.get_all("x-trace").iter().collect();
            assert_eq!(traces, ["header-marker-one", "header-marker-two"]);
            assert_eq!(last.headers["content-type"], "application/octet-stream");
            assert!(
                last.headers
                    .keys()
                    .all(|name| !name.as_str().starts_with("x-mte-")),
                "no x-mte-* header reaches B's upstream: {:?}",
                last.headers
            );
            if !sent.is_empty() {
                // The caller knew the length: the upstream gets it, not a chunked body.
                assert_eq!(
                    last.headers.get("content-length").map(|v| v.as_bytes()),
                    Some(sent.len().to_string().as_bytes()),
                    "{mode} {method}: {:?}",
                    last.headers
                );
                assert!(!last.headers.contains_key("transfer-encoding"));
            }
        }
    }

    // A status other than 2xx comes back as it is, with its body.
    let response = send::<TestBody>(
        relays.a.addr(),
        outbound("GET", "/status/418?q=teapot-marker")
            .body(full(Bytes::new()))
            .expect("request"),
    )
    .await;
    assert_eq!(response.status(), 418);
    assert_eq!(
        body_json(response).await["target"],
        "/status/418?q=teapot-marker"
    );

    assert!(relays.tap.connections() > 0, "A reached B through the tap");
    for marker in [
        &b"BODY-MARKER-7c1e"[..],
        b"query-marker-5d2a",
        b"/orders/7",
        b"header-marker-one",
        b"teapot-marker",
        b"set-cookie",
        b"body_bytes",
        b"application/octet-stream\r\nx-trace",
        TOKEN.as_bytes(),
        SECRET.as_bytes(),
    ] {
        assert!(
            !relays.tap.saw(marker),
            "{:?} crossed between the relays in the clear",
            String::from_utf8_lossy(marker)
        );
    }
    assert!(
        relays.tap.saw(b"x-mte-relay"),
        "the tap saw the encrypted requests"
    );

    // A's access line names the peer and the outbound time.
    let line = relays
        .a
        .wait_for_log(|json| json["route"] == "outbound")
        .expect("an access line of an outbound request");
    assert_eq!(line["peer"], relays.tap.url());
    assert!(line["outbound_ms"].as_f64().is_some(), "{line}");
    // A seals the request and opens the answer: its encode and decode times.
    for field in ["encode_ms", "decode_ms"] {
        assert!(
            line[field].as_f64().is_some_and(|ms| ms > 0.0),
            "{field}: {line}"
        );
    }
    drop(relays.b);
}

#[tokio::test]
async fn refused_outbound_requests_reach_nothing() {
    let relays = ApiRelay::start(&[], &[]).await;
    let cases: [(&str, Request<TestBody>, u16, &str); 5] = [
        (
            "wrong token",
            Request::get("/x")
                .header(
                    "x-mte-outbound-token",
                    "not-the-token-not-the-token-not-the",
                )
                .body(full(Bytes::new()))
                .expect("request"),
            401,
            "outbound-token-invalid",
        ),
        (
            // Without the token it is an ordinary inbound request of relay A, which
            // refuses it as unencrypted.
            "missing token",
            Request::get("/x")
                .header("x-mte-upstream", relays.tap.url())
                .body(full(Bytes::new()))
                .expect("request"),
            559,
            "relay-header-missing",
        ),
        (
            "peer not on the allow-list",
            outbound("GET", "/x")
                .header("x-mte-upstream", "http://127.0.0.1:1")
                .body(full(Bytes::new()))
                .expect("request"),
            403,
            "outbound-peer-forbidden",
        ),
        (
            "peer not an origin",
            outbound("GET", "/x")
                .header("x-mte-upstream", "relay-b:8080")
                .body(full(Bytes::new()))
                .expect("request"),
            403,
            "outbound-peer-forbidden",
        ),
        (
            "unknown encode type",
            outbound("GET", "/x")
                .header("x-mte-encode-type", "AES")
                .body(full(Bytes::new()))
                .expect("request"),
            400,
            "outbound-request-invalid",
        ),
    ];
    for (case, request, status, token) in cases {
        let response = send::<TestBody>(relays.a.addr(), request).await;
        assert_refused(&response, status, token);
        let body = body_bytes(response).await;
        assert!(
            !String::from_utf8_lossy(&body).contains(TOKEN),
            "{case}: the token is never echoed"
        );
    }
    assert_eq!(relays.tap.connections(), 0, "nothing was sent towards B");
    assert!(relays.upstream.seen().is_empty());
    assert!(
        relays.a.logs().iter().all(|line| !line.contains(TOKEN)),
        "the token never appears in A's logs"
    );

    // A relay with no default peer refuses a request that names none.
    let no_default = Relay::start(&[
        ("UPSTREAM", "http://127.0.0.1:9"),
        ("CLIENT_ID_SECRET", CLIENT_ID_SECRET),
        ("OUTBOUND_TOKEN", TOKEN),
    ]);
    let response = send::<TestBody>(
        no_default.addr(),
        outbound("GET", "/x")
            .body(full(Bytes::new()))
            .expect("request"),
    )
    .await;
    assert_refused(&response, 400, "outbound-request-invalid");
    assert!(
        no_default
            .logs()
            .iter()
            .any(|line| line.contains("no outbound_peers allow-list")),
        "a relay without an allow-list warns at startup"
    );
}

#[tokio::test]
async fn a_secret_mismatch_is_named_on_both_sides_and_nothing_is_forwarded() {
    for a_secret in ["another-pre-shared-secret-of-the-wrong-side", ""] {
        let relays = ApiRelay::start(&[("SECRET", a_secret)], &[]).await;
        let response = send::<TestBody>(
            relays.a.addr(),
            outbound("POST", "/payments")
                .body(full("amount=12"))
                .expect("request"),
        )
        .await;
        assert_refused(&response, 567, "secret-mismatch");
        let explanation = body_json(response).await;
        assert!(
            explanation["message"]
                .as_str()
                .is_some_and(|message| message.contains("SECRET")),
            "{explanation}"
        );
        assert!(relays.upstream.seen().is_empty(), "nothing was forwarded");
        for (side, relay) in [("A", &relays.a), ("B", &relays.b)] {
            let named = relay.wait_for_log(|json| {
                json["message"]
                    .as_str()
                    .is_some_and(|message| message.contains("SECRET"))
            });
            assert!(
                named.is_some(),
                "relay {side} logs SECRET as the likely cause"
            );
        }
    }
}

#[tokio::test]
async fn a_restarted_peer_is_paired_again_without_the_caller_noticing() {
    let mut relays = ApiRelay::start(&[], &[]).await;
    let post = |n: usize| {
        outbound("POST", &format!("/orders?n={n}"))
            .body(full(format!("order {n}")))
            .expect("request")
    };
    let response = send::<TestBody>(relays.a.addr(), post(0)).await;
    assert_eq!(response.status(), StatusCode::OK);

    // B restarts with an empty memory store: every pair A holds is gone.
    let port = relays.b.addr().port();
    relays.b.kill();
    let upstream_url = relays.upstream.upstream.url();
    relays.b = Relay::start_on_port(
        port,
        &[
            ("UPSTREAM", upstream_url.as_str()),
            ("CLIENT_ID_SECRET", CLIENT_ID_SECRET),
            ("SECRET", SECRET),
        ],
    );
    for n in 1..=5 {
        let response = send::<TestBody>(relays.a.addr(), post(n)).await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "request {n} after the restart"
        );
    }
    let targets: Vec<String> = relays
        .upstream
        .seen()
        .into_iter()
        .map(|seen| seen.target)
        .collect();
    let expected: Vec<String> = (0..=5).map(|n| format!("/orders?n={n}")).collect();
    assert_eq!(targets, expected, "every POST ran exactly once");
}
