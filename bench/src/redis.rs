//! A `redis-server` for the `mke-redis` scenario: on a free loopback port, without
//! persistence, killed when dropped. (Round trips per request are the relay's own
//! count, `mte_relay_store_round_trips_total`: Redis's command counter also counts the
//! commands a script runs.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::BenchError;

pub struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    pub fn start() -> Result<RedisServer, BenchError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .map_err(|error| BenchError::Input(format!("no free port for Redis: {error}")))?;
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| {
                BenchError::Input(format!(
                    "cannot start redis-server (the mke-redis scenario needs it): {error}"
                ))
            })?;
        let server = RedisServer { child, port };
        let deadline = Instant::now() + Duration::from_secs(5);
        while server.commands_processed().is_err() {
            if Instant::now() > deadline {
                return Err(BenchError::Input("redis-server did not answer".into()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `total_commands_processed` from `INFO stats`: answered means started.
    pub fn commands_processed(&self) -> std::io::Result<u64> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.write_all(b"*2\r\n$4\r\nINFO\r\n$5\r\nstats\r\n")?;
        let mut answer = Vec::new();
        let mut buffer = [0u8; 8192];
        loop {
            let read = stream.read(&mut buffer)?;
            answer.extend_from_slice(&buffer[..read]);
            let text = String::from_utf8_lossy(&answer);
            if let Some(value) = text
                .lines()
                .find_map(|line| line.strip_prefix("total_commands_processed:"))
            {
                return value
                    .trim()
                    .parse()
                    .map_err(|_| std::io::Error::other("unreadable counter"));
            }
            if read == 0 {
                return Err(std::io::Error::other("INFO ended without the counter"));
            }
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
