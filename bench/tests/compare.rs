//! A small bounded comparison against the real relay binary (a debug build), so that
//! the load generator cannot rot: every scenario must run without errors and measure
//! latencies.

use std::path::PathBuf;
use std::time::Duration;

use mte_relay_bench::{Bound, CompareOptions, Load, Scenario, compare, render_table};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_without_errors() {
    const REQUESTS: u64 = 300;
    let options = CompareOptions {
        relay_bin: mte_relay_tests::relay::binary(),
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
