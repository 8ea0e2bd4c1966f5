//! The process-wide settings: listener, logging, load bounds, timeouts, limits, pairing.

use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use super::env::Env;
use super::error::ConfigError;
use super::secret::Secret;

pub const DEFAULT_PORT: u16 = 8080;
pub const DEFAULT_POOL_SIZE: usize = 600;
pub const MAX_POOL_SIZE: usize = 1000;
pub const MIN_RELAY_SECRET_CHARS: usize = 32;

/// `LOG_LEVEL` values, in the vocabulary operators of the original relay know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warning,
    Error,
    /// Only errors: the relay never logs at a level above error.
    Panic,
    Off,
}

impl LogLevel {
    /// The `tracing` filter level; `None` means off.
    pub fn as_tracing(self) -> Option<tracing::Level> {
        match self {
            LogLevel::Trace => Some(tracing::Level::TRACE),
            LogLevel::Debug => Some(tracing::Level::DEBUG),
            LogLevel::Info => Some(tracing::Level::INFO),
            LogLevel::Warning => Some(tracing::Level::WARN),
            LogLevel::Error | LogLevel::Panic => Some(tracing::Level::ERROR),
            LogLevel::Off => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warning => "warning",
            LogLevel::Error => "error",
            LogLevel::Panic => "panic",
            LogLevel::Off => "off",
        }
    }
}

impl FromStr for LogLevel {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        Ok(match raw.trim().to_ascii_lowercase().as_str() {
            "trace" => LogLevel::Trace,
            "debug" => LogLevel::Debug,
            "info" => LogLevel::Info,
            "warning" | "warn" => LogLevel::Warning,
            "error" => LogLevel::Error,
            "panic" => LogLevel::Panic,
            // `disabled` is the product documents' spelling.
            "off" | "disabled" => LogLevel::Off,
            _ => {
                return Err(format!(
                    "{:?} is not a level; expected one of trace, debug, info, warning (or \
                     warn), error, panic, off (or disabled)",
                    raw.trim()
                ));
            }
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Json => "json",
            LogFormat::Pretty => "pretty",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogSettings {
    pub level: LogLevel,
    /// `None`: JSON, or pretty when stdout is a terminal (decided when logging starts).
    pub format: Option<LogFormat>,
    /// `DEBUG=true`: log level defaults to debug instead of info.
    pub debug: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing the TCP connection to the upstream.
    pub upstream_connect: Duration,
    /// From handing the upstream the end of the request body (at once, for a request
    /// without one) to receiving the upstream's response head.
    pub upstream_response: Duration,
    /// While a request body streams to the upstream: the longest time without a chunk
    /// passing, whether the client stopped sending or the upstream stopped reading.
    pub body_idle: Duration,
    /// How long in-flight requests may run after SIGTERM/SIGINT before the relay exits.
    pub shutdown_grace: Duration,
    /// After SIGTERM/SIGINT, how long the relay keeps accepting while `/readyz` already
    /// fails, so load balancers stop sending before the listener closes.
    pub shutdown_delay: Duration,
    /// How long a client may take to send a request head (slow-header defence).
    pub client_header_read: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyLimits {
    /// Largest MTE request or response body, in bytes (plaintext).
    pub max_body_bytes: u64,
    /// Largest encrypted header block (`x-mte-relay-head`), in bytes.
    pub max_head_bytes: usize,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PairSettings {
    pub pair_ttl: Duration,
    pub max_pairs_per_client: usize,
    pub max_pairs_per_batch: usize,
    /// Pairs the relay holds in all; past it pairing is refused with `overloaded`.
    pub max_pairs: usize,
    pub client_id_max_age: Duration,
    /// Pairing is the CPU-heavy step; this bounds how many run at once.
    pub max_concurrent_pairings: usize,
    /// The whole pairing document must arrive within this, before a permit is taken.
    pub body_timeout: Duration,
    /// Pairs one remote address (an IPv6 /64) may be given.
    pub rate_per_address: RateLimit,
    /// Pairs one client id may be given.
    pub rate_per_client: RateLimit,
}

/// A token bucket: up to `burst` at once, then `per_second` on average.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: f64,
}

/// Pairs held when `MAX_PAIRS` is not set: under 256 MiB of pair state at the bound
/// the tests hold a pair of the memory store to, 512 bytes (docs/operations.md,
/// "Memory").
pub const DEFAULT_MAX_PAIRS: usize = 500_000;

/// How long, and for how many requests at once, the relay remembers the resend token
/// of each non-idempotent request it forwarded (docs/protocol.md §4.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResendSettings {
    /// How long a token is remembered; announced to clients, which resend only within it.
    pub window: Duration,
    /// Tokens remembered at once; past it non-idempotent requests are refused with
    /// `overloaded` (before anything is forwarded) until older tokens expire.
    pub max_tokens: usize,
}

/// Tokens remembered when `MAX_RESEND_TOKENS` is not set: about 33,000 non-idempotent
/// requests per second for the default 60-second window, in about 164 MiB at the cap
/// (docs/operations.md, "Memory").
pub const DEFAULT_MAX_RESEND_TOKENS: usize = 2_000_000;

/// Bounds on what one caller may hold at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallerBounds {
    /// MTE requests one client id may have in flight (of `POOL_SIZE`).
    pub max_in_flight_per_client: usize,
    /// Open connections over all peers.
    pub max_connections: usize,
    /// Open connections from one remote address (an IPv6 /64).
    pub max_connections_per_address: usize,
}

/// Default port of the admin listener (metrics, health, readiness).
pub const DEFAULT_ADMIN_PORT: u16 = 9090;

/// Where the admin listener binds: never the data port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdminSettings {
    pub bind_address: IpAddr,
    /// 0 asks the OS for an ephemeral port.
    pub port: u16,
    /// `METRICS`: whether requests are measured and `/metrics` answers.
    pub metrics: bool,
}

pub(crate) struct Globals {
    pub bind_address: IpAddr,
    pub port: u16,
    pub admin: AdminSettings,
    pub log: LogSettings,
    pub pool_size: usize,
    pub callers: CallerBounds,
    pub secret: Option<Secret>,
    pub timeouts: Timeouts,
    pub limits: BodyLimits,
    pub pairing: PairSettings,
    pub resend: ResendSettings,
}

/// Pairs one pairing request may ask for, unless `MAX_PAIRS_PER_CLIENT` is lower.
const DEFAULT_MAX_PAIRS_PER_BATCH: usize = 32;

impl Globals {
    pub(crate) fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let debug = match env.get("DEBUG") {
            None => false,
            Some(raw) => parse_bool(raw).map_err(|problem| ConfigError::new("DEBUG", problem))?,
        };
        let level = match env.get("LOG_LEVEL") {
            Some(raw) => raw
                .parse()
                .map_err(|problem: String| ConfigError::new("LOG_LEVEL", problem))?,
            None if debug => LogLevel::Debug,
            None => LogLevel::Info,
        };
        let format = match env.get("LOG_FORMAT") {
            None => None,
            Some(raw) => Some(match raw.trim().to_ascii_lowercase().as_str() {
                "json" => LogFormat::Json,
                "pretty" => LogFormat::Pretty,
                _ => return Err(ConfigError::new("LOG_FORMAT", "expected json or pretty")),
            }),
        };
        let secret = env
            .get("SECRET")
            .map(|raw| Secret::at_least("SECRET", raw, MIN_RELAY_SECRET_CHARS))
            .transpose()?;
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let max_pairs_per_client = ranged(env, "MAX_PAIRS_PER_CLIENT", 64, 1, 100_000)?;
        // Unset, the batch limit follows a smaller per-client limit down.
        let max_pairs_per_batch = ranged(
            env,
            "MAX_PAIRS_PER_BATCH",
            DEFAULT_MAX_PAIRS_PER_BATCH.min(max_pairs_per_client),
            1,
            1024,
        )?;
        if max_pairs_per_batch > max_pairs_per_client {
            // A client keeps its newest pairs up to the per-client cap: a larger batch
            // would evict its own first offers while the relay still answered them.
            return Err(ConfigError::new(
                "MAX_PAIRS_PER_BATCH",
                format!("must be at most MAX_PAIRS_PER_CLIENT ({max_pairs_per_client})"),
            ));
        }
        let pool_size = ranged(env, "POOL_SIZE", DEFAULT_POOL_SIZE, 1, MAX_POOL_SIZE)?;
        let bind_address = parsed(
            env,
            "BIND_ADDRESS",
            IpAddr::from([0, 0, 0, 0]),
            "not an IP address",
        )?;
        let port = parsed(env, "PORT", DEFAULT_PORT, "expected a port number 0-65535")?;
        let admin = AdminSettings {
            bind_address: parsed(env, "ADMIN_BIND", bind_address, "not an IP address")?,
            port: parsed(
                env,
                "ADMIN_PORT",
                DEFAULT_ADMIN_PORT,
                "expected a port number 0-65535",
            )?,
            metrics: match env.get("METRICS") {
                None => true,
                Some(raw) => {
                    parse_bool(raw).map_err(|problem| ConfigError::new("METRICS", problem))?
                }
            },
        };
        if admin.port != 0 && admin.port == port {
            return Err(ConfigError::new(
                "ADMIN_PORT",
                format!(
                    "is the data port ({port}); metrics and probes never share the port \
                     clients reach"
                ),
            ));
        }
        Ok(Globals {
            bind_address,
            port,
            admin,
            log: LogSettings {
                level,
                format,
                debug,
            },
            pool_size,
            callers: CallerBounds {
                // With SECRET the relay pairs only with peer relays (API Relay), and one
                // peer carries a whole service's traffic under one client id.
                max_in_flight_per_client: ranged(
                    env,
                    "MAX_IN_FLIGHT_PER_CLIENT",
                    if secret.is_some() {
                        pool_size
                    } else {
                        (pool_size / 4).max(1)
                    },
                    1,
                    pool_size,
                )?,
                max_connections: ranged(env, "MAX_CONNECTIONS", 10_000, 1, 1_000_000)?,
                max_connections_per_address: ranged(
                    env,
                    "MAX_CONNECTIONS_PER_ADDRESS",
                    1024,
                    1,
                    1_000_000,
                )?,
            },
            secret,
            timeouts: Timeouts {
                upstream_connect: seconds(env, "UPSTREAM_CONNECT_TIMEOUT_SECS", 5.0)?,
                upstream_response: seconds(env, "UPSTREAM_RESPONSE_TIMEOUT_SECS", 60.0)?,
                body_idle: seconds(env, "BODY_IDLE_TIMEOUT_SECS", 60.0)?,
                shutdown_grace: seconds(env, "SHUTDOWN_GRACE_SECS", 30.0)?,
                shutdown_delay: Duration::from_secs(ranged(env, "SHUTDOWN_DELAY_SECS", 0, 0, 300)?),
                client_header_read: seconds(env, "CLIENT_HEADER_TIMEOUT_SECS", 30.0)?,
            },
            limits: BodyLimits {
                max_body_bytes: ranged(env, "MAX_BODY_BYTES", 64 * 1024 * 1024, 1, u64::MAX)?,
                max_head_bytes: ranged(env, "MAX_HEAD_BYTES", 16 * 1024, 256, 1024 * 1024)?,
            },
            pairing: PairSettings {
                pair_ttl: Duration::from_secs(ranged(env, "PAIR_TTL_SECS", 86_400, 1, 31_536_000)?),
                max_pairs_per_client,
                max_pairs_per_batch,
                max_pairs: ranged(env, "MAX_PAIRS", DEFAULT_MAX_PAIRS, 1, 1_000_000_000)?,
                client_id_max_age: Duration::from_secs(ranged(
                    env,
                    "CLIENT_ID_MAX_AGE_SECS",
                    30 * 86_400,
                    1,
                    10 * 31_536_000,
                )?),
                max_concurrent_pairings: ranged(
                    env,
                    "MAX_CONCURRENT_PAIRINGS",
                    2 * cores,
                    1,
                    100_000,
                )?,
                body_timeout: seconds(env, "PAIRING_BODY_TIMEOUT_SECS", 10.0)?,
                rate_per_address: rate(
                    env,
                    ("PAIRING_RATE_PER_ADDRESS", 50.0),
                    ("PAIRING_BURST_PER_ADDRESS", 512),
                    max_pairs_per_batch,
                )?,
                rate_per_client: rate(
                    env,
                    ("PAIRING_RATE_PER_CLIENT", 1.0),
                    ("PAIRING_BURST_PER_CLIENT", 128),
                    max_pairs_per_batch,
                )?,
            },
            resend: ResendSettings {
                window: Duration::from_secs(ranged(env, "RESEND_WINDOW_SECS", 60, 1, 3_600)?),
                max_tokens: ranged(
                    env,
                    "MAX_RESEND_TOKENS",
                    DEFAULT_MAX_RESEND_TOKENS,
                    1,
                    1_000_000_000,
                )?,
            },
        })
    }
}

fn parsed<T: FromStr>(env: &Env, name: &str, default: T, problem: &str) -> Result<T, ConfigError> {
    match env.get(name) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|_| ConfigError::new(name, problem)),
    }
}

pub(crate) fn ranged<T>(env: &Env, name: &str, default: T, min: T, max: T) -> Result<T, ConfigError>
where
    T: FromStr + PartialOrd + Copy + std::fmt::Display,
{
    let problem = || format!("expected a whole number from {min} to {max}");
    let value = match env.get(name) {
        None => return Ok(default),
        Some(raw) => raw
            .trim()
            .parse::<T>()
            .map_err(|_| ConfigError::new(name, problem()))?,
    };
    if value < min || value > max {
        return Err(ConfigError::new(name, problem()));
    }
    Ok(value)
}

/// A pairing rate: pairs per second (fractions allowed) and a burst in pairs, which
/// must hold at least one full batch or the largest batch could never be admitted.
fn rate(
    env: &Env,
    (rate_name, default_rate): (&str, f64),
    (burst_name, default_burst): (&str, usize),
    max_pairs_per_batch: usize,
) -> Result<RateLimit, ConfigError> {
    let per_second = match env.get(rate_name) {
        None => default_rate,
        Some(raw) => {
            let problem = "expected pairs per second, greater than 0 and at most 1000000";
            let value: f64 = raw
                .trim()
                .parse()
                .map_err(|_| ConfigError::new(rate_name, problem))?;
            if !(value > 0.0 && value <= 1_000_000.0) {
                return Err(ConfigError::new(rate_name, problem));
            }
            value
        }
    };
    let burst = ranged(env, burst_name, default_burst, 1, 100_000_000)?;
    if burst < max_pairs_per_batch {
        return Err(ConfigError::new(
            burst_name,
            format!("must be at least MAX_PAIRS_PER_BATCH ({max_pairs_per_batch})"),
        ));
    }
    Ok(RateLimit {
        per_second,
        burst: burst as f64,
    })
}

/// Seconds, fractions allowed (`0.5`), strictly positive and at most a day.
fn seconds(env: &Env, name: &str, default: f64) -> Result<Duration, ConfigError> {
    let raw = match env.get(name) {
        None => return Ok(Duration::from_secs_f64(default)),
        Some(raw) => raw,
    };
    let problem = "expected a number of seconds greater than 0 and at most 86400";
    let value: f64 = raw
        .trim()
        .parse()
        .map_err(|_| ConfigError::new(name, problem))?;
    if !(value > 0.0 && value <= 86_400.0) {
        return Err(ConfigError::new(name, problem));
    }
    Ok(Duration::from_secs_f64(value))
}

pub(crate) fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err("expected true or false".to_owned()),
    }
}
