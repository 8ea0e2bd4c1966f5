//! `mte-relay demo`: the relay on localhost in front of the built-in demo upstream,
//! with the in-memory pair store and a generated client id secret.

use std::net::{Ipv4Addr, SocketAddr};

use crate::config::{Config, ConfigError, Env, Loaded};

/// Port the demo relay listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 8080;

/// Starts the demo upstream on an ephemeral loopback port; returns its address.
pub async fn start_upstream() -> std::io::Result<SocketAddr> {
    crate::demo::upstream::spawn(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
}

/// The relay configuration of the demo: loopback only, the upstream given, `/health`
/// passed through in the clear, and a fresh random client id secret.
pub fn config(upstream: SocketAddr, port: u16) -> Result<Loaded, ConfigError> {
    let upstream = format!("http://{upstream}");
    let port = port.to_string();
    let secret = crate::config::Secret::generate().map_err(|error| {
        ConfigError::new("CLIENT_ID_SECRET", format!("cannot generate: {error}"))
    })?;
    let env = Env::from_pairs([
        ("BIND_ADDRESS", "127.0.0.1"),
        ("PORT", port.as_str()),
        ("UPSTREAM", upstream.as_str()),
        ("CLIENT_ID_SECRET", secret.expose()),
        ("PASS_THROUGH_ROUTES", "/health"),
        ("LOG_LEVEL", "info"),
    ]);
    Config::from_env(&env)
}

/// What the demo prints once it listens.
pub fn banner(relay: SocketAddr, upstream: SocketAddr) -> String {
    let base = format!("http://localhost:{}", relay.port());
    format!(
        "\nMTE Relay demo\n\
         \x20 relay     {base}   (in-memory pair store)\n\
         \x20 upstream  http://{upstream}   (built-in demo API)\n\
         \n\
         Try it from another terminal:\n\
         \x20 cargo run -p mte-relay -- request -d '{{\"hello\":\"world\"}}' {base}/echo\n\
         \x20 cargo run -p mte-relay -- request -i --mode mte '{base}/echo?card=4111'\n\
         \x20 cargo run -p mte-relay -- request '{base}/sse?count=3&interval_ms=500'\n\
         \x20 cargo run -p mte-relay -- request -o /tmp/big.bin '{base}/download?bytes=104857600'\n\
         \x20 head -c 10000000 /dev/urandom > /tmp/up.bin && \\\n\
         \x20   cargo run -p mte-relay -- request --data-binary @/tmp/up.bin {base}/upload\n\
         \x20 curl -i {base}/api/mte-relay      # capabilities, in the clear\n\
         \x20 curl -i {base}/health             # a pass-through route\n\
         \x20 curl -i {base}/echo               # refused: MTE routes need an encrypted request\n\
         \nCtrl-C stops the demo.\n"
    )
}
