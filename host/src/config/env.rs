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
    "OUTBOUND_UPSTREAM",
    "OUTBOUND_PEERS",
    "OUTBOUND_PINS",
    "OUTBOUND_PAIRS",
    "OUTBOUND_MODE",
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
    "TLS_CERT_FILE",
    "TLS_KEY_FILE",
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
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_SERVICE_NAME",
];

/// Variables the product documents (or a platform) set that this relay does not read,
/// with what to make of them: an operator who sets them, or whose platform does (ECS
/// sets `AWS_REGION` in every task), is told once at startup instead of left to
/// wonder whether they were taken.
pub const ACKNOWLEDGED: &[(&str, &str)] = &[
    ("AWS_REGION", AWS_METERING),
    ("AWS_DEFAULT_REGION", AWS_METERING),
    ("AZURE_CLIENT_ID", AZURE_METERING),
    ("AZURE_TENANT_ID", AZURE_METERING),
    (
        "MAX_POOL_SIZE",
        "not read; the relay's bound on in-flight requests is POOL_SIZE",
    ),
];

const AWS_METERING: &str = "the relay does not need it; AWS Marketplace metering is \
                            configured in its adapter's declaration";
const AZURE_METERING: &str = "the relay does not need it; Azure Marketplace metering is \
                              configured in its adapter's declaration";

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
    "OUTBOUND_UPSTREAM",
    "OUTBOUND_PEERS",
    "OUTBOUND_PINS",
    "RELAY_IDENTITY_KEY",
    "VERIFY_BODY_BEFORE_FORWARD",
    "PAD_STREAM_RECORDS",
    "ADAPTER_CHAIN",
];

/// A snapshot of the relay's variables. A variable set to an empty (or blank) value
/// counts as unset, as container orchestrators often template empty values.
///
/// Every variable may instead be given as a file, `NAME_FILE` (a mounted Secret), and a
/// value's trailing line break is dropped (the usual `echo value | kubectl create
/// secret`), so the same secret works from a file or from the environment.
#[derive(Clone, Debug, Default)]
pub struct Env {
    values: BTreeMap<String, String>,
    /// Variables set in the environment that look like misspellings of ours.
    warnings: Vec<String>,
    /// Variables set in the environment that we know and do not read ([`ACKNOWLEDGED`]).
    notices: Vec<String>,
}

impl Env {
    /// Reads [`VARIABLES`] (and their `_FILE` forms) from the process environment.
    pub fn from_process() -> Result<Self, ConfigError> {
        let mut env = Env::from_lookup(|name| match std::env::var(name) {
            Ok(value) => Ok(Some(value)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(ConfigError::new(name, "not valid UTF-8"))
            }
        })?;
        let present: Vec<String> = std::env::vars_os()
            .filter_map(|(name, _)| name.into_string().ok())
            .collect();
        env.warnings = misspelt_variables(present.iter().map(String::as_str));
        env.notices = acknowledged_variables(present.iter().map(String::as_str));
        Ok(env)
    }

    /// Reads [`VARIABLES`] through `lookup`, with their `_FILE` forms.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Result<Option<String>, ConfigError>,
    ) -> Result<Self, ConfigError> {
        let mut values = BTreeMap::new();
        for &name in VARIABLES {
            let file_name = format!("{name}{FILE_SUFFIX}");
            let direct = lookup(name)?.filter(|value| !value.trim().is_empty());
            // `ADAPTERS_FILE` is a variable of its own (a watched file of declarations),
            // not the file form of `ADAPTERS`.
            let from_file = if VARIABLES.contains(&file_name.as_str()) {
                None
            } else {
                lookup(&file_name)?.filter(|value| !value.trim().is_empty())
            };
            let value = match (direct, from_file) {
                (Some(_), Some(_)) => {
                    return Err(ConfigError::new(
                        name,
                        format!("set either {name} or {file_name}, not both"),
                    ));
                }
                (Some(value), None) => value,
                (None, Some(path)) => std::fs::read_to_string(path.trim()).map_err(|error| {
                    ConfigError::new(
                        &file_name,
                        format!("cannot read {:?}: {error}", path.trim()),
                    )
                })?,
                (None, None) => continue,
            };
            values.insert(name.to_owned(), without_trailing_line_break(value));
        }
        Ok(Env {
            values,
            warnings: Vec::new(),
            notices: Vec::new(),
        })
    }

    /// Warnings about the environment itself (misspelt variable names).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Notes about variables that are set and that the relay knows it does not read.
    pub fn notices(&self) -> &[String] {
        &self.notices
    }

    /// An environment made of these pairs only.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Env {
            values: pairs
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect(),
            warnings: Vec::new(),
            notices: Vec::new(),
        }
    }

    /// The value, or `None` when unset or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        // A variable read here but missing from the snapshot list would work in tests
        // (built from pairs) and be ignored in production.
        debug_assert!(
            VARIABLES.contains(&name),
            "{name} is read but not in env::VARIABLES"
        );
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|value| !value.trim().is_empty())
    }

    pub fn is_set(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// The suffix of a variable given as a file.
const FILE_SUFFIX: &str = "_FILE";

/// `value` without one trailing `\n` or `\r\n`.
fn without_trailing_line_break(mut value: String) -> String {
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    value
}

/// Warnings for the `present` names that are not ours but close to one of ours (a
/// misspelling would otherwise be ignored without a word), each with a did-you-mean.
pub fn misspelt_variables<'a>(present: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut warnings = Vec::new();
    for name in present {
        let base = name.strip_suffix(FILE_SUFFIX).unwrap_or(name);
        if VARIABLES.contains(&base) || ACKNOWLEDGED.iter().any(|(known, _)| *known == name) {
            continue;
        }
        let closest = VARIABLES
            .iter()
            .map(|known| (edit_distance(base, known), *known))
            .min();
        if let Some((distance, known)) = closest {
            // Close enough to be a slip: at most two edits, or a quarter of the name.
            if distance > 0 && distance <= (known.len() / 4).max(2) {
                warnings.push(format!(
                    "{name} is not a variable the relay reads; did you mean {known}?"
                ));
            }
        }
    }
    warnings
}

/// A note for each `present` name in [`ACKNOWLEDGED`].
pub fn acknowledged_variables<'a>(present: impl Iterator<Item = &'a str>) -> Vec<String> {
    present
        .filter_map(|name| {
            ACKNOWLEDGED
                .iter()
                .find(|(known, _)| *known == name)
                .map(|(known, why)| format!("{known} is set: {why}"))
        })
        .collect()
}

/// Levenshtein distance over bytes (variable names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(
        pairs: &'a [(&'a str, &'a str)],
    ) -> impl Fn(&str) -> Result<Option<String>, ConfigError> + 'a {
        move |name| {
            Ok(pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned()))
        }
    }

    #[test]
    fn a_variable_may_come_from_a_file_without_its_trailing_newline() {
        let path = std::env::temp_dir().join(format!("mte-relay-env-{}", std::process::id()));
        std::fs::write(&path, "a-secret-from-a-mounted-file\n").expect("write");
        let path_text = path.to_str().expect("utf-8").to_owned();
        let env = Env::from_lookup(lookup(&[
            ("CLIENT_ID_SECRET_FILE", path_text.as_str()),
            ("SECRET", "an-echoed-secret\r\n"),
        ]))
        .expect("valid");
        assert_eq!(
            env.get("CLIENT_ID_SECRET"),
            Some("a-secret-from-a-mounted-file")
        );
        assert_eq!(env.get("SECRET"), Some("an-echoed-secret"));
        let both = Env::from_lookup(lookup(&[
            ("CLIENT_ID_SECRET_FILE", path_text.as_str()),
            ("CLIENT_ID_SECRET", "direct"),
        ]))
        .expect_err("both");
        assert!(both.problem.contains("not both"), "{both}");
        let _ = std::fs::remove_file(&path);
        let missing = Env::from_lookup(lookup(&[("DOMAIN_MAP_FILE", "/nonexistent/map.json")]))
            .expect_err("unreadable");
        assert_eq!(missing.location, "DOMAIN_MAP_FILE");
        // ADAPTERS_FILE keeps its own meaning: a path the relay reads itself.
        let adapters =
            Env::from_lookup(lookup(&[("ADAPTERS_FILE", "/etc/adapters.json")])).expect("valid");
        assert_eq!(adapters.get("ADAPTERS_FILE"), Some("/etc/adapters.json"));
        assert_eq!(adapters.get("ADAPTERS"), None);
    }

    #[test]
    fn misspellings_get_a_did_you_mean_and_other_variables_nothing() {
        let warnings = misspelt_variables(
            [
                "PASS_THRU_ROUTES",
                "CORS_ORIGIN",
                "MTE_ROUTE",
                "PATH",
                "HOME",
                "HOSTNAME",
                "MTE_RELAY_SERVICE_HOST",
                "MTE_RELAY_PORT_80_TCP",
                "KUBERNETES_SERVICE_PORT",
                "UPSTREAM",
                "SECRET_FILE",
            ]
            .into_iter(),
        );
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(
            warnings[0].contains("did you mean PASS_THROUGH_ROUTES?"),
            "{warnings:?}"
        );
        assert!(
            warnings[1].contains("did you mean CORS_ORIGINS?"),
            "{warnings:?}"
        );
        assert!(
            warnings[2].contains("did you mean MTE_ROUTES?"),
            "{warnings:?}"
        );
    }

    #[test]
    fn acknowledged_variables_get_a_note_and_no_did_you_mean() {
        let present = ["AWS_REGION", "PATH", "UPSTREAM"];
        let notes = acknowledged_variables(present.into_iter());
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].starts_with("AWS_REGION is set: "), "{notes:?}");
        assert!(misspelt_variables(present.into_iter()).is_empty());
    }
}
