//! Where a domain's requests go, and the one rule for reading an http(s) URL from the
//! configuration (with a did-you-mean for a bare `host:port`): the domain's upstream
//! and the API Relay's peer origins both use it.

use http::Uri;

/// Where requests for a domain go: scheme and authority, plus an optional base path
/// that prefixes every forwarded path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamTarget {
    pub scheme: http::uri::Scheme,
    pub authority: http::uri::Authority,
    /// Empty, or a path starting with '/' and not ending with one.
    pub base_path: String,
}

impl UpstreamTarget {
    pub fn parse(raw: &str) -> Result<Self, String> {
        const NOT_A_URL: &str = "not an absolute http(s) URL";
        // `backend:3000` parses as a URI with the scheme `backend`: say what was meant.
        let suggestion = || {
            let looks_like_host = !raw.contains("://")
                && !raw.starts_with('/')
                && raw
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.:_/[]".contains(c));
            if looks_like_host && !raw.is_empty() {
                format!("{raw:?} is {NOT_A_URL}; did you mean \"http://{raw}\"?")
            } else {
                NOT_A_URL.to_owned()
            }
        };
        let uri: Uri = raw.parse().map_err(|_| suggestion())?;
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return Err(suggestion());
        };
        if !matches!(scheme.as_str(), "http" | "https") {
            return Err(suggestion());
        }
        if authority.as_str().contains('@') {
            return Err("credentials in the URL are not allowed; use `headers`".to_owned());
        }
        if authority.host().is_empty() {
            return Err(NOT_A_URL.to_owned());
        }
        if uri.query().is_some() || raw.contains('#') {
            return Err("must not have a query or fragment".to_owned());
        }
        Ok(UpstreamTarget {
            scheme: scheme.clone(),
            authority: authority.clone(),
            base_path: uri.path().trim_end_matches('/').to_owned(),
        })
    }

    /// The upstream URI for an incoming path-and-query.
    pub fn uri_for(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        let path_and_query = if path_and_query.is_empty() {
            "/"
        } else {
            path_and_query
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(format!("{}{}", self.base_path, path_and_query))
            .build()
    }
}

impl std::fmt::Display for UpstreamTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.base_path)
    }
}
