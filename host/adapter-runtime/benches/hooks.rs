//! Hook call cost: a warm (pooled) instance, and a fresh instance per call
//! (instantiate + init + call). Run: `cargo bench -p mte-relay-adapter-runtime`.
#![allow(clippy::unwrap_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use mte_relay_adapter_runtime::{
    AdapterRuntime, AdaptersSource, Header, RequestInfo, ResponseInfo, RouteClass, RuntimeOptions,
};
use sha2::{Digest, Sha256};

mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

fn request() -> RequestInfo {
    RequestInfo {
        method: "GET".into(),
        path_with_query: "/ok".into(),
        headers: vec![],
        domain: "api.example.com".into(),
        route_class: RouteClass::Mte,
        client_id: Some("client-7".into()),
        pair_id: None,
        correlation_id: "req-1".into(),
        remote_addr: "127.0.0.1:1".into(),
    }
}

fn hooks(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let runtime = AdapterRuntime::new(RuntimeOptions::default()).unwrap();
    // trap-on-request passes every path but `/trap` without edits: the call
    // itself is what is measured.
    let declarations = serde_json::json!([
        { "name": "warm", "path": guests::TRAP_ON_REQUEST },
        { "name": "fresh", "path": guests::TRAP_ON_REQUEST, "instance_reuse": "fresh" },
    ]);
    tokio
        .block_on(runtime.load(AdaptersSource::Inline(declarations.to_string())))
        .unwrap();
    let warm = runtime.chain(&["warm"]).unwrap();
    let fresh = runtime.chain(&["fresh"]).unwrap();
    let mut req = request();

    c.bench_function("on-request warm instance", |b| {
        b.iter(|| tokio.block_on(warm.filters.on_request(&mut req)).unwrap())
    });
    c.bench_function(
        "on-request fresh instance (instantiate + init + call)",
        |b| b.iter(|| tokio.block_on(fresh.filters.on_request(&mut req)).unwrap()),
    );
}

/// A request as a browser-ish client sends it: a handful of ordinary headers.
fn realistic_request() -> RequestInfo {
    let header = |name: &str, value: &str| Header {
        name: name.into(),
        value: value.into(),
    };
    RequestInfo {
        headers: vec![
            header("content-type", "application/json"),
            header("accept", "application/json"),
            header("user-agent", "bench/1.0"),
            header("accept-encoding", "gzip, br"),
            header("x-api-key", "bench-key"),
            header("x-forwarded-for", "127.0.0.1"),
            header("x-request-id", "0123456789abcdef0123456789abcdef"),
        ],
        ..request()
    }
}

/// The demo's filters, `api-key-auth` then `header-rewrite`: `on-request` through the
/// chain, then `on-response` back through it, as the relay calls them per request.
fn example_chain(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let runtime = AdapterRuntime::new(RuntimeOptions::default()).unwrap();
    let key_hash: String = Sha256::digest(b"bench-key")
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let declarations = serde_json::json!([
        { "name": "auth", "path": guests::API_KEY_AUTH,
          "config": { "keys": [{ "label": "bench", "sha256": key_hash }] } },
        { "name": "rewrite", "path": guests::HEADER_REWRITE,
          "config": {
            "request": [{ "op": "set", "name": "x-relay-client", "value": "{client_id}" }],
            "response": [{ "op": "set", "name": "x-served-by", "value": "mte-relay/{domain}" }] } },
    ]);
    tokio
        .block_on(runtime.load(AdaptersSource::Inline(declarations.to_string())))
        .unwrap();
    let chain = runtime.chain(&["auth", "rewrite"]).unwrap();

    c.bench_function("example chain on-request + on-response (2 filters)", |b| {
        b.iter(|| {
            tokio.block_on(async {
                let mut request = realistic_request();
                chain.filters.on_request(&mut request).await.unwrap();
                let mut response = ResponseInfo {
                    status: 200,
                    headers: vec![Header {
                        name: "content-type".into(),
                        value: "application/json".into(),
                    }],
                };
                chain
                    .filters
                    .on_response(&request, &mut response)
                    .await
                    .unwrap();
            })
        })
    });
}

criterion_group!(benches, hooks, example_chain);
criterion_main!(benches);
