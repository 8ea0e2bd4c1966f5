//! Loading, chain lookup and hot reload: atomic swaps, bad versions refused while
//! the old one keeps serving, in-flight calls finishing on the old version.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{adapter, guests, header, load, request, runtime, with_header};
use mte_relay_adapter_runtime::{
    AdaptersSource, ChainError, FailureKind, LoadError, ReloadOutcome, RequestOutcome,
};
use serde_json::json;

fn write_adapters(dir: &Path, wasm: &Path, config: serde_json::Value) -> std::path::PathBuf {
    let file = dir.join("adapters.json");
    let doc = json!({ "adapters": [
        { "name": "edge", "path": wasm.file_name().unwrap().to_str().unwrap(), "config": config }
    ] });
    std::fs::write(&file, doc.to_string()).unwrap();
    file
}

fn set_x(value: &str) -> serde_json::Value {
    json!({ "request": [ { "op": "set", "name": "x-version", "value": value } ] })
}

async fn x_version(rt: &mte_relay_adapter_runtime::AdapterRuntime) -> Option<String> {
    let chain = rt.chain(&["edge"]).unwrap();
    let mut req = request("/");
    match chain.filters.on_request(&mut req).await {
        Ok(RequestOutcome::Continue(_)) => header(&req.headers, "x-version").map(str::to_owned),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn reload_swaps_new_versions_and_keeps_old_ones_when_the_new_fails() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("edge.wasm");
    std::fs::copy(guests::HEADER_REWRITE, &wasm).unwrap();
    let file = write_adapters(dir.path(), &wasm, set_x("v1"));
    let rt = runtime();
    rt.load(AdaptersSource::File(file.clone())).await.unwrap();
    assert_eq!(x_version(&rt).await.as_deref(), Some("v1"));

    // Nothing changed: nothing is rebuilt.
    let report = rt.reload().await;
    assert!(
        matches!(report.outcomes[..], [ReloadOutcome::Unchanged { .. }]),
        "{report:?}"
    );

    // New config: swapped.
    write_adapters(dir.path(), &wasm, set_x("v2"));
    let report = rt.reload().await;
    assert!(report.is_clean(), "{report:?}");
    assert!(
        matches!(report.outcomes[..], [ReloadOutcome::Swapped { .. }]),
        "{report:?}"
    );
    assert_eq!(x_version(&rt).await.as_deref(), Some("v2"));

    // A config the new init refuses: old version keeps serving.
    write_adapters(
        dir.path(),
        &wasm,
        json!({ "request": [ { "op": "nope" } ] }),
    );
    let report = rt.reload().await;
    assert!(!report.is_clean());
    assert!(
        matches!(
            report.outcomes[..],
            [ReloadOutcome::Kept {
                error: LoadError::Init { .. },
                ..
            }]
        ),
        "{report:?}"
    );
    assert_eq!(x_version(&rt).await.as_deref(), Some("v2"));

    // A file that is not a component: refused, old version serves.
    write_adapters(dir.path(), &wasm, set_x("v3"));
    std::fs::write(&wasm, b"definitely not wasm").unwrap();
    let report = rt.reload().await;
    assert!(
        matches!(
            report.outcomes[..],
            [ReloadOutcome::Kept {
                error: LoadError::Compile { .. },
                ..
            }]
        ),
        "{report:?}"
    );
    assert_eq!(x_version(&rt).await.as_deref(), Some("v2"));

    // An unparsable adapters file: nothing changes.
    std::fs::write(&file, "{ not json").unwrap();
    let report = rt.reload().await;
    assert!(report.error.is_some());
    assert_eq!(x_version(&rt).await.as_deref(), Some("v2"));

    // Fixed again: v3 serves.
    std::fs::copy(guests::HEADER_REWRITE, &wasm).unwrap();
    write_adapters(dir.path(), &wasm, set_x("v3"));
    assert!(rt.reload().await.is_clean());
    assert_eq!(x_version(&rt).await.as_deref(), Some("v3"));
    assert_eq!(rt.stats()[0].reloads, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_calls_finish_on_the_old_version() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("edge.wasm");
    std::fs::copy(guests::SLOW_HOOK, &wasm).unwrap();
    let file = dir.path().join("adapters.json");
    std::fs::write(
        &file,
        json!([{ "name": "edge", "path": "edge.wasm", "deadline_ms": 5000 }]).to_string(),
    )
    .unwrap();
    let rt = runtime();
    rt.load(AdaptersSource::File(file)).await.unwrap();
    let chain = rt.chain(&["edge"]).unwrap();

    let slow = {
        let chain = chain.clone();
        tokio::spawn(async move {
            let mut req = with_header(request("/"), "x-sleep-ms", "700");
            chain.filters.on_request(&mut req).await.map(|_| req)
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Swap in a different component while the slow call is parked inside the old one.
    std::fs::copy(guests::BAD_HEADERS, &wasm).unwrap();
    let report = rt.reload().await;
    assert!(report.is_clean(), "{report:?}");

    let finished = slow.await.unwrap().unwrap();
    assert_eq!(
        header(&finished.headers, "x-checked"),
        None,
        "ran to the end on the old version"
    );
    let mut req = request("/ok");
    chain.filters.on_request(&mut req).await.unwrap();
    assert_eq!(
        header(&req.headers, "x-checked"),
        Some("yes"),
        "new calls use the new version"
    );
}

#[tokio::test]
async fn watcher_reloads_on_file_change() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("edge.wasm");
    std::fs::copy(guests::HEADER_REWRITE, &wasm).unwrap();
    let file = write_adapters(dir.path(), &wasm, set_x("before"));
    let rt = runtime();
    rt.load(AdaptersSource::File(file)).await.unwrap();
    let _watch = rt.watch(Duration::from_millis(50));
    tokio::time::sleep(Duration::from_millis(120)).await;

    // Different content and length, so the change is visible even with coarse mtimes.
    write_adapters(dir.path(), &wasm, set_x("after-the-change"));
    let mut seen = None;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        seen = x_version(&rt).await;
        if seen.as_deref() == Some("after-the-change") {
            break;
        }
    }
    assert_eq!(seen.as_deref(), Some("after-the-change"));
}

#[tokio::test]
async fn load_errors_are_clear() {
    let rt = runtime();
    let err = load(
        &rt,
        vec![adapter("ghost", "/nonexistent/ghost.wasm", json!({}))],
    )
    .await
    .unwrap_err();
    assert!(matches!(err, LoadError::MissingFile { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/ghost.wasm"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"\0asm not really").unwrap();
    let err = load(
        &rt,
        vec![adapter("junk", junk.to_str().unwrap(), json!({}))],
    )
    .await
    .unwrap_err();
    assert!(matches!(err, LoadError::Compile { .. }), "{err}");

    // A valid component that implements neither world: a core module wrapped
    // as a component with no exports.
    let empty = dir.path().join("empty.wasm");
    std::fs::write(&empty, wasmtime_component_bytes()).unwrap();
    let err = load(
        &rt,
        vec![adapter("empty", empty.to_str().unwrap(), json!({}))],
    )
    .await
    .unwrap_err();
    assert!(matches!(err, LoadError::UnknownWorld { .. }), "{err}");
    assert!(
        err.to_string().contains("does not implement a known world"),
        "{err}"
    );

    let err = rt
        .load(AdaptersSource::Inline(r#"[{"name":"x"}]"#.into()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("adapter `x`"), "{err}");
}

/// The smallest valid component: the binary header of an empty component.
fn wasmtime_component_bytes() -> Vec<u8> {
    // magic, then version 0x0d with layer 1 (component).
    vec![0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]
}

#[tokio::test]
async fn chain_lookup_fails_clearly_for_unknown_or_repeated_names() {
    let rt = runtime();
    load(
        &rt,
        vec![
            adapter("a", guests::BAD_HEADERS, json!({})),
            adapter("m", guests::USAGE_LOG, json!({})),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        rt.chain(&["a", "nope"]).err(),
        Some(ChainError::Unknown("nope".into()))
    );
    assert_eq!(
        rt.chain(&["a", "a"]).err(),
        Some(ChainError::Repeated("a".into()))
    );
    let chain = rt.chain(&["m", "a"]).unwrap();
    assert_eq!(chain.filters.names(), ["a"]);
    assert_eq!(chain.meters.names(), ["m"]);
}

#[tokio::test]
async fn removed_adapters_fail_closed_in_existing_chains() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("edge.wasm");
    std::fs::copy(guests::HEADER_REWRITE, &wasm).unwrap();
    let file = write_adapters(dir.path(), &wasm, set_x("v1"));
    let rt = runtime();
    rt.load(AdaptersSource::File(file.clone())).await.unwrap();
    let chain = rt.chain(&["edge"]).unwrap();
    std::fs::write(&file, r#"{"adapters":[]}"#).unwrap();
    let report = rt.reload().await;
    assert!(
        matches!(report.outcomes[..], [ReloadOutcome::Removed { .. }]),
        "{report:?}"
    );
    let err = chain
        .filters
        .on_request(&mut request("/"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, FailureKind::Removed);
    assert!(rt.chain(&["edge"]).is_err());
}
