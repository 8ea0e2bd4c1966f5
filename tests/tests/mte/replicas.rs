//! Replicas sharing pairs through a real Redis (docs/operations.md, "Running
//! replicas"): any replica serves any request behind a balancer without sticky
//! sessions, a sealed request runs once however many replicas see it, and Redis going
//! away costs `store-unavailable` answers, never a forwarded request or a restart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use mte_relay_client::{Mode, RelayClient, RequestBody};
use mte_relay_protocol::registry::ErrorReason;
use mte_relay_tests::balancer::RoundRobin;
use mte_relay_tests::redis::RedisServer;
use mte_relay_tests::relay::{self, Relay};
use mte_relay_tests::within;

use crate::raw::{RawClient, Spec};
use crate::support::{CLIENT_ID_SECRET, RecordingUpstream, access_lines};

const STORE_KEY: &str = "a-store-key-for-the-replica-tests-0123456789";

/// A replica on `redis_url` in front of `upstream`, plus extra settings.
fn replica(upstream: &str, redis_url: &str, extra: &[(&str, &str)]) -> Relay {
    let mut env = vec![
        ("UPSTREAM", upstream),
        ("CLIENT_ID_SECRET", CLIENT_ID_SECRET),
        ("REDIS_URL", redis_url),
        ("STORE_KEY", STORE_KEY),
        ("PASS_THROUGH_ROUTES", "/public/*"),
        ("POOL_SIZE", "1000"),
        ("MAX_IN_FLIGHT_PER_CLIENT", "1000"),
    ];
    env.extend_from_slice(extra);
    Relay::start(&env)
}

fn client_of(url: String, pairs: usize) -> RelayClient {
    RelayClient::builder(url)
        .pairs(pairs)
        .max_backoff(Duration::from_secs(1))
        .build()
        .expect("client builds")
}

async fn send(client: &RelayClient, request: Request<Bytes>) -> (StatusCode, Bytes) {
    let response = within("a request through the replicas", client.send(request))
        .await
        .unwrap_or_else(|error| panic!("request failed: {error:?}"));
    let status = response.status();
    let body = within("a response body", response.into_body().collect_bytes())
        .await
        .expect("body opens");
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_behind_a_per_request_balancer_serve_every_method_in_both_modes() {
    let redis = RedisServer::start();
    two_replicas_behind_a_per_request_balancer_serve_every_method_in_both_modes_on(&redis.url())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_behind_a_per_request_balancer_serve_every_method_in_both_modes_on_a_cluster()
{
    let cluster = mte_relay_tests::redis::RedisCluster::start(3);
    two_replicas_behind_a_per_request_balancer_serve_every_method_in_both_modes_on(&cluster.urls())
        .await;
}

async fn two_replicas_behind_a_per_request_balancer_serve_every_method_in_both_modes_on(
    redis_url: &str,
) {
    let upstream = RecordingUpstream::start().await;
    let a = replica(&upstream.upstream.url(), redis_url, &[]);
    let b = replica(&upstream.upstream.url(), redis_url, &[]);
    let balancer = RoundRobin::start(vec![a.addr(), b.addr()]).await;
    let client = client_of(balancer.url(), 2);

    let body: Vec<u8> = (0..=255u8).cycle().take(60_000).collect();
    let mut sent = 0;
    for mode in [Mode::Mke, Mode::Mte] {
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            // Each method twice, so each lands once on each replica.
            for _ in 0..2 {
                let payload = if method == "GET" {
                    Vec::new()
                } else {
                    body.clone()
                };
                let mut request = Request::builder()
                    .method(method)
                    .uri("/orders/7?q=1")
                    .body(Bytes::from(payload.clone()))
                    .expect("request");
                request.extensions_mut().insert(mode);
                let (status, answer) = send(&client, request).await;
                assert_eq!(status, 200, "{mode} {method}");
                let summary: serde_json::Value = serde_json::from_slice(&answer).expect("json");
                assert_eq!(summary["method"], method);
                assert_eq!(summary["body_bytes"], payload.len(), "{mode} {method}");
                sent += 1;
            }
        }
    }
    assert_eq!(upstream.seen().len(), sent, "each request forwarded once");
    let served = balancer.served();
    assert!(
        served.iter().all(|count| *count >= sent / 2),
        "both replicas served requests: {served:?}"
    );
    // Pairing went to one replica; requests on that pair reached the other one.
    let mte_at = |relay: &Relay| {
        access_lines(relay)
            .iter()
            .filter(|json| json["route"] == "mte" && json["status"] == 200)
            .count()
    };
    assert!(
        mte_at(&a) > 0 && mte_at(&b) > 0,
        "MTE requests at both replicas"
    );
    let pairings = |relay: &Relay| {
        access_lines(relay)
            .iter()
            .filter(|json| json["route"] == "pair")
            .count()
    };
    assert_eq!(
        pairings(&a) + pairings(&b),
        1,
        "one pairing served both replicas"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_upload_and_an_event_stream_cross_replicas() {
    let redis = RedisServer::start();
    let upstream = crate::support::demo_upstream().await;
    let a = replica(&upstream, &redis.url(), &[]);
    let b = replica(&upstream, &redis.url(), &[]);
    let balancer = RoundRobin::start(vec![a.addr(), b.addr()]).await;
    let client = client_of(balancer.url(), 1);
    for _ in 0..2 {
        // 3 MiB in 64 KiB pieces, streamed (MKE: MTE messages are single records).
        let pieces = futures_util::stream::iter((0..48).map(|_| {
            Ok::<_, std::io::Error>(http_body::Frame::data(Bytes::from(vec![7u8; 65_536])))
        }));
        let request = Request::post("/upload")
            .body(RequestBody::streaming(http_body_util::StreamBody::new(
                pieces,
            )))
            .expect("request");
        let response = within("a streamed upload", client.send(request))
            .await
            .expect("upload answered");
        assert_eq!(response.status(), 200);
        let answer = response.into_body().collect_bytes().await.expect("body");
        let summary: serde_json::Value = serde_json::from_slice(&answer).expect("json");
        assert_eq!(summary["bytes"], 48 * 65_536, "{summary}");
    }
    for mode in [Mode::Mke, Mode::Mte, Mode::Mke, Mode::Mte] {
        let mut request = Request::get("/sse?count=5").body(()).expect("request");
        request.extensions_mut().insert(mode);
        let response = within("an event stream", client.send(request))
            .await
            .expect("events answered");
        assert_eq!(response.status(), 200);
        let text = response.into_body().collect_bytes().await.expect("events");
        let events = String::from_utf8_lossy(&text).matches("data:").count();
        assert_eq!(events, 5, "{mode}: {}", String::from_utf8_lossy(&text));
    }
    assert!(
        balancer.served().iter().all(|count| *count >= 3),
        "{:?}",
        balancer.served()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_across_replicas_run_once_each() {
    let redis = RedisServer::start();
    a_thousand_concurrent_requests_across_replicas_run_once_each_on(&redis.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_across_replicas_run_once_each_on_a_cluster() {
    let cluster = mte_relay_tests::redis::RedisCluster::start(3);
    a_thousand_concurrent_requests_across_replicas_run_once_each_on(&cluster.urls()).await;
}

async fn a_thousand_concurrent_requests_across_replicas_run_once_each_on(redis_url: &str) {
    const REQUESTS: usize = 1000;
    let upstream = RecordingUpstream::start().await;
    let a = replica(&upstream.upstream.url(), redis_url, &[]);
    let b = replica(&upstream.upstream.url(), redis_url, &[]);
    let balancer = RoundRobin::start(vec![a.addr(), b.addr()]).await;
    let client = client_of(balancer.url(), 4);
    within("pairing", client.connect()).await.expect("pairs");

    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..REQUESTS {
        let client = client.clone();
        tasks.spawn(async move {
            // Half are POSTs, which run under a resend token shared through Redis.
            let method = if n % 2 == 0 { "POST" } else { "GET" };
            let request = Request::builder()
                .method(method)
                .uri(format!("/item?n={n}"))
                .body(Bytes::from(format!("{n}")))
                .expect("request");
            let response = client.send(request).await;
            (n, response.map(|response| response.status()))
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (n, status) = joined.expect("task");
        let status = status.unwrap_or_else(|error| panic!("request {n} failed: {error:?}"));
        assert_eq!(status, 200, "request {n}");
    }
    let seen = upstream.seen();
    let mut counts = vec![0usize; REQUESTS];
    for request in &seen {
        let n: usize = request
            .target
            .trim_start_matches("/item?n=")
            .parse()
            .expect("target names its request");
        counts[n] += 1;
    }
    let twice: Vec<usize> = (0..REQUESTS).filter(|n| counts[*n] > 1).collect();
    assert!(twice.is_empty(), "forwarded twice: {twice:?}");
    assert_eq!(seen.len(), REQUESTS, "every request forwarded");
    let refused: Vec<serde_json::Value> = [&a, &b]
        .iter()
        .flat_map(|relay| access_lines(relay))
        .filter(|json| json["route"] == "mte" && json["status"] != 200)
        .collect();
    assert!(refused.is_empty(), "refused (replays or else): {refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_sealed_request_at_both_replicas_at_once_runs_once() {
    let redis = RedisServer::start();
    the_same_sealed_request_at_both_replicas_at_once_runs_once_on(&redis.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_sealed_request_at_both_replicas_at_once_runs_once_on_a_cluster() {
    let cluster = mte_relay_tests::redis::RedisCluster::start(3);
    the_same_sealed_request_at_both_replicas_at_once_runs_once_on(&cluster.urls()).await;
}

async fn the_same_sealed_request_at_both_replicas_at_once_runs_once_on(redis_url: &str) {
    const ROUNDS: usize = 200;
    let upstream = RecordingUpstream::start().await;
    let a = replica(&upstream.upstream.url(), redis_url, &[]);
    let b = replica(&upstream.upstream.url(), redis_url, &[]);
    let mut session = RawClient::new(&a).session(2).await;
    for round in 0..ROUNDS {
        // GETs on pair 0 (the window decides), POSTs on pair 1 (window and token).
        let spec = if round % 2 == 0 {
            Spec::get(&format!("/race?round={round}"))
        } else {
            Spec::post(&format!("/race?round={round}"), format!("{round}"))
        };
        let sealed = session.seal(round % 2, &spec);
        let (at_a, at_b) = tokio::join!(sealed.send(a.addr()), sealed.send(b.addr()));
        let ok = [&at_a, &at_b]
            .iter()
            .filter(|answer| answer.status == 200)
            .count();
        assert_eq!(
            ok, 1,
            "round {round}: exactly one copy runs (statuses {} and {})",
            at_a.status, at_b.status
        );
    }
    let seen = upstream.seen();
    assert_eq!(seen.len(), ROUNDS, "one forward per round");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_restart_is_invisible_to_its_clients() {
    let redis = RedisServer::start();
    let upstream = RecordingUpstream::start().await;
    let mut first = replica(&upstream.upstream.url(), &redis.url(), &[]);
    let port = first.addr().port();
    let client = client_of(format!("http://127.0.0.1:{port}"), 2);
    let get = || Request::get("/before").body(Bytes::new()).expect("request");
    assert_eq!(send(&client, get()).await.0, 200);
    let pairs_before = client.pair_ids();
    first.kill();
    let (upstream_url, redis_url) = (upstream.upstream.url(), redis.url());
    let second = Relay::start_on_port(
        port,
        &[
            ("UPSTREAM", upstream_url.as_str()),
            ("CLIENT_ID_SECRET", CLIENT_ID_SECRET),
            ("REDIS_URL", redis_url.as_str()),
            ("STORE_KEY", STORE_KEY),
        ],
    );
    for _ in 0..4 {
        assert_eq!(send(&client, get()).await.0, 200);
    }
    assert_eq!(client.pair_ids(), pairs_before, "no pair was replaced");
    let pairings = access_lines(&second)
        .iter()
        .filter(|json| json["route"] == "pair")
        .count();
    assert_eq!(pairings, 0, "the restarted replica served the old pairs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_holds_no_key_material() {
    let redis = RedisServer::start();
    let upstream = RecordingUpstream::start().await;
    let relay = replica(&upstream.upstream.url(), &redis.url(), &[]);
    let session = RawClient::new(&relay).session(3).await;
    // Move one pair's MTE ratchet on, so a ratchet state is written back as well.
    let sealed = session.seal_at(
        0,
        3 * mte_relay_protocol::keys::EPOCH_LEN,
        &Spec::get("/x").mode(mte_relay_protocol::header::Mode::Mte),
    );
    assert_eq!(sealed.send(relay.addr()).await.status, 200);

    let mut dump = Vec::new();
    for key in redis.keys() {
        let kind = redis.command(&["TYPE", &key]).expect("TYPE");
        let value = if kind.contains("hash") {
            redis.command_bytes(&["HGETALL", &key])
        } else if kind.contains("zset") {
            redis.command_bytes(&["ZRANGE", &key, "0", "-1"])
        } else {
            redis.command_bytes(&["GET", &key])
        }
        .expect("value");
        assert!(
            redis
                .command(&["TTL", &key])
                .expect("TTL")
                .trim_start_matches(':')
                .trim()
                != "-1",
            "{key} has a time to live"
        );
        dump.extend_from_slice(key.as_bytes());
        dump.extend_from_slice(&value);
    }
    assert!(!dump.is_empty(), "pairs are in Redis");
    // The secrets: each pair's MKE root, its epoch-0 MTE key, and the epoch-3 keys the
    // relay now holds for pair 0 (ratchet layout: epoch, flag, current, previous).
    let mut secrets: Vec<Vec<u8>> = Vec::new();
    for pair in &session.pairs {
        secrets.push(pair.keys.mke_root().expose_secret().to_vec());
        secrets.push(pair.keys.ratchet.to_bytes()[9..41].to_vec());
    }
    let (_, advanced) = session.pairs[0]
        .keys
        .ratchet
        .message_secret(3 * mte_relay_protocol::keys::EPOCH_LEN)
        .expect("within reach");
    let advanced = advanced.expect("a later epoch").to_bytes();
    secrets.push(advanced[9..41].to_vec());
    secrets.push(advanced[41..73].to_vec());
    for secret in &secrets {
        assert!(
            !dump
                .windows(12)
                .any(|window| secret.windows(12).any(|s| s == window)),
            "no 12-byte run of a pair key appears in Redis"
        );
    }
}

#[test]
fn redis_without_store_key_or_shared_client_id_secret_refuses_to_start() {
    let no_store_key = relay::run(
        &["serve"],
        &[
            ("UPSTREAM", "http://127.0.0.1:9"),
            ("CLIENT_ID_SECRET", CLIENT_ID_SECRET),
            ("REDIS_URL", "redis://127.0.0.1:9"),
        ],
    );
    assert_eq!(no_store_key.status.code(), Some(2));
    assert!(
        no_store_key.stderr.contains("STORE_KEY"),
        "{}",
        no_store_key.stderr
    );
    let no_secret = relay::run(
        &["serve"],
        &[
            ("UPSTREAM", "http://127.0.0.1:9"),
            ("REDIS_URL", "redis://127.0.0.1:9"),
            ("STORE_KEY", STORE_KEY),
        ],
    );
    assert_eq!(no_secret.status.code(), Some(2));
    assert!(
        no_secret.stderr.contains("client_id_secret"),
        "{}",
        no_secret.stderr
    );
    assert_eq!(
        no_secret.stderr.trim().lines().count(),
        1,
        "{}",
        no_secret.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_at_startup_refuses_mte_until_it_comes_up() {
    let upstream = RecordingUpstream::start().await;
    let port = relay::free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let relay = replica(&upstream.upstream.url(), &url, &[]);
    relay
        .wait_for_log(|json| {
            json["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("pair store unreachable"))
        })
        .expect("the relay says Redis is unreachable");

    // Pass-through and local routes serve.
    let public = mte_relay_tests::client::get(relay.addr(), "127.0.0.1", "/public/page").await;
    assert_eq!(public.status(), 200);
    let capabilities =
        mte_relay_tests::client::get(relay.addr(), "127.0.0.1", "/api/mte-relay").await;
    assert_eq!(capabilities.status(), 200);
    let forwarded_before = upstream.seen().len();

    // MTE: pairing and requests are store-unavailable; the upstream sees nothing.
    let client = client_of(format!("http://{}", relay.addr()), 1);
    let started = Instant::now();
    let error = within(
        "a refused request",
        client.send(Request::get("/x").body(Bytes::new()).expect("request")),
    )
    .await
    .expect_err("refused while Redis is down");
    assert_eq!(
        error.reason(),
        Some(ErrorReason::StoreUnavailable),
        "{error:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answered in bounded time"
    );
    assert_eq!(upstream.seen().len(), forwarded_before, "nothing forwarded");

    // Redis comes up: the same relay and client work, with no restart.
    let redis = RedisServer::start_on_port(port);
    let recovered = Instant::now();
    loop {
        match client
            .send(Request::get("/after").body(Bytes::new()).expect("request"))
            .await
        {
            Ok(response) if response.status() == 200 => break,
            _ if recovered.elapsed() > Duration::from_secs(15) => {
                panic!("the relay did not recover within 15 s of Redis starting")
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    drop(redis);
}

/// The time a relay takes to serve again once Redis is back, stated in
/// docs/operations.md: the connection is retried on the next request, and a client
/// whose pairs Redis lost re-pairs on its own.
const RECOVERY_BOUND: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_lost_mid_load_and_back_recovers_without_a_restart() {
    let mut redis = RedisServer::start();
    let upstream = RecordingUpstream::start().await;
    let relay = replica(&upstream.upstream.url(), &redis.url(), &[]);
    let client = client_of(format!("http://{}", relay.addr()), 2);
    let load = |client: RelayClient, label: &'static str| async move {
        let mut outcomes = Vec::new();
        for n in 0..20 {
            let request = Request::post(format!("/{label}?n={n}"))
                .body(Bytes::from_static(b"{}"))
                .expect("request");
            outcomes.push(match client.send(request).await {
                Ok(response) => Ok(response.status()),
                Err(error) => Err(error.reason()),
            });
        }
        outcomes
    };
    let before = load(client.clone(), "before").await;
    assert!(
        before.iter().all(|outcome| *outcome == Ok(StatusCode::OK)),
        "{before:?}"
    );

    redis.kill();
    let forwarded = upstream.seen().len();
    let during = load(client.clone(), "during").await;
    for outcome in &during {
        assert_eq!(
            *outcome,
            Err(Some(ErrorReason::StoreUnavailable)),
            "while Redis is down every MTE request is store-unavailable: {during:?}"
        );
    }
    assert_eq!(
        upstream.seen().len(),
        forwarded,
        "nothing forwarded while Redis was down"
    );

    // Redis comes back empty (no persistence): the relay reconnects by itself and the
    // client re-pairs on its own.
    redis.restart();
    let back = Instant::now();
    loop {
        let request = Request::get("/after").body(Bytes::new()).expect("request");
        if let Ok(response) = client.send(request).await
            && response.status() == 200
        {
            break;
        }
        assert!(
            back.elapsed() < RECOVERY_BOUND,
            "served again within {RECOVERY_BOUND:?} of Redis answering"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("served again {:?} after Redis came back", back.elapsed());
    let after = load(client.clone(), "after").await;
    assert!(
        after.iter().all(|outcome| *outcome == Ok(StatusCode::OK)),
        "{after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_slower_than_its_timeout_gets_a_bounded_clear_refusal() {
    let redis = RedisServer::start();
    let upstream = RecordingUpstream::start().await;
    let relay = replica(
        &upstream.upstream.url(),
        &redis.url(),
        &[("REDIS_RESPONSE_TIMEOUT_MS", "300")],
    );
    let client = RelayClient::builder(format!("http://{}", relay.addr()))
        .pairs(1)
        .max_backoff(Duration::from_millis(200))
        .build()
        .expect("client builds");
    let get = || Request::get("/slow").body(Bytes::new()).expect("request");
    assert_eq!(send(&client, get()).await.0, 200);
    let forwarded = upstream.seen().len();

    // Redis stops answering every client for 4 s.
    let paused = redis
        .command(&["CLIENT", "PAUSE", "4000", "ALL"])
        .expect("pause");
    assert!(paused.contains("OK"), "{paused}");
    let started = Instant::now();
    let error = client
        .send(get())
        .await
        .expect_err("refused while Redis stalls");
    let took = started.elapsed();
    assert_eq!(
        error.reason(),
        Some(ErrorReason::StoreUnavailable),
        "{error:?}"
    );
    // Two attempts of at most 300 ms each plus the client's back-off, far below the
    // 4 s stall.
    assert!(took < Duration::from_secs(3), "answered in {took:?}");
    assert_eq!(upstream.seen().len(), forwarded);
    let logged = relay.logs().join("\n");
    assert!(
        logged.contains("pair store commit failed") || logged.contains("pair store lookup failed"),
        "the cause is logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_a_redis_cluster_serve_on_through_a_node_restart() {
    use mte_relay_tests::redis::RedisCluster;
    let mut cluster = RedisCluster::start(3);
    let upstream = RecordingUpstream::start().await;
    let urls = cluster.urls();
    let a = replica(&upstream.upstream.url(), &urls, &[]);
    let b = replica(&upstream.upstream.url(), &urls, &[]);
    for relay in [&a, &b] {
        relay
            .wait_for_log(|json| json["message"] == "pair store reachable")
            .expect("the startup probe reaches the cluster and accepts its version");
    }
    let balancer = RoundRobin::start(vec![a.addr(), b.addr()]).await;
    // Several clients, so their keys spread over the nodes' slots.
    let clients: Vec<RelayClient> = (0..6).map(|_| client_of(balancer.url(), 2)).collect();
    let post = |n: usize| {
        Request::post(format!("/cluster?n={n}"))
            .body(Bytes::from_static(b"{}"))
            .expect("request")
    };
    for (n, client) in clients.iter().enumerate() {
        for _ in 0..4 {
            assert_eq!(send(client, post(n)).await.0, 200);
        }
    }
    let keys: usize = cluster.nodes.iter().map(|node| node.keys().len()).sum();
    assert!(
        cluster
            .nodes
            .iter()
            .filter(|node| !node.keys().is_empty())
            .count()
            >= 2,
        "the keys spread over the nodes ({keys} in all)"
    );

    // One node restarts without persistence: the pairs it held are lost, and their
    // clients re-pair on their own.
    cluster.nodes[1].restart();
    cluster.wait_ok();
    let back = Instant::now();
    for (n, client) in clients.iter().enumerate() {
        loop {
            if let Ok(response) = client.send(post(n)).await
                && response.status() == 200
            {
                break;
            }
            assert!(
                back.elapsed() < Duration::from_secs(20),
                "client {n} served again within 20 s of the node's return"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    eprintln!(
        "every client served again {:?} after the node's return",
        back.elapsed()
    );
    for (n, client) in clients.iter().enumerate() {
        for _ in 0..4 {
            assert_eq!(send(client, post(n)).await.0, 200);
        }
    }
}

mod store {
    //! The Redis store driven directly, as two replicas would, against a real Redis.

    use mte_relay::config::{Config, Env, StoreSettings};
    use mte_relay::store::{
        CommitError, Lookup, NewPair, PairCaps, PairKey, PairStore, RatchetUse, RedisPairStore,
    };
    use mte_relay_protocol::ids::PairId;
    use mte_relay_protocol::keys::{EPOCH_LEN, PairKeys};
    use mte_relay_protocol::replay::ReplayWindow;
    use mte_relay_protocol::secret::Secret32;
    use mte_relay_tests::redis::RedisServer;

    use super::{CLIENT_ID_SECRET, STORE_KEY};

    const CAPS: PairCaps = PairCaps {
        per_client: 4,
        total: 1000,
    };

    fn store(redis: &RedisServer, store_key: &str) -> RedisPairStore {
        let url = redis.url();
        let env = Env::from_pairs([
            ("UPSTREAM", "http://127.0.0.1:9"),
            ("CLIENT_ID_SECRET", CLIENT_ID_SECRET),
            ("REDIS_URL", url.as_str()),
            ("STORE_KEY", store_key),
        ]);
        let loaded = Config::from_env(&env).expect("valid configuration");
        let StoreSettings::Redis(settings) = loaded.config.store else {
            panic!("REDIS_URL selects Redis");
        };
        RedisPairStore::new(&settings).expect("store builds")
    }

    fn new_pair(id: u8, now: u64) -> NewPair {
        NewPair {
            pair_id: PairId([id; 16]),
            keys: PairKeys::from_roots(
                Secret32::from_bytes([id; 32]),
                Secret32::from_bytes([id ^ 0xff; 32]),
            ),
            created_at: now,
            expires_at: now + 600,
        }
    }

    fn now() -> u64 {
        mte_relay::store::unix_now()
    }

    /// The Lua window and the protocol's window answer every number alike.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_scripted_window_matches_the_protocol_window() {
        let redis = RedisServer::start();
        let store = store(&redis, STORE_KEY);
        let generation = store
            .insert("client", vec![new_pair(1, now())], CAPS)
            .await
            .expect("insert")[0];
        let key = PairKey::new("client", PairId([1; 16]));
        let mut window = ReplayWindow::new();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut highest = 0u64;
        for step in 0..3000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let seq = match state % 8 {
                0 => highest + 1,
                1 => highest.saturating_sub(state % 16),
                2 => highest + (state >> 8) % 2000,
                3 => highest.saturating_sub((state >> 8) % 1100),
                4 => highest + 65_536 + (state >> 8) % 3,
                5 => highest + 65_530 + (state >> 8) % 4,
                6 => (state >> 8) % 100,
                _ => highest + (state >> 8) % 64,
            };
            let expected = window.check_and_mark(seq);
            let got = match store.commit(&key, generation, seq, None).await {
                Ok(()) => Ok(()),
                Err(CommitError::Replay(error)) => Err(error),
                Err(other) => panic!("step {step}: unexpected {other:?}"),
            };
            assert_eq!(got, expected, "step {step}, seq {seq}");
            highest = window.highest().unwrap_or(0);
        }
        assert_eq!(
            store
                .commit(&key, generation + 1, highest + 1, None)
                .await
                .map_err(|e| e.to_string()),
            Err(CommitError::Replaced.to_string()),
        );
    }

    /// Two replicas with cached keys: an epoch one of them erased is refused at the
    /// other's commit, and a ratchet stepped from a stale cache derives the same keys.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lagging_replica_cache_cannot_use_an_erased_epoch() {
        let redis = RedisServer::start();
        let (a, b) = (store(&redis, STORE_KEY), store(&redis, STORE_KEY));
        let generation = a
            .insert("client", vec![new_pair(2, now())], CAPS)
            .await
            .expect("insert")[0];
        let key = PairKey::new("client", PairId([2; 16]));
        let at_a = found(&a, &key).await;
        let at_b = found(&b, &key).await;
        assert!(at_b.window.is_none(), "the window is decided in Redis only");
        let seq = 3 * EPOCH_LEN;
        let (secret_a, advanced) = at_a
            .keys
            .message_secret(mte_relay_protocol::header::Mode::Mte, seq)
            .expect("reach");
        a.commit(
            &key,
            generation,
            seq,
            Some(RatchetUse { epoch: 3, advanced }),
        )
        .await
        .expect("A moves the ratchet to epoch 3");
        // B still holds epoch 0 in its cache: the same message secret, by stepping.
        let (secret_b, _) = at_b
            .keys
            .message_secret(mte_relay_protocol::header::Mode::Mte, seq)
            .expect("reach");
        assert_eq!(secret_a.expose_secret(), secret_b.expose_secret());
        let erased = b
            .commit(
                &key,
                generation,
                EPOCH_LEN + 1,
                Some(RatchetUse {
                    epoch: 1,
                    advanced: None,
                }),
            )
            .await;
        assert!(
            matches!(erased, Err(CommitError::EpochErased)),
            "{erased:?}"
        );
        b.commit(
            &key,
            generation,
            2 * EPOCH_LEN + 1,
            Some(RatchetUse {
                epoch: 2,
                advanced: None,
            }),
        )
        .await
        .expect("the previous epoch is still held");
        // A fresh replica reads the ratchet at epoch 3, sealed.
        let fresh = found(&store(&redis, STORE_KEY), &key).await;
        assert_eq!(fresh.keys.ratchet.epoch(), 3);
    }

    async fn found(store: &RedisPairStore, key: &PairKey) -> Box<mte_relay::store::PairRecord> {
        match store.load(key, now()).await.expect("load") {
            Lookup::Found(record) => record,
            other => panic!("pair not found: {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn caps_evict_the_oldest_and_a_taken_id_is_refused() {
        let redis = RedisServer::start();
        let store = store(&redis, STORE_KEY);
        let t = now();
        store
            .insert("client", (1..=3).map(|id| new_pair(id, t)).collect(), CAPS)
            .await
            .expect("first batch");
        let taken = store.insert("client", vec![new_pair(2, t)], CAPS).await;
        assert!(
            matches!(taken, Err(mte_relay::store::InsertError::Exists(id)) if id == PairId([2; 16])),
            "{taken:?}"
        );
        store
            .insert("client", (4..=6).map(|id| new_pair(id, t)).collect(), CAPS)
            .await
            .expect("second batch");
        let mut held = Vec::new();
        for id in 1..=6u8 {
            let key = PairKey::new("client", PairId([id; 16]));
            if matches!(
                store.load(&key, now()).await.expect("load"),
                Lookup::Found(_)
            ) {
                held.push(id);
            }
        }
        // Pairs 1 and 2 may still be in this replica's cache; Redis holds 3..=6.
        let in_redis = redis
            .keys()
            .iter()
            .filter(|key| key.contains(":pair:"))
            .count();
        assert_eq!(in_redis, 4, "the per-client cap holds in Redis");
        assert!(held.ends_with(&[3, 4, 5, 6]), "{held:?}");
        let count = store.pair_count().await.expect("count");
        assert_eq!(count, 4, "the pair counter follows evictions");
        // Another client's pairs are its own, even under the same pair ids.
        store
            .insert("other", vec![new_pair(1, t)], CAPS)
            .await
            .expect("same id, other client");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_replica_with_another_store_key_names_the_problem() {
        let redis = RedisServer::start();
        let writer = store(&redis, STORE_KEY);
        writer
            .insert("client", vec![new_pair(9, now())], CAPS)
            .await
            .expect("insert");
        let stranger = store(&redis, "a-completely-different-store-key-0000000000");
        let key = PairKey::new("client", PairId([9; 16]));
        let error = stranger.load(&key, now()).await.expect_err("cannot open");
        assert!(error.to_string().contains("STORE_KEY"), "{error}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn adapter_counters_and_flags_add_up_across_replicas() {
        use std::time::Duration;

        use mte_relay_adapter_runtime::{KvError, KvStore};
        let redis = RedisServer::start();
        let a = store(&redis, STORE_KEY).adapter_kv();
        let b = store(&redis, STORE_KEY).adapter_kv();
        for _ in 0..10 {
            a.increment("meter", "requests", 1, None)
                .await
                .expect("A counts");
            b.increment("meter", "requests", 2, None)
                .await
                .expect("B counts");
        }
        assert_eq!(
            a.get("meter", "requests").await.expect("get").as_deref(),
            Some(&b"30"[..])
        );
        assert!(
            a.set_if_absent("meter", "leader", b"a".to_vec(), None)
                .await
                .expect("set")
        );
        assert!(
            !b.set_if_absent("meter", "leader", b"b".to_vec(), None)
                .await
                .expect("set")
        );
        // Instances are namespaced, and ("me", "ter:requests") is not ("meter", "requests").
        assert_eq!(a.get("other", "requests").await.expect("get"), None);
        assert_eq!(a.get("me", "ter:requests").await.expect("get"), None);
        // A time to live applies when the counter is created, not on later increments.
        assert_eq!(
            a.increment("meter", "window", 5, Some(Duration::from_millis(300)))
                .await
                .expect("created"),
            5
        );
        assert_eq!(
            b.increment("meter", "window", 1, Some(Duration::from_secs(3600)))
                .await
                .expect("added"),
            6
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            a.get("meter", "window").await.expect("get"),
            None,
            "expired"
        );
        a.set("meter", "text", b"abc".to_vec(), None)
            .await
            .expect("set");
        assert_eq!(
            b.increment("meter", "text", 1, None).await,
            Err(KvError::NotACounter)
        );
        assert!(b.delete("meter", "text").await.expect("delete"));
        assert!(!b.delete("meter", "text").await.expect("delete"));
    }

    /// Bytes of Redis memory per used pair (one request committed), for
    /// docs/operations.md ("Sizing and eviction"): 2,000 pairs as 250 clients of 8,
    /// measured as `used_memory` grown, divided by the pairs. Once with Redis's default
    /// encodings, once with `hash-max-listpack-value 256`, which the docs recommend.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_pair_costs_redis_what_the_docs_say() {
        let default = redis_bytes_per_pair(&[]).await;
        let tuned = redis_bytes_per_pair(&["--hash-max-listpack-value", "256"]).await;
        eprintln!("Redis memory per pair: {default} bytes by default, {tuned} tuned");
        assert!(
            default <= 1300,
            "docs/operations.md says about 1.1 KiB a pair; measured {default}"
        );
        assert!(
            tuned <= 850,
            "docs/operations.md says about 0.7 KiB a pair tuned; measured {tuned}"
        );
    }

    async fn redis_bytes_per_pair(redis_args: &[&str]) -> i64 {
        const CLIENTS: usize = 250;
        const PER_CLIENT: u8 = 8;
        let redis = RedisServer::start_with(redis_args);
        let store = store(&redis, STORE_KEY);
        let used = || {
            let info = redis.command(&["INFO", "memory"]).expect("INFO");
            info.lines()
                .find_map(|line| line.strip_prefix("used_memory:"))
                .and_then(|value| value.trim().parse::<i64>().ok())
                .expect("used_memory")
        };
        let caps = PairCaps {
            per_client: 64,
            total: 1_000_000,
        };
        // One client first, so the counter hash and script cache exist before measuring.
        store
            .insert("warm-up", vec![new_pair(0, now())], caps)
            .await
            .expect("insert");
        let before = used();
        for client in 0..CLIENTS {
            let client_id = format!("client-{client}");
            let pairs = (1..=PER_CLIENT).map(|id| new_pair(id, now())).collect();
            let generations = store.insert(&client_id, pairs, caps).await.expect("insert");
            for (id, generation) in (1..=PER_CLIENT).zip(generations) {
                let key = PairKey::new(client_id.as_str(), PairId([id; 16]));
                store
                    .commit(&key, generation, 0, None)
                    .await
                    .expect("commit");
            }
        }
        let pairs = CLIENTS * usize::from(PER_CLIENT);
        (used() - before) / pairs as i64
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_redis_with_a_password_is_reached_through_its_ca_file() {
    use mte_relay_tests::tls::TestCertificate;
    const PASSWORD: &str = "hunter2-redis-password";
    let certificate = TestCertificate::localhost();
    let redis = RedisServer::start_tls(&certificate, &["--requirepass", PASSWORD]);
    let upstream = RecordingUpstream::start().await;
    let url = redis
        .tls_url()
        .replace("rediss://", &format!("rediss://:{PASSWORD}@"));
    let ca = ("REDIS_CA_FILE", certificate.pem_path_str());

    let trusted = replica(&upstream.upstream.url(), &url, &[ca]);
    trusted
        .wait_for_log(|json| json["message"] == "pair store reachable")
        .expect("TLS with the CA file and the password reaches Redis");
    let client = client_of(format!("http://{}", trusted.addr()), 1);
    let get = || Request::get("/tls").body(Bytes::new()).expect("request");
    assert_eq!(send(&client, get()).await.0, 200);

    // Without the CA file the server's certificate is not trusted.
    let untrusting = replica(&upstream.upstream.url(), &url, &[]);
    untrusting
        .wait_for_log(|json| {
            json["message"]
                .as_str()
                .is_some_and(|message| message.starts_with("pair store unreachable"))
        })
        .expect("an untrusted certificate is refused");
    let refused = client_of(format!("http://{}", untrusting.addr()), 1);
    let error = refused.send(get()).await.expect_err("no store, no MTE");
    assert_eq!(error.reason(), Some(ErrorReason::StoreUnavailable));

    // A wrong password is refused, and neither password reaches a log line.
    let wrong_url = url.replace(PASSWORD, "a-wrong-password-0000");
    let wrong = replica(&upstream.upstream.url(), &wrong_url, &[ca]);
    wrong
        .wait_for_log(|json| {
            json["message"]
                .as_str()
                .is_some_and(|message| message.starts_with("pair store unreachable"))
        })
        .expect("a wrong password is refused");
    for relay in [&trusted, &untrusting, &wrong] {
        let output = [relay.logs(), relay.stderr()].concat().join("\n");
        assert!(!output.contains(PASSWORD), "the password is never logged");
        assert!(!output.contains("a-wrong-password-0000"), "nor a wrong one");
    }
    let checked = relay::run(
        &["check-config"],
        &[
            ("UPSTREAM", "http://127.0.0.1:9"),
            ("CLIENT_ID_SECRET", CLIENT_ID_SECRET),
            ("REDIS_URL", url.as_str()),
            ("STORE_KEY", STORE_KEY),
            ca,
        ],
    );
    assert_eq!(checked.status.code(), Some(0), "{}", checked.stderr);
    assert!(!checked.stdout.contains(PASSWORD), "{}", checked.stdout);
    assert!(!checked.stdout.contains(STORE_KEY), "{}", checked.stdout);
    assert!(
        checked.stdout.contains("rediss://:<redacted>@127.0.0.1"),
        "{}",
        checked.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_load_runs_nothing_twice() {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use mte_relay_client::RequestOutcome;
    const REQUESTS: usize = 400;
    const WORKERS: usize = 8;
    let redis = RedisServer::start();
    let upstream = RecordingUpstream::start().await;
    let a = replica(&upstream.upstream.url(), &redis.url(), &[]);
    let mut b = replica(&upstream.upstream.url(), &redis.url(), &[]);
    let balancer = RoundRobin::start(vec![a.addr(), b.addr()]).await;
    let client = client_of(balancer.url(), 4);
    within("pairing", client.connect()).await.expect("pairs");

    let next = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    // Each request's number and its status, or the outcome the client reported.
    type Results = Vec<(usize, Result<u16, RequestOutcome>)>;
    let results: Arc<Mutex<Results>> = Arc::default();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..WORKERS {
        let (client, next, finished, results) = (
            client.clone(),
            next.clone(),
            finished.clone(),
            results.clone(),
        );
        workers.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= REQUESTS {
                    return;
                }
                let request = Request::post(format!("/item?n={n}"))
                    .body(Bytes::from(format!("{n}")))
                    .expect("request");
                let result = match client.send(request).await {
                    Ok(response) => Ok(response.status().as_u16()),
                    Err(error) => Err(error.outcome()),
                };
                results.lock().expect("lock").push((n, result));
                finished.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    within("a quarter of the load", async {
        while finished.load(Ordering::Relaxed) < REQUESTS / 4 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    b.kill();
    within("the rest of the load", async {
        while workers.join_next().await.is_some() {}
    })
    .await;

    let mut ran = vec![0usize; REQUESTS];
    for seen in upstream.seen() {
        let n: usize = seen
            .target
            .trim_start_matches("/item?n=")
            .parse()
            .expect("target names its request");
        ran[n] += 1;
    }
    let results = results.lock().expect("lock").clone();
    assert_eq!(results.len(), REQUESTS);
    let (mut succeeded, mut failed) = (0, 0);
    for (n, result) in &results {
        assert!(ran[*n] <= 1, "request {n} ran {} times", ran[*n]);
        match result {
            Ok(200) => {
                succeeded += 1;
                assert_eq!(ran[*n], 1, "request {n} succeeded, so it ran once");
            }
            Ok(status) => panic!("request {n}: status {status}"),
            // A copy was forwarded under this token: it ran, or its forwarding was cut
            // short when the replica died (an upstream that never got the whole body
            // did not run it). Never run twice either way.
            Err(RequestOutcome::Ran) => failed += 1,
            Err(RequestOutcome::NotRun) => {
                failed += 1;
                assert_eq!(ran[*n], 0, "request {n} reported as not run");
            }
            Err(RequestOutcome::Unknown) => failed += 1,
        }
    }
    // Only requests in flight at the kill may fail; the client's safe resends and
    // every later request go to the surviving replica.
    assert!(failed <= WORKERS, "{failed} failed, {succeeded} succeeded");
    // The upstream ran every success once, and beyond them at most the failures.
    let upstream_count: usize = ran.iter().sum();
    assert!(
        upstream_count >= succeeded && upstream_count - succeeded <= failed,
        "upstream ran {upstream_count}, {succeeded} succeeded, {failed} failed"
    );
    eprintln!(
        "killed mid-load: {succeeded} succeeded, {failed} failed, served {:?}",
        balancer.served()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_both_replicas_needs_no_new_pairing() {
    let redis = RedisServer::start();
    let upstream = RecordingUpstream::start().await;
    let (upstream_url, redis_url) = (upstream.upstream.url(), redis.url());
    let env = [
        ("UPSTREAM", upstream_url.as_str()),
        ("CLIENT_ID_SECRET", CLIENT_ID_SECRET),
        ("REDIS_URL", redis_url.as_str()),
        ("STORE_KEY", STORE_KEY),
    ];
    let mut a = Relay::start(&env);
    let mut b = Relay::start(&env);
    let (port_a, port_b) = (a.addr().port(), b.addr().port());
    let balancer = RoundRobin::start(vec![a.addr(), b.addr()]).await;
    let client = client_of(balancer.url(), 2);
    let get = || Request::get("/both").body(Bytes::new()).expect("request");
    for _ in 0..4 {
        assert_eq!(send(&client, get()).await.0, 200);
    }
    let pairs = client.pair_ids();
    a.kill();
    b.kill();
    let a = Relay::start_on_port(port_a, &env);
    let b = Relay::start_on_port(port_b, &env);
    for _ in 0..6 {
        assert_eq!(send(&client, get()).await.0, 200);
    }
    assert_eq!(client.pair_ids(), pairs, "the same pairs");
    let pairings: usize = [&a, &b]
        .iter()
        .map(|relay| {
            access_lines(relay)
                .iter()
                .filter(|json| json["route"] == "pair")
                .count()
        })
        .sum();
    assert_eq!(pairings, 0, "no pairing after the restart");
}

/// With its keys cached, a request costs one Redis round trip: its commit, which also
/// records a non-idempotent request's resend token. Counted by the relay itself
/// (`mte_relay_store_round_trips_total`), scraped around ten requests of each kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_costs_one_redis_round_trip() {
    let redis = RedisServer::start();
    let upstream = RecordingUpstream::start().await;
    let relay = replica(&upstream.upstream.url(), &redis.url(), &[]);
    let client = client_of(format!("http://{}", relay.addr()), 1);
    let round_trips = || async {
        let scrape = mte_relay_tests::client::get(relay.admin_addr(), "admin", "/metrics").await;
        let text = String::from_utf8(mte_relay_tests::client::body_bytes(scrape).await.to_vec())
            .expect("utf-8");
        text.lines()
            .find_map(|line| line.strip_prefix("mte_relay_store_round_trips_total "))
            .and_then(|value| value.trim().parse::<u64>().ok())
            .expect("the round-trip counter")
    };
    // The first request pairs and loads the pair into the cache.
    assert_eq!(
        send(
            &client,
            Request::get("/warm").body(Bytes::new()).expect("request")
        )
        .await
        .0,
        200
    );
    // Each scrape itself costs one round trip (it counts the pairs).
    let before = round_trips().await;
    for _ in 0..10 {
        let request = Request::get("/get").body(Bytes::new()).expect("request");
        assert_eq!(send(&client, request).await.0, 200);
    }
    let after_gets = round_trips().await;
    assert_eq!(
        after_gets - before,
        10 + 1,
        "one per GET, plus the scrape's count"
    );
    for _ in 0..10 {
        let request = Request::post("/post")
            .body(Bytes::from_static(b"{}"))
            .expect("request");
        assert_eq!(send(&client, request).await.0, 200);
    }
    let after_posts = round_trips().await;
    assert_eq!(
        after_posts - after_gets,
        10 + 1,
        "one per POST (the token goes with the commit), plus the scrape's count"
    );
}

/// The resend token recorded with the commit in Redis: a copy of a POST under the same
/// token is refused at either replica, on any pair, and the upstream sees it once;
/// another token is another request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_copy_of_a_post_is_refused_at_either_replica() {
    let redis = RedisServer::start();
    let upstream = RecordingUpstream::start().await;
    let a = replica(&upstream.upstream.url(), &redis.url(), &[]);
    let b = replica(&upstream.upstream.url(), &redis.url(), &[]);
    let mut session = RawClient::new(&a).session(2).await;
    let spec = Spec::post("/pay", "10").copies();
    session
        .seal(0, &spec)
        .send(a.addr())
        .await
        .assert_sealed_ok("the first copy, at A");
    session
        .seal(1, &spec)
        .send(b.addr())
        .await
        .assert_sealed_registry(565, "already-processed", "a copy at B, on another pair");
    session
        .seal(0, &spec)
        .send(a.addr())
        .await
        .assert_sealed_registry(565, "already-processed", "a copy back at A");
    session
        .seal(1, &Spec::post("/pay", "10"))
        .send(b.addr())
        .await
        .assert_sealed_ok("another token");
    assert_eq!(upstream.seen().len(), 2, "each token ran once");
}
