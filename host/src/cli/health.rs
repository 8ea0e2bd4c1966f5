//! `mte-relay health [--ready]`: probes the admin listener of a relay and exits 0 when
//! it answers 200, 1 otherwise, for container `HEALTHCHECK`s in an image without a
//! shell or curl.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::DEFAULT_ADMIN_PORT;

/// How long the probe waits for the whole answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(clap::Args, Debug)]
pub struct HealthArgs {
    /// Probe readiness (`/readyz`: listener bound, pair store reachable, not shutting
    /// down) instead of liveness (`/healthz`).
    #[arg(long)]
    pub ready: bool,
    /// The admin listener to probe, as HOST:PORT (a name or an IP address). Default:
    /// ADMIN_BIND (or BIND_ADDRESS; a wildcard address means loopback) and ADMIN_PORT
    /// (9090) from the environment.
    #[arg(long, value_name = "HOST:PORT")]
    pub address: Option<String>,
}

pub fn run(args: HealthArgs) -> ExitCode {
    let address = match args.address {
        Some(address) => address,
        None => match address_from_env() {
            Ok(address) => address.to_string(),
            Err(problem) => {
                eprintln!("mte-relay health: {problem}");
                return ExitCode::FAILURE;
            }
        },
    };
    let path = if args.ready { "/readyz" } else { "/healthz" };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("mte-relay health: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let answer = runtime
        .block_on(async { tokio::time::timeout(PROBE_TIMEOUT, probe(&address, path)).await });
    match answer {
        Ok(Ok((200, body))) => {
            println!("{body}");
            ExitCode::SUCCESS
        }
        Ok(Ok((status, body))) => {
            eprintln!("mte-relay health: http://{address}{path} answered {status}: {body}");
            ExitCode::FAILURE
        }
        Ok(Err(error)) => {
            eprintln!("mte-relay health: http://{address}{path}: {error}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!(
                "mte-relay health: http://{address}{path}: no answer within {PROBE_TIMEOUT:?}"
            );
            ExitCode::FAILURE
        }
    }
}

/// The admin address from the environment the relay itself reads.
fn address_from_env() -> Result<SocketAddr, String> {
    let read = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|value| !value.trim().is_empty())
    };
    let port = match read("ADMIN_PORT") {
        None => DEFAULT_ADMIN_PORT,
        Some(raw) => raw
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|port| *port != 0)
            .ok_or_else(|| format!("ADMIN_PORT {raw:?} is not a port to probe"))?,
    };
    let ip = match read("ADMIN_BIND").or_else(|| read("BIND_ADDRESS")) {
        None => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Some(raw) => raw
            .trim()
            .parse::<IpAddr>()
            .map_err(|_| format!("{raw:?} is not an IP address"))?,
    };
    Ok(SocketAddr::new(loopback_for_wildcard(ip), port))
}

/// A listener on every address is probed on loopback.
fn loopback_for_wildcard(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    }
}

/// One HTTP/1.1 GET; returns the status and the body as text.
async fn probe(address: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    stream.take(64 * 1024).read_to_end(&mut answer).await?;
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP/1.1 answer"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .trim()
        .to_owned();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_listener_is_probed_on_loopback() {
        assert_eq!(
            loopback_for_wildcard("0.0.0.0".parse().expect("ip")),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
        assert_eq!(
            loopback_for_wildcard("::".parse().expect("ip")),
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        );
        let specific: IpAddr = "10.1.2.3".parse().expect("ip");
        assert_eq!(loopback_for_wildcard(specific), specific);
    }
}
