//! Real `redis-server` processes for the tests: one node, or a small Redis Cluster, on
//! loopback ports, without persistence, killed when dropped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::WAIT;
use crate::relay::free_port;

/// One `redis-server` on `127.0.0.1`.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    tls_port: Option<u16>,
    dir: PathBuf,
    extra: Vec<String>,
}

impl RedisServer {
    /// A fresh server on a free port.
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// A fresh server on `port`, which the caller chose (a relay may already be
    /// trying to reach it).
    pub fn start_on_port(port: u16) -> RedisServer {
        let mut server = RedisServer::unstarted(&[]);
        server.port = port;
        server.restart();
        server
    }

    /// A server speaking TLS only, with `certificate`, on a free port; `extra` are more
    /// arguments (`--requirepass`). The plain port stays open on loopback for the
    /// harness's own commands.
    pub fn start_tls(certificate: &crate::tls::TestCertificate, extra: &[&str]) -> RedisServer {
        let tls_port = free_port().to_string();
        let mut args = vec![
            "--tls-port",
            tls_port.as_str(),
            "--tls-cert-file",
            certificate.pem_path_str(),
            "--tls-key-file",
            certificate.key_path.to_str().expect("UTF-8 temp path"),
            "--tls-auth-clients",
            "no",
        ];
        args.extend_from_slice(extra);
        let mut server = RedisServer::start_with(&args);
        server.tls_port = tls_port.parse().ok();
        server
    }

    /// `rediss://127.0.0.1:<tls port>` for a server started with [`RedisServer::start_tls`].
    pub fn tls_url(&self) -> String {
        format!(
            "rediss://127.0.0.1:{}",
            self.tls_port.expect("started with TLS")
        )
    }

    /// A fresh server with extra `redis-server` arguments (`--cluster-enabled yes`).
    pub fn start_with(extra: &[&str]) -> RedisServer {
        let mut server = RedisServer::unstarted(extra);
        // A free port may be taken between the probe and the bind: try a few.
        let mut failure = String::new();
        for _ in 0..5 {
            server.port = free_port();
            match server.launch() {
                Ok(()) => return server,
                Err(error) => failure = error,
            }
        }
        panic!(
            "redis-server did not start (is it installed? scripts/test.sh installs it): {failure}"
        );
    }

    fn unstarted(extra: &[&str]) -> RedisServer {
        let dir = std::env::temp_dir().join(format!(
            "mte-relay-redis-{}-{}",
            std::process::id(),
            unique()
        ));
        std::fs::create_dir_all(&dir).expect("create the server's directory");
        RedisServer {
            child: None,
            port: 0,
            tls_port: None,
            dir,
            extra: extra.iter().map(|arg| (*arg).to_owned()).collect(),
        }
    }

    fn launch(&mut self) -> Result<(), String> {
        let mut command = Command::new("redis-server");
        command
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--dir", &self.dir.display().to_string()])
            .args(&self.extra)
            .args(["--logfile", &self.log_path().display().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = command.spawn().map_err(|error| error.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "redis-server exited: {status}\n{}",
                    self.log_tail()
                ));
            }
            // A server with a password answers NOAUTH: it is up all the same.
            if self
                .command(&["PING"])
                .is_ok_and(|answer| answer.contains("PONG") || answer.contains("NOAUTH"))
            {
                self.child = Some(child);
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(format!(
            "redis-server did not answer PING\n{}",
            self.log_tail()
        ))
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join(format!("redis-{}.log", self.port))
    }

    /// The last lines the server logged.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL): everything it held is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (after [`RedisServer::kill`]).
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + WAIT;
        while let Err(error) = self.launch() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not restart on port {}: {error}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends one command and returns the raw RESP answer, as text.
    pub fn command(&self, args: &[&str]) -> std::io::Result<String> {
        self.command_bytes(args)
            .map(|answer| String::from_utf8_lossy(&answer).into_owned())
    }

    /// Sends one command and returns the raw RESP answer, byte for byte.
    pub fn command_bytes(&self, args: &[&str]) -> std::io::Result<Vec<u8>> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes())?;
        let mut answer = Vec::new();
        let mut buffer = [0u8; 4096];
        // One read usually holds the whole answer; read until a short pause after it.
        loop {
            match stream.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => {
                    answer.extend_from_slice(&buffer[..read]);
                    stream.set_read_timeout(Some(Duration::from_millis(50)))?;
                }
                Err(error)
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) && !answer.is_empty() =>
                {
                    break;
                }
                Err(error) => return Err(error),
            }
        }
        Ok(answer)
    }

    /// Every key, through `KEYS *` (tests hold a handful).
    pub fn keys(&self) -> Vec<String> {
        let answer = self.command(&["KEYS", "*"]).expect("KEYS");
        answer
            .split("\r\n")
            .filter(|line| !line.is_empty() && !line.starts_with('*') && !line.starts_with('$'))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of `masters` nodes without replicas.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start(masters: usize) -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..masters)
            .map(|_| {
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-node-timeout",
                    "2000",
                ])
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect();
        let output = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            output.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        let cluster = RedisCluster { nodes };
        cluster.wait_ok();
        cluster
    }

    /// Waits until every node reports `cluster_state:ok`.
    pub fn wait_ok(&self) {
        let deadline = Instant::now() + WAIT;
        for node in &self.nodes {
            while !node
                .command(&["CLUSTER", "INFO"])
                .is_ok_and(|info| info.contains("cluster_state:ok"))
            {
                assert!(Instant::now() < deadline, "cluster did not become ok");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// The nodes' URLs, comma-separated, as `REDIS_URL` takes them.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(RedisServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
