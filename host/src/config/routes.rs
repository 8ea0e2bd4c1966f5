//! Route patterns for `pass_through_routes` and `mte_routes`.
//!
//! Two forms, both matched against the request path (never the query):
//! * an exact path, `/health`, which matches `/health` only (not `/health/`);
//! * a prefix glob, `/static/*`, which matches `/static` and everything below
//!   `/static/`, but not `/staticfiles`. `/*` matches every path.
//!
//! Matching is case-sensitive and byte-exact. A path with dot segments (`.`, `..`,
//! also percent-encoded) or an encoded slash or backslash never matches: an upstream
//! that normalises `/public/../admin` to `/admin` would otherwise receive a plaintext
//! request for a route the operator meant to keep encrypted.

use std::fmt;

/// One route pattern, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoutePattern {
    /// Matches this path exactly.
    Exact(String),
    /// Matches this path (no trailing slash) and every path below it. Empty for `/*`.
    Prefix(String),
}

impl RoutePattern {
    /// Parses one pattern; the error explains the rule that was broken.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if !raw.starts_with('/') {
            return Err(format!("route {raw:?} must start with '/'"));
        }
        if raw
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
        {
            return Err(format!(
                "route {raw:?} must be a path without spaces, query or fragment"
            ));
        }
        let (body, is_prefix) = match raw.strip_suffix("/*") {
            Some(body) => (body, true),
            None => (raw, false),
        };
        if body.contains('*') {
            return Err(format!(
                "route {raw:?}: '*' is only allowed as a final \"/*\" segment"
            ));
        }
        if !is_plain_path(if body.is_empty() { "/" } else { body }) {
            return Err(format!(
                "route {raw:?} must not contain dot segments or encoded slashes"
            ));
        }
        Ok(if is_prefix {
            RoutePattern::Prefix(body.to_owned())
        } else {
            RoutePattern::Exact(body.to_owned())
        })
    }

    /// True when `path` (no query) is covered by this pattern.
    pub fn matches(&self, path: &str) -> bool {
        if !is_plain_path(path) {
            return false;
        }
        match self {
            RoutePattern::Exact(exact) => path == exact,
            RoutePattern::Prefix(prefix) => match path.strip_prefix(prefix.as_str()) {
                Some(rest) => rest.is_empty() || rest.starts_with('/'),
                None => false,
            },
        }
    }
}

impl fmt::Display for RoutePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoutePattern::Exact(path) => f.write_str(path),
            RoutePattern::Prefix(prefix) => write!(f, "{prefix}/*"),
        }
    }
}

/// An ordered list of patterns; empty matches nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteSet(Vec<RoutePattern>);

impl RouteSet {
    pub fn new(patterns: Vec<RoutePattern>) -> Self {
        RouteSet(patterns)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, path: &str) -> bool {
        self.0.iter().any(|pattern| pattern.matches(path))
    }

    pub fn patterns(&self) -> &[RoutePattern] {
        &self.0
    }
}

/// False for paths an upstream could rewrite into another route: dot segments, encoded
/// dots, encoded slashes and backslashes.
pub fn is_plain_path(path: &str) -> bool {
    if !path.starts_with('/') || path.contains('\\') {
        return false;
    }
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") {
        return false;
    }
    lower.split('/').all(|segment| {
        let decoded = segment.replace("%2e", ".");
        decoded != "." && decoded != ".."
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pattern(raw: &str) -> RoutePattern {
        RoutePattern::parse(raw).expect("valid pattern")
    }

    #[test]
    fn exact_patterns_match_only_themselves() {
        let health = pattern("/health");
        assert!(health.matches("/health"));
        assert!(!health.matches("/health/"));
        assert!(!health.matches("/healthz"));
        assert!(!health.matches("/Health"));
        assert!(!health.matches("/"));
    }

    #[test]
    fn prefix_patterns_match_the_prefix_and_below() {
        let assets = pattern("/static/*");
        assert!(assets.matches("/static"));
        assert!(assets.matches("/static/"));
        assert!(assets.matches("/static/app.js"));
        assert!(assets.matches("/static/a/b/c"));
        assert!(!assets.matches("/staticfiles"));
        assert!(!assets.matches("/"));
        let everything = pattern("/*");
        assert!(everything.matches("/"));
        assert!(everything.matches("/anything/at/all"));
    }

    #[test]
    fn traversal_never_matches() {
        let public = pattern("/public/*");
        for path in [
            "/public/../admin",
            "/public/%2e%2e/admin",
            "/public/%2E./admin",
            "/public/./x",
            "/public/a%2fb",
            "/public\\..\\admin",
            "/public/..",
        ] {
            assert!(!public.matches(path), "{path} matched");
        }
    }

    #[test]
    fn invalid_patterns_are_refused() {
        for raw in [
            "", "health", "/a*", "/*/b", "/a/*/*", "/a b", "/a?x=1", "/a#f", "/a/../b", "*",
        ] {
            assert!(RoutePattern::parse(raw).is_err(), "{raw:?} accepted");
        }
    }

    #[test]
    fn display_round_trips() {
        for raw in ["/", "/health", "/static/*", "/*", "/a/b/c/*"] {
            assert_eq!(pattern(raw).to_string(), raw);
        }
    }

    proptest! {
        #[test]
        fn a_prefix_matches_every_plain_path_below_it(
            prefix in "(/[a-z0-9_-]{1,8}){1,3}",
            rest in "(/[a-z0-9_.-]{0,8}){0,3}",
        ) {
            let path = format!("{prefix}{rest}");
            prop_assume!(is_plain_path(&path));
            let glob = pattern(&format!("{prefix}/*"));
            prop_assert!(glob.matches(&path));
            prop_assert!(pattern(&path).matches(&path));
        }

        #[test]
        fn a_prefix_never_matches_a_sibling_with_a_longer_name(
            prefix in "(/[a-z0-9]{1,8}){1,3}",
            suffix in "[a-z0-9]{1,8}",
            rest in "(/[a-z0-9]{0,8}){0,2}",
        ) {
            let glob = pattern(&format!("{prefix}/*"));
            let sibling = format!("{prefix}{suffix}{rest}");
            prop_assert!(!glob.matches(&sibling));
        }

        #[test]
        fn any_path_with_a_dot_dot_segment_never_matches(
            before in "(/[a-z0-9]{1,8}){0,3}",
            after in "(/[a-z0-9]{1,8}){0,3}",
            dots in prop_oneof![Just(".."), Just("%2e%2e"), Just(".%2E"), Just(".")],
        ) {
            let path = format!("{before}/{dots}{after}");
            prop_assert!(!pattern("/*").matches(&path));
        }

        #[test]
        fn parse_never_panics_and_valid_patterns_display_back(raw in "\\PC{0,24}") {
            if let Ok(parsed) = RoutePattern::parse(&raw) {
                prop_assert_eq!(parsed.to_string(), raw);
            }
        }
    }
}
