//! `mte-relay request` against `mte-relay demo`, both as real processes. The demo
//! runs the example adapters, so requests carry its API key.

use std::time::Duration;

use mte_relay_tests::WAIT;
use mte_relay_tests::relay::{Relay, run, spawn};

use crate::support::CLIENT_ID_SECRET;

/// A port that was free a moment ago (the demo takes a fixed port, not port 0).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("ephemeral port")
}

#[test]
fn request_command_talks_to_the_demo() {
    let port = free_port().to_string();
    let mut demo = spawn(&["demo", "--port", &port], &[]);
    let banner = demo
        .stdout
        .wait_for(WAIT, |line| line.contains("Ctrl-C stops the demo"));
    if banner.is_none() {
        let _ = demo.child.kill();
        panic!("demo did not start: {}", demo.stderr.snapshot().join("\n"));
    }
    assert!(
        demo.stdout
            .snapshot()
            .iter()
            .any(|line| line.contains("x-api-key: demo-key")),
        "the banner shows the demo key"
    );
    // The banner names the metrics URL, and it answers.
    let metrics_url = demo
        .stdout
        .snapshot()
        .iter()
        .find_map(|line| {
            let at = line.find("http://")?;
            let url = line[at..].split_whitespace().next()?;
            url.ends_with("/metrics").then(|| url.to_owned())
        })
        .expect("the banner shows the metrics URL");
    let admin: std::net::SocketAddr = metrics_url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .parse()
        .expect("an address");
    let scrape = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(mte_relay_tests::client::get(admin, "admin", "/metrics"));
    assert_eq!(scrape.status(), 200);
    let base = format!("http://localhost:{port}");
    let key = "x-api-key: demo-key";

    let echo = run(
        &[
            "request",
            "-H",
            key,
            "-d",
            r#"{"hello":"world"}"#,
            &format!("{base}/echo?x=1"),
        ],
        &[],
    );
    assert!(echo.status.success(), "{}", echo.stderr);
    let json: serde_json::Value = serde_json::from_str(&echo.stdout).expect("echo JSON");
    assert_eq!(json["method"], "POST");
    assert_eq!(json["query"], "x=1");
    assert_eq!(json["body"], r#"{"hello":"world"}"#);
    // api-key-auth replaced the key by its label; header-rewrite named the client.
    assert_eq!(json["headers"]["x-api-key-label"][0], "demo");
    assert!(json["headers"].get("x-api-key").is_none(), "{json}");
    assert!(json["headers"]["x-relay-client"][0].is_string(), "{json}");

    // Without the key, api-key-auth answers 401 itself (encrypted, so exit 0).
    let unauthorized = run(&["request", "-i", &format!("{base}/echo")], &[]);
    assert!(unauthorized.status.success(), "{}", unauthorized.stderr);
    assert!(
        unauthorized.stdout.starts_with("HTTP/1.1 401"),
        "{}",
        unauthorized.stdout
    );
    assert!(
        unauthorized.stdout.contains("missing api key"),
        "{}",
        unauthorized.stdout
    );

    let included = run(
        &[
            "request",
            "-i",
            "--mode",
            "mte",
            "-H",
            "x-demo: 1",
            "-H",
            key,
            &format!("{base}/echo"),
        ],
        &[],
    );
    assert!(included.status.success(), "{}", included.stderr);
    assert!(
        included.stdout.starts_with("HTTP/1.1 200 OK"),
        "{}",
        included.stdout
    );
    assert!(
        included.stdout.contains(r#""x-demo":["1"]"#),
        "{}",
        included.stdout
    );
    assert!(
        included.stdout.contains("x-served-by: mte-relay/*"),
        "header-rewrite edits the response: {}",
        included.stdout
    );

    let events = run(
        &[
            "request",
            "-H",
            key,
            &format!("{base}/sse?count=2&interval_ms=10"),
        ],
        &[],
    );
    assert!(events.status.success(), "{}", events.stderr);
    assert_eq!(
        events.stdout.matches("event: tick").count(),
        2,
        "{}",
        events.stdout
    );

    // A registry error exits 3 with a one-line reason; a dead relay exits 1.
    let too_big = vec![b'x'; 70_000];
    let file = std::env::temp_dir().join(format!("mte-relay-cli-{port}.bin"));
    std::fs::write(&file, &too_big).expect("temp file");
    let refused = run(
        &[
            "request",
            "--mode",
            "mte",
            "-H",
            key,
            "--data-binary",
            &format!("@{}", file.display()),
            &format!("{base}/upload"),
        ],
        &[],
    );
    let _ = std::fs::remove_file(&file);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "MTE cap is a local error: {}",
        refused.stderr
    );
    assert_eq!(refused.stderr.lines().count(), 1, "{}", refused.stderr);

    // Nothing listens on a port that was free a moment ago.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let relay = Relay::start(&[
        ("UPSTREAM", closed.as_str()),
        ("CLIENT_ID_SECRET", CLIENT_ID_SECRET),
    ]);
    let unreachable = run(&["request", &format!("http://{}/echo", relay.addr())], &[]);
    assert_eq!(unreachable.status.code(), Some(3), "{}", unreachable.stderr);
    assert!(
        unreachable.stderr.contains("upstream-unreachable"),
        "{}",
        unreachable.stderr
    );

    let dead = run(
        &["request", &format!("http://127.0.0.1:{}/echo", free_port())],
        &[],
    );
    assert_eq!(dead.status.code(), Some(1), "{}", dead.stderr);
    assert!(
        dead.stderr.starts_with("mte-relay request: "),
        "{}",
        dead.stderr
    );

    let _ = demo.child.kill();
    let _ = demo.child.wait_timeout_or_kill(Duration::from_secs(5));
}

trait WaitOrKill {
    fn wait_timeout_or_kill(&mut self, limit: Duration) -> Option<std::process::ExitStatus>;
}

impl WaitOrKill for std::process::Child {
    fn wait_timeout_or_kill(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.kill();
        self.wait().ok()
    }
}
