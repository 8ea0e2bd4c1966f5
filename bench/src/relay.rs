//! The real `mte-relay` binary as a child process, configured by environment.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::BenchError;

/// Lines of relay output kept for error messages.
const TAIL: usize = 20;

/// The client-id secret of the benchmark relay (any 32+ characters; loopback only).
const CLIENT_ID_SECRET: &str = "mte-relay-bench-client-id-secret-loopback-only";

/// How the benchmark relay is started.
#[derive(Clone, Debug)]
pub struct RelayOptions {
    /// Path of the `mte-relay` binary.
    pub binary: PathBuf,
    /// The upstream it forwards to.
    pub upstream: SocketAddr,
    /// `LOG_LEVEL` of the relay (`info` logs one access line per request).
    pub log_level: String,
    /// Bound on startup (until the `listening` log line).
    pub startup_timeout: Duration,
    /// More variables, such as `ADAPTERS` and `ADAPTER_CHAIN`.
    pub extra_env: Vec<(String, String)>,
}

/// A running relay, killed when dropped.
pub struct RelayProcess {
    child: Child,
    addr: SocketAddr,
    /// The admin listener (metrics), from the `admin listening` line.
    admin: Option<SocketAddr>,
}

type Tail = Arc<Mutex<VecDeque<String>>>;

/// Reads `pipe` to its end on a thread: every line goes to `tail`, and the address of
/// the first JSON `listening` line to `listening`. Reading on keeps the pipe from filling
/// up and blocking the relay.
fn follow(pipe: impl Read + Send + 'static, tail: Tail, listening: Option<mpsc::Sender<String>>) {
    std::thread::spawn(move || {
        let mut listening = listening;
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if listening.is_some()
                && let Some(address) = listening_address(&line)
                && let Some(sender) = listening.take()
            {
                let _ = sender.send(address);
            }
            if let Ok(mut tail) = tail.lock() {
                if tail.len() == TAIL {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        }
    });
}

/// The `address` of a JSON log line whose message is `listening`.
fn listening_address(line: &str) -> Option<String> {
    let json: serde_json::Value = serde_json::from_str(line).ok()?;
    if json["message"] != "listening" {
        return None;
    }
    json["address"].as_str().map(str::to_owned)
}

impl RelayProcess {
    /// Starts `binary serve` with only the variables below (the parent's environment is
    /// not inherited): one domain `"*"` forwarding to `upstream`, with `/echo` and
    /// `/echo/*` as pass-through routes (MTE requests to them stay MTE: the relay routes
    /// by the `x-mte-relay` header first), listening on an ephemeral loopback port.
    /// Blocks until the relay logs `listening`, at most `startup_timeout`.
    pub fn start(options: &RelayOptions) -> Result<RelayProcess, BenchError> {
        let binary = &options.binary;
        let fail = |message: String| BenchError::Relay {
            binary: binary.clone(),
            message,
        };
        if !binary.is_file() {
            return Err(fail(
                "no such file; build it with `cargo build --release -p mte-relay` or pass --relay-bin"
                    .to_owned(),
            ));
        }
        let upstream = format!("http://{}", options.upstream);
        let mut child = Command::new(binary)
            .arg("serve")
            .env_clear()
            .env("UPSTREAM", &upstream)
            .env("CLIENT_ID_SECRET", CLIENT_ID_SECRET)
            .env("PASS_THROUGH_ROUTES", "/echo,/echo/*")
            .env("BIND_ADDRESS", "127.0.0.1")
            .env("PORT", "0")
            // A free admin port too, so several relays (and a real one) can run at once.
            .env("ADMIN_PORT", "0")
            .env("LOG_FORMAT", "json")
            .env("LOG_LEVEL", &options.log_level)
            .envs(options.extra_env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| fail(format!("cannot start: {error}")))?;
        let tail: Tail = Arc::default();
        let (sender, receiver) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            follow(stdout, Arc::clone(&tail), Some(sender));
        }
        if let Some(stderr) = child.stderr.take() {
            follow(stderr, Arc::clone(&tail), None);
        }
        let address = receiver.recv_timeout(options.startup_timeout);
        let output = || {
            tail.lock()
                .map(|lines| lines.iter().cloned().collect::<Vec<_>>().join("\n"))
                .unwrap_or_default()
        };
        let address = match address {
            Ok(address) => address,
            Err(error) => {
                let _ = child.kill();
                let status = child.wait().ok();
                // The reader threads may still be draining; give them a moment.
                std::thread::sleep(Duration::from_millis(100));
                let why = match error {
                    mpsc::RecvTimeoutError::Timeout => format!(
                        "did not log `listening` within {:?}",
                        options.startup_timeout
                    ),
                    mpsc::RecvTimeoutError::Disconnected => {
                        format!("exited ({status:?}) before listening")
                    }
                };
                return Err(fail(format!("{why}; its last output:\n{}", output())));
            }
        };
        let addr = address.parse().map_err(|_| {
            let _ = child.kill();
            let _ = child.wait();
            fail(format!("logged an unparsable address {address:?}"))
        })?;
        // Logged before `listening`, so already in the tail.
        let admin = tail.lock().ok().and_then(|lines| {
            lines.iter().find_map(|line| {
                let json: serde_json::Value = serde_json::from_str(line).ok()?;
                (json["message"] == "admin listening")
                    .then(|| json["address"].as_str()?.parse().ok())?
            })
        });
        Ok(RelayProcess { child, addr, admin })
    }

    /// The relay's counter `name` from its `/metrics` (the sum over its series).
    pub fn metric(&self, name: &str) -> Option<f64> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(self.admin?).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        let values: Vec<f64> = text
            .lines()
            .filter(|line| line.starts_with(name) && line[name.len()..].starts_with([' ', '{']))
            .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
            .collect();
        (!values.is_empty()).then(|| values.iter().sum())
    }

    /// The address the relay listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The default relay binary: `target/release/mte-relay` under `CARGO_TARGET_DIR` when
/// that is set, else under `./target`.
pub fn default_binary() -> PathBuf {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    target
        .join("release")
        .join(format!("mte-relay{}", std::env::consts::EXE_SUFFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listening_line_gives_the_address() {
        let line =
            r#"{"timestamp":"t","level":"INFO","message":"listening","address":"127.0.0.1:4242"}"#;
        assert_eq!(listening_address(line).as_deref(), Some("127.0.0.1:4242"));
        assert_eq!(listening_address(r#"{"message":"other"}"#), None);
        assert_eq!(listening_address("listening on 127.0.0.1:1"), None);
    }
}
