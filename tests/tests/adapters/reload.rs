//! Hot reload through the real relay: SIGHUP and a changed `ADAPTERS_FILE` swap in
//! the new version; a version that fails to initialise leaves the old one serving.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use http::StatusCode;
use mte_relay_client::RelayClient;
use mte_relay_tests::guests::declaration;
use mte_relay_tests::relay::{Relay, signal};
use serde_json::json;

use crate::support::{CLIENT_ID_SECRET, RecordingUpstream, adapters_json, client, get};

/// `ADAPTERS_FILE` contents: one `header-rewrite` instance setting `x-version`.
fn rewrite_file(path: &Path, value: &str) {
    let declared = adapters_json(vec![declaration(
        "rewrite",
        "header-rewrite",
        json!({ "config": { "request": [{ "op": "set", "name": "x-version", "value": value }] } }),
    )]);
    // Written to a side file and renamed, so the watcher never reads half a file.
    let partial = path.with_extension("partial");
    std::fs::write(&partial, declared).expect("write declarations");
    std::fs::rename(&partial, path).expect("replace declarations");
}

/// The `x-version` the upstream sees for a fresh request, polled until it equals
/// `expected` or a bounded wait ends; returns the last value seen.
async fn version_reaching_upstream(
    client: &RelayClient,
    upstream: &RecordingUpstream,
    expected: &str,
) -> String {
    let deadline = Instant::now() + mte_relay_tests::WAIT;
    let mut n = 0;
    loop {
        n += 1;
        let path = format!("/version?n={n}");
        let answer = get(client, &path, &[]).await;
        assert_eq!(answer.status, StatusCode::OK);
        let seen = upstream.seen_for(&path);
        let version = seen[0].headers["x-version"]
            .to_str()
            .expect("text")
            .to_owned();
        if version == expected || Instant::now() >= deadline {
            return version;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn start(upstream: &RecordingUpstream, file: &Path) -> Relay {
    Relay::start(&[
        ("UPSTREAM", upstream.url().as_str()),
        ("CLIENT_ID_SECRET", CLIENT_ID_SECRET),
        ("ADAPTERS_FILE", &file.to_string_lossy()),
        ("ADAPTER_CHAIN", "rewrite"),
    ])
}

fn temp_file(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mte-relay-reload-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join("adapters.json")
}

/// A relay whose `ADAPTERS_FILE` (in a directory named after `test`) sets `x-version:
/// v1`, checked to reach the upstream.
async fn serving_v1(test: &str) -> (RecordingUpstream, PathBuf, Relay, RelayClient) {
    let upstream = RecordingUpstream::start().await;
    let file = temp_file(test);
    rewrite_file(&file, "v1");
    let relay = start(&upstream, &file);
    let client = client(&relay);
    assert_eq!(
        version_reaching_upstream(&client, &upstream, "v1").await,
        "v1"
    );
    (upstream, file, relay, client)
}

#[tokio::test]
async fn sighup_swaps_in_a_new_version_and_a_broken_one_leaves_the_old_serving() {
    let (upstream, file, relay, client) = serving_v1("sighup").await;

    rewrite_file(&file, "v2");
    signal(relay.pid(), "HUP");
    assert_eq!(
        version_reaching_upstream(&client, &upstream, "v2").await,
        "v2"
    );

    // header-rewrite refuses an unknown template at init: the new version is
    // refused, the old one keeps serving, and the relay says why.
    rewrite_file(&file, "{unknown_placeholder}");
    signal(relay.pid(), "HUP");
    relay
        .wait_for_log(|json| {
            json["adapter"] == "rewrite"
                && json["message"]
                    .as_str()
                    .is_some_and(|line| line.contains("old version keeps serving"))
        })
        .expect("the refused version is logged");
    let answer = get(&client, "/after-refusal", &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        upstream.seen_for("/after-refusal")[0].headers["x-version"],
        "v2"
    );
    let _ = std::fs::remove_dir_all(file.parent().expect("dir"));
}

#[tokio::test]
async fn a_changed_adapters_file_is_picked_up_without_a_signal() {
    let (upstream, file, _relay, client) = serving_v1("watch").await;

    rewrite_file(&file, "v2");
    assert_eq!(
        version_reaching_upstream(&client, &upstream, "v2").await,
        "v2",
        "the watcher reloads a changed file"
    );
    let _ = std::fs::remove_dir_all(file.parent().expect("dir"));
}
