//! Resource bounds through the real binary: pair state that cannot grow without limit
//! or be taken over, pairing rates, and slow senders and connection floods that starve
//! no one (docs/protocol.md §4.4–4.5, docs/configuration.md).

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mte_relay_protocol::capabilities::CAPABILITIES_ROUTE;
use mte_relay_protocol::header::CLIENT_ID_HEADER;
use mte_relay_protocol::pairing::PAIR_ROUTE;
use mte_relay_protocol::pairing::{PairingRequest, PendingPair};
use mte_relay_protocol::rng::os_rng;
use mte_relay_tests::client::{KeptAlive, connect_from, request};
use mte_relay_tests::memory::rss_bytes;
use mte_relay_tests::relay::Relay;
use mte_relay_tests::upstream::full;
use mte_relay_tests::{seconds_from_env, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::raw::{RawClient, Session, Spec, pairing_document};
use crate::support::{BodyEvent, RecordingUpstream, StreamingUpstream, relay_for};

/// Bytes of relay memory one pair may cost, as docs/operations.md ("Memory") states.
const DOCUMENTED_BYTES_PER_PAIR: u64 = 512;

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// A raw client of `relay` connecting from `127.0.0.<last>`.
fn from_address(relay: &Relay, last: u8) -> RawClient {
    let mut client = RawClient::new(relay);
    client.from = Some(loopback(last));
    client
}

/// Sends `GET path` on pair 0 of `session` and asserts the upstream answered.
async fn assert_serves(session: &mut Session, path: &str, what: &str) {
    let addr = session.client.addr;
    session
        .seal(0, &Spec::get(path))
        .send(addr)
        .await
        .assert_sealed_ok(what);
}

#[tokio::test]
async fn past_max_pairs_pairing_is_refused_and_held_pairs_keep_working() {
    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(&upstream.upstream.url(), &[("MAX_PAIRS", "40")]);
    let client = RawClient::new(&relay);
    let mut held = client.session(8).await;
    let filler = client.client_id().await;
    client.pair(&filler, 32).await;

    let latecomer = client.client_id().await;
    let (_, document) = pairing_document(&latecomer, 1);
    let refused = client.post_pairing(document).await;
    refused.assert_registry(568, "overloaded", "a pairing past MAX_PAIRS");
    assert_eq!(refused.header("retry-after").as_deref(), Some("30"));
    assert!(
        relay
            .wait_for_log(
                |line| line["message"] == "pairing refused: the relay holds MAX_PAIRS pairs"
            )
            .is_some(),
        "the refusal is logged"
    );
    assert_serves(&mut held, "/held", "a pair held before the cap was reached").await;
}

#[tokio::test]
async fn pairing_is_rate_limited_per_address_while_other_addresses_pair() {
    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(
        &upstream.upstream.url(),
        &[
            ("PAIRING_RATE_PER_ADDRESS", "0.5"),
            ("PAIRING_BURST_PER_ADDRESS", "32"),
        ],
    );
    let flooder = from_address(&relay, 2);
    let flood_id = flooder.client_id().await;
    flooder.pair(&flood_id, 32).await;
    // A fresh client id does not help: the address has spent its burst.
    let another_id = flooder.client_id().await;
    let (_, document) = pairing_document(&another_id, 4);
    let refused = flooder.post_pairing(document).await;
    refused.assert_registry(568, "overloaded", "past the address's burst");
    // Four pairs at half a pair a second.
    assert_eq!(refused.header("retry-after").as_deref(), Some("8"));
    assert!(
        refused.json()["message"]
            .as_str()
            .is_some_and(|message| message.contains("this address")),
        "the message names the bound: {}",
        refused.json()
    );

    let mut neighbour = from_address(&relay, 3).session(4).await;
    assert_serves(
        &mut neighbour,
        "/neighbour",
        "another address pairs and sends",
    )
    .await;
}

#[tokio::test]
async fn pairing_is_rate_limited_per_client_id_from_any_address() {
    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(
        &upstream.upstream.url(),
        &[
            ("PAIRING_RATE_PER_CLIENT", "0.25"),
            ("PAIRING_BURST_PER_CLIENT", "32"),
        ],
    );
    let first = from_address(&relay, 2);
    let client_id = first.client_id().await;
    first.pair(&client_id, 32).await;
    let (_, document) = pairing_document(&client_id, 1);
    let refused = from_address(&relay, 3).post_pairing(document).await;
    refused.assert_registry(568, "overloaded", "the same client id from elsewhere");
    assert_eq!(refused.header("retry-after").as_deref(), Some("4"));
    assert!(
        refused.json()["message"]
            .as_str()
            .is_some_and(|message| message.contains("this client id")),
        "the message names the bound: {}",
        refused.json()
    );
    // Another client id on the same address pairs.
    from_address(&relay, 2).session(2).await;
}

#[tokio::test]
async fn expired_pairs_are_swept_until_none_is_held() {
    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(&upstream.upstream.url(), &[("PAIR_TTL_SECS", "2")]);
    let client = RawClient::new(&relay);
    let mut session = client.session(3).await;
    assert_serves(&mut session, "/fresh", "a fresh pair").await;
    let sweep = |pairs: u64| {
        move |line: &serde_json::Value| line["message"] == "pair sweep" && line["pairs"] == pairs
    };
    assert!(
        relay.wait_for_log(sweep(3)).is_some(),
        "a sweep reports the three pairs held"
    );
    let swept = relay
        .wait_for_log(sweep(0))
        .expect("a sweep reports that no pair is held");
    assert_eq!(swept["removed"], 3, "{swept}");
    let addr = session.client.addr;
    session
        .seal(1, &Spec::get("/expired"))
        .send(addr)
        .await
        .assert_registry(562, "pair-unknown", "a swept pair");
    assert_eq!(
        upstream.seen().len(),
        1,
        "the upstream saw only the fresh request"
    );
}

#[tokio::test]
async fn a_victims_pair_id_paired_under_another_client_id_is_another_pair() {
    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(&upstream.upstream.url(), &[]);
    let client = RawClient::new(&relay);
    let mut victim = client.session(1).await;
    assert_serves(&mut victim, "/before", "the victim before").await;

    // The attacker saw the victim's pair id in a relay header, and offers it as its own.
    let attacker = client.client_id().await;
    let mut offer = PendingPair::generate(&mut os_rng()).offer();
    offer.pair_id = victim.pairs[0].id.to_string();
    let document = PairingRequest {
        client_id: attacker,
        pairs: vec![offer],
    };
    let answer = client
        .post_pairing(serde_json::to_vec(&document).expect("json"))
        .await;
    assert_eq!(
        answer.status, 200,
        "a pair of the attacker's own: {answer:?}"
    );
    assert_serves(&mut victim, "/after", "the victim's pair is untouched").await;
}

#[tokio::test]
async fn a_replayed_pairing_document_is_refused_and_the_victim_keeps_working() {
    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(&upstream.upstream.url(), &[]);
    let client = RawClient::new(&relay);
    let client_id = client.client_id().await;
    let (pending, document) = pairing_document(&client_id, 2);
    let answer = client.post_pairing(document.clone()).await;
    assert_eq!(answer.status, 200, "the victim pairs: {answer:?}");
    let mut victim = client.session_from(client_id, pending, &answer.body);
    assert_serves(&mut victim, "/before", "the victim before").await;

    // An observer sends the same document again, from another address.
    let replayed = from_address(&relay, 9).post_pairing(document).await;
    replayed.assert_registry(567, "pair-id-taken", "a replayed pairing document");
    assert_serves(&mut victim, "/after", "the victim's pairs are untouched").await;
}

/// Opens a connection from `from` and sends the head of a request with a body of
/// `announced` bytes and the first `sent` of them, then keeps the connection open.
async fn start_slow_upload(
    relay: &Relay,
    from: u8,
    head: &str,
    announced: usize,
    sent: &[u8],
) -> tokio::net::TcpStream {
    let mut stream = connect_from(Some(loopback(from)), relay.addr())
        .await
        .expect("connect");
    let request = format!(
        "{head}\r\nhost: {}\r\ncontent-length: {announced}\r\n\r\n",
        relay.addr()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send head");
    stream.write_all(sent).await.expect("send a little body");
    stream
}

/// Reads what the relay answers on `stream` until it closes or a full head arrived.
async fn read_answer(stream: &mut tokio::net::TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
        }
        let text = String::from_utf8_lossy(&answer);
        if text.contains("\r\n\r\n") && text.contains("}") {
            break;
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn slow_pairing_documents_hold_no_permit_and_are_cut_off() {
    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(
        &upstream.upstream.url(),
        &[
            ("MAX_CONCURRENT_PAIRINGS", "2"),
            ("PAIRING_BODY_TIMEOUT_SECS", "5"),
        ],
    );
    // Twice as many slow senders as there are pairing permits.
    let started = Instant::now();
    let mut slow = Vec::new();
    for n in 0..4 {
        let stream = start_slow_upload(
            &relay,
            10 + n,
            "POST /api/mte-pair HTTP/1.1\r\ncontent-type: application/json",
            4096,
            b"{\"client_id\":",
        )
        .await;
        slow.push(stream);
    }
    let mut session = RawClient::new(&relay).session(2).await;
    assert_serves(&mut session, "/meanwhile", "a normal client meanwhile").await;
    // The normal client was served while every slow sender still held its
    // connection, unanswered: it did not wait for their deadline.
    for stream in &slow {
        let mut byte = [0u8; 1];
        assert!(
            matches!(stream.try_read(&mut byte), Err(error) if error.kind() == std::io::ErrorKind::WouldBlock),
            "a slow sender was answered before the normal client was served"
        );
    }
    for stream in &mut slow {
        let answer = within("the slow sender's answer", read_answer(stream)).await;
        assert!(
            answer.starts_with("HTTP/1.1 408") && answer.contains("request-body-timeout"),
            "a slow pairing document is cut off: {answer}"
        );
    }
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "cut off by the deadline, not before: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn one_client_cannot_hold_every_pool_permit_with_slow_bodies() {
    let upstream = StreamingUpstream::start().await;
    let relay = relay_for(
        &upstream.upstream.url(),
        &[
            ("POOL_SIZE", "4"),
            ("MAX_IN_FLIGHT_PER_CLIENT", "2"),
            ("BODY_IDLE_TIMEOUT_SECS", "2"),
        ],
    );
    let client = RawClient::new(&relay);
    let mut slow = client.session(1).await;
    let addr = relay.addr();
    let body = vec![7u8; 4 * 1024];
    let mut held = Vec::new();
    for _ in 0..2 {
        let sealed = slow.seal(0, &Spec::post("/slow", body.clone()).records_of(1024));
        let (sender, answer) = sealed.send_streaming(addr);
        // The first record only; the rest never comes.
        sender
            .send(Bytes::from(sealed.records[0].clone()))
            .expect("first record");
        held.push((sealed, sender, answer));
    }
    // Both reached the upstream, so both hold their slots (taken before forwarding).
    let mut started = 0;
    while started < 2 {
        match upstream.next().await {
            BodyEvent::Started(path) => {
                assert_eq!(path, "/slow");
                started += 1;
            }
            BodyEvent::Data(_) => {}
            other => panic!("a slow request ended: {other:?}"),
        }
    }
    let sealed = slow.seal(0, &Spec::post("/third", body.clone()));
    sealed.send(addr).await.assert_registry(
        568,
        "overloaded",
        "a third request of the same client id",
    );

    let mut normal = client.session(1).await;
    assert_serves(
        &mut normal,
        "/normal",
        "another client while the slow one holds two",
    )
    .await;

    for (sealed, _sender, answer) in held {
        let response = within("a slow request's answer", answer)
            .await
            .expect("task");
        sealed.open(response).await.assert_sealed_registry(
            408,
            "request-body-timeout",
            "a stalled MTE body",
        );
    }
    let sealed = slow.seal(0, &Spec::post("/again", body));
    sealed
        .send(addr)
        .await
        .assert_sealed_ok("the slow client's slots came back");
}

#[tokio::test]
async fn past_the_per_address_connection_cap_only_that_address_is_refused() {
    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(
        &upstream.upstream.url(),
        &[("MAX_CONNECTIONS_PER_ADDRESS", "4")],
    );
    let crowd = loopback(2);
    let mut open = Vec::new();
    for _ in 0..4 {
        open.push(
            connect_from(Some(crowd), relay.addr())
                .await
                .expect("connect"),
        );
    }
    // The relay accepts in arrival order, so the fifth finds the four slots taken.
    let mut fifth = connect_from(Some(crowd), relay.addr())
        .await
        .expect("the kernel completes the handshake");
    let _ = fifth
        .write_all(b"GET /api/mte-relay HTTP/1.1\r\nhost: x\r\n\r\n")
        .await;
    let answer = within("the fifth connection closing", read_answer(&mut fifth)).await;
    assert_eq!(answer, "", "the fifth connection is closed unanswered");
    assert!(
        relay
            .wait_for_log(|line| line["message"]
                == "connection refused: MAX_CONNECTIONS_PER_ADDRESS reached for this address")
            .is_some(),
        "the refusal is logged"
    );

    let mut elsewhere = RawClient::new(&relay).session(1).await;
    assert_serves(&mut elsewhere, "/elsewhere", "another address").await;

    // A closed connection gives its slot back.
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut stream = connect_from(Some(crowd), relay.addr())
            .await
            .expect("connect");
        let head = format!(
            "GET /api/mte-relay HTTP/1.1\r\nhost: {}\r\n\r\n",
            relay.addr()
        );
        let _ = stream.write_all(head.as_bytes()).await;
        let answer = within("an answer or a close", read_answer(&mut stream)).await;
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slot of a closed connection never came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pair_state_costs_what_the_docs_say() {
    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(
        &upstream.upstream.url(),
        &[
            ("PAIRING_RATE_PER_ADDRESS", "1000000"),
            ("PAIRING_BURST_PER_ADDRESS", "100000000"),
            ("MAX_PAIRS_PER_CLIENT", "8"),
        ],
    );
    let client = RawClient::new(&relay);
    // Clients as apps pair them: eight pairs each, one batch per client id.
    let pair_clients = |count: usize| {
        let client = client.clone();
        async move {
            let tasks: Vec<_> = (0..2)
                .map(|_| {
                    let client = client.clone();
                    tokio::spawn(async move {
                        for _ in 0..count / 2 {
                            let client_id = client.client_id().await;
                            let (_, document) = pairing_document(&client_id, 8);
                            let answer = client.post_pairing(document).await;
                            assert_eq!(answer.status, 200, "pairing: {answer:?}");
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.expect("pairing task");
            }
        }
    };
    // Warm up, so the baseline includes the runtime's and allocator's fixed costs.
    within("warm-up pairings", pair_clients(250)).await;
    let before = rss_bytes(relay.pid()).expect("relay RSS");
    let clients = 2500;
    let pairs = clients as u64 * 8;
    mte_relay_tests::within_for(
        Duration::from_secs(300),
        "20,000 pairings",
        pair_clients(clients),
    )
    .await;
    let after = rss_bytes(relay.pid()).expect("relay RSS");
    let per_pair = after.saturating_sub(before) / pairs;
    eprintln!("pair state: {per_pair} bytes per pair ({pairs} pairs, RSS {before} -> {after})");
    assert!(
        per_pair <= DOCUMENTED_BYTES_PER_PAIR,
        "a pair costs {per_pair} bytes, more than the documented {DOCUMENTED_BYTES_PER_PAIR}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pairing_flood_is_shed_while_a_normal_client_pairs_and_sends() {
    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(&upstream.upstream.url(), &[]);
    let baseline = rss_bytes(relay.pid()).expect("relay RSS");
    // FLOOD_SECS: scripts/soak.sh runs the flood longer.
    let flood_for = seconds_from_env("FLOOD_SECS", 10);
    let until = Instant::now() + flood_for;

    // The flood: full batches from one address, each under a fresh client id, as fast
    // as the relay answers, on kept-alive connections. The offers are reused (the
    // relay cannot tell), so the flood costs this process little.
    let flooder = from_address(&relay, 2);
    let (_, template) = pairing_document("placeholder", 32);
    let template: serde_json::Value = serde_json::from_slice(&template).expect("json");
    let flood: Vec<_> = (0..2)
        .map(|_| {
            let flooder = flooder.clone();
            let mut document = template.clone();
            tokio::spawn(async move {
                let mut connection = KeptAlive::open(flooder.from, flooder.addr).await;
                let (mut accepted, mut shed) = (0u64, 0u64);
                while Instant::now() < until {
                    let capabilities = request("GET", &flooder.host, CAPABILITIES_ROUTE)
                        .body(full(Bytes::new()))
                        .expect("request");
                    let (answer, _) = connection.send(capabilities).await;
                    let client_id = answer.headers()[CLIENT_ID_HEADER]
                        .to_str()
                        .expect("client id")
                        .to_owned();
                    document["client_id"] = client_id.into();
                    let pairing = request("POST", &flooder.host, PAIR_ROUTE)
                        .header("content-type", "application/json")
                        .body(full(serde_json::to_vec(&document).expect("json")))
                        .expect("request");
                    let (answer, body) = connection.send(pairing).await;
                    match answer.status().as_u16() {
                        200 => accepted += 1,
                        568 => {
                            assert!(answer.headers().contains_key("retry-after"), "{answer:?}");
                            shed += 1;
                        }
                        other => {
                            panic!("the flood got {other}: {}", String::from_utf8_lossy(&body))
                        }
                    }
                }
                (accepted, shed)
            })
        })
        .collect();

    // The normal client, from another address: a new session every round, and a
    // request on it, for as long as the flood lasts.
    let normal = from_address(&relay, 3);
    let mut rounds = 0;
    let mut largest_pause = Duration::ZERO;
    while Instant::now() < until {
        let started = Instant::now();
        let mut session = normal.session(2).await;
        assert_serves(
            &mut session,
            "/during",
            "the normal client during the flood",
        )
        .await;
        largest_pause = largest_pause.max(started.elapsed());
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (mut accepted, mut shed) = (0, 0);
    for task in flood {
        let (a, s) = within("the flood ending", task).await.expect("flood task");
        accepted += a;
        shed += s;
    }
    let after = rss_bytes(relay.pid()).expect("relay RSS");
    eprintln!(
        "pairing flood for {flood_for:?}: {accepted} batches accepted, {shed} shed; \
         normal client: {rounds} rounds, slowest {largest_pause:?}; RSS {baseline} -> {after}"
    );
    assert!(shed > 0, "the flood was shed ({accepted} accepted)");
    assert!(rounds > 0, "the normal client ran");
    // The flood is admitted at 50 pairs a second after a burst of 512: a few thousand
    // pairs at the most, a few MiB.
    let growth = after.saturating_sub(baseline);
    assert!(
        growth < 64 << 20,
        "relay RSS grew by {growth} bytes under the flood"
    );
    let mut session = normal.session(2).await;
    assert_serves(&mut session, "/after", "the normal client after the flood").await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_pairing_rates_count_the_client_it_names() {
    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(
        &upstream.upstream.url(),
        &[
            ("TRUSTED_PROXIES", "127.0.0.1"),
            ("PAIRING_RATE_PER_ADDRESS", "0.5"),
            ("PAIRING_BURST_PER_ADDRESS", "32"),
        ],
    );
    let proxy = RawClient::new(&relay);
    let pair_as = |client: &'static str| {
        let proxy = proxy.clone();
        async move {
            let client_id = proxy.client_id().await;
            let (_, document) = pairing_document(&client_id, 32);
            proxy
                .post_pairing_with(document, &[("x-forwarded-for", client)])
                .await
        }
    };
    assert_eq!(
        pair_as("198.51.100.1").await.status,
        200,
        "one client's burst"
    );
    pair_as("198.51.100.1")
        .await
        .assert_registry(568, "overloaded", "the same client again");
    assert_eq!(
        pair_as("198.51.100.2").await.status,
        200,
        "another client behind the same proxy has its own bucket"
    );

    // A peer that is not trusted cannot pick its bucket by naming addresses.
    let spoofer = from_address(&relay, 2);
    for (n, named) in ["192.0.2.1", "192.0.2.2"].into_iter().enumerate() {
        let client_id = spoofer.client_id().await;
        let (_, document) = pairing_document(&client_id, 32);
        let answer = spoofer
            .post_pairing_with(document, &[("x-forwarded-for", named)])
            .await;
        if n == 0 {
            assert_eq!(answer.status, 200, "the spoofer's own burst: {answer:?}");
        } else {
            answer.assert_registry(568, "overloaded", "the spoofer's second batch");
        }
    }
}

#[tokio::test]
async fn forwarding_headers_inside_an_mte_head_never_reach_the_upstream() {
    let upstream = RecordingUpstream::start().await;
    let spoofed = |spec: Spec| {
        spec.header("x-forwarded-for", "203.0.113.66")
            .header("x-forwarded-host", "spoofed.example")
            .header("x-forwarded-proto", "https")
            .header("forwarded", "for=203.0.113.66")
    };
    let relay = relay_for(&upstream.upstream.url(), &[]);
    let mut session = RawClient::new(&relay).session(1).await;
    let addr = relay.addr();
    session
        .seal(0, &spoofed(Spec::get("/spoof")))
        .send(addr)
        .await
        .assert_sealed_ok("a request with forged forwarding headers");
    let seen = upstream.seen().pop().expect("the upstream saw it");
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(
        seen.headers["x-forwarded-host"],
        session.client.host.as_str()
    );
    assert_eq!(seen.headers.get_all("x-forwarded-for").iter().count(), 1);

    // Behind a trusted proxy, the proxy's outer headers are extended; the ones inside
    // the head are still dropped.
    let relay = relay_for(
        &upstream.upstream.url(),
        &[("TRUSTED_PROXIES", "127.0.0.1")],
    );
    let mut session = RawClient::new(&relay).session(1).await;
    let mut sealed = session.seal(0, &spoofed(Spec::get("/proxied")));
    sealed.extra_headers = vec![
        ("x-forwarded-for".into(), "198.51.100.5".into()),
        ("x-forwarded-proto".into(), "https".into()),
    ];
    sealed
        .send(relay.addr())
        .await
        .assert_sealed_ok("a proxied request");
    let seen = upstream.seen().pop().expect("the upstream saw it");
    assert_eq!(seen.headers["x-forwarded-for"], "198.51.100.5, 127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "https");
    assert_eq!(
        seen.headers["x-forwarded-host"],
        session.client.host.as_str()
    );
}
