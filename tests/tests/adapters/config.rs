//! Adapter configuration errors: each stops `serve` and `check-config` with exit
//! code 2 and one line naming the variable (and the adapter or field).

use mte_relay_tests::guests::{component, declaration};
use mte_relay_tests::relay::run;
use serde_json::json;

use crate::support::{CLIENT_ID_SECRET, adapters_json};

/// Runs `serve` and `check-config` with the base settings plus `extra`; both must
/// exit 2 with one stderr line containing every one of `expected`.
pub fn refused(extra: &[(&str, &str)], expected: &[&str]) {
    let mut env = Vec::new();
    if !extra.iter().any(|(name, _)| *name == "DOMAIN_MAP") {
        env.extend([
            ("UPSTREAM", "http://127.0.0.1:9"),
            ("CLIENT_ID_SECRET", CLIENT_ID_SECRET),
        ]);
    }
    env.extend_from_slice(extra);
    for command in ["serve", "check-config"] {
        let finished = run(&[command], &env);
        assert_eq!(
            finished.status.code(),
            Some(2),
            "{command} with {extra:?}: {}",
            finished.stderr
        );
        let line = finished.stderr.trim();
        assert_eq!(line.lines().count(), 1, "{command}: one line: {line}");
        for needle in expected {
            assert!(line.contains(needle), "{command}: `{needle}` in: {line}");
        }
    }
}

#[test]
fn both_adapters_and_adapters_file_are_refused() {
    refused(
        &[("ADAPTERS", "[]"), ("ADAPTERS_FILE", "/nonexistent.json")],
        &["ADAPTERS", "not both"],
    );
}

#[test]
fn malformed_declarations_name_the_variable_and_field() {
    refused(&[("ADAPTERS", "{not json")], &["ADAPTERS"]);
    let unknown_field = adapters_json(vec![declaration(
        "a",
        "header-rewrite",
        json!({ "deadline": 5 }),
    )]);
    refused(
        &[("ADAPTERS", &unknown_field)],
        &["ADAPTERS", "unknown field `deadline`"],
    );
    let bad_policy = adapters_json(vec![declaration(
        "a",
        "header-rewrite",
        json!({ "failure_policy": "sometimes" }),
    )]);
    refused(
        &[("ADAPTERS", &bad_policy)],
        &["ADAPTERS", "failure_policy"],
    );
}

#[test]
fn a_missing_component_file_is_refused() {
    let missing = adapters_json(vec![
        json!({ "name": "ghost", "path": "/nonexistent/ghost.wasm" }),
    ]);
    refused(&[("ADAPTERS", &missing)], &["ADAPTERS", "ghost"]);
    refused(
        &[("ADAPTERS_FILE", "/nonexistent/adapters.json")],
        &["ADAPTERS_FILE", "/nonexistent/adapters.json"],
    );
}

#[test]
fn a_file_that_is_not_a_component_of_a_known_world_is_refused() {
    let dir = std::env::temp_dir().join(format!("mte-relay-adapters-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let not_wasm = dir.join("not-wasm.wasm");
    std::fs::write(&not_wasm, b"this is text, not a component").expect("write");
    let declared = adapters_json(vec![json!({ "name": "text", "path": not_wasm })]);
    refused(&[("ADAPTERS", &declared)], &["ADAPTERS", "text"]);

    // A core module (not a component) fails the same way.
    let core_module = dir.join("core.wasm");
    std::fs::write(&core_module, b"\0asm\x01\0\0\0").expect("write");
    let declared = adapters_json(vec![json!({ "name": "core", "path": core_module })]);
    refused(&[("ADAPTERS", &declared)], &["ADAPTERS", "core"]);

    // A valid but empty component implements neither world.
    let empty_component = dir.join("empty.wasm");
    std::fs::write(&empty_component, b"\0asm\x0d\0\x01\0").expect("write");
    let declared = adapters_json(vec![json!({ "name": "empty", "path": empty_component })]);
    refused(
        &[("ADAPTERS", &declared)],
        &["ADAPTERS", "empty", "does not implement a known world"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_chain_naming_an_undeclared_instance_is_refused() {
    let declared = adapters_json(vec![declaration(
        "rewrite",
        "header-rewrite",
        json!({ "config": {} }),
    )]);
    refused(
        &[
            ("ADAPTERS", &declared),
            ("ADAPTER_CHAIN", "rewrite,missing"),
        ],
        &["ADAPTER_CHAIN", "missing"],
    );
    let domain_map = json!({ "api.example.com": {
        "upstream": "http://127.0.0.1:9",
        "client_id_secret": CLIENT_ID_SECRET,
        "adapters": ["missing"],
    }})
    .to_string();
    refused(
        &[("ADAPTERS", &declared), ("DOMAIN_MAP", &domain_map)],
        &["DOMAIN_MAP[\"api.example.com\"].adapters", "missing"],
    );
    refused(
        &[("ADAPTER_CHAIN", "rewrite")],
        &["ADAPTER_CHAIN", "neither ADAPTERS nor ADAPTERS_FILE"],
    );
}

#[test]
fn check_config_loads_valid_adapters_and_shows_the_chain() {
    let declared = adapters_json(vec![
        declaration("rewrite", "header-rewrite", json!({ "config": {} })),
        declaration("usage", "usage-log", json!({})),
    ]);
    let finished = run(
        &["check-config"],
        &[
            ("UPSTREAM", "http://127.0.0.1:9"),
            ("CLIENT_ID_SECRET", CLIENT_ID_SECRET),
            ("ADAPTERS", &declared),
            ("ADAPTER_CHAIN", "rewrite,usage"),
        ],
    );
    assert!(finished.status.success(), "{}", finished.stderr);
    let json_end = finished.stdout.rfind("\nexport ").expect("export line");
    let effective: serde_json::Value =
        serde_json::from_str(&finished.stdout[..json_end]).expect("JSON configuration");
    let adapters = &effective["adapters"];
    assert_eq!(adapters["declared_in"], "ADAPTERS (inline)");
    let loaded = adapters["loaded"].as_array().expect("loaded adapters");
    let described: Vec<(&str, &str)> = loaded
        .iter()
        .map(|entry| {
            (
                entry["name"].as_str().expect("name"),
                entry["world"].as_str().expect("world"),
            )
        })
        .collect();
    assert_eq!(described, [("rewrite", "filter"), ("usage", "meter")]);
    assert_eq!(
        effective["domain_map"]["*"]["adapters"],
        serde_json::json!(["rewrite", "usage"])
    );
    assert!(
        !finished
            .stdout
            .contains(&component("usage-log").display().to_string()),
        "inline declarations (and their configs, which may hold secrets) are not echoed: {}",
        finished.stdout
    );
}
