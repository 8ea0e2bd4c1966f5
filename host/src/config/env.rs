//! The environment snapshot the configuration is read from.

use std::collections::BTreeMap;

use super::error::ConfigError;

/// Every variable the relay reads. Only these are snapshotted, so a test can build an
/// [`Env`] from a list and the process environment's other variables never matter.
pub const VARIABLES: &[&str] = &[
    "DOMAIN_MAP",
    "UPSTREAM",
    "CLIENT_ID_SECRET",
    "CLIENT_ID_PREVIOUS_SECRETS",
    "PASS_THROUGH_ROUTES",
    "MTE_ROUTES",
    "CORS_ORIGINS",
    "CORS_METHODS",
    "HEADERS",
    "OUTBOUND_TOKEN",
    "RELAY_IDENTITY_KEY",
    "VERIFY_BODY_BEFORE_FORWARD",
    "PAD_STREAM_RECORDS",
    "ADAPTER_CHAIN",
    "ADAPTERS",
    "ADAPTERS_FILE",
    "ADAPTER_TICK_SECS",
    "PORT",
    "BIND_ADDRESS",
    "ADMIN_PORT",
    "ADMIN_BIND",
    "METRICS",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "DEBUG",
    "POOL_SIZE",
    "MAX_IN_FLIGHT_PER_CLIENT",
    "MAX_CONNECTIONS",
    "MAX_CONNECTIONS_PER_ADDRESS",
    "SECRET",
    "UPSTREAM_CONNECT_TIMEOUT_SECS",
    "UPSTREAM_RESPONSE_TIMEOUT_SECS",
    "BODY_IDLE_TIMEOUT_SECS",
    "SHUTDOWN_GRACE_SECS",
    "SHUTDOWN_DELAY_SECS",
    "CLIENT_HEADER_TIMEOUT_SECS",
    "UPSTREAM_CA_FILE",
    "TRUSTED_PROXIES",
    "MAX_BODY_BYTES",
    "MAX_HEAD_BYTES",
    "PAIR_TTL_SECS",
    "MAX_PAIRS_PER_CLIENT",
    "MAX_PAIRS_PER_BATCH",
    "CLIENT_ID_MAX_AGE_SECS",
    "MAX_CONCURRENT_PAIRINGS",
    "MAX_PAIRS",
    "PAIRING_BODY_TIMEOUT_SECS",
    "PAIRING_RATE_PER_ADDRESS",
    "PAIRING_BURST_PER_ADDRESS",
    "PAIRING_RATE_PER_CLIENT",
    "PAIRING_BURST_PER_CLIENT",
    "RESEND_WINDOW_SECS",
    "MAX_RESEND_TOKENS",
    "REDIS_URL",
    "REDIS_CLUSTER",
    "REDIS_CA_FILE",
    "STORE_KEY",
    "STORE_KEY_PREVIOUS",
    "REDIS_CONNECT_TIMEOUT_MS",
    "REDIS_RESPONSE_TIMEOUT_MS",
    "REDIS_KEY_PREFIX",
    "REDIS_CACHE_PAIRS",
];

/// The single-domain variables that `DOMAIN_MAP` replaces.
pub const LEGACY_VARIABLES: &[&str] = &[
    "UPSTREAM",
    "CLIENT_ID_SECRET",
    "CLIENT_ID_PREVIOUS_SECRETS",
    "PASS_THROUGH_ROUTES",
    "MTE_ROUTES",
    "CORS_ORIGINS",
    "CORS_METHODS",
    "HEADERS",
    "OUTBOUND_TOKEN",
    "RELAY_IDENTITY_KEY",
    "VERIFY_BODY_BEFORE_FORWARD",
    "PAD_STREAM_RECORDS",
    "ADAPTER_CHAIN",
];

/// A snapshot of the relay's variables. A variable set to an empty (or blank) value
/// counts as unset, as container orchestrators often template empty values.
#[derive(Clone, Debug, Default)]
pub struct Env(BTreeMap<String, String>);

impl Env {
    /// Reads [`VARIABLES`] from the process environment.
    pub fn from_process() -> Result<Self, ConfigError> {
        let mut values = BTreeMap::new();
        for &name in VARIABLES {
            match std::env::var(name) {
                Ok(value) => {
                    values.insert(name.to_owned(), value);
                }
                Err(std::env::VarError::NotPresent) => {}
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(ConfigError::new(name, "not valid UTF-8"));
                }
            }
        }
        Ok(Env(values))
    }

    /// An environment made of these pairs only.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Env(pairs
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect())
    }

    /// The value, or `None` when unset or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        // A variable read here but missing from the snapshot list would work in tests
        // (built from pairs) and be ignored in production.
        debug_assert!(
            VARIABLES.contains(&name),
            "{name} is read but not in env::VARIABLES"
        );
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|value| !value.trim().is_empty())
    }

    pub fn is_set(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}
