//! Route classes: which part of the relay answers a request.

use http::{HeaderMap, Method};

use crate::config::DomainConfig;

// The protocol's routes and the header that marks an MTE request, named once in the
// protocol crate.
pub use mte_relay_protocol::ECHO_ROUTE as ECHO_PATH;
pub use mte_relay_protocol::capabilities::CAPABILITIES_ROUTE as CAPABILITIES_PATH;
pub use mte_relay_protocol::header::RELAY_HEADER;
pub use mte_relay_protocol::pairing::PAIR_ROUTE as PAIR_PATH;

use crate::pipeline::outbound::OUTBOUND_TOKEN_HEADER;

/// The relay's endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalRoute {
    /// `GET`/`HEAD /api/mte-relay`: protocol capabilities and the client id.
    Capabilities,
    /// `POST /api/mte-pair`: a pairing batch.
    Pair,
    /// `GET`/`HEAD /api/mte-echo` without `x-mte-relay`: a plain JSON echo.
    Echo,
}

/// Who answers a request, decided from the method, path and headers only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteClass {
    /// A CORS preflight the relay answers itself (the domain has a CORS policy).
    Preflight,
    Local(LocalRoute),
    /// A request with `x-mte-relay`: its real path and headers are encrypted.
    Mte,
    /// A request with `x-mte-outbound-token`: sent encrypted to a peer relay.
    Outbound,
    PassThrough,
    /// A local path with a method it does not serve.
    MethodNotServed,
    /// Not pass-through, and outside `mte_routes` when those are set.
    NotFound,
    /// Plain request on a path only MTE may use: the client forgot to encrypt.
    RelayHeaderMissing,
}

impl RouteClass {
    /// The class as it appears in the access log.
    pub fn label(self) -> &'static str {
        match self {
            RouteClass::Preflight => "preflight",
            RouteClass::Local(LocalRoute::Capabilities) => "capabilities",
            RouteClass::Local(LocalRoute::Pair) => "pair",
            RouteClass::Local(LocalRoute::Echo) => "echo",
            RouteClass::Mte => "mte",
            RouteClass::Outbound => "outbound",
            RouteClass::PassThrough => "pass-through",
            RouteClass::MethodNotServed | RouteClass::NotFound | RouteClass::RelayHeaderMissing => {
                "rejected"
            }
        }
    }
}

/// Classifies a request for `domain`. Order matters: a request carrying
/// `x-mte-outbound-token` is outbound whatever its path (the path is the peer
/// upstream's); the pairing endpoints are never MTE requests; any other request
/// carrying `x-mte-relay` is (its outer path means nothing); then the plain echo, then
/// pass-through routes.
pub fn classify(
    domain: &DomainConfig,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> RouteClass {
    if is_preflight(method, headers) && domain.cors.is_enabled() {
        return RouteClass::Preflight;
    }
    if headers.contains_key(OUTBOUND_TOKEN_HEADER) {
        return RouteClass::Outbound;
    }
    let read = *method == Method::GET || *method == Method::HEAD;
    match path {
        CAPABILITIES_PATH if read => return RouteClass::Local(LocalRoute::Capabilities),
        PAIR_PATH if *method == Method::POST => return RouteClass::Local(LocalRoute::Pair),
        CAPABILITIES_PATH | PAIR_PATH => return RouteClass::MethodNotServed,
        _ => {}
    }
    if headers.contains_key(RELAY_HEADER) {
        return RouteClass::Mte;
    }
    if path == ECHO_PATH {
        return if read {
            RouteClass::Local(LocalRoute::Echo)
        } else {
            RouteClass::MethodNotServed
        };
    }
    if domain.pass_through_routes.matches(path) {
        return RouteClass::PassThrough;
    }
    if !domain.mte_routes.is_empty() && !domain.mte_routes.matches(path) {
        return RouteClass::NotFound;
    }
    RouteClass::RelayHeaderMissing
}

pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    *method == Method::OPTIONS
        && headers.contains_key(http::header::ORIGIN)
        && headers.contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
}

#[cfg(test)]
mod tests {
    use http::{HeaderValue, Method};

    use super::*;
    use crate::config::{Config, Env};

    fn domain(extra: &str) -> std::sync::Arc<DomainConfig> {
        let map = format!(r#"{{"*":{{"upstream":"http://127.0.0.1:1"{extra}}}}}"#);
        let config = Config::from_env(&Env::from_pairs([("DOMAIN_MAP", map.as_str())]))
            .expect("valid")
            .config;
        config.domains.lookup("any").expect("wildcard").clone()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn classes_follow_the_documented_order() {
        let open = domain(r#","pass_through_routes":["/health","/ws/*"],"cors_origins":["*"]"#);
        let plain = HeaderMap::new();
        let mte = headers(&[("x-mte-relay", "x")]);
        let preflight = headers(&[
            ("origin", "https://a.example"),
            ("access-control-request-method", "POST"),
        ]);
        let cases = [
            (
                Method::OPTIONS,
                "/anything",
                &preflight,
                RouteClass::Preflight,
            ),
            (
                Method::GET,
                CAPABILITIES_PATH,
                &mte,
                RouteClass::Local(LocalRoute::Capabilities),
            ),
            (
                Method::HEAD,
                CAPABILITIES_PATH,
                &plain,
                RouteClass::Local(LocalRoute::Capabilities),
            ),
            (
                Method::POST,
                CAPABILITIES_PATH,
                &plain,
                RouteClass::MethodNotServed,
            ),
            (
                Method::POST,
                PAIR_PATH,
                &plain,
                RouteClass::Local(LocalRoute::Pair),
            ),
            (Method::GET, PAIR_PATH, &plain, RouteClass::MethodNotServed),
            (Method::POST, "/ignored/outer/path", &mte, RouteClass::Mte),
            (Method::GET, "/health", &mte, RouteClass::Mte),
            (Method::GET, ECHO_PATH, &mte, RouteClass::Mte),
            (
                Method::GET,
                ECHO_PATH,
                &plain,
                RouteClass::Local(LocalRoute::Echo),
            ),
            (Method::POST, ECHO_PATH, &plain, RouteClass::MethodNotServed),
            (Method::GET, "/health", &plain, RouteClass::PassThrough),
            (Method::GET, "/ws/chat", &plain, RouteClass::PassThrough),
            (Method::OPTIONS, "/health", &plain, RouteClass::PassThrough),
            (
                Method::GET,
                "/api/users",
                &plain,
                RouteClass::RelayHeaderMissing,
            ),
            (
                Method::GET,
                "/ws/../admin",
                &plain,
                RouteClass::RelayHeaderMissing,
            ),
        ];
        for (method, path, headers, expected) in cases {
            assert_eq!(
                classify(&open, &method, path, headers),
                expected,
                "{method} {path}"
            );
        }
    }

    #[test]
    fn mte_routes_turn_other_plain_paths_into_not_found() {
        let strict = domain(r#","pass_through_routes":["/health"],"mte_routes":["/api/*"]"#);
        let plain = HeaderMap::new();
        assert_eq!(
            classify(&strict, &Method::GET, "/api/x", &plain),
            RouteClass::RelayHeaderMissing
        );
        assert_eq!(
            classify(&strict, &Method::GET, "/admin", &plain),
            RouteClass::NotFound
        );
        assert_eq!(
            classify(&strict, &Method::GET, "/health", &plain),
            RouteClass::PassThrough
        );
    }

    #[test]
    fn without_cors_a_preflight_is_an_ordinary_request() {
        let no_cors = domain(r#","pass_through_routes":["/*"]"#);
        let preflight = headers(&[
            ("origin", "https://a.example"),
            ("access-control-request-method", "GET"),
        ]);
        assert_eq!(
            classify(&no_cors, &Method::OPTIONS, "/x", &preflight),
            RouteClass::PassThrough
        );
    }
}
