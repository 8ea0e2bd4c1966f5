//! The API Relay: a service sends plain HTTP to relay A with the outbound token, A sends
//! it encrypted to relay B, B forwards it to its upstream, and the answer comes back the
//! same way. Two real relay processes, a real upstream, and a tap between A and B that
//! records every byte on the wire.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use mte_relay_tests::balancer::RoundRobin;
use mte_relay_tests::client::{body_bytes, body_json, get, send, send_within};
use mte_relay_tests::memory::{RssSampler, rss_bytes};
use mte_relay_tests::mitm::WireTap;
use mte_relay_tests::redis::RedisServer;
use mte_relay_tests::relay::Relay;
use mte_relay_tests::upstream::{TestBody, full};
use mte_relay_tests::{WAIT, within, within_for};
use sha2::{Digest, Sha256};

use crate::streaming::{
    BIG, EVENT_ONE, EVENT_TWO, GatedEvents, GeneratedBody, MAX_GROWTH, big_wait, download_digest,
    hex,
};
use crate::support::{CLIENT_ID_SECRET, RecordingUpstream, demo_upstream};

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
        let b = Relay::start(&peer_env(&upstream_url, b_extra));
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

/// Relay B's environment: in front of `upstream`, with the shared `SECRET`, plus `extra`.
fn peer_env<'a>(upstream: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("UPSTREAM", upstream),
        ("CLIENT_ID_SECRET", CLIENT_ID_SECRET),
        ("SECRET", SECRET),
    ];
    env.extend_from_slice(extra);
    env
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

/// How many times the upstream ran each of `count` requests whose targets are
/// `{prefix}{n}`.
fn runs_per_request(seen: &[crate::support::Seen], prefix: &str, count: usize) -> Vec<usize> {
    let mut runs = vec![0usize; count];
    for request in seen {
        let n: usize = request
            .target
            .strip_prefix(prefix)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("target {} names its request", request.target));
        runs[n] += 1;
    }
    runs
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
    // Outbound Proxy Time by peer, the peer being the configured one.
    let metrics = body_bytes(get(relays.a.admin_addr(), "localhost", "/metrics").await).await;
    let series = format!(
        "mte_relay_outbound_duration_seconds_count{{peer=\"{}\"}} 11",
        relays.tap.url()
    );
    assert!(
        String::from_utf8_lossy(&metrics).contains(&series),
        "{series} in:\n{}",
        String::from_utf8_lossy(&metrics)
    );
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
    relays.b = Relay::start_on_port(port, &peer_env(upstream_url.as_str(), &[]));
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

#[tokio::test]
async fn a_rotated_client_id_secret_at_the_peer_is_met_by_identifying_again() {
    let mut relays = ApiRelay::start(&[], &[]).await;
    let get = || {
        outbound("GET", "/profile")
            .body(full(Bytes::new()))
            .expect("request")
    };
    assert_eq!(send::<TestBody>(relays.a.addr(), get()).await.status(), 200);
    // B comes back under a new client id secret, the old one dropped: A's client id
    // no longer verifies (client-id-invalid), and A fetches a new one and pairs again.
    let port = relays.b.addr().port();
    relays.b.kill();
    let upstream_url = relays.upstream.upstream.url();
    relays.b = Relay::start_on_port(
        port,
        &[
            ("UPSTREAM", upstream_url.as_str()),
            (
                "CLIENT_ID_SECRET",
                "a-rotated-client-id-secret-for-relay-b-0123456789",
            ),
            ("SECRET", SECRET),
        ],
    );
    assert_eq!(send::<TestBody>(relays.a.addr(), get()).await.status(), 200);
    let refused = relays
        .b
        .wait_for_log(|json| json["target"] == "mte_relay::access" && json["status"] == 560);
    assert!(refused.is_some(), "B refused the old client id first");
}

#[tokio::test]
async fn an_sse_event_crosses_both_relays_before_the_next_is_produced() {
    let events = GatedEvents::start().await;
    let upstream_url = events.upstream.url();
    let b = Relay::start(&peer_env(upstream_url.as_str(), &[]));
    let a = relay_a(&format!("http://{}", b.addr()), &[]);
    let response = send::<TestBody>(
        a.addr(),
        outbound("GET", "/events")
            .header("accept", "text/event-stream")
            .body(full(Bytes::new()))
            .expect("request"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();
    // The upstream cannot produce the second event before `release`: a relay on the
    // way that buffered the stream makes this wait time out.
    let mut received = Vec::new();
    while !received.ends_with(b"\n\n") {
        let frame = within("the first event through both relays", body.frame())
            .await
            .expect("the stream goes on")
            .expect("a frame");
        if let Some(data) = frame.data_ref() {
            received.extend_from_slice(data);
        }
    }
    assert_eq!(String::from_utf8_lossy(&received), EVENT_ONE);
    assert!(!events.second_sent.load(Ordering::SeqCst));
    events.release.notify_one();
    let mut rest = Vec::new();
    while let Some(frame) = within("the second event", body.frame()).await {
        if let Some(data) = frame.expect("a frame").data_ref() {
            rest.extend_from_slice(data);
        }
    }
    assert_eq!(String::from_utf8_lossy(&rest), EVENT_TWO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_of_256_mib_cross_both_relays_with_bounded_memory() {
    let upstream = demo_upstream().await;
    let b = Relay::start(&peer_env(
        upstream.as_str(),
        &[
            // The default MAX_BODY_BYTES (64 MiB) would refuse the upload, as it should.
            ("MAX_BODY_BYTES", "1073741824"),
        ],
    ));
    let a = relay_a(&format!("http://{}", b.addr()), &[]);

    let upload = |total: u64, limit: Duration| {
        let addr = a.addr();
        async move {
            let request = outbound("POST", "/upload")
                .header("content-type", "application/octet-stream")
                .body(GeneratedBody::new(total))
                .expect("request");
            let response = send_within(limit, addr, request).await;
            assert_eq!(response.status(), StatusCode::OK);
            let answer = body_bytes(response).await;
            serde_json::from_slice::<serde_json::Value>(&answer).expect("JSON")
        }
    };
    let download = |total: u64, limit: Duration| {
        let addr = a.addr();
        async move {
            let request = outbound("GET", &format!("/download?bytes={total}"))
                .body(full(Bytes::new()))
                .expect("request");
            let response = send_within(limit, addr, request).await;
            assert_eq!(response.status(), StatusCode::OK);
            let mut body = response.into_body();
            let mut hasher = Sha256::new();
            let mut bytes = 0u64;
            while let Some(frame) = body.frame().await {
                if let Some(data) = frame.expect("download frame").data_ref() {
                    hasher.update(data);
                    bytes += data.len() as u64;
                }
            }
            (bytes, hex(&hasher.finalize()))
        }
    };

    // Warm up both relays (pairing, connections, worker threads) with 1 MiB each way;
    // the bound on the big transfers follows the warm-up's time.
    let started = Instant::now();
    let warm = upload(1 << 20, WAIT).await;
    assert_eq!(warm["bytes"], 1 << 20);
    let upload_wait = big_wait(started.elapsed());
    let started = Instant::now();
    assert_eq!(download(1 << 20, WAIT).await.0, 1 << 20);
    let download_wait = big_wait(started.elapsed());

    let baselines = [rss_bytes(a.pid()), rss_bytes(b.pid())].map(|rss| rss.expect("RSS"));
    let samplers = [a.pid(), b.pid()].map(|pid| RssSampler::start(pid, Duration::from_millis(100)));

    let answer = within_for(upload_wait, "a 256 MiB upload", upload(BIG, upload_wait)).await;
    assert_eq!(answer["bytes"], BIG, "the upstream received every byte");
    assert_eq!(answer["sha256"], GeneratedBody::digest(BIG));
    let (bytes, digest) = within_for(
        download_wait,
        "a 256 MiB download",
        download(BIG, download_wait),
    )
    .await;
    assert_eq!(bytes, BIG, "the caller received every byte");
    assert_eq!(digest, download_digest(BIG));

    for ((name, sampler), baseline) in ["A", "B"].into_iter().zip(samplers).zip(baselines) {
        let summary = sampler.stop();
        let growth = summary.max.saturating_sub(baseline);
        eprintln!(
            "relay {name}: RSS baseline {} KiB, peak {} KiB over {} samples",
            baseline / 1024,
            summary.max / 1024,
            summary.samples
        );
        assert!(
            summary.samples >= 2,
            "relay {name} was sampled while streaming"
        );
        assert!(
            growth < MAX_GROWTH,
            "relay {name}'s resident memory grew by {} MiB",
            growth >> 20
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_through_a_all_succeed_once() {
    const REQUESTS: usize = 1000;
    let relays = ApiRelay::start(&[("POOL_SIZE", "1000")], &[("POOL_SIZE", "1000")]).await;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..REQUESTS {
        let addr = relays.a.addr();
        tasks.spawn(async move {
            let method = if n % 2 == 0 { "POST" } else { "GET" };
            let request = outbound(method, &format!("/item?n={n}"))
                .body(full(format!("{n}")))
                .expect("request");
            (n, send::<TestBody>(addr, request).await.status())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (n, status) = joined.expect("task");
        assert_eq!(status, StatusCode::OK, "request {n}");
    }
    let seen = relays.upstream.seen();
    let counts = runs_per_request(&seen, "/item?n=", REQUESTS);
    for request in &seen {
        let n = request.target.trim_start_matches("/item?n=");
        assert_eq!(request.body.as_ref(), n.as_bytes(), "request {n}'s body");
    }
    assert!(
        counts.iter().all(|count| *count == 1),
        "each ran exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_killed_mid_load_runs_no_post_twice_and_serves_again_once_back() {
    const REQUESTS: usize = 120;
    const KILL_AT: usize = 40;
    let mut relays = ApiRelay::start(&[], &[]).await;
    let upstream_url = relays.upstream.upstream.url();
    let port = relays.b.addr().port();
    let mut tasks = tokio::task::JoinSet::new();
    let mut restarted_at = None;
    for n in 0..REQUESTS {
        if n == KILL_AT {
            // B dies with requests in flight, and comes back with an empty memory store.
            relays.b.kill();
            let upstream_url = upstream_url.clone();
            relays.b = tokio::task::spawn_blocking(move || {
                Relay::start_on_port(port, &peer_env(upstream_url.as_str(), &[]))
            })
            .await
            .expect("restart");
            restarted_at = Some(n);
        }
        let addr = relays.a.addr();
        tasks.spawn(async move {
            let request = outbound("POST", &format!("/orders?n={n}"))
                .body(full(format!("order {n}")))
                .expect("request");
            (n, send::<TestBody>(addr, request).await.status())
        });
        if tasks.len() >= 8 {
            let (n, status) = tasks.join_next().await.expect("a task").expect("joined");
            check_outcome(n, status, restarted_at);
        }
    }
    while let Some(joined) = tasks.join_next().await {
        let (n, status) = joined.expect("task");
        check_outcome(n, status, restarted_at);
    }
    let counts = runs_per_request(&relays.upstream.seen(), "/orders?n=", REQUESTS);
    let twice: Vec<usize> = (0..REQUESTS).filter(|n| counts[*n] > 1).collect();
    assert!(twice.is_empty(), "POSTs that ran twice: {twice:?}");
    assert!(
        (KILL_AT..REQUESTS).all(|n| counts[n] == 1),
        "every POST sent after B came back ran: {counts:?}"
    );
}

/// A request sent after the peer came back succeeds; one sent before may have been in
/// flight when it died, and then fails with the status of a peer that went away.
fn check_outcome(n: usize, status: StatusCode, restarted_at: Option<usize>) {
    if restarted_at.is_some_and(|at| n >= at) {
        assert_eq!(
            status,
            StatusCode::OK,
            "request {n}, sent after B came back"
        );
    } else {
        assert!(
            [200, 502, 504].contains(&status.as_u16()),
            "request {n}, perhaps in flight when B died: {status}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_of_both_relays_behind_balancers_share_their_pairs_through_redis() {
    const REQUESTS: usize = 200;
    const STORE_KEY: &str = "a-store-key-for-the-api-relay-tests-0123456789";
    let (redis_a, redis_b) = (RedisServer::start(), RedisServer::start());
    let upstream = RecordingUpstream::start().await;
    let upstream_url = upstream.upstream.url();
    let (redis_a_url, redis_b_url) = (redis_a.url(), redis_b.url());
    let b_env = peer_env(
        &upstream_url,
        &[
            ("REDIS_URL", redis_b_url.as_str()),
            ("STORE_KEY", STORE_KEY),
        ],
    );
    let (b1, b2) = (Relay::start(&b_env), Relay::start(&b_env));
    let b_balancer = RoundRobin::start(vec![b1.addr(), b2.addr()]).await;
    let a_extra = [
        ("REDIS_URL", redis_a_url.as_str()),
        ("STORE_KEY", STORE_KEY),
    ];
    let (a1, a2) = (
        relay_a(&b_balancer.url(), &a_extra),
        relay_a(&b_balancer.url(), &a_extra),
    );
    let a_balancer = RoundRobin::start(vec![a1.addr(), a2.addr()]).await;
    let a_addr: std::net::SocketAddr = a_balancer
        .url()
        .trim_start_matches("http://")
        .parse()
        .expect("balancer address");

    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..REQUESTS {
        tasks.spawn(async move {
            let method = if n % 2 == 0 { "POST" } else { "GET" };
            let request = outbound(method, &format!("/item?n={n}"))
                .body(full(format!("{n}")))
                .expect("request");
            (n, send::<TestBody>(a_addr, request).await.status())
        });
        if tasks.len() >= 20 {
            let (n, status) = tasks.join_next().await.expect("a task").expect("joined");
            assert_eq!(status, StatusCode::OK, "request {n}");
        }
    }
    while let Some(joined) = tasks.join_next().await {
        let (n, status) = joined.expect("task");
        assert_eq!(status, StatusCode::OK, "request {n}");
    }
    let seen = upstream.seen();
    assert_eq!(seen.len(), REQUESTS, "each request ran once");
    for (name, served) in [("A", a_balancer.served()), ("B", b_balancer.served())] {
        assert!(
            served.iter().all(|count| *count > 0),
            "every {name} replica served: {served:?}"
        );
    }
}

#[tokio::test]
async fn relay_a_pins_the_peers_identity_key() {
    let (key, pin) = crate::identity::keygen();
    let (_, other_pin) = crate::identity::keygen();
    let relays = ApiRelay::start(&[], &[("RELAY_IDENTITY_KEY", key.as_str())]).await;
    let peer = relays.tap.url();
    let post = || {
        outbound("POST", "/payments")
            .body(full("amount=12"))
            .expect("request")
    };

    // A relay A that pins B's key pairs and sends.
    let pinned = relay_a(&peer, &[("OUTBOUND_PINS", pin.as_str())]);
    assert_eq!(send::<TestBody>(pinned.addr(), post()).await.status(), 200);
    assert_eq!(relays.upstream.seen().len(), 1);

    // One that pins another key refuses B before anything is paired or sent.
    let wrong = relay_a(&peer, &[("OUTBOUND_PINS", other_pin.as_str())]);
    let response = send::<TestBody>(wrong.addr(), post()).await;
    assert_refused(&response, 502, "upstream-unreachable");
    let explanation = body_json(response).await;
    assert!(
        explanation["message"]
            .as_str()
            .is_some_and(|message| message.contains("outbound_pins")),
        "{explanation}"
    );
    assert_eq!(
        relays.upstream.seen().len(),
        1,
        "nothing more was forwarded"
    );
    drop(relays.a);
}

/// B forwards a POST and dies before answering; A's client resends it (its resend
/// token makes that safe) and finds B gone. The caller must not be told that nothing
/// ran: the answer is `upstream-failed`, not `upstream-unreachable`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_dies_after_forwarding_is_not_reported_as_untouched() {
    use std::sync::Arc;
    let reached = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Notify::new());
    let (signal, hold) = (reached.clone(), release.clone());
    let upstream = mte_relay_tests::upstream::Upstream::start(move |_request| {
        let (signal, hold) = (signal.clone(), hold.clone());
        async move {
            signal.notify_one();
            hold.notified().await;
            http::Response::new(full("late"))
        }
    })
    .await;
    let upstream_url = upstream.url();
    let mut b = Relay::start(&peer_env(upstream_url.as_str(), &[]));
    let a = relay_a(&format!("http://{}", b.addr()), &[]);
    let answer = tokio::spawn(send::<TestBody>(
        a.addr(),
        outbound("POST", "/payments")
            .body(full("amount=12"))
            .expect("request"),
    ));
    within("the POST at B's upstream", reached.notified()).await;
    b.kill();
    let response = answer.await.expect("answered");
    assert_refused(&response, 502, "upstream-failed");
    release.notify_waiters();
}

#[tokio::test]
async fn an_https_peer_behind_a_private_ca_is_reached_with_upstream_ca_file() {
    let certificate = mte_relay_tests::tls::TestCertificate::localhost();
    let upstream = RecordingUpstream::start().await;
    let upstream_url = upstream.upstream.url();
    let b = Relay::start(&peer_env(
        upstream_url.as_str(),
        &[
            ("TLS_CERT_FILE", certificate.pem_path_str()),
            (
                "TLS_KEY_FILE",
                certificate.key_path.to_str().expect("utf-8"),
            ),
        ],
    ));
    let peer = format!("https://localhost:{}", b.addr().port());
    let get = || {
        outbound("GET", "/over-tls")
            .body(full(Bytes::new()))
            .expect("request")
    };
    let trusting = relay_a(&peer, &[("UPSTREAM_CA_FILE", certificate.pem_path_str())]);
    assert_eq!(send::<TestBody>(trusting.addr(), get()).await.status(), 200);
    assert_eq!(upstream.seen().len(), 1);

    // Without the CA, the peer's certificate does not verify: nothing is sent.
    let untrusting = relay_a(&peer, &[]);
    let response = send::<TestBody>(untrusting.addr(), get()).await;
    assert_refused(&response, 502, "upstream-unreachable");
    assert_eq!(upstream.seen().len(), 1);
}
