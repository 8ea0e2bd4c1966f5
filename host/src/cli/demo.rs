//! `mte-relay demo`: the relay on localhost in front of the built-in demo upstream,
//! with the in-memory pair store, a generated client id secret, and the example
//! adapters (embedded in the binary) in front of every request.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use mte_relay_adapter_runtime::examples;
use sha2::{Digest, Sha256};

use crate::config::{Config, ConfigError, Env, Loaded};

/// The API key the demo's `api-key-auth` accepts.
pub const DEMO_API_KEY: &str = "demo-key";

/// The demo's adapter chain (the instances [`DemoAdapters`] declares).
pub const DEMO_CHAIN: &str = "api-key-auth,header-rewrite,usage-log";

/// Seconds between the demo meter's usage summaries.
const DEMO_TICK_SECS: &str = "30";

/// The example adapters written out for the demo; the directory is removed on drop.
#[derive(Debug)]
pub struct DemoAdapters {
    dir: PathBuf,
    declarations: String,
}

impl DemoAdapters {
    /// Writes the embedded components into a fresh directory under the system's
    /// temporary directory and declares them: `api-key-auth` (key `demo-key`, `/health`
    /// public), `header-rewrite` (client id upstream, `x-served-by` back) and
    /// `usage-log`.
    pub fn write() -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!("mte-relay-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let adapters = DemoAdapters {
            declarations: declarations(&dir)?,
            dir,
        };
        for (file, bytes) in [
            ("api_key_auth.wasm", examples::API_KEY_AUTH),
            ("header_rewrite.wasm", examples::HEADER_REWRITE),
            ("usage_log.wasm", examples::USAGE_LOG),
        ] {
            std::fs::write(adapters.dir.join(file), bytes)?;
        }
        Ok(adapters)
    }

    /// Where the components were written.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The `ADAPTERS` value declaring the three instances.
    pub fn declarations(&self) -> &str {
        &self.declarations
    }
}

impl Drop for DemoAdapters {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `ADAPTERS` JSON of the demo, with paths into `dir`.
fn declarations(dir: &Path) -> std::io::Result<String> {
    let path = |file: &str| dir.join(file).to_string_lossy().into_owned();
    let key_hash = hex_sha256(DEMO_API_KEY);
    let document = serde_json::json!([
        {
            "name": "api-key-auth",
            "path": path("api_key_auth.wasm"),
            "config": {
                "header": "x-api-key",
                "public_paths": ["/health"],
                "keys": [{"label": "demo", "sha256": key_hash}],
            },
        },
        {
            "name": "header-rewrite",
            "path": path("header_rewrite.wasm"),
            "config": {
                "request": [{"op": "set", "name": "x-relay-client", "value": "{client_id}"}],
                "response": [{"op": "set", "name": "x-served-by", "value": "mte-relay/{domain}"}],
            },
        },
        {
            "name": "usage-log",
            "path": path("usage_log.wasm"),
            "config": {"reset_on_tick": true},
        },
    ]);
    serde_json::to_string(&document).map_err(std::io::Error::other)
}

fn hex_sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Port the demo relay listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 8080;

/// Starts the demo upstream on an ephemeral loopback port; returns its address.
pub async fn start_upstream() -> std::io::Result<SocketAddr> {
    crate::demo::upstream::spawn(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
}

/// The relay configuration of the demo: loopback only, the upstream given, `/health`
/// passed through in the clear, a fresh random client id secret, and the chain
/// `api-key-auth, header-rewrite, usage-log` on every route.
pub fn config(
    upstream: SocketAddr,
    port: u16,
    adapters: &DemoAdapters,
) -> Result<Loaded, ConfigError> {
    let upstream = format!("http://{upstream}");
    let port = port.to_string();
    let secret = crate::config::Secret::generate().map_err(|error| {
        ConfigError::new("CLIENT_ID_SECRET", format!("cannot generate: {error}"))
    })?;
    let env = Env::from_pairs([
        ("BIND_ADDRESS", "127.0.0.1"),
        ("PORT", port.as_str()),
        // Any free port, so a demo never collides with a relay on the default 9090;
        // the `admin listening` log line gives it.
        ("ADMIN_PORT", "0"),
        ("UPSTREAM", upstream.as_str()),
        ("CLIENT_ID_SECRET", secret.expose()),
        ("PASS_THROUGH_ROUTES", "/health"),
        ("LOG_LEVEL", "info"),
        ("ADAPTERS", adapters.declarations.as_str()),
        ("ADAPTER_CHAIN", DEMO_CHAIN),
        ("ADAPTER_TICK_SECS", DEMO_TICK_SECS),
    ]);
    Config::from_env(&env)
}

/// What the demo prints once it listens.
pub fn banner(relay: SocketAddr, admin: SocketAddr, upstream: SocketAddr) -> String {
    let base = format!("http://localhost:{}", relay.port());
    let key = format!("-H 'x-api-key: {DEMO_API_KEY}'");
    format!(
        "\nMTE Relay demo\n\
         \x20 relay     {base}   (in-memory pair store)\n\
         \x20 upstream  http://{upstream}   (built-in demo API)\n\
         \x20 admin     http://{admin}/metrics   (also /healthz and /readyz)\n\
         \x20 adapters  api-key-auth (key `{DEMO_API_KEY}`; /health is public), header-rewrite,\n\
         \x20           usage-log (a usage summary every {DEMO_TICK_SECS} s)\n\
         \n\
         Try it from another terminal:\n\
         \x20 cargo run -p mte-relay -- request {key} -d '{{\"hello\":\"world\"}}' {base}/echo\n\
         \x20 cargo run -p mte-relay -- request -i {key} --mode mte '{base}/echo?card=4111'\n\
         \x20 cargo run -p mte-relay -- request {key} '{base}/sse?count=3&interval_ms=500'\n\
         \x20 cargo run -p mte-relay -- request {key} -o /tmp/big.bin '{base}/download?bytes=104857600'\n\
         \x20 head -c 10000000 /dev/urandom > /tmp/up.bin && \\\n\
         \x20   cargo run -p mte-relay -- request {key} --data-binary @/tmp/up.bin {base}/upload\n\
         \x20 cargo run -p mte-relay -- request -i {base}/echo   # refused by api-key-auth: 401\n\
         \x20 curl -i {base}/api/mte-relay      # capabilities, in the clear\n\
         \x20 curl -i {base}/health             # a pass-through route\n\
         \x20 curl -i {base}/echo               # refused: MTE routes need an encrypted request\n\
         \nCtrl-C stops the demo.\n"
    )
}
