//! Environment -> typed configuration: `DOMAIN_MAP` or the legacy single-domain
//! variables, the globals, validation with one-line errors, and secret redaction.
//! `docs/configuration.md` documents every variable.

pub mod domain;
pub mod domains;
pub mod env;
pub mod error;
pub mod globals;
pub mod otlp;
pub mod outbound;
pub mod render;
pub mod routes;
pub mod secret;
pub mod store;
pub mod target;
pub mod tls;
pub mod trusted;

use serde_json::Value;

pub use domain::{ConfiguredHeaders, CorsPolicy, DomainConfig, StreamPadding};
pub use domains::DomainTable;
pub use env::Env;
pub use error::ConfigError;
pub use globals::{
    AdminSettings, BodyLimits, CallerBounds, DEFAULT_ADMIN_PORT, DEFAULT_MAX_PAIRS,
    DEFAULT_MAX_RESEND_TOKENS, LogFormat, LogLevel, LogSettings, PairSettings, RateLimit,
    ResendSettings, Timeouts,
};
pub use outbound::{DomainOutbound, OutboundSettings, PeerOrigin};
pub use routes::{RoutePattern, RouteSet};
pub use secret::Secret;
pub use store::{RedisSettings, RedisUrl, StoreSettings};
pub use target::UpstreamTarget;
pub use tls::{ListenerTls, UpstreamTls};
pub use trusted::TrustedProxies;

use domain::{LegacyNames, MapEntryNames, RawDomain};
use error::key;

/// The relay's whole configuration, validated.
#[derive(Clone, Debug)]
pub struct Config {
    pub bind_address: std::net::IpAddr,
    /// 0 asks the OS for an ephemeral port.
    pub port: u16,
    /// The admin listener: metrics, liveness and readiness.
    pub admin: AdminSettings,
    pub log: LogSettings,
    /// Bound on in-flight MTE requests; past it the relay answers `Overloaded`.
    pub pool_size: usize,
    /// What one client id or remote address may hold at once.
    pub callers: CallerBounds,
    /// The relay secret: the API Relay's pairing pre-shared key.
    pub secret: Option<Secret>,
    pub timeouts: Timeouts,
    /// Trust roots for `https://` upstreams.
    pub upstream_tls: UpstreamTls,
    /// TLS on the data port, when `TLS_CERT_FILE` and `TLS_KEY_FILE` are set.
    pub listener_tls: Option<ListenerTls>,
    /// Front proxies whose forwarding headers are believed.
    pub trusted_proxies: TrustedProxies,
    pub limits: BodyLimits,
    pub pairing: PairSettings,
    /// The resend window of non-idempotent requests.
    pub resend: ResendSettings,
    /// Where adapter instances are declared, and how often meters tick.
    pub adapters: AdapterSettings,
    /// Where pairs live: this process, or Redis shared by replicas.
    pub store: StoreSettings,
    /// How the outbound role (API Relay) keeps pairs with peer relays.
    pub outbound: OutboundSettings,
    /// OTLP export of request spans, when an endpoint is set.
    pub otlp: Option<otlp::OtlpSettings>,
    pub domains: DomainTable,
}

/// Where the adapter instances are declared (each domain names its chain).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdapterDeclarations {
    /// No adapters.
    None,
    /// `ADAPTERS_FILE`: a JSON file, read again on reload.
    File(std::path::PathBuf),
    /// `ADAPTERS`: inline JSON.
    Inline(String),
}

/// Adapter settings from the environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterSettings {
    pub declarations: AdapterDeclarations,
    /// Interval between meters' `on-tick` calls.
    pub tick: std::time::Duration,
}

/// Default interval between meters' `on-tick` calls.
pub const DEFAULT_ADAPTER_TICK_SECS: u64 = 60;

impl AdapterSettings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let declarations = match (env.get("ADAPTERS"), env.get("ADAPTERS_FILE")) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "ADAPTERS",
                    "set either ADAPTERS (inline JSON) or ADAPTERS_FILE, not both",
                ));
            }
            (Some(inline), None) => AdapterDeclarations::Inline(inline.to_owned()),
            (None, Some(path)) => AdapterDeclarations::File(path.into()),
            (None, None) => AdapterDeclarations::None,
        };
        let tick_secs = match env.get("ADAPTER_TICK_SECS") {
            None => DEFAULT_ADAPTER_TICK_SECS,
            Some(text) => text
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|secs| (1..=86_400).contains(secs))
                .ok_or_else(|| {
                    ConfigError::new(
                        "ADAPTER_TICK_SECS",
                        "not a whole number of seconds from 1 to 86400",
                    )
                })?,
        };
        Ok(AdapterSettings {
            declarations,
            tick: std::time::Duration::from_secs(tick_secs),
        })
    }
}

/// A configuration plus the warnings to log once logging is up.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
    /// Informational notes: variables set that the relay knows and does not read.
    pub notices: Vec<String>,
}

impl Config {
    /// Reads and validates the process environment.
    pub fn from_process_env() -> Result<Loaded, ConfigError> {
        Config::from_env(&Env::from_process()?)
    }

    /// Reads and validates `env`. The first invalid setting is the error.
    pub fn from_env(env: &Env) -> Result<Loaded, ConfigError> {
        let mut warnings = env.warnings().to_vec();
        let globals = globals::Globals::from_env(env)?;
        let domains = if let Some(map) = env.get("DOMAIN_MAP") {
            let shadowed: Vec<&str> = env::LEGACY_VARIABLES
                .iter()
                .copied()
                .filter(|name| env.is_set(name))
                .collect();
            if !shadowed.is_empty() {
                warnings.push(format!(
                    "DOMAIN_MAP is set, so these variables are ignored: {}",
                    shadowed.join(", ")
                ));
            }
            domain_map(map)?
        } else if env.is_set("UPSTREAM") {
            DomainTable::new(vec![legacy_domain(env)?])?
        } else {
            return Err(ConfigError::new(
                "DOMAIN_MAP",
                "not set (set DOMAIN_MAP, or UPSTREAM for a single domain)",
            ));
        };
        let store = StoreSettings::from_env(env, &mut warnings)?;
        for domain in domains.iter() {
            if let Some(outbound) = &domain.outbound
                && outbound.peers.is_empty()
            {
                warnings.push(format!(
                    "domain {:?} has an outbound token and no outbound_peers allow-list \
                     (OUTBOUND_PEERS for a single domain): a caller holding the token may \
                     name any peer origin in x-mte-upstream",
                    domain.name
                ));
            }
            if domain.client_id_secret_generated && matches!(store, StoreSettings::Redis(_)) {
                // Replicas sharing pairs must accept each other's client ids.
                return Err(ConfigError::new(
                    key("DOMAIN_MAP", &domain.name),
                    "has no client_id_secret; with REDIS_URL every replica must share one \
                     (set client_id_secret, or CLIENT_ID_SECRET for a single domain)",
                ));
            }
            if domain.client_id_secret_generated {
                warnings.push(format!(
                    "domain {:?} has no client_id_secret; generated a random one, which \
                     replicas will not share and a restart will change (clients then re-identify)",
                    domain.name
                ));
            }
        }
        Ok(Loaded {
            config: Config {
                bind_address: globals.bind_address,
                port: globals.port,
                admin: globals.admin,
                log: globals.log,
                pool_size: globals.pool_size,
                callers: globals.callers,
                secret: globals.secret,
                timeouts: globals.timeouts,
                upstream_tls: UpstreamTls::load(env.get("UPSTREAM_CA_FILE"))?,
                listener_tls: ListenerTls::load(env.get("TLS_CERT_FILE"), env.get("TLS_KEY_FILE"))?,
                trusted_proxies: TrustedProxies::parse(env.get("TRUSTED_PROXIES"))?,
                limits: globals.limits,
                pairing: globals.pairing,
                resend: globals.resend,
                adapters: AdapterSettings::from_env(env)?,
                store,
                outbound: outbound_settings(env)?,
                otlp: otlp::OtlpSettings::from_env(env)?,
                domains,
            },
            warnings,
            notices: env.notices().to_vec(),
        })
    }
}

/// `OUTBOUND_PAIRS` and `OUTBOUND_MODE`.
fn outbound_settings(env: &Env) -> Result<OutboundSettings, ConfigError> {
    let defaults = OutboundSettings::default();
    let pairs = match env.get("OUTBOUND_PAIRS") {
        None => defaults.pairs,
        Some(text) => text
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|pairs| (1..=256).contains(pairs))
            .ok_or_else(|| {
                ConfigError::new(
                    "OUTBOUND_PAIRS",
                    "not a whole number of pairs from 1 to 256",
                )
            })?,
    };
    let mode = match env.get("OUTBOUND_MODE") {
        None => defaults.mode,
        Some(text) => outbound::parse_mode(text)
            .ok_or_else(|| ConfigError::new("OUTBOUND_MODE", "expected mke or mte"))?,
    };
    Ok(OutboundSettings { pairs, mode })
}

fn domain_map(raw: &str) -> Result<DomainTable, ConfigError> {
    let value: Value = serde_json::from_str(raw).map_err(|error| {
        ConfigError::new(
            "DOMAIN_MAP",
            format!("not valid JSON ({error}); expected an object keyed by host"),
        )
    })?;
    let Value::Object(entries) = value else {
        return Err(ConfigError::new(
            "DOMAIN_MAP",
            "expected a JSON object keyed by host",
        ));
    };
    if entries.is_empty() {
        return Err(ConfigError::new("DOMAIN_MAP", "has no domains"));
    }
    let mut domains = Vec::with_capacity(entries.len());
    for (host, entry) in &entries {
        let location = key("DOMAIN_MAP", host);
        let name =
            domains::normalise_key(host).map_err(|problem| ConfigError::new(&location, problem))?;
        let raw = RawDomain::from_json(&location, entry)?;
        domains.push(raw.validate(name, &MapEntryNames(location))?);
    }
    DomainTable::new(domains)
}

fn legacy_domain(env: &Env) -> Result<DomainConfig, ConfigError> {
    let list = |name: &str| -> Vec<String> {
        env.get(name)
            .map(|value| {
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let headers = match env.get("HEADERS") {
        None => Vec::new(),
        Some(raw) => {
            let value: Value = serde_json::from_str(raw).map_err(|_| {
                ConfigError::new(
                    "HEADERS",
                    "not valid JSON; expected an object of header name to value",
                )
            })?;
            domain::header_pairs("HEADERS", &value)?
        }
    };
    let raw = RawDomain {
        upstream: env.get("UPSTREAM").map(str::to_owned),
        pass_through_routes: list("PASS_THROUGH_ROUTES"),
        mte_routes: list("MTE_ROUTES"),
        client_id_secret: env.get("CLIENT_ID_SECRET").map(str::to_owned),
        client_id_previous_secrets: list("CLIENT_ID_PREVIOUS_SECRETS"),
        cors_origins: list("CORS_ORIGINS"),
        cors_methods: env.get("CORS_METHODS").map(|_| list("CORS_METHODS")),
        headers,
        outbound_token: env.get("OUTBOUND_TOKEN").map(str::to_owned),
        outbound_upstream: env.get("OUTBOUND_UPSTREAM").map(str::to_owned),
        outbound_peers: list("OUTBOUND_PEERS"),
        outbound_pins: list("OUTBOUND_PINS"),
        identity_key: env.get("RELAY_IDENTITY_KEY").map(str::to_owned),
        verify_body_before_forward: env.get("VERIFY_BODY_BEFORE_FORWARD").map(str::to_owned),
        pad_stream_records: env.get("PAD_STREAM_RECORDS").map(str::to_owned),
        adapters: list("ADAPTER_CHAIN"),
    };
    raw.validate("*".to_owned(), &LegacyNames)
}

#[cfg(test)]
mod tests;
