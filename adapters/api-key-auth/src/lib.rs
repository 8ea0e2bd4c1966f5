//! API-key authentication. Keys are configured as SHA-256 hashes (hex), so the
//! configuration holds no usable secret. The presented key is hashed and compared
//! in constant time against every configured hash; the matching key's label is
//! forwarded upstream, and the key itself is stripped.

use mte_relay_adapter::{Config, Filter, HeaderEdit, RequestAction, RequestInfo};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Request header carrying the key.
    #[serde(default = "default_header")]
    header: String,
    /// Upstream header receiving the matched key's label.
    #[serde(default = "default_label_header")]
    label_header: String,
    /// Remove the key header before the request goes upstream.
    #[serde(default = "default_true")]
    strip_key: bool,
    /// Paths served without a key: exact paths, or `/prefix/*` for everything below.
    #[serde(default)]
    public_paths: Vec<String>,
    keys: Vec<KeyEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    label: String,
    /// Hex SHA-256 of the key.
    sha256: String,
}

fn default_header() -> String {
    "x-api-key".into()
}
fn default_label_header() -> String {
    "x-api-key-label".into()
}
fn default_true() -> bool {
    true
}

pub struct ApiKeyAuth {
    header: String,
    label_header: String,
    strip_key: bool,
    public_paths: Vec<PathPattern>,
    keys: Vec<(String, [u8; 32])>,
}

/// A `public_paths` entry, with the same pattern rules as the relay's routes.
#[derive(Debug, PartialEq, Eq)]
enum PathPattern {
    Exact(String),
    /// `/prefix/*`: the prefix itself and anything below it.
    Below(String),
}

impl PathPattern {
    fn parse(text: &str) -> Result<Self, String> {
        if !text.starts_with('/') {
            return Err(format!(
                "invalid config: public path `{text}` must start with `/`"
            ));
        }
        match text.strip_suffix("/*") {
            Some(prefix) if prefix.contains('*') => Err(format!(
                "invalid config: public path `{text}`: `*` is allowed only as a final `/*`"
            )),
            Some(prefix) => Ok(PathPattern::Below(prefix.to_owned())),
            None if text.contains('*') => Err(format!(
                "invalid config: public path `{text}`: `*` is allowed only as a final `/*`"
            )),
            None => Ok(PathPattern::Exact(text.to_owned())),
        }
    }

    fn matches(&self, path: &str) -> bool {
        match self {
            PathPattern::Exact(exact) => path == exact,
            PathPattern::Below(prefix) => {
                path == prefix
                    || path
                        .strip_prefix(prefix.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            }
        }
    }
}

/// Why a request is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    Missing,
    Invalid,
}

impl ApiKeyAuth {
    pub fn from_json(config: &str) -> Result<Self, String> {
        let settings: Settings = Config::from_raw(config.to_owned()).parse()?;
        if settings.keys.is_empty() {
            return Err("invalid config: `keys` is empty".into());
        }
        let mut keys = Vec::with_capacity(settings.keys.len());
        for entry in settings.keys {
            let bytes = hex::decode(entry.sha256.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| {
                    format!(
                        "invalid config: key `{}`: sha256 must be 64 hex digits",
                        entry.label
                    )
                })?;
            keys.push((entry.label, bytes));
        }
        let public_paths = settings
            .public_paths
            .iter()
            .map(|text| PathPattern::parse(text))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            header: settings.header.to_ascii_lowercase(),
            label_header: settings.label_header,
            strip_key: settings.strip_key,
            public_paths,
            keys,
        })
    }

    /// True when `path` (without its query) needs no key.
    pub fn is_public(&self, path: &str) -> bool {
        self.public_paths
            .iter()
            .any(|pattern| pattern.matches(path))
    }

    /// The label of the key presented, checked in constant time over all keys.
    pub fn authenticate(&self, presented: Option<&str>) -> Result<&str, Refusal> {
        let presented = presented
            .filter(|k| !k.is_empty())
            .ok_or(Refusal::Missing)?;
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found: Option<&str> = None;
        for (label, hash) in &self.keys {
            // Visit every entry: timing does not depend on which key matched.
            if bool::from(hash.ct_eq(&digest)) {
                found = Some(label);
            }
        }
        found.ok_or(Refusal::Invalid)
    }
}

impl Filter for ApiKeyAuth {
    fn init(config: Config) -> Result<Self, String> {
        Self::from_json(config.raw())
    }

    /// Only requests are checked: the relay skips this filter on responses.
    fn edits_responses(&self) -> bool {
        false
    }

    /// The key header is all it reads.
    fn request_headers(&self) -> Option<Vec<String>> {
        Some(vec![self.header.clone()])
    }

    fn on_request(&mut self, request: &RequestInfo) -> Result<RequestAction, String> {
        if self.is_public(request.path()) {
            return Ok(RequestAction::proceed());
        }
        match self.authenticate(request.header(&self.header)) {
            Ok(label) => {
                let mut edits = vec![HeaderEdit::set(self.label_header.clone(), label)];
                if self.strip_key {
                    edits.push(HeaderEdit::remove(self.header.clone()));
                }
                Ok(RequestAction::proceed_with(edits))
            }
            Err(refusal) => {
                let reason = match refusal {
                    Refusal::Missing => "missing api key",
                    Refusal::Invalid => "invalid api key",
                };
                Ok(RequestAction::respond_json(
                    401,
                    &serde_json::json!({ "error": "unauthorized", "reason": reason }),
                ))
            }
        }
    }
}

mte_relay_adapter::export_filter!(ApiKeyAuth);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config() -> String {
        let hash = hex::encode(Sha256::digest(b"secret-1"));
        format!(
            r#"{{"keys":[{{"label":"acme","sha256":"{hash}"}},{{"label":"other","sha256":"{}"}}]}}"#,
            hex::encode(Sha256::digest(b"secret-2"))
        )
    }

    #[test]
    fn accepts_known_keys_and_refuses_others() {
        let auth = ApiKeyAuth::from_json(&config()).unwrap();
        assert_eq!(auth.authenticate(Some("secret-1")), Ok("acme"));
        assert_eq!(auth.authenticate(Some("secret-2")), Ok("other"));
        assert_eq!(auth.authenticate(Some("secret-3")), Err(Refusal::Invalid));
        assert_eq!(auth.authenticate(Some("")), Err(Refusal::Missing));
        assert_eq!(auth.authenticate(None), Err(Refusal::Missing));
    }

    #[test]
    fn public_paths_match_exactly_or_below_a_prefix() {
        let hash = hex::encode(Sha256::digest(b"k"));
        let auth = ApiKeyAuth::from_json(&format!(
            r#"{{"public_paths":["/health","/docs/*"],"keys":[{{"label":"a","sha256":"{hash}"}}]}}"#
        ))
        .unwrap();
        for public in ["/health", "/docs", "/docs/", "/docs/api/v1"] {
            assert!(auth.is_public(public), "{public}");
        }
        for private in ["/health/x", "/healthz", "/docsx", "/", "/echo"] {
            assert!(!auth.is_public(private), "{private}");
        }
        for bad in ["health", "/a*", "/*/b", "/a/*/*"] {
            let config = format!(
                r#"{{"public_paths":["{bad}"],"keys":[{{"label":"a","sha256":"{hash}"}}]}}"#
            );
            assert!(ApiKeyAuth::from_json(&config).is_err(), "{bad}");
        }
    }

    #[test]
    fn rejects_bad_configs() {
        assert!(ApiKeyAuth::from_json(r#"{"keys":[]}"#).is_err());
        assert!(ApiKeyAuth::from_json(r#"{"keys":[{"label":"a","sha256":"abc"}]}"#).is_err());
        assert!(ApiKeyAuth::from_json(r#"{"kyes":[]}"#).is_err());
    }
}
