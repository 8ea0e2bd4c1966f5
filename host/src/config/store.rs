//! Where pairs live: in this process (the default) or in Redis shared by replicas.
//!
//! `REDIS_URL` selects Redis. The rules that keep replicas interchangeable are checked
//! here, so a misconfigured replica stops at startup instead of refusing clients later:
//! a `STORE_KEY` of at least 32 characters (records are encrypted at rest under it)
//! and, checked with the domains, an explicit `client_id_secret` on every domain.

use std::path::PathBuf;
use std::time::Duration;

use super::env::Env;
use super::error::ConfigError;
use super::globals::{parse_bool, ranged};
use super::secret::{REDACTED, Secret};

/// Minimum length, in characters, of `STORE_KEY` and `STORE_KEY_PREVIOUS`.
pub const MIN_STORE_KEY_CHARS: usize = 32;
/// Default Redis connect timeout, in milliseconds.
pub const DEFAULT_REDIS_CONNECT_TIMEOUT_MS: u64 = 1_000;
/// Default Redis response timeout, in milliseconds.
pub const DEFAULT_REDIS_RESPONSE_TIMEOUT_MS: u64 = 500;
/// Default prefix of every Redis key the relay writes.
pub const DEFAULT_REDIS_KEY_PREFIX: &str = "mte-relay";
/// Default number of pairs whose fixed part a replica caches.
pub const DEFAULT_REDIS_CACHE_PAIRS: usize = 10_000;

/// The pair store the relay runs with.
#[derive(Clone, Debug, Default)]
pub enum StoreSettings {
    /// Pairs in this process: lost on restart, not shared by replicas.
    #[default]
    Memory,
    /// Pairs in Redis, shared by every replica with the same settings.
    Redis(RedisSettings),
}

/// How to reach Redis and how to protect what is written there.
#[derive(Clone, Debug)]
pub struct RedisSettings {
    /// One URL per node given; each may carry a username and password.
    pub urls: Vec<RedisUrl>,
    /// Redis Cluster: `REDIS_CLUSTER=true`, or several URLs.
    pub cluster: bool,
    /// `REDIS_CA_FILE`: PEM roots for `rediss://` servers with private certificates.
    pub ca_file: Option<PathBuf>,
    /// The contents of `ca_file`, read at startup.
    pub ca_pem: Option<Vec<u8>>,
    /// Encrypts every pair record at rest.
    pub store_key: Secret,
    /// A key rotated out: records sealed under it are still read.
    pub store_key_previous: Option<Secret>,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    /// Prefix of every key, so deployments can share one Redis.
    pub key_prefix: String,
    /// Pairs whose fixed part each replica caches (0 turns the cache off).
    pub cache_pairs: usize,
}

/// A Redis URL, which may hold a password: `Debug` and [`RedisUrl::redacted`] hide it.
#[derive(Clone)]
pub struct RedisUrl(Secret);

impl RedisUrl {
    /// The URL itself, for the connection.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// Whether the connection uses TLS.
    pub fn is_tls(&self) -> bool {
        self.expose().starts_with("rediss://")
    }

    /// The URL with any password replaced by [`REDACTED`].
    pub fn redacted(&self) -> String {
        redact_password(self.expose())
    }
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// `scheme://user:password@host/db` -> `scheme://user:<redacted>@host/db`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return REDACTED.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &rest[..at];
    let user = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:{REDACTED}"),
        // `redis://password@host` is a password alone.
        None if userinfo.is_empty() => String::new(),
        None => REDACTED.to_owned(),
    };
    format!("{scheme}://{user}@{}", &rest[at + 1..])
}

impl StoreSettings {
    pub(crate) fn from_env(env: &Env, warnings: &mut Vec<String>) -> Result<Self, ConfigError> {
        let Some(raw_urls) = env.get("REDIS_URL") else {
            for name in redis_only_variables() {
                if env.is_set(name) {
                    warnings.push(format!("{name} is set but has no effect without REDIS_URL"));
                }
            }
            return Ok(StoreSettings::Memory);
        };
        let urls = parse_urls(raw_urls)?;
        let cluster = match env.get("REDIS_CLUSTER") {
            Some(raw) => {
                parse_bool(raw).map_err(|problem| ConfigError::new("REDIS_CLUSTER", problem))?
            }
            None => urls.len() > 1,
        };
        if !cluster && urls.len() > 1 {
            return Err(ConfigError::new(
                "REDIS_URL",
                "lists several nodes but REDIS_CLUSTER is false; give one URL, or set \
                 REDIS_CLUSTER=true",
            ));
        }
        let tls = urls.iter().filter(|url| url.is_tls()).count();
        if tls != 0 && tls != urls.len() {
            return Err(ConfigError::new(
                "REDIS_URL",
                "mixes redis:// and rediss:// nodes; use one scheme for all",
            ));
        }
        let ca_file = env.get("REDIS_CA_FILE").map(PathBuf::from);
        let ca_pem = match &ca_file {
            None => None,
            Some(_) if tls == 0 => {
                return Err(ConfigError::new(
                    "REDIS_CA_FILE",
                    "is set but REDIS_URL is not rediss:// (TLS)",
                ));
            }
            Some(path) => Some(read_pem(path)?),
        };
        let current = store_key(env, "STORE_KEY")?.ok_or_else(|| {
            ConfigError::new(
                "STORE_KEY",
                format!(
                    "required when REDIS_URL is set: at least {MIN_STORE_KEY_CHARS} characters, \
                     the same on every replica (pair records are encrypted under it)"
                ),
            )
        })?;
        let store_key_previous = store_key(env, "STORE_KEY_PREVIOUS")?;
        let store_key = current;
        if env.get("SECRET") == Some(store_key.expose()) {
            return Err(ConfigError::new(
                "STORE_KEY",
                "must differ from SECRET (the API Relay's pairing key)",
            ));
        }
        let key_prefix = env
            .get("REDIS_KEY_PREFIX")
            .map_or(DEFAULT_REDIS_KEY_PREFIX, str::trim)
            .to_owned();
        if key_prefix.is_empty()
            || key_prefix.len() > 64
            || !key_prefix
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"-_.:".contains(&byte))
        {
            return Err(ConfigError::new(
                "REDIS_KEY_PREFIX",
                "expected 1 to 64 characters of letters, digits, '-', '_', '.' or ':'",
            ));
        }
        let millis = |name, default| -> Result<Duration, ConfigError> {
            ranged(env, name, default, 1, 60_000).map(Duration::from_millis)
        };
        Ok(StoreSettings::Redis(RedisSettings {
            urls,
            cluster,
            ca_file,
            ca_pem,
            store_key,
            store_key_previous,
            connect_timeout: millis("REDIS_CONNECT_TIMEOUT_MS", DEFAULT_REDIS_CONNECT_TIMEOUT_MS)?,
            response_timeout: millis(
                "REDIS_RESPONSE_TIMEOUT_MS",
                DEFAULT_REDIS_RESPONSE_TIMEOUT_MS,
            )?,
            key_prefix,
            cache_pairs: ranged(
                env,
                "REDIS_CACHE_PAIRS",
                DEFAULT_REDIS_CACHE_PAIRS,
                0,
                10_000_000,
            )?,
        }))
    }

    /// The store as `check-config` shows it, secrets redacted.
    pub fn describe(&self) -> serde_json::Value {
        match self {
            StoreSettings::Memory => serde_json::json!({ "kind": "memory" }),
            StoreSettings::Redis(redis) => serde_json::json!({
                "kind": if redis.cluster { "redis-cluster" } else { "redis" },
                "urls": redis.urls.iter().map(RedisUrl::redacted).collect::<Vec<_>>(),
                "ca_file": redis.ca_file.as_ref().map(|path| path.display().to_string()),
                "store_key": REDACTED,
                "store_key_previous": redis.store_key_previous.as_ref().map(|_| REDACTED),
                "connect_timeout_ms": redis.connect_timeout.as_millis(),
                "response_timeout_ms": redis.response_timeout.as_millis(),
                "key_prefix": redis.key_prefix,
                "cache_pairs": redis.cache_pairs,
            }),
        }
    }
}

/// Variables that only mean something with `REDIS_URL`: the other Redis and store-key
/// variables of [`super::env::VARIABLES`].
fn redis_only_variables() -> impl Iterator<Item = &'static str> {
    super::env::VARIABLES.iter().copied().filter(|name| {
        (name.starts_with("REDIS_") || name.starts_with("STORE_KEY")) && *name != "REDIS_URL"
    })
}

fn parse_urls(raw: &str) -> Result<Vec<RedisUrl>, ConfigError> {
    let mut urls = Vec::new();
    for (index, item) in raw.split(',').map(str::trim).enumerate() {
        if item.is_empty() {
            continue;
        }
        let url = RedisUrl(Secret::new(item));
        let location = super::error::index("REDIS_URL", index);
        if !(item.starts_with("redis://") || item.starts_with("rediss://")) {
            return Err(ConfigError::new(
                location,
                format!("{} is not a redis:// or rediss:// URL", url.redacted()),
            ));
        }
        if let Err(error) = redis::IntoConnectionInfo::into_connection_info(item) {
            // The parser's message may quote the URL; name the problem's kind only.
            return Err(ConfigError::new(
                location,
                format!(
                    "{} is not a valid Redis URL ({:?})",
                    url.redacted(),
                    error.kind()
                ),
            ));
        }
        urls.push(url);
    }
    if urls.is_empty() {
        return Err(ConfigError::new("REDIS_URL", "lists no URL"));
    }
    Ok(urls)
}

fn store_key(env: &Env, name: &str) -> Result<Option<Secret>, ConfigError> {
    env.get(name)
        .map(|raw| Secret::at_least(name, raw, MIN_STORE_KEY_CHARS))
        .transpose()
}

fn read_pem(path: &PathBuf) -> Result<Vec<u8>, ConfigError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let pem = std::fs::read(path).map_err(|error| {
        ConfigError::new("REDIS_CA_FILE", format!("cannot read {path:?}: {error}"))
    })?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| {
            ConfigError::new(
                "REDIS_CA_FILE",
                format!("{path:?} is not a PEM file: {error}"),
            )
        })?;
    if certificates.is_empty() {
        return Err(ConfigError::new(
            "REDIS_CA_FILE",
            format!("{path:?} contains no PEM certificate"),
        ));
    }
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    fn settings(pairs: &[(&str, &str)]) -> Result<StoreSettings, ConfigError> {
        StoreSettings::from_env(&Env::from_pairs(pairs.iter().copied()), &mut Vec::new())
    }

    fn redis(pairs: &[(&str, &str)]) -> RedisSettings {
        match settings(pairs).expect("valid") {
            StoreSettings::Redis(redis) => redis,
            StoreSettings::Memory => panic!("expected Redis"),
        }
    }

    #[test]
    fn without_redis_url_pairs_stay_in_memory_and_redis_variables_warn() {
        let mut warnings = Vec::new();
        let env = Env::from_pairs([("STORE_KEY", KEY)]);
        let store = StoreSettings::from_env(&env, &mut warnings).expect("valid");
        assert!(matches!(store, StoreSettings::Memory));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("STORE_KEY"), "{warnings:?}");
    }

    #[test]
    fn redis_needs_a_long_store_key_that_is_not_the_relay_secret() {
        let error = settings(&[("REDIS_URL", "redis://127.0.0.1:6379")]).expect_err("refused");
        assert_eq!(error.location, "STORE_KEY");
        let error = settings(&[("REDIS_URL", "redis://127.0.0.1"), ("STORE_KEY", "short")])
            .expect_err("refused");
        assert!(error.problem.contains("at least 32"), "{error}");
        let error = settings(&[
            ("REDIS_URL", "redis://127.0.0.1"),
            ("STORE_KEY", KEY),
            ("SECRET", KEY),
        ])
        .expect_err("refused");
        assert!(error.problem.contains("differ from SECRET"), "{error}");
        let error = settings(&[
            ("REDIS_URL", "redis://127.0.0.1"),
            ("STORE_KEY", KEY),
            ("STORE_KEY_PREVIOUS", "short"),
        ])
        .expect_err("refused");
        assert_eq!(error.location, "STORE_KEY_PREVIOUS");
    }

    #[test]
    fn several_urls_mean_a_cluster_and_schemes_are_checked() {
        let one = redis(&[("REDIS_URL", "redis://127.0.0.1:7000"), ("STORE_KEY", KEY)]);
        assert!(!one.cluster);
        let several = redis(&[
            (
                "REDIS_URL",
                "redis://127.0.0.1:7000, redis://127.0.0.1:7001",
            ),
            ("STORE_KEY", KEY),
        ]);
        assert!(several.cluster);
        assert_eq!(several.urls.len(), 2);
        let forced = redis(&[
            ("REDIS_URL", "redis://127.0.0.1:7000"),
            ("REDIS_CLUSTER", "true"),
            ("STORE_KEY", KEY),
        ]);
        assert!(forced.cluster);
        let error = settings(&[
            ("REDIS_URL", "redis://a:1,redis://b:2"),
            ("REDIS_CLUSTER", "false"),
            ("STORE_KEY", KEY),
        ])
        .expect_err("refused");
        assert!(error.problem.contains("REDIS_CLUSTER"), "{error}");
        let error = settings(&[("REDIS_URL", "http://127.0.0.1"), ("STORE_KEY", KEY)])
            .expect_err("refused");
        assert_eq!(error.location, "REDIS_URL[0]");
        let error = settings(&[
            ("REDIS_URL", "redis://a:1,rediss://b:2"),
            ("STORE_KEY", KEY),
        ])
        .expect_err("refused");
        assert!(error.problem.contains("mixes"), "{error}");
        let error = settings(&[
            ("REDIS_URL", "redis://127.0.0.1"),
            ("REDIS_CA_FILE", "/nonexistent.pem"),
            ("STORE_KEY", KEY),
        ])
        .expect_err("refused");
        assert!(error.problem.contains("not rediss"), "{error}");
        let error = settings(&[
            ("REDIS_URL", "rediss://127.0.0.1"),
            ("REDIS_CA_FILE", "/nonexistent.pem"),
            ("STORE_KEY", KEY),
        ])
        .expect_err("refused");
        assert!(error.problem.contains("cannot read"), "{error}");
    }

    #[test]
    fn passwords_never_show() {
        let settings = redis(&[
            (
                "REDIS_URL",
                "rediss://relay:hunter2-password@redis.internal:6380/0",
            ),
            ("STORE_KEY", KEY),
        ]);
        let shown = settings.urls[0].redacted();
        assert_eq!(shown, "rediss://relay:<redacted>@redis.internal:6380/0");
        assert!(!format!("{settings:?}").contains("hunter2"));
        let described = StoreSettings::Redis(settings).describe().to_string();
        assert!(!described.contains("hunter2"), "{described}");
        assert!(!described.contains(KEY), "{described}");
        assert_eq!(
            redact_password("redis://secretonly@host:1"),
            "redis://<redacted>@host:1"
        );
        assert_eq!(redact_password("redis://host:1/2"), "redis://host:1/2");
        let error = settings_error("redis://user:hunter2@host:notaport");
        assert!(!error.contains("hunter2"), "{error}");
    }

    fn settings_error(url: &str) -> String {
        settings(&[("REDIS_URL", url), ("STORE_KEY", KEY)])
            .expect_err("refused")
            .to_string()
    }

    proptest::proptest! {
        /// No password survives redaction, whatever the user name, host and path.
        #[test]
        fn a_password_never_survives_redaction(
            user in "[a-z]{0,8}",
            password in "PW[A-Za-z0-9._~-]{1,30}",
            host in "[a-z]{1,10}(\\.[a-z]{1,5})?",
            path in "(/[0-9]{1,2})?",
            tls in proptest::bool::ANY,
        ) {
            let scheme = if tls { "rediss" } else { "redis" };
            let url = format!("{scheme}://{user}:{password}@{host}:6379{path}");
            let shown = redact_password(&url);
            proptest::prop_assert!(!shown.contains(&password), "{}", shown);
            let expected_start = format!("{}://{}:{}@{}", scheme, user, REDACTED, host);
            proptest::prop_assert!(shown.starts_with(&expected_start), "{}", shown);
        }
    }
}
