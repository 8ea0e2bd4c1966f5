//! One test guest per misbehaviour: each test shows the host survives, the
//! failure is classified, the policy applies, and the adapter keeps serving.
#![allow(clippy::unwrap_used)]

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{CapturedLogs, adapter, guests, header, load, request, runtime, with_header};
use mte_relay_adapter_runtime::{
    Disposition, FailureKind, Hook, HookError, LoadError, RequestOutcome, ResponseInfo,
};
use serde_json::json;

fn continued(outcome: RequestOutcome) -> Vec<mte_relay_adapter_runtime::HeaderEdit> {
    match outcome {
        RequestOutcome::Continue(edits) => edits,
        RequestOutcome::Respond(reply) => panic!("unexpected local response {reply:?}"),
    }
}

#[tokio::test]
async fn trap_is_classified_with_backtrace_and_the_adapter_keeps_serving() {
    let rt = runtime();
    load(
        &rt,
        vec![adapter("trapper", guests::TRAP_ON_REQUEST, json!({}))],
    )
    .await
    .unwrap();
    let chain = rt.chain(&["trapper"]).unwrap();

    let err: HookError = chain
        .filters
        .on_request(&mut request("/trap"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, FailureKind::Trap);
    assert_eq!(err.hook, Hook::OnRequest);
    assert_eq!(
        err.disposition,
        Disposition::Deny,
        "filters fail closed by default"
    );
    assert_eq!(err.adapter, "trapper");
    assert!(!err.version.is_empty());
    let backtrace = err.backtrace.clone().unwrap();
    assert!(
        backtrace.contains("on_request") || backtrace.contains("on-request"),
        "{backtrace}"
    );
    assert!(err.to_string().contains("adapter `trapper`"), "{err}");

    for _ in 0..3 {
        let edits = continued(chain.filters.on_request(&mut request("/ok")).await.unwrap());
        assert!(edits.is_empty());
    }
}

#[tokio::test]
async fn infinite_loop_is_interrupted_at_the_deadline() {
    let rt = runtime();
    load(
        &rt,
        vec![adapter(
            "spinner",
            guests::INFINITE_LOOP,
            json!({ "deadline_ms": 50 }),
        )],
    )
    .await
    .unwrap();
    let chain = rt.chain(&["spinner"]).unwrap();
    let err = chain
        .filters
        .on_request(&mut request("/spin"))
        .await
        .unwrap_err();
    assert!(matches!(err.kind, FailureKind::Timeout(_)), "{err}");
    assert_eq!(err.disposition, Disposition::Deny);
    continued(chain.filters.on_request(&mut request("/ok")).await.unwrap());
}

#[tokio::test]
async fn memory_growth_past_the_cap_is_a_memory_error() {
    let rt = runtime();
    load(
        &rt,
        vec![adapter(
            "bomb",
            guests::MEMORY_BOMB,
            json!({ "memory_mb": 16, "deadline_ms": 10000 }),
        )],
    )
    .await
    .unwrap();
    let chain = rt.chain(&["bomb"]).unwrap();
    let err = chain
        .filters
        .on_request(&mut request("/bomb"))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind,
        FailureKind::MemoryExceeded {
            cap_bytes: 16 << 20
        },
        "{err}"
    );
    continued(chain.filters.on_request(&mut request("/ok")).await.unwrap());
}

#[tokio::test]
async fn hook_parked_in_a_host_wait_is_cut_at_the_deadline() {
    let rt = runtime();
    load(
        &rt,
        vec![adapter(
            "slow",
            guests::SLOW_HOOK,
            json!({ "deadline_ms": 50 }),
        )],
    )
    .await
    .unwrap();
    let chain = rt.chain(&["slow"]).unwrap();
    let started = Instant::now();
    let err = chain
        .filters
        .on_request(&mut with_header(request("/"), "x-sleep-ms", "30000"))
        .await
        .unwrap_err();
    assert!(matches!(err.kind, FailureKind::Timeout(_)), "{err}");
    // The guest asked for 30 s; the call must end long before that.
    assert!(started.elapsed() < Duration::from_secs(15));
    continued(
        chain
            .filters
            .on_request(&mut with_header(request("/"), "x-sleep-ms", "1"))
            .await
            .unwrap(),
    );
}

#[tokio::test]
async fn invalid_header_edits_are_refused_as_bad_output() {
    let rt = runtime();
    load(&rt, vec![adapter("bad", guests::BAD_HEADERS, json!({}))])
        .await
        .unwrap();
    let chain = rt.chain(&["bad"]).unwrap();
    for path in ["/bad-name", "/bad-value", "/reserved", "/bad-status"] {
        let err = chain
            .filters
            .on_request(&mut request(path))
            .await
            .unwrap_err();
        assert!(
            matches!(err.kind, FailureKind::BadOutput(_)),
            "{path}: {err}"
        );
        assert_eq!(err.disposition, Disposition::Deny);
    }
    let mut req = request("/ok");
    let edits = continued(chain.filters.on_request(&mut req).await.unwrap());
    assert_eq!(edits.len(), 1);
    assert_eq!(header(&req.headers, "x-checked"), Some("yes"));

    let mut response = ResponseInfo {
        status: 200,
        headers: vec![],
    };
    let edits = chain
        .filters
        .on_response(&req, &mut response)
        .await
        .unwrap();
    assert_eq!(edits.len(), 1, "a valid response edit");

    let mut req = request("/bad-response");
    continued(chain.filters.on_request(&mut req).await.unwrap());
    let err = chain
        .filters
        .on_response(&req, &mut response)
        .await
        .unwrap_err();
    assert!(matches!(err.kind, FailureKind::BadOutput(_)), "{err}");
    assert_eq!(err.hook, Hook::OnResponse);
}

#[tokio::test]
async fn failing_init_refuses_the_adapter_with_its_reason() {
    let rt = runtime();
    let err = load(
        &rt,
        vec![adapter(
            "picky",
            guests::INIT_FAILS,
            json!({ "config": { "ok": false } }),
        )],
    )
    .await
    .unwrap_err();
    assert_eq!(err.adapter(), Some("picky"));
    assert!(matches!(err, LoadError::Init { .. }), "{err}");
    assert!(err.to_string().contains("ok=false"), "{err}");
    // The runtime is still usable, and the same component with a good config loads.
    load(
        &rt,
        vec![adapter(
            "picky",
            guests::INIT_FAILS,
            json!({ "config": { "ok": true } }),
        )],
    )
    .await
    .unwrap();
    assert!(rt.chain(&["picky"]).is_ok());
}

async fn start_upstream(hits: Arc<AtomicUsize>) -> std::net::SocketAddr {
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let hits = hits.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_req| {
                    hits.fetch_add(1, Ordering::SeqCst);
                    async {
                        Ok::<_, Infallible>(hyper::Response::new(http_body_util::Full::new(
                            bytes::Bytes::from_static(b"ok"),
                        )))
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_http_reaches_only_allow_listed_hosts() {
    let hits = Arc::new(AtomicUsize::new(0));
    let addr = start_upstream(hits.clone()).await;
    let rt = runtime();
    load(
        &rt,
        vec![
            adapter(
                "allowed",
                guests::OUTBOUND_HTTP,
                json!({ "allowed_hosts": [format!("127.0.0.1:{}", addr.port())], "deadline_ms": 5000 }),
            ),
            adapter(
                "denied",
                guests::OUTBOUND_HTTP,
                json!({ "allowed_hosts": ["other.example.com"], "deadline_ms": 5000 }),
            ),
        ],
    )
    .await
    .unwrap();
    let target = format!("http://127.0.0.1:{}/ping", addr.port());

    let allowed = rt.chain(&["allowed"]).unwrap();
    let mut req = with_header(request("/"), "x-target", &target);
    continued(allowed.filters.on_request(&mut req).await.unwrap());
    assert_eq!(header(&req.headers, "x-outbound-status"), Some("200"));
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    let denied = rt.chain(&["denied"]).unwrap();
    let mut req = with_header(request("/"), "x-target", &target);
    continued(denied.filters.on_request(&mut req).await.unwrap());
    let error = header(&req.headers, "x-outbound-error").unwrap();
    assert!(error.contains("HttpRequestDenied"), "{error}");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "the refused request never left the host"
    );
}

#[tokio::test]
async fn log_floods_are_rate_limited_and_long_lines_truncated() {
    let logs = CapturedLogs::default();
    let _guard = logs.install();
    let rt = runtime();
    load(
        &rt,
        vec![adapter(
            "chatty",
            guests::LOG_FLOOD,
            json!({ "deadline_ms": 10000 }),
        )],
    )
    .await
    .unwrap();
    let chain = rt.chain(&["chatty"]).unwrap();
    continued(chain.filters.on_request(&mut request("/")).await.unwrap());

    let text = logs.text();
    let flood_lines = text.lines().filter(|l| l.contains("flood line")).count();
    assert!(flood_lines > 0, "some lines get through");
    assert!(
        flood_lines < 1000,
        "{flood_lines} of 100000 lines were written"
    );
    assert!(text.contains("chatty"), "lines are tagged with the adapter");
    // The 1 MiB line is either dropped or cut to the limit; never written whole.
    assert!(text.lines().all(|l| l.len() < 8 * 1024));
    // The next admitted line reports how many were dropped.
    continued(
        chain
            .filters
            .on_request(&mut request("/"))
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    );
    assert!(logs.text().contains("dropped by the rate limit"));
}

#[tokio::test]
async fn breaker_stops_calling_an_adapter_that_keeps_crashing() {
    let logs = CapturedLogs::default();
    let _guard = logs.install();
    let rt = runtime();
    load(
        &rt,
        vec![adapter(
            "crashy",
            guests::TRAP_ON_REQUEST,
            json!({ "breaker_threshold": 3, "breaker_cooldown_ms": 600000 }),
        )],
    )
    .await
    .unwrap();
    let chain = rt.chain(&["crashy"]).unwrap();
    for _ in 0..3 {
        let err = chain
            .filters
            .on_request(&mut request("/trap"))
            .await
            .unwrap_err();
        assert_eq!(err.kind, FailureKind::Trap);
    }
    let err = chain
        .filters
        .on_request(&mut request("/ok"))
        .await
        .unwrap_err();
    assert!(matches!(err.kind, FailureKind::Unavailable(_)), "{err}");
    assert!(logs.text().contains("crash breaker open"));
    let stats = &rt.stats()[0];
    assert_eq!(stats.failures, 4);
    assert_eq!(stats.unavailable, 1);
}

#[tokio::test]
async fn open_policy_lets_the_request_through_and_counts_the_failure() {
    let rt = runtime();
    load(
        &rt,
        vec![adapter(
            "lenient",
            guests::TRAP_ON_REQUEST,
            json!({ "failure_policy": "open" }),
        )],
    )
    .await
    .unwrap();
    let chain = rt.chain(&["lenient"]).unwrap();
    continued(
        chain
            .filters
            .on_request(&mut request("/trap"))
            .await
            .unwrap(),
    );
    let stats = &rt.stats()[0];
    assert_eq!(stats.failures, 1);
    assert_eq!(stats.proceeded_after_failure, 1);
}

#[tokio::test]
async fn reload_policy_rebuilds_after_a_backoff() {
    let rt = runtime();
    load(
        &rt,
        vec![adapter(
            "rebuilt",
            guests::TRAP_ON_REQUEST,
            json!({ "failure_policy": "reload" }),
        )],
    )
    .await
    .unwrap();
    let chain = rt.chain(&["rebuilt"]).unwrap();
    let created_before = rt.stats()[0].instances_created;
    let err = chain
        .filters
        .on_request(&mut request("/trap"))
        .await
        .unwrap_err();
    assert_eq!(err.disposition, Disposition::Deny);
    let err = chain
        .filters
        .on_request(&mut request("/ok"))
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind, FailureKind::Unavailable(ref why) if why.contains("backoff")),
        "{err}"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    continued(chain.filters.on_request(&mut request("/ok")).await.unwrap());
    assert!(
        rt.stats()[0].instances_created > created_before,
        "a new instance was built"
    );
}

#[tokio::test]
async fn fresh_instances_isolate_every_call() {
    let rt = runtime();
    load(
        &rt,
        vec![
            adapter(
                "fresh",
                guests::BAD_HEADERS,
                json!({ "instance_reuse": "fresh" }),
            ),
            adapter("pooled", guests::BAD_HEADERS, json!({})),
        ],
    )
    .await
    .unwrap();
    for name in ["fresh", "pooled"] {
        let chain = rt.chain(&[name]).unwrap();
        for _ in 0..3 {
            continued(chain.filters.on_request(&mut request("/ok")).await.unwrap());
        }
    }
    let stats = rt.stats();
    let created = |name: &str| {
        stats
            .iter()
            .find(|s| s.name == name)
            .unwrap()
            .instances_created
    };
    assert_eq!(created("fresh"), 4, "one at load, one per call");
    assert_eq!(created("pooled"), 1, "the warm instance is reused");
}
