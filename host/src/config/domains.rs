//! The domain table and `Host` matching.

use std::collections::HashMap;
use std::sync::Arc;

use mte_relay_protocol::host::NormalHost;

use super::domain::DomainConfig;
use super::error::{ConfigError, key};

/// The wildcard key: the domain used when no other key matches.
pub const WILDCARD: &str = "*";

/// Every configured domain, looked up by the request's `Host`.
#[derive(Clone, Debug)]
pub struct DomainTable {
    by_key: HashMap<String, Arc<DomainConfig>>,
    /// Configuration order, for logs and `check-config`.
    ordered: Vec<Arc<DomainConfig>>,
}

impl DomainTable {
    pub fn new(domains: Vec<DomainConfig>) -> Result<Self, ConfigError> {
        let mut by_key = HashMap::with_capacity(domains.len());
        let mut ordered = Vec::with_capacity(domains.len());
        for domain in domains {
            let domain = Arc::new(domain);
            if by_key.insert(domain.name.clone(), domain.clone()).is_some() {
                return Err(ConfigError::new(
                    key("DOMAIN_MAP", &domain.name),
                    "configured twice (keys are case-insensitive)",
                ));
            }
            ordered.push(domain);
        }
        Ok(DomainTable { by_key, ordered })
    }

    /// The domain for a `Host` value (or `:authority`): the exact `host:port` key,
    /// then the bare host key, then `*`. Case-insensitive; a trailing dot is ignored.
    pub fn lookup(&self, host: &str) -> Option<&Arc<DomainConfig>> {
        let host = NormalHost::parse(host);
        let with_port = host.port.is_some().then(|| host.with_port());
        with_port
            .as_deref()
            .and_then(|key| self.by_key.get(key))
            .or_else(|| self.by_key.get(&host.name))
            .or_else(|| self.by_key.get(WILDCARD))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<DomainConfig>> {
        self.ordered.iter()
    }

    pub fn len(&self) -> usize {
        self.ordered.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ordered.is_empty()
    }
}

/// Validates a `DOMAIN_MAP` key and returns its lookup form.
pub(crate) fn normalise_key(raw: &str) -> Result<String, String> {
    let lower = raw.trim().to_ascii_lowercase();
    if lower == WILDCARD {
        return Ok(lower);
    }
    let problem = || "not a host name, host:port or \"*\"".to_owned();
    if lower.is_empty() {
        return Err(problem());
    }
    let authority: http::uri::Authority = lower.parse().map_err(|_| problem())?;
    if authority.as_str().contains('@') || authority.host().is_empty() || lower.contains('*') {
        return Err(problem());
    }
    Ok(NormalHost::parse(&lower).with_port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_normalised() {
        assert_eq!(
            normalise_key("API.Example.com").as_deref(),
            Ok("api.example.com")
        );
        assert_eq!(
            normalise_key("api.example.com.:443").as_deref(),
            Ok("api.example.com:443")
        );
        assert_eq!(normalise_key("*").as_deref(), Ok("*"));
        for bad in ["", "user@host", "*.example.com", "a b", "host/path"] {
            assert!(normalise_key(bad).is_err(), "{bad:?} accepted");
        }
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::config::{Config, Env};

    fn table(keys: &[&str]) -> DomainTable {
        let map: serde_json::Map<String, serde_json::Value> = keys
            .iter()
            .map(|key| ((*key).to_owned(), serde_json::json!({ "upstream": format!("http://{}", key.replace('*', "any")) })))
            .collect();
        let json = serde_json::Value::Object(map).to_string();
        Config::from_env(&Env::from_pairs([("DOMAIN_MAP", json.as_str())]))
            .expect("valid")
            .config
            .domains
    }

    proptest! {
        #[test]
        fn lookup_ignores_case_and_a_port_unless_the_key_names_one(
            host in "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9-]{0,10}){0,3}",
            port in 1u16..,
            upper in any::<u64>(),
        ) {
            let domains = table(&[&host]);
            let mixed: String = host
                .chars()
                .enumerate()
                .map(|(i, c)| if upper >> (i % 64) & 1 == 1 { c.to_ascii_uppercase() } else { c })
                .collect();
            let found = |h: &str| domains.lookup(h).map(|d| d.name.clone());
            prop_assert_eq!(found(&mixed), Some(host.clone()));
            prop_assert_eq!(found(&format!("{mixed}:{port}")), Some(host.clone()));
            prop_assert_eq!(found(&format!("x{host}")), None);
            prop_assert_eq!(found(&format!("{host}.x")), None);

            let with_port = format!("{host}:{port}");
            let domains = table(&[&with_port, "*"]);
            let found = |h: &str| domains.lookup(h).map(|d| d.name.clone());
            prop_assert_eq!(found(&format!("{mixed}:{port}")), Some(with_port.clone()));
            prop_assert_eq!(found(&mixed), Some("*".to_owned()));
        }
    }
}
