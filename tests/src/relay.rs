//! Starting the real `mte-relay` binary.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::WAIT;

/// Path of the `mte-relay` binary, built (once per test process) next to this test
/// executable. Cargo does not build another package's binary for our tests, so the
/// harness asks cargo for it; when it is fresh that is a no-op.
///
/// The inner build selects the whole workspace with its test targets, as
/// `cargo test --workspace` does. Selecting only `-p mte-relay` would resolve
/// features without the other members and their dev-dependencies, and cargo would
/// compile a second copy of the dependencies that differ (wasmtime among them, about
/// ten minutes on two cores) just for this binary.
pub fn binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            // .../target/<profile>/deps/<test-exe>
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
                .args(["build", "--quiet", "--workspace", "--tests", "--bins"])
                .arg("--manifest-path")
                .arg(&manifest)
                .env("CARGO_TARGET_DIR", &target_dir);
            // Cargo gives a test process its package's variables (CARGO_MANIFEST_DIR,
            // CARGO_PKG_*, ...). Some build scripts (ring's) track those, so passing
            // them on would make the inner build redo them on every run.
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

/// Lines a process printed, shared with the threads that read its pipes.
#[derive(Clone, Default)]
pub struct Lines {
    inner: Arc<(Mutex<Vec<String>>, Condvar)>,
}

impl Lines {
    fn push(&self, line: String) {
        let (lines, changed) = &*self.inner;
        lines.lock().expect("lines lock").push(line);
        changed.notify_all();
    }

    pub fn snapshot(&self) -> Vec<String> {
        self.inner.0.lock().expect("lines lock").clone()
    }

    /// Waits (at most `timeout`) for a line satisfying `predicate` and returns it.
    pub fn wait_for(&self, timeout: Duration, predicate: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let (lines, changed) = &*self.inner;
        let mut guard = lines.lock().expect("lines lock");
        loop {
            if let Some(line) = guard.iter().find(|line| predicate(line)) {
                return Some(line.clone());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            guard = changed.wait_timeout(guard, left).expect("lines lock").0;
        }
    }

    fn follow(&self, pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<()> {
        let lines = self.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                match line {
                    Ok(line) => lines.push(line),
                    Err(_) => break,
                }
            }
        })
    }
}

/// A running relay, killed when dropped.
pub struct Relay {
    child: Child,
    addr: SocketAddr,
    stdout: Lines,
    stderr: Lines,
}

/// The environment every test relay gets before the test's own variables: loopback,
/// an ephemeral port, and JSON logs (the harness parses them).
const BASE_ENV: &[(&str, &str)] = &[
    ("BIND_ADDRESS", "127.0.0.1"),
    ("PORT", "0"),
    // Tests run many relays at once: each admin listener takes a free port too.
    ("ADMIN_PORT", "0"),
    ("LOG_FORMAT", "json"),
    ("LOG_LEVEL", "debug"),
];

/// Spawns `mte-relay <args>` with exactly `BASE_ENV` plus `env` (the parent's
/// environment is not inherited, so a developer's DOMAIN_MAP cannot leak in).
pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Spawned {
    let mut command = Command::new(binary());
    command
        .args(args)
        .env_clear()
        .envs(BASE_ENV.iter().copied())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn mte-relay");
    let stdout = Lines::default();
    let stderr = Lines::default();
    let readers = [
        stdout.follow(child.stdout.take().expect("stdout pipe")),
        stderr.follow(child.stderr.take().expect("stderr pipe")),
    ];
    Spawned {
        child,
        stdout,
        stderr,
        readers,
    }
}

/// A spawned relay process and the threads collecting its output.
pub struct Spawned {
    pub child: Child,
    pub stdout: Lines,
    pub stderr: Lines,
    readers: [std::thread::JoinHandle<()>; 2],
}

impl Relay {
    /// Starts `mte-relay serve` and waits until it logs the address it listens on.
    pub fn start(env: &[(&str, &str)]) -> Relay {
        let Spawned {
            mut child,
            stdout,
            stderr,
            ..
        } = spawn(&["serve"], env);
        let listening = stdout.wait_for(WAIT, |line| {
            parse(line).is_some_and(|json| json["message"] == "listening")
        });
        let Some(line) = listening else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "relay did not report listening.\nstdout:\n{}\nstderr:\n{}",
                stdout.snapshot().join("\n"),
                stderr.snapshot().join("\n")
            );
        };
        let addr = parse(&line)
            .and_then(|json| json["address"].as_str().map(str::to_owned))
            .and_then(|address| address.parse().ok())
            .expect("listening line has an address");
        Relay {
            child,
            addr,
            stdout,
            stderr,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin listener's address, from the `admin listening` log line (logged
    /// before the data listener binds).
    pub fn admin_addr(&self) -> SocketAddr {
        self.stdout
            .snapshot()
            .iter()
            .filter_map(|line| parse(line))
            .find(|json| json["message"] == "admin listening")
            .and_then(|json| json["address"].as_str().and_then(|a| a.parse().ok()))
            .expect("the relay logged its admin address")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every log line so far (stdout: the relay logs there).
    pub fn logs(&self) -> Vec<String> {
        self.stdout.snapshot()
    }

    /// Log lines parsed as JSON.
    pub fn json_logs(&self) -> Vec<serde_json::Value> {
        self.logs().iter().filter_map(|line| parse(line)).collect()
    }

    pub fn stderr(&self) -> Vec<String> {
        self.stderr.snapshot()
    }

    /// Waits for a JSON log line satisfying `predicate`.
    pub fn wait_for_log(
        &self,
        predicate: impl Fn(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        self.stdout
            .wait_for(WAIT, |line| {
                parse(line).is_some_and(|json| predicate(&json))
            })
            .and_then(|line| parse(&line))
    }

    /// The access log line of the request with this `x-request-id`.
    pub fn access_line(&self, request_id: &str) -> Option<serde_json::Value> {
        self.wait_for_log(|json| {
            json["target"] == "mte_relay::access" && json["request_id"] == request_id
        })
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        signal(self.child.id(), "TERM");
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        wait_bounded(&mut self.child, WAIT).expect("relay did not exit in time")
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The result of running the binary to completion.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `mte-relay <args>` to completion (bounded) with `env` on top of the base env.
pub fn run(args: &[&str], env: &[(&str, &str)]) -> Finished {
    let Spawned {
        mut child,
        stdout,
        stderr,
        readers,
    } = spawn(args, env);
    let status = match wait_bounded(&mut child, WAIT) {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mte-relay {args:?} did not finish");
        }
    };
    // The pipes reach end of file once the process is gone; read them to the end.
    for reader in readers {
        let _ = reader.join();
    }
    Finished {
        status,
        stdout: stdout.snapshot().join("\n"),
        stderr: stderr.snapshot().join("\n"),
    }
}

fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends a signal with the system's `kill` (the workspace forbids `unsafe`, so no libc).
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}

pub fn parse(line: &str) -> Option<serde_json::Value> {
    serde_json::from_str(line).ok()
}

impl Relay {
    /// Like [`Relay::start`], but returns the relay's output instead of panicking when
    /// it does not come up (for example its fixed `PORT` is still taken), so that a
    /// caller can retry.
    pub fn try_start(env: &[(&str, &str)]) -> Result<Relay, String> {
        let Spawned {
            mut child,
            stdout,
            stderr,
            ..
        } = spawn(&["serve"], env);
        // Poll in short steps, so a relay that exits (its port is taken) fails fast.
        let deadline = Instant::now() + WAIT;
        let mut listening = None;
        while listening.is_none() && Instant::now() < deadline {
            listening = stdout.wait_for(Duration::from_millis(100), |line| {
                parse(line).is_some_and(|json| json["message"] == "listening")
            });
            if listening.is_none() && child.try_wait().ok().flatten().is_some() {
                break;
            }
        }
        let address = listening
            .and_then(|line| parse(&line))
            .and_then(|json| json["address"].as_str().map(str::to_owned))
            .and_then(|address| address.parse::<SocketAddr>().ok());
        match address {
            Some(addr) => Ok(Relay {
                child,
                addr,
                stdout,
                stderr,
            }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!(
                    "relay did not report listening.\nstdout:\n{}\nstderr:\n{}",
                    stdout.snapshot().join("\n"),
                    stderr.snapshot().join("\n")
                ))
            }
        }
    }

    /// Starts a relay on `port` (which must be a fixed port, not 0), retrying for up to
    /// [`WAIT`] while the port is not free yet (a previous relay on it is exiting).
    pub fn start_on_port(port: u16, env: &[(&str, &str)]) -> Relay {
        let port = port.to_string();
        let mut with_port: Vec<(&str, &str)> = env.to_vec();
        with_port.push(("PORT", &port));
        let deadline = Instant::now() + WAIT;
        loop {
            match Relay::try_start(&with_port) {
                Ok(relay) => return relay,
                Err(output) if Instant::now() >= deadline => {
                    panic!("relay did not start on port {port}: {output}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Kills the process (SIGKILL) and waits for it to exit: in-memory state is lost.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port that was free a moment ago: bound to `127.0.0.1:0` and released.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("bound address").port()
}
