//! The deployment files in `deploy/`: the Kubernetes manifests pass
//! `kubernetes-validate --strict` and checkov, and the Kubernetes and compose files set
//! only variables the relay reads (a misspelt one would be ignored in production).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use mte_relay::config::env::VARIABLES;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn tool(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .current_dir(deploy())
        .output()
        .unwrap_or_else(|error| {
            panic!("{program} did not run ({error}); scripts/test.sh installs it from PyPI")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{program} {args:?} failed:\n{text}"
    );
    text
}

/// The YAML documents of `path` as JSON, through the linters' own Python (PyYAML).
fn yaml_documents(path: &Path) -> Vec<serde_json::Value> {
    let script =
        "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))";
    let json = tool("python3", &["-c", script, path.to_str().expect("utf-8")]);
    serde_json::from_str(&json).expect("YAML as JSON")
}

fn kubernetes_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy().join("kubernetes"))
        .expect("deploy/kubernetes")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_kubernetes_manifests_validate_and_pass_checkov() {
    let files = kubernetes_files();
    assert!(files.len() >= 4, "{files:?}");
    let mut args = vec!["--strict", "--quiet"];
    let names: Vec<String> = files
        .iter()
        .map(|path| path.to_str().expect("utf-8").to_owned())
        .collect();
    args.extend(names.iter().map(String::as_str));
    tool("kubernetes-validate", &args);
    let checked = tool(
        "checkov",
        &[
            "--quiet",
            "--compact",
            "--skip-download",
            "--framework",
            "kubernetes",
            "-d",
            "kubernetes",
        ],
    );
    assert!(!checked.contains("FAILED"), "{checked}");
    // Every kind the operations docs promise is there.
    let kinds: BTreeSet<String> = files
        .iter()
        .flat_map(|path| yaml_documents(path))
        .filter_map(|document| document["kind"].as_str().map(str::to_owned))
        .collect();
    for kind in [
        "Deployment",
        "Service",
        "Secret",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
    ] {
        assert!(kinds.contains(kind), "{kind} missing: {kinds:?}");
    }
}

#[test]
fn deployment_files_set_only_variables_the_relay_reads() {
    let known: BTreeSet<&str> = VARIABLES.iter().copied().collect();
    let mut set = Vec::new();
    for document in yaml_documents(&deploy().join("kubernetes/relay.yaml")) {
        if document["kind"] != "Deployment" {
            continue;
        }
        for container in document["spec"]["template"]["spec"]["containers"]
            .as_array()
            .expect("containers")
        {
            for variable in container["env"].as_array().expect("env") {
                set.push(variable["name"].as_str().expect("name").to_owned());
            }
        }
    }
    for document in yaml_documents(&deploy().join("kubernetes/secret.yaml")) {
        set.extend(
            document["stringData"]
                .as_object()
                .expect("stringData")
                .keys()
                .cloned(),
        );
    }
    let compose = &yaml_documents(&deploy().join("compose.yaml"))[0];
    set.extend(
        compose["services"]["mte-relay"]["environment"]
            .as_object()
            .expect("environment")
            .keys()
            .cloned(),
    );
    assert!(set.len() >= 10, "{set:?}");
    let unknown: Vec<&String> = set
        .iter()
        .filter(|name| {
            let base = name.strip_suffix("_FILE").unwrap_or(name);
            !known.contains(name.as_str()) && !known.contains(base)
        })
        .collect();
    assert!(
        unknown.is_empty(),
        "variables the relay does not read: {unknown:?}"
    );
    // Prometheus in the compose file mounts the scrape config and its rules.
    let volume = compose["services"]["prometheus"]["volumes"][0]
        .as_str()
        .expect("volume");
    let source = volume.split(':').next().expect("source");
    assert!(
        deploy().join(source).join("prometheus.yml").is_file(),
        "{volume}"
    );
}

#[tokio::test]
async fn the_demo_upstream_runs_alone_for_the_compose_file() {
    use mte_relay_tests::relay::{binary, free_port};
    let port = free_port();
    let mut child = std::process::Command::new(binary())
        .args(["demo-upstream", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("demo-upstream starts");
    let address: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let answered = mte_relay_tests::within("the demo upstream", async {
        loop {
            if tokio::net::TcpStream::connect(address).await.is_ok() {
                return mte_relay_tests::client::get(address, "localhost", "/health").await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(answered.status(), 200);
}

/// The API Relay compose file's two relays start with exactly the environment it gives
/// them (`check-config` validates it as `serve` would), and relay A sends to relay B.
#[test]
fn the_api_relay_compose_file_configures_two_relays_that_start() {
    let compose = &yaml_documents(&deploy().join("api-relay.compose.yaml"))[0];
    let services = compose["services"].as_object().expect("services");
    for name in ["relay-a", "relay-b"] {
        let environment = services[name]["environment"]
            .as_object()
            .expect("environment");
        let env: Vec<(&str, &str)> = environment
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str().expect("string values")))
            .collect();
        let finished = mte_relay_tests::relay::run(&["check-config"], &env);
        assert_eq!(
            finished.status.code(),
            Some(0),
            "{name}: {}\n{}",
            finished.stdout,
            finished.stderr
        );
        assert_eq!(
            environment["SECRET"], services["relay-a"]["environment"]["SECRET"],
            "both relays share SECRET"
        );
    }
    let peer = services["relay-a"]["environment"]["OUTBOUND_UPSTREAM"]
        .as_str()
        .expect("peer");
    assert_eq!(
        peer, "http://relay-b:8080",
        "relay A sends to relay B's data port"
    );
}
