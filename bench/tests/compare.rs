//! A small bounded comparison against the real relay binary (a debug build), so that
//! the load generator cannot rot: every scenario must run without errors and measure
//! latencies.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use mte_relay_bench::{Bound, CompareOptions, Load, Scenario, compare, render_table};

/// The `mte-relay` binary next to this test executable, built by a nested cargo (cargo
/// does not build another package's binary for our tests; when fresh this is a no-op).
fn relay_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            // .../<target>/<profile>/deps/<test-exe>
            let exe = std::env::current_exe().expect("test executable path");
            let profile_dir = exe
                .parent()
                .and_then(|deps| deps.parent())
                .expect("target/<profile> directory")
                .to_path_buf();
            let target_dir = profile_dir
                .parent()
                .expect("target directory")
                .to_path_buf();
            let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
            let mut build = Command::new(env!("CARGO"));
            build
                .args(["build", "--quiet", "-p", "mte-relay", "--bin", "mte-relay"])
                .arg("--manifest-path")
                .arg(&manifest)
                .env("CARGO_TARGET_DIR", &target_dir);
            // Per-package variables cargo gives a test process would make build
            // scripts that track them (ring's) rerun in the nested build.
            for (name, _) in std::env::vars_os() {
                let name = name.to_string_lossy();
                let per_package = name.starts_with("CARGO_PKG_")
                    || name.starts_with("CARGO_MANIFEST_")
                    || name.starts_with("CARGO_BIN_")
                    || matches!(
                        name.as_ref(),
                        "CARGO_CRATE_NAME"
                            | "CARGO_PRIMARY_PACKAGE"
                            | "CARGO_TARGET_TMPDIR"
                            | "OUT_DIR"
                    );
                if per_package {
                    build.env_remove(name.as_ref());
                }
            }
            if profile_dir
                .file_name()
                .is_some_and(|name| name == "release")
            {
                build.arg("--release");
            }
            let status = build.status().expect("run cargo build for mte-relay");
            assert!(status.success(), "building mte-relay failed");
            let binary = profile_dir.join(format!("mte-relay{}", std::env::consts::EXE_SUFFIX));
            assert!(binary.exists(), "{} missing", binary.display());
            binary
        })
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_four_scenarios_run_without_errors() {
    const REQUESTS: u64 = 300;
    let options = CompareOptions {
        relay_bin: relay_binary(),
        relay_log_level: "info".into(),
        load: Load {
            concurrency: 4,
            bound: Bound::Requests(REQUESTS),
            payload: 1024,
            path: "/echo".into(),
            request_timeout: Duration::from_secs(20),
        },
        pairs: 2,
        scenarios: Scenario::ALL.to_vec(),
    };
    let run = tokio::time::timeout(Duration::from_secs(120), compare(&options, |_| {}));
    let reports = run
        .await
        .expect("the comparison finished in time")
        .expect("the comparison ran");
    let table = render_table(&reports);
    let scenarios: Vec<Scenario> = reports.iter().map(|report| report.scenario).collect();
    assert_eq!(scenarios, Scenario::ALL.to_vec(), "{table}");
    for report in &reports {
        assert_eq!(report.errors(), 0, "{table}");
        assert_eq!(report.ok, REQUESTS, "{table}");
        assert_eq!(report.latencies.len() as u64, REQUESTS, "{table}");
        assert!(report.latencies.quantile(0.99).is_some(), "{table}");
        assert!(report.rate() > 0.0, "{table}");
    }
}

#[tokio::test]
async fn a_missing_relay_binary_is_a_clear_error() {
    let options = CompareOptions {
        relay_bin: PathBuf::from("/nonexistent/mte-relay"),
        relay_log_level: "info".into(),
        load: Load {
            concurrency: 1,
            bound: Bound::Requests(1),
            payload: 1,
            path: "/echo".into(),
            request_timeout: Duration::from_secs(5),
        },
        pairs: 1,
        scenarios: vec![Scenario::Passthrough],
    };
    let error = compare(&options, |_| {})
        .await
        .expect_err("no relay binary");
    let message = error.to_string();
    assert!(
        message.contains("/nonexistent/mte-relay") && message.contains("no such file"),
        "{message}"
    );
}
