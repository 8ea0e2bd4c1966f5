//! CORS per domain: preflights answered from the domain's policy, and the response
//! headers that let a browser read the relay's own headers.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};

use crate::body::{RelayBody, empty};
use crate::config::CorsPolicy;

/// Headers a browser may send and read: the relay protocol's, plus the correlation id.
pub const RELAY_CORS_HEADERS: &str = "x-mte-relay, x-mte-relay-head, x-mte-relay-error, x-mte-relay-client-id, x-request-id, content-type";

/// How long a browser may cache a preflight answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "600";

/// The answer to a preflight: 204, with CORS headers only when both the origin and the
/// requested method are allowed (a browser then refuses the real request).
pub fn preflight(policy: &CorsPolicy, request: &HeaderMap) -> Response<RelayBody> {
    let mut response = Response::new(empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(
        header::VARY,
        HeaderValue::from_static(
            "origin, access-control-request-method, access-control-request-headers",
        ),
    );
    let origin = request.get(header::ORIGIN);
    let method = request
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|value| Method::from_bytes(value.as_bytes()).ok());
    let (Some(origin), Some(method)) = (origin, method) else {
        return response;
    };
    let origin_allowed = origin
        .to_str()
        .is_ok_and(|origin| policy.allows_origin(origin));
    if !origin_allowed || !policy.allows_method(&method) {
        return response;
    }
    let mut methods: Vec<&str> = vec!["OPTIONS", "HEAD"];
    methods.extend(
        policy
            .methods
            .iter()
            .map(Method::as_str)
            .filter(|m| !matches!(*m, "OPTIONS" | "HEAD")),
    );
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    if let Ok(value) = HeaderValue::from_str(&methods.join(", ")) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, value);
    }
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(RELAY_CORS_HEADERS),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(PREFLIGHT_MAX_AGE),
    );
    response
}

/// Sets the CORS headers of an actual (non-preflight) response. When the domain has
/// a policy, the relay owns CORS: an allowed origin is reflected, and for any other
/// origin every `access-control-*` header (the upstream's too) is removed.
pub fn apply(policy: &CorsPolicy, origin: Option<&HeaderValue>, response: &mut HeaderMap) {
    if !policy.is_enabled() {
        return;
    }
    response.append(header::VARY, HeaderValue::from_static("origin"));
    let allowed = origin.filter(|origin| origin.to_str().is_ok_and(|o| policy.allows_origin(o)));
    let cors_names: Vec<_> = response
        .keys()
        .filter(|name| name.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for name in cors_names {
        response.remove(name);
    }
    if let Some(origin) = allowed {
        response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        response.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(RELAY_CORS_HEADERS),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> CorsPolicy {
        CorsPolicy {
            origins: vec!["https://app.example.com".to_owned()],
            any_origin: false,
            methods: vec![Method::GET, Method::POST],
        }
    }

    fn preflight_request(origin: &str, method: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_str(origin).expect("origin"),
        );
        headers.insert(
            header::ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_str(method).expect("method"),
        );
        headers
    }

    #[test]
    fn allowed_preflight_gets_cors_headers() {
        let response = preflight(
            &policy(),
            &preflight_request("https://app.example.com", "POST"),
        );
        let headers = response.headers();
        assert_eq!(
            headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.example.com"
        );
        assert_eq!(
            headers[header::ACCESS_CONTROL_ALLOW_METHODS],
            "OPTIONS, HEAD, GET, POST"
        );
        assert!(
            headers[header::ACCESS_CONTROL_ALLOW_HEADERS]
                .to_str()
                .expect("ascii")
                .contains("x-mte-relay-head")
        );
    }

    #[test]
    fn refused_preflights_get_none() {
        for (origin, method) in [
            ("https://evil.example.com", "GET"),
            ("https://app.example.com", "DELETE"),
        ] {
            let response = preflight(&policy(), &preflight_request(origin, method));
            assert!(
                !response
                    .headers()
                    .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            );
        }
    }

    #[test]
    fn actual_responses_lose_upstream_cors_for_other_origins() {
        let mut response = HeaderMap::new();
        response.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        let evil = HeaderValue::from_static("https://evil.example.com");
        apply(&policy(), Some(&evil), &mut response);
        assert!(!response.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));

        let good = HeaderValue::from_static("https://app.example.com");
        apply(&policy(), Some(&good), &mut response);
        assert_eq!(
            response[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.example.com"
        );
        assert!(response.contains_key(header::ACCESS_CONTROL_EXPOSE_HEADERS));
    }
}
