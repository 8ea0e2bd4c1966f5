//! The Python example adapter (adapters/py-path-guard), built with componentize-py
//! and run under wasmtime. Skips loudly only when componentize-py is missing;
//! scripts/install-adapter-toolchain.sh installs it, so CI always runs this.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{adapter, header, load, request, runtime};
use mte_relay_adapter_runtime::RequestOutcome;
use serde_json::json;

fn componentize_py_available() -> bool {
    Command::new("componentize-py")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn python_adapter_guards_paths() {
    if !componentize_py_available() {
        eprintln!(
            "\n!!! SKIPPED python_adapter_guards_paths: componentize-py is not installed.\n\
             !!! Run scripts/install-adapter-toolchain.sh to run this test.\n"
        );
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../adapters/py-path-guard");
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("py_path_guard.wasm");
    let status = Command::new(root.join("build.sh"))
        .arg(&wasm)
        .status()
        .unwrap();
    assert!(status.success(), "building the Python adapter failed");

    let rt = runtime();
    load(
        &rt,
        vec![adapter(
            "guard",
            wasm.to_str().unwrap(),
            json!({ "memory_mb": 256, "deadline_ms": 2000,
                    "config": { "deny_prefixes": ["/admin"], "tag_header": "x-guard" } }),
        )],
    )
    .await
    .unwrap();
    let chain = rt.chain(&["guard"]).unwrap();

    let mut allowed = request("/api/items?x=1");
    let outcome = chain.filters.on_request(&mut allowed).await.unwrap();
    assert!(
        matches!(outcome, RequestOutcome::Continue(_)),
        "{outcome:?}"
    );
    assert_eq!(header(&allowed.headers, "x-guard"), Some("allowed"));

    for path in ["/admin", "/admin/users"] {
        let RequestOutcome::Respond(reply) =
            chain.filters.on_request(&mut request(path)).await.unwrap()
        else {
            panic!("{path} must be refused");
        };
        assert_eq!(reply.status, 403);
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["prefix"], "/admin");
    }
    // `/administrator` is not below `/admin`.
    let outcome = chain
        .filters
        .on_request(&mut request("/administrator"))
        .await
        .unwrap();
    assert!(matches!(outcome, RequestOutcome::Continue(_)));
}
