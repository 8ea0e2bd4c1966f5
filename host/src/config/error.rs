//! The one-line configuration error: where (variable and field) and what is wrong.

use std::fmt;

/// Invalid configuration. Displays as `LOCATION: PROBLEM`, for example
/// `DOMAIN_MAP["api.example.com"].upstream: not an absolute http(s) URL`.
///
/// Never retry-safe: the process must be restarted with a fixed environment.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The variable, and inside it the field, that is wrong.
    pub location: String,
    /// What is wrong with it. Never contains a secret value.
    pub problem: String,
}

impl ConfigError {
    pub fn new(location: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError {
            location: location.into(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Newlines from a value would break the one-line promise; escape them.
        let problem = self.problem.replace('\n', "\\n");
        write!(f, "{}: {}", self.location, problem)
    }
}

/// Builds field locations like `DOMAIN_MAP["api"].headers["x-a"]`.
pub(crate) fn field(parent: &str, name: &str) -> String {
    format!("{parent}.{name}")
}

pub(crate) fn key(parent: &str, key: &str) -> String {
    let escaped = serde_json::to_string(key).unwrap_or_else(|_| format!("\"{key}\""));
    format!("{parent}[{escaped}]")
}

pub(crate) fn index(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}
