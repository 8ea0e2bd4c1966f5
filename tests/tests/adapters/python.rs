//! The Python example adapter (`adapters/py-path-guard`, built here with
//! componentize-py) inside the real relay. The test command installs componentize-py
//! (scripts/install-adapter-toolchain.sh); without it this test fails and says so.

use std::path::PathBuf;
use std::process::Command;

use http::StatusCode;
use serde_json::json;

use crate::support::{RecordingUpstream, client, get, relay_with_chain};

/// Builds the component into a fresh temporary directory; returns its path.
fn build_py_path_guard() -> PathBuf {
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../adapters/py-path-guard");
    let dir = std::env::temp_dir().join(format!("mte-relay-py-guard-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let wasm = dir.join("py_path_guard.wasm");
    let status = Command::new("bash")
        .arg(source.join("build.sh"))
        .arg(&wasm)
        .status()
        .unwrap_or_else(|error| panic!("cannot run build.sh: {error}"));
    assert!(
        status.success(),
        "building the Python adapter failed (is componentize-py installed? \
         scripts/install-adapter-toolchain.sh installs it)"
    );
    wasm
}

#[tokio::test]
async fn the_python_adapter_guards_paths_through_the_relay() {
    let wasm = build_py_path_guard();
    let upstream = RecordingUpstream::start().await;
    let declaration = json!({
        "name": "guard",
        "path": wasm,
        // CPython in a component needs more memory and time than a Rust guest.
        "memory_mb": 256,
        "deadline_ms": 2000,
        "config": { "deny_prefixes": ["/admin"], "tag_header": "x-guard" },
    });
    let relay = relay_with_chain(&upstream.url(), vec![declaration], "guard");
    let client = client(&relay);

    let allowed = get(&client, "/items?x=1", &[]).await;
    assert_eq!(allowed.status, StatusCode::OK);
    assert_eq!(
        upstream.seen_for("/items?x=1")[0].headers["x-guard"],
        "allowed"
    );

    let refused = get(&client, "/admin/users", &[]).await;
    assert_eq!(
        refused.status,
        StatusCode::FORBIDDEN,
        "the adapter's own answer"
    );
    let body: serde_json::Value = serde_json::from_slice(&refused.body).expect("JSON");
    assert_eq!(body["prefix"], "/admin");
    assert!(upstream.seen_for("/admin/users").is_empty());
    let _ = std::fs::remove_dir_all(wasm.parent().expect("dir"));
}
