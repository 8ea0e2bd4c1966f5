//! Adapter instances as the operator declares them (`ADAPTERS_FILE` or `ADAPTERS`),
//! parsed and validated into [`AdapterSpec`]s.
//!
//! ```json
//! { "adapters": [
//!   { "name": "auth", "path": "api_key_auth.wasm", "config": { "keys": [] },
//!     "deadline_ms": 20, "memory_mb": 32, "failure_policy": "closed",
//!     "allowed_hosts": ["idp.example.com:443"], "instance_reuse": "pooled" }
//! ] }
//! ```
//! A bare array of instances is accepted too. Relative paths are resolved against
//! the directory of the adapters file (or the working directory for inline JSON).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::ConfigError;

/// What happens to a request when its adapter fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailurePolicy {
    /// The request is refused (default for filters).
    Closed,
    /// The request proceeds without the adapter; the failure is counted (default for meters).
    Open,
    /// The request is refused, every warm instance is dropped and rebuilt, with
    /// exponential backoff while rebuilding keeps failing.
    Reload,
}

/// Whether hook calls reuse warm instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceReuse {
    /// Warm instances are kept in a pool and reused (state in linear memory persists).
    #[default]
    Pooled,
    /// Every hook call gets a fresh instance (and its own `init`): full isolation.
    Fresh,
}

/// Where the adapters configuration came from; kept so reloads read it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdaptersSource {
    /// `ADAPTERS_FILE`: a JSON file, re-read on reload.
    File(PathBuf),
    /// `ADAPTERS`: inline JSON; reload recompiles the same declarations.
    Inline(String),
}

impl AdaptersSource {
    /// Read and validate the declarations.
    pub fn load(&self) -> Result<Vec<AdapterSpec>, ConfigError> {
        match self {
            AdaptersSource::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Unreadable {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                let base = path.parent().unwrap_or(Path::new("."));
                parse_adapters(&text, base)
            }
            AdaptersSource::Inline(text) => parse_adapters(text, Path::new(".")),
        }
    }
}

/// One validated adapter instance.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterSpec {
    pub name: String,
    pub path: PathBuf,
    /// JSON text handed to `init`.
    pub config: String,
    pub deadline: Duration,
    pub memory_cap_bytes: u64,
    /// `None`: the world's default (closed for filters, open for meters).
    pub failure_policy: Option<FailurePolicy>,
    /// `host` or `host:port`, lower-case.
    pub allowed_hosts: Vec<String>,
    pub instance_reuse: InstanceReuse,
    /// Upper bound on idle warm instances kept for reuse.
    pub max_warm: usize,
    /// Consecutive failures that open the crash breaker.
    pub breaker_threshold: u32,
    /// How long the breaker stays open before one trial call.
    pub breaker_cooldown: Duration,
}

pub const DEFAULT_DEADLINE: Duration = Duration::from_millis(50);
pub const DEFAULT_MEMORY_MB: u64 = 64;
pub const MAX_MEMORY_MB: u64 = 4096;
pub const DEFAULT_MAX_WARM: usize = 64;
pub const DEFAULT_BREAKER_THRESHOLD: u32 = 5;
pub const DEFAULT_BREAKER_COOLDOWN: Duration = Duration::from_secs(30);

#[derive(Deserialize)]
#[serde(untagged)]
enum Document {
    Wrapped { adapters: Vec<serde_json::Value> },
    Bare(Vec<serde_json::Value>),
}

struct RawSpec {
    name: String,
    path: PathBuf,
    config: Option<serde_json::Value>,
    deadline_ms: Option<u64>,
    memory_mb: Option<u64>,
    failure_policy: Option<FailurePolicy>,
    allowed_hosts: Vec<String>,
    instance_reuse: InstanceReuse,
    max_warm: Option<usize>,
    breaker_threshold: Option<u32>,
    breaker_cooldown_ms: Option<u64>,
}

const FIELDS: [&str; 11] = [
    "name",
    "path",
    "config",
    "deadline_ms",
    "memory_mb",
    "failure_policy",
    "allowed_hosts",
    "instance_reuse",
    "max_warm",
    "breaker_threshold",
    "breaker_cooldown_ms",
];

/// Parse and validate adapter declarations; `base` resolves relative paths.
pub fn parse_adapters(json: &str, base: &Path) -> Result<Vec<AdapterSpec>, ConfigError> {
    let doc: Document = serde_json::from_str(json).map_err(|e| ConfigError::Json(e.to_string()))?;
    let entries = match doc {
        Document::Wrapped { adapters } | Document::Bare(adapters) => adapters,
    };
    let mut seen = HashSet::new();
    let mut specs = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        let spec = validate(raw_spec(entry, index)?, base)?;
        if !seen.insert(spec.name.clone()) {
            return Err(ConfigError::Duplicate(spec.name));
        }
        specs.push(spec);
    }
    Ok(specs)
}

/// Field by field, so every error names the field it is about.
fn raw_spec(entry: serde_json::Value, index: usize) -> Result<RawSpec, ConfigError> {
    let label = entry
        .get("name")
        .and_then(|n| n.as_str())
        .map_or_else(|| format!("#{index}"), str::to_owned);
    let bad = |field: &'static str, reason: String| ConfigError::Field {
        adapter: label.clone(),
        field,
        reason,
    };
    let serde_json::Value::Object(mut map) = entry else {
        return Err(bad("(entry)", "must be a JSON object".into()));
    };
    if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(bad("(entry)", format!("unknown field `{unknown}`")));
    }
    fn take<T: serde::de::DeserializeOwned>(
        map: &mut serde_json::Map<String, serde_json::Value>,
        field: &'static str,
        bad: &dyn Fn(&'static str, String) -> ConfigError,
    ) -> Result<Option<T>, ConfigError> {
        match map.remove(field) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(value) => serde_json::from_value(value)
                .map(Some)
                .map_err(|e| bad(field, e.to_string())),
        }
    }
    Ok(RawSpec {
        name: take(&mut map, "name", &bad)?.ok_or_else(|| bad("name", "is required".into()))?,
        path: take(&mut map, "path", &bad)?.ok_or_else(|| bad("path", "is required".into()))?,
        config: map.remove("config"),
        deadline_ms: take(&mut map, "deadline_ms", &bad)?,
        memory_mb: take(&mut map, "memory_mb", &bad)?,
        failure_policy: take(&mut map, "failure_policy", &bad)?,
        allowed_hosts: take(&mut map, "allowed_hosts", &bad)?.unwrap_or_default(),
        instance_reuse: take(&mut map, "instance_reuse", &bad)?.unwrap_or_default(),
        max_warm: take(&mut map, "max_warm", &bad)?,
        breaker_threshold: take(&mut map, "breaker_threshold", &bad)?,
        breaker_cooldown_ms: take(&mut map, "breaker_cooldown_ms", &bad)?,
    })
}

fn validate(raw: RawSpec, base: &Path) -> Result<AdapterSpec, ConfigError> {
    let name = raw.name;
    let bad = |field: &'static str, reason: String| ConfigError::Field {
        adapter: name.clone(),
        field,
        reason,
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(bad(
            "name",
            "must be non-empty and use only ASCII letters, digits, '-' and '_'".into(),
        ));
    }
    if raw.path.as_os_str().is_empty() {
        return Err(bad("path", "must name a .wasm component".into()));
    }
    let path = if raw.path.is_absolute() {
        raw.path
    } else {
        base.join(raw.path)
    };
    let deadline = match raw.deadline_ms {
        None => DEFAULT_DEADLINE,
        Some(0) => return Err(bad("deadline_ms", "must be at least 1".into())),
        Some(ms) if ms > 60_000 => return Err(bad("deadline_ms", "must be at most 60000".into())),
        Some(ms) => Duration::from_millis(ms),
    };
    let memory_mb = raw.memory_mb.unwrap_or(DEFAULT_MEMORY_MB);
    if memory_mb == 0 || memory_mb > MAX_MEMORY_MB {
        return Err(bad(
            "memory_mb",
            format!("must be between 1 and {MAX_MEMORY_MB}"),
        ));
    }
    let mut allowed_hosts = Vec::with_capacity(raw.allowed_hosts.len());
    for host in raw.allowed_hosts {
        allowed_hosts.push(normalise_host(&host).map_err(|why| bad("allowed_hosts", why))?);
    }
    let max_warm = raw.max_warm.unwrap_or(DEFAULT_MAX_WARM);
    if max_warm == 0 {
        return Err(bad("max_warm", "must be at least 1".into()));
    }
    let breaker_threshold = raw.breaker_threshold.unwrap_or(DEFAULT_BREAKER_THRESHOLD);
    if breaker_threshold == 0 {
        return Err(bad("breaker_threshold", "must be at least 1".into()));
    }
    Ok(AdapterSpec {
        config: raw
            .config
            .map_or_else(|| "null".to_string(), |v| v.to_string()),
        path,
        deadline,
        memory_cap_bytes: memory_mb * 1024 * 1024,
        failure_policy: raw.failure_policy,
        allowed_hosts,
        instance_reuse: raw.instance_reuse,
        max_warm,
        breaker_threshold,
        breaker_cooldown: raw
            .breaker_cooldown_ms
            .map_or(DEFAULT_BREAKER_COOLDOWN, Duration::from_millis),
        name,
    })
}

/// `Host` or `host:port`, lower-cased; no scheme, path or wildcard.
fn normalise_host(entry: &str) -> Result<String, String> {
    let entry = entry.trim().to_ascii_lowercase();
    if entry.is_empty() {
        return Err("empty host".into());
    }
    if entry.contains("://") || entry.contains('/') || entry.contains('*') {
        return Err(format!(
            "`{entry}`: give a host or host:port, without scheme, path or wildcard"
        ));
    }
    let authority: http::uri::Authority = entry
        .parse()
        .map_err(|e| format!("`{entry}` is not a host: {e}"))?;
    if authority.as_str().contains('@') {
        return Err(format!("`{entry}`: user info is not allowed"));
    }
    Ok(authority.as_str().to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrapped_and_bare_forms_with_defaults() {
        let wrapped = r#"{"adapters":[{"name":"auth","path":"a.wasm"}]}"#;
        let bare = r#"[{"name":"auth","path":"a.wasm"}]"#;
        let a = parse_adapters(wrapped, Path::new("/etc/relay")).unwrap();
        let b = parse_adapters(bare, Path::new("/etc/relay")).unwrap();
        assert_eq!(a, b);
        assert_eq!(a[0].path, PathBuf::from("/etc/relay/a.wasm"));
        assert_eq!(a[0].deadline, DEFAULT_DEADLINE);
        assert_eq!(a[0].failure_policy, None);
        assert_eq!(a[0].config, "null");
        assert_eq!(a[0].instance_reuse, InstanceReuse::Pooled);
    }

    #[test]
    fn errors_name_the_adapter_and_field() {
        let err = parse_adapters(
            r#"[{"name":"auth","path":"a.wasm","failure_policy":"sometimes"}]"#,
            Path::new("."),
        )
        .unwrap_err();
        match err {
            ConfigError::Field { adapter, field, .. } => {
                assert_eq!(adapter, "auth");
                assert_eq!(field, "failure_policy");
            }
            other => panic!("unexpected {other:?}"),
        }
        let err = parse_adapters(
            r#"[{"name":"m","path":"a.wasm","memory_mb":0}]"#,
            Path::new("."),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("adapter `m`: field `memory_mb`"),
            "{err}"
        );
        let err = parse_adapters(
            r#"[{"name":"h","path":"a.wasm","allowed_hosts":["https://x.test/"]}]"#,
            Path::new("."),
        )
        .unwrap_err();
        assert!(err.to_string().contains("field `allowed_hosts`"), "{err}");
    }

    #[test]
    fn rejects_duplicates_unknown_fields_and_bad_json() {
        let dup = r#"[{"name":"a","path":"x.wasm"},{"name":"a","path":"y.wasm"}]"#;
        assert_eq!(
            parse_adapters(dup, Path::new(".")).unwrap_err(),
            ConfigError::Duplicate("a".into())
        );
        let unknown = r#"[{"name":"a","path":"x.wasm","dealine_ms":5}]"#;
        assert!(matches!(
            parse_adapters(unknown, Path::new(".")).unwrap_err(),
            ConfigError::Field { ref adapter, .. } if adapter == "a"
        ));
        assert!(matches!(
            parse_adapters("{", Path::new(".")).unwrap_err(),
            ConfigError::Json(_)
        ));
    }

    #[test]
    fn missing_adapters_file_is_a_clear_error() {
        let err = AdaptersSource::File(PathBuf::from("/nonexistent/adapters.json"))
            .load()
            .unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/adapters.json"),
            "{err}"
        );
    }

    #[test]
    fn hosts_are_normalised() {
        let specs = parse_adapters(
            r#"[{"name":"a","path":"x.wasm","allowed_hosts":["IdP.Example.com:8443","127.0.0.1"]}]"#,
            Path::new("."),
        )
        .unwrap();
        assert_eq!(
            specs[0].allowed_hosts,
            vec!["idp.example.com:8443", "127.0.0.1"]
        );
    }
}
