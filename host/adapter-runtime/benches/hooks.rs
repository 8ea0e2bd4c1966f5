//! Hook call cost: a warm (pooled) instance, and a fresh instance per call
//! (instantiate + init + call). Run: `cargo bench -p mte-relay-adapter-runtime`.
#![allow(clippy::unwrap_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use mte_relay_adapter_runtime::{
    AdapterRuntime, AdaptersSource, RequestInfo, RouteClass, RuntimeOptions,
};

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

criterion_group!(benches, hooks);
criterion_main!(benches);
