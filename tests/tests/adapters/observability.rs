//! The Prometheus configuration and the Grafana dashboard in `deploy/`: promtool
//! accepts the configuration and the rules and passes the rules' unit tests, and every
//! metric a rule or a panel uses exists in a real scrape of the relay.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use http::Request;
use mte_relay_client::Mode;
use mte_relay_tests::client::{body_bytes, get};
use mte_relay_tests::guests::declaration;
use serde_json::json;

use crate::support::{RecordingUpstream, client, relay_with_chain_and};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn promtool(args: &[&str], dir: &Path) -> String {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|error| {
            panic!("promtool did not run ({error}); scripts/test.sh installs Debian's prometheus")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn promtool_accepts_the_configuration_and_the_rules_pass_their_tests() {
    let dir = deploy().join("prometheus");
    promtool(&["check", "config", "prometheus.yml"], &dir);
    let rules = promtool(&["check", "rules", "alerts.yml"], &dir);
    assert!(rules.contains("SUCCESS: 5 rules found"), "{rules}");
    let tested = promtool(&["test", "rules", "alerts.test.yml"], &dir);
    assert!(tested.contains("SUCCESS"), "{tested}");
    // Every alert has a test case.
    let alerts = std::fs::read_to_string(dir.join("alerts.yml")).expect("alerts.yml");
    let tests = std::fs::read_to_string(dir.join("alerts.test.yml")).expect("tests");
    for name in alerts
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- alert: "))
    {
        assert!(
            tests.contains(&format!("alertname: {name}")),
            "{name} has no test"
        );
    }
}

/// The outbound token of the relay whose metrics the dashboard test scrapes.
const OUTBOUND_TOKEN: &str = "an-outbound-token-for-the-dashboard-test-01";

/// Metric names in a PromQL text: `mte_relay_*` and `process_*` identifiers.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for prefix in ["mte_relay_", "process_"] {
        let mut rest = text;
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().last();
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                names.insert(tail[..end].to_owned());
            }
            rest = &tail[end..];
        }
    }
    names
}

#[tokio::test]
async fn every_metric_a_panel_or_a_rule_uses_exists_in_a_real_scrape() {
    let upstream = RecordingUpstream::start().await;
    let rewrite = declaration(
        "rewrite",
        "header-rewrite",
        json!({ "config": { "request": [{ "op": "set", "name": "x-seen", "value": "yes" }] } }),
    );
    let usage = declaration("usage", "usage-log", json!({ "config": {} }));
    // A peer relay, so this one also sends an outbound request (API Relay) and its
    // panels' metrics exist.
    let peer = mte_relay_tests::relay::Relay::start(&[
        ("UPSTREAM", upstream.url().as_str()),
        ("CLIENT_ID_SECRET", crate::support::CLIENT_ID_SECRET),
    ]);
    let peer_url = format!("http://{}", peer.addr());
    let relay = relay_with_chain_and(
        &upstream.url(),
        vec![rewrite, usage],
        "rewrite,usage",
        &[
            ("OUTBOUND_TOKEN", OUTBOUND_TOKEN),
            ("OUTBOUND_UPSTREAM", peer_url.as_str()),
            ("OUTBOUND_PEERS", peer_url.as_str()),
        ],
    );
    let client = client(&relay);
    for mode in [Mode::Mke, Mode::Mte] {
        let mut request = Request::post("/observed")
            .body(Bytes::from_static(b"{}"))
            .expect("request");
        request.extensions_mut().insert(mode);
        let response = client.send(request).await.expect("answered");
        response.into_body().collect_bytes().await.expect("body");
    }
    assert_eq!(
        get(relay.addr(), "localhost", "/observed").await.status(),
        559
    );
    let outbound = Request::get("/observed")
        .header("host", "localhost")
        .header("x-mte-outbound-token", OUTBOUND_TOKEN)
        .body(mte_relay_tests::upstream::full(Bytes::new()))
        .expect("request");
    assert_eq!(
        mte_relay_tests::client::send::<mte_relay_tests::upstream::TestBody>(
            relay.addr(),
            outbound
        )
        .await
        .status(),
        200,
        "an outbound request through the peer"
    );

    let scraped = mte_relay_tests::within("the usage meter's first call", async {
        loop {
            let scrape = get(relay.admin_addr(), "admin", "/metrics").await;
            let text = String::from_utf8(body_bytes(scrape).await.to_vec()).expect("utf-8");
            if text.contains(r#"hook="on-usage""#) {
                return text;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await;
    let exported: BTreeSet<String> = scraped
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| line.split(['{', ' ']).next().unwrap_or_default().to_owned())
        .collect();

    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(deploy().join("grafana/mte-relay.json")).expect("dashboard"),
    )
    .expect("the dashboard is JSON");
    let mut used = BTreeSet::new();
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 12, "the documented panels");
    for panel in panels {
        for target in panel["targets"].as_array().expect("targets") {
            used.extend(metric_names(target["expr"].as_str().expect("expr")));
        }
    }
    let rules = std::fs::read_to_string(deploy().join("prometheus/alerts.yml")).expect("rules");
    used.extend(metric_names(&rules));
    assert!(used.len() >= 15, "{used:?}");
    let missing: Vec<&String> = used
        .iter()
        .filter(|name| !exported.contains(*name))
        .collect();
    assert!(
        missing.is_empty(),
        "used by a panel or rule but not exported: {missing:?}\nexported: {exported:?}"
    );
}
