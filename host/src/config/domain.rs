//! One fronted hostname: its upstream, routes, secrets, CORS policy and adapter chain.

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use serde_json::{Map, Value};

use std::sync::Arc;

use mte_relay_protocol::identity::RelayIdentity;

use super::error::{ConfigError, field, index, key};
use super::outbound::DomainOutbound;
use super::routes::{RoutePattern, RouteSet};
use super::secret::Secret;
use super::target::UpstreamTarget;

/// The largest `verify_body_before_forward`: such a body is held whole, so the bound
/// times `POOL_SIZE` is the memory it may take (16 GiB at the largest pool).
pub const MAX_VERIFIED_BODY_BYTES: u64 = 16 * 1024 * 1024;

/// Minimum length, in characters, of a `client_id_secret` (and of previous secrets).
pub const MIN_CLIENT_ID_SECRET_CHARS: usize = 32;

/// The fields a `DOMAIN_MAP` entry may have; anything else is a typo and an error.
pub const DOMAIN_FIELDS: &[&str] = &[
    "upstream",
    "pass_through_routes",
    "mte_routes",
    "client_id_secret",
    "client_id_previous_secrets",
    "cors_origins",
    "cors_methods",
    "headers",
    "outbound_token",
    "outbound_upstream",
    "outbound_peers",
    "outbound_pins",
    "identity_key",
    "verify_body_before_forward",
    "pad_stream_records",
    "adapters",
];

/// Which streamed (MKE) response bodies the relay sends with padded records, so that
/// record lengths show only size buckets (docs/protocol.md §6.5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StreamPadding {
    /// Only `text/event-stream` responses: one event per record would otherwise show
    /// each event's length (a model's answer token by token, for example).
    #[default]
    EventStreams,
    /// Every streamed response body.
    Always,
    /// None.
    Never,
}

impl StreamPadding {
    /// Parses `auto` (the default: event streams), `always`/`true`, `never`/`false`.
    fn parse(text: &str) -> Option<StreamPadding> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(StreamPadding::EventStreams),
            "always" | "true" => Some(StreamPadding::Always),
            "never" | "false" => Some(StreamPadding::Never),
            _ => None,
        }
    }

    /// The configuration token.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamPadding::EventStreams => "auto",
            StreamPadding::Always => "always",
            StreamPadding::Never => "never",
        }
    }

    /// Whether a response with this `content-type` gets padded records.
    pub fn applies_to(self, content_type: Option<&HeaderValue>) -> bool {
        match self {
            StreamPadding::Always => true,
            StreamPadding::Never => false,
            StreamPadding::EventStreams => content_type
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.split(';').next())
                .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("text/event-stream")),
        }
    }
}

/// Methods a preflight allows when `cors_methods` is not set.
pub const DEFAULT_CORS_METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE"];

/// Which browser origins may call a domain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CorsPolicy {
    /// Normalised origins (`scheme://host[:port]`, lowercase). Empty: CORS disabled.
    pub origins: Vec<String>,
    /// `*` in `cors_origins`: every origin is allowed (and reflected).
    pub any_origin: bool,
    /// Methods a preflight allows, besides OPTIONS and HEAD which are always allowed.
    pub methods: Vec<Method>,
}

impl CorsPolicy {
    pub fn is_enabled(&self) -> bool {
        self.any_origin || !self.origins.is_empty()
    }

    pub fn allows_origin(&self, origin: &str) -> bool {
        self.any_origin
            || self
                .origins
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(origin.trim_end_matches('/')))
    }

    pub fn allows_method(&self, method: &Method) -> bool {
        *method == Method::OPTIONS || *method == Method::HEAD || self.methods.contains(method)
    }
}

/// Headers the operator adds to upstream requests. They often carry credentials, so
/// `Debug` shows the names only.
#[derive(Clone, Default)]
pub struct ConfiguredHeaders(HeaderMap);

impl ConfiguredHeaders {
    pub fn map(&self) -> &HeaderMap {
        &self.0
    }
}

impl std::fmt::Debug for ConfiguredHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(
                self.0
                    .keys()
                    .map(|name| (name.as_str(), super::secret::REDACTED)),
            )
            .finish()
    }
}

/// The validated settings of one `DOMAIN_MAP` entry (or of the legacy variables).
#[derive(Clone, Debug)]
pub struct DomainConfig {
    /// The map key, lowercased: a host, a `host:port`, or `*`.
    pub name: String,
    pub upstream: UpstreamTarget,
    pub pass_through_routes: RouteSet,
    /// Empty: every path may be an MTE route.
    pub mte_routes: RouteSet,
    pub client_id_secret: Secret,
    /// True when no secret was configured and this one was generated at startup.
    pub client_id_secret_generated: bool,
    /// Accepted when verifying client ids during rotation; never used to mint.
    pub client_id_previous_secrets: Vec<Secret>,
    pub cors: CorsPolicy,
    /// Added to (and replacing same-named headers of) every upstream request.
    pub headers: ConfiguredHeaders,
    /// The outbound role of an API Relay, when the domain has an outbound token.
    pub outbound: Option<DomainOutbound>,
    /// The relay's identity: when set, pairing answers are signed and capabilities
    /// announce the public key, which clients pin.
    pub identity: Option<Arc<RelayIdentity>>,
    /// When set, an MTE request body is authenticated whole, up to this many plaintext
    /// bytes, before the upstream sees any of it; a longer body is refused. `None`:
    /// bodies stream record by record (the default).
    pub verify_body_before_forward: Option<u64>,
    /// Which streamed MKE response bodies are sent with padded records.
    pub pad_stream_records: StreamPadding,
    /// Adapter instance names, in the order the chain runs them on requests.
    pub adapters: Vec<String>,
}

/// The fields of a domain before validation; the same shape for both config forms.
#[derive(Default)]
pub(crate) struct RawDomain {
    pub upstream: Option<String>,
    pub pass_through_routes: Vec<String>,
    pub mte_routes: Vec<String>,
    pub client_id_secret: Option<String>,
    pub client_id_previous_secrets: Vec<String>,
    pub cors_origins: Vec<String>,
    pub cors_methods: Option<Vec<String>>,
    pub headers: Vec<(String, String)>,
    pub outbound_token: Option<String>,
    pub outbound_upstream: Option<String>,
    pub outbound_peers: Vec<String>,
    pub outbound_pins: Vec<String>,
    pub identity_key: Option<String>,
    /// Bytes, as given (a JSON number, or the legacy variable's text).
    pub verify_body_before_forward: Option<String>,
    /// `auto`, `always` or `never`, as given (JSON booleans become `always`/`never`).
    pub pad_stream_records: Option<String>,
    pub adapters: Vec<String>,
}

/// How to name each field in errors: `DOMAIN_MAP["x"].upstream` or `UPSTREAM`.
pub(crate) trait FieldNames {
    fn name(&self, field: &'static str) -> String;
}

/// Field locations inside one `DOMAIN_MAP` entry.
pub(crate) struct MapEntryNames(pub String);

impl FieldNames for MapEntryNames {
    fn name(&self, name: &'static str) -> String {
        field(&self.0, name)
    }
}

/// Field locations for the legacy single-domain variables.
pub(crate) struct LegacyNames;

impl FieldNames for LegacyNames {
    fn name(&self, field: &'static str) -> String {
        match field {
            // Named for the relay as a whole, as the one domain of the legacy form is.
            "identity_key" => "RELAY_IDENTITY_KEY".to_owned(),
            _ => field.to_ascii_uppercase(),
        }
    }
}

impl RawDomain {
    /// Reads one `DOMAIN_MAP` entry, refusing unknown fields and wrong JSON types.
    pub(crate) fn from_json(location: &str, value: &Value) -> Result<Self, ConfigError> {
        let Value::Object(object) = value else {
            return Err(ConfigError::new(location, "expected a JSON object"));
        };
        let mut raw = RawDomain::default();
        for (name, value) in object {
            let at = field(location, name);
            match name.as_str() {
                "upstream" => raw.upstream = Some(string(&at, value)?),
                "pass_through_routes" => raw.pass_through_routes = strings(&at, value)?,
                "mte_routes" => raw.mte_routes = strings(&at, value)?,
                "client_id_secret" => raw.client_id_secret = optional_string(&at, value)?,
                "client_id_previous_secrets" => {
                    raw.client_id_previous_secrets = strings(&at, value)?
                }
                // A lone "*" (the product documents' form) is the list ["*"].
                "cors_origins" => {
                    raw.cors_origins = match value {
                        Value::String(one) if one.trim() == "*" => vec!["*".to_owned()],
                        _ => strings(&at, value)?,
                    }
                }
                "cors_methods" => raw.cors_methods = Some(strings(&at, value)?),
                "headers" => raw.headers = header_pairs(&at, value)?,
                "outbound_token" => raw.outbound_token = optional_string(&at, value)?,
                "outbound_upstream" => raw.outbound_upstream = optional_string(&at, value)?,
                "outbound_peers" => raw.outbound_peers = strings(&at, value)?,
                "outbound_pins" => raw.outbound_pins = strings(&at, value)?,
                "identity_key" => raw.identity_key = optional_string(&at, value)?,
                "verify_body_before_forward" => {
                    raw.verify_body_before_forward = match value {
                        Value::Null => None,
                        Value::Number(number) => Some(number.to_string()),
                        _ => return Err(ConfigError::new(at, "expected a number of bytes")),
                    }
                }
                "pad_stream_records" => {
                    raw.pad_stream_records = match value {
                        Value::Null => None,
                        Value::Bool(pad) => Some(pad.to_string()),
                        Value::String(text) => Some(text.clone()),
                        _ => {
                            return Err(ConfigError::new(
                                at,
                                "expected \"auto\", \"always\" or \"never\"",
                            ));
                        }
                    }
                }
                "adapters" => raw.adapters = strings(&at, value)?,
                _ => {
                    return Err(ConfigError::new(
                        at,
                        format!(
                            "unknown field (expected one of: {})",
                            DOMAIN_FIELDS.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(raw)
    }

    /// Validates every field. `name` is the lowercased map key (or `*`).
    pub(crate) fn validate(
        self,
        name: String,
        names: &dyn FieldNames,
    ) -> Result<DomainConfig, ConfigError> {
        let upstream_raw = self
            .upstream
            .ok_or_else(|| ConfigError::new(names.name("upstream"), "required"))?;
        let upstream = UpstreamTarget::parse(upstream_raw.trim())
            .map_err(|problem| ConfigError::new(names.name("upstream"), problem))?;

        let pass_through_routes = routes(
            &names.name("pass_through_routes"),
            &self.pass_through_routes,
        )?;
        let mte_routes = routes(&names.name("mte_routes"), &self.mte_routes)?;

        let (client_id_secret, client_id_secret_generated) = match self.client_id_secret {
            Some(value) => (long_secret(&names.name("client_id_secret"), value)?, false),
            None => {
                let generated = Secret::generate().map_err(|error| {
                    ConfigError::new(
                        names.name("client_id_secret"),
                        format!("cannot generate a random secret: {error}"),
                    )
                })?;
                (generated, true)
            }
        };
        let previous_at = names.name("client_id_previous_secrets");
        let client_id_previous_secrets = self
            .client_id_previous_secrets
            .into_iter()
            .enumerate()
            .map(|(i, value)| long_secret(&index(&previous_at, i), value))
            .collect::<Result<Vec<_>, _>>()?;

        let cors = cors_policy(
            &names.name("cors_origins"),
            &names.name("cors_methods"),
            &self.cors_origins,
            self.cors_methods.as_deref(),
        )?;
        let headers = configured_headers(&names.name("headers"), &self.headers)?;
        let outbound = DomainOutbound::validate(
            &|field| names.name(field),
            self.outbound_token,
            self.outbound_upstream,
            self.outbound_peers,
            self.outbound_pins,
        )?;
        let identity = self
            .identity_key
            .map(|text| {
                RelayIdentity::parse(&text).map(Arc::new).map_err(|error| {
                    ConfigError::new(
                        names.name("identity_key"),
                        format!("{error}; `mte-relay keygen` prints a new one"),
                    )
                })
            })
            .transpose()?;
        let verify_body_before_forward = self
            .verify_body_before_forward
            .map(|text| verified_body_limit(&names.name("verify_body_before_forward"), &text))
            .transpose()?
            .flatten();
        let pad_stream_records = match self.pad_stream_records {
            None => StreamPadding::default(),
            Some(text) => StreamPadding::parse(&text).ok_or_else(|| {
                ConfigError::new(
                    names.name("pad_stream_records"),
                    "expected auto (event streams only, the default), always or never",
                )
            })?,
        };
        let adapters_at = names.name("adapters");
        for (i, adapter) in self.adapters.iter().enumerate() {
            if adapter.is_empty() || adapter.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(ConfigError::new(
                    index(&adapters_at, i),
                    "adapter names must be non-empty and without spaces",
                ));
            }
        }

        Ok(DomainConfig {
            name,
            upstream,
            pass_through_routes,
            mte_routes,
            client_id_secret,
            client_id_secret_generated,
            client_id_previous_secrets,
            cors,
            headers,
            outbound,
            identity,
            verify_body_before_forward,
            pad_stream_records,
            adapters: self.adapters,
        })
    }
}

/// `verify_body_before_forward`: a whole number of bytes up to
/// [`MAX_VERIFIED_BODY_BYTES`]; 0 turns it off.
fn verified_body_limit(at: &str, text: &str) -> Result<Option<u64>, ConfigError> {
    let problem = || {
        ConfigError::new(
            at,
            format!("expected a whole number of bytes from 0 (off) to {MAX_VERIFIED_BODY_BYTES}"),
        )
    };
    match text.trim().parse::<u64>() {
        Ok(0) => Ok(None),
        Ok(bytes) if bytes <= MAX_VERIFIED_BODY_BYTES => Ok(Some(bytes)),
        _ => Err(problem()),
    }
}

fn string(at: &str, value: &Value) -> Result<String, ConfigError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        _ => Err(ConfigError::new(at, "expected a string")),
    }
}

/// A string where `null` and `""` both mean "not set".
fn optional_string(at: &str, value: &Value) -> Result<Option<String>, ConfigError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(ConfigError::new(at, "expected a string")),
    }
}

fn strings(at: &str, value: &Value) -> Result<Vec<String>, ConfigError> {
    let Value::Array(items) = value else {
        return Err(ConfigError::new(at, "expected a list of strings"));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) => Ok(s.clone()),
            _ => Err(ConfigError::new(index(at, i), "expected a string")),
        })
        .collect()
}

pub(crate) fn header_pairs(at: &str, value: &Value) -> Result<Vec<(String, String)>, ConfigError> {
    let Value::Object(object) = value else {
        return Err(ConfigError::new(
            at,
            "expected a JSON object of header name to value",
        ));
    };
    header_pairs_from_map(at, object)
}

fn header_pairs_from_map(
    at: &str,
    object: &Map<String, Value>,
) -> Result<Vec<(String, String)>, ConfigError> {
    object
        .iter()
        .map(|(name, value)| match value {
            Value::String(s) => Ok((name.clone(), s.clone())),
            _ => Err(ConfigError::new(key(at, name), "expected a string value")),
        })
        .collect()
}

fn routes(at: &str, raw: &[String]) -> Result<RouteSet, ConfigError> {
    raw.iter()
        .enumerate()
        .map(|(i, pattern)| {
            RoutePattern::parse(pattern.trim())
                .map_err(|problem| ConfigError::new(index(at, i), problem))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(RouteSet::new)
}

fn long_secret(at: &str, value: String) -> Result<Secret, ConfigError> {
    Secret::at_least(at, value, MIN_CLIENT_ID_SECRET_CHARS)
}

fn cors_policy(
    origins_at: &str,
    methods_at: &str,
    origins: &[String],
    methods: Option<&[String]>,
) -> Result<CorsPolicy, ConfigError> {
    let mut policy = CorsPolicy::default();
    for (i, origin) in origins.iter().enumerate() {
        let origin = origin.trim();
        if origin == "*" {
            policy.any_origin = true;
            continue;
        }
        policy.origins.push(
            normalise_origin(origin)
                .map_err(|problem| ConfigError::new(index(origins_at, i), problem))?,
        );
    }
    let methods: Vec<String> = match methods {
        Some(methods) => methods.to_vec(),
        None => DEFAULT_CORS_METHODS
            .iter()
            .map(|m| (*m).to_owned())
            .collect(),
    };
    for (i, method) in methods.iter().enumerate() {
        let upper = method.trim().to_ascii_uppercase();
        let parsed = Method::from_bytes(upper.as_bytes())
            .ok()
            .filter(|_| !upper.is_empty())
            .ok_or_else(|| ConfigError::new(index(methods_at, i), "not an HTTP method token"))?;
        if !policy.methods.contains(&parsed) {
            policy.methods.push(parsed);
        }
    }
    Ok(policy)
}

fn normalise_origin(origin: &str) -> Result<String, String> {
    const PROBLEM: &str = "not an origin like https://app.example.com or *";
    let uri: Uri = origin.parse().map_err(|_| PROBLEM.to_owned())?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let path_ok = matches!(uri.path(), "" | "/") && !origin.ends_with("//");
    if !scheme_ok || uri.authority().is_none() || !path_ok || uri.query().is_some() {
        return Err(PROBLEM.to_owned());
    }
    Ok(origin.trim_end_matches('/').to_ascii_lowercase())
}

fn configured_headers(
    at: &str,
    pairs: &[(String, String)],
) -> Result<ConfiguredHeaders, ConfigError> {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        let location = key(at, name);
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ConfigError::new(&location, "not a valid header name"))?;
        if crate::header_rules::is_hop_by_hop(&header_name) || header_name == http::header::HOST {
            return Err(ConfigError::new(
                &location,
                "hop-by-hop and Host headers cannot be configured",
            ));
        }
        if crate::header_rules::is_relay_header(&header_name) {
            return Err(ConfigError::new(
                &location,
                "the relay's own x-mte-relay headers cannot be configured",
            ));
        }
        let header_value = HeaderValue::from_str(value)
            .map_err(|_| ConfigError::new(&location, "not a valid header value"))?;
        headers.insert(header_name, header_value);
    }
    Ok(ConfiguredHeaders(headers))
}
