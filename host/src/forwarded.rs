//! Who sent a request, and what the upstream is told about it.
//!
//! The forwarding headers (`x-forwarded-for`, `x-forwarded-host`, `x-forwarded-proto`,
//! `forwarded`) are the relay's to set. A client can write anything into them: inside
//! an MTE head they are dropped always, and on the outer request they are believed
//! only when the peer is a front proxy listed in `TRUSTED_PROXIES`. Then the relay
//! extends the proxy's values instead of replacing them, and takes the client's
//! address from them (for pairing rates) as the rightmost address in
//! `x-forwarded-for` that is not itself a trusted proxy.

use std::net::IpAddr;

use http::header::{FORWARDED, HeaderMap, HeaderName, HeaderValue};

use crate::config::TrustedProxies;

pub const X_FORWARDED_FOR: &str = "x-forwarded-for";
pub const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
pub const X_FORWARDED_HOST: &str = "x-forwarded-host";

/// Every header that describes how a request reached the relay.
const FORWARDING_HEADERS: [&str; 4] = [
    X_FORWARDED_FOR,
    X_FORWARDED_PROTO,
    X_FORWARDED_HOST,
    "forwarded",
];

/// What a trusted front proxy said about the request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FrontProxy {
    /// Its `x-forwarded-for` list, joined.
    pub forwarded_for: Option<String>,
    pub proto: Option<HeaderValue>,
    pub host: Option<HeaderValue>,
    /// Its `forwarded` elements, joined.
    pub forwarded: Option<String>,
}

/// Where a request came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provenance {
    /// The socket's peer: a client, or a front proxy.
    pub peer: IpAddr,
    /// The client as far as the relay can tell: the peer, or the address a trusted
    /// front proxy named.
    pub client: IpAddr,
    /// The forwarding headers of a trusted peer; `None` for any other peer.
    pub front: Option<FrontProxy>,
}

impl Provenance {
    /// Reads the outer request's headers from `peer`, believing them only when the
    /// peer is trusted.
    pub fn of(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> Provenance {
        if !trusted.contains(peer) {
            return Provenance {
                peer,
                client: peer,
                front: None,
            };
        }
        let front = FrontProxy {
            forwarded_for: joined(headers, X_FORWARDED_FOR),
            proto: headers.get(X_FORWARDED_PROTO).cloned(),
            host: headers.get(X_FORWARDED_HOST).cloned(),
            forwarded: joined(headers, FORWARDED.as_str()),
        };
        let client = front
            .forwarded_for
            .as_deref()
            .map_or(peer, |list| rightmost_untrusted(list, peer, trusted));
        Provenance {
            peer,
            client,
            front: Some(front),
        }
    }
}

/// Walks `x-forwarded-for` from the right past trusted proxies; the first address that
/// is not one is the client. An entry that is not an address ends the walk at the
/// last address believed.
fn rightmost_untrusted(list: &str, peer: IpAddr, trusted: &TrustedProxies) -> IpAddr {
    let mut client = peer;
    for entry in list.rsplit(',') {
        let Ok(address) = entry.trim().parse::<IpAddr>() else {
            break;
        };
        client = address;
        if !trusted.contains(address) {
            break;
        }
    }
    client
}

/// All values of header `name`, joined with `, `, when there is a non-empty one.
fn joined(headers: &HeaderMap, name: &str) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// Replaces every forwarding header in `headers` with the relay's: the front proxy's
/// values, when trusted, extended by this hop (`peer`, the `host` the relay was asked
/// for, plain `http` as the relay itself is reached).
pub fn set_forwarding_headers(headers: &mut HeaderMap, provenance: &Provenance, host: &str) {
    for name in FORWARDING_HEADERS {
        headers.remove(name);
    }
    let front = provenance.front.as_ref();
    let peer = provenance.peer.to_string();
    let forwarded_for = match front.and_then(|front| front.forwarded_for.as_deref()) {
        Some(list) => format!("{list}, {peer}"),
        None => peer,
    };
    insert(headers, X_FORWARDED_FOR, &forwarded_for);
    match front.and_then(|front| front.proto.clone()) {
        Some(proto) => {
            headers.insert(X_FORWARDED_PROTO, proto);
        }
        None => {
            headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        }
    }
    match front.and_then(|front| front.host.clone()) {
        Some(front_host) => {
            headers.insert(X_FORWARDED_HOST, front_host);
        }
        None if !host.is_empty() => insert(headers, X_FORWARDED_HOST, host),
        None => {}
    }
    // RFC 7239: one element per hop; an IPv6 node and any host are quoted strings.
    let node = match provenance.peer {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("\"[{v6}]\""),
    };
    let mut element = format!("for={node};proto=http");
    if !host.is_empty() && !host.contains(['"', '\\']) {
        element.push_str(&format!(";host=\"{host}\""));
    }
    let forwarded = match front.and_then(|front| front.forwarded.as_deref()) {
        Some(earlier) => format!("{earlier}, {element}"),
        None => element,
    };
    insert(headers, FORWARDED.as_str(), &forwarded);
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    fn spoofed() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(X_FORWARDED_FOR, HeaderValue::from_static("198.51.100.66"));
        headers.append(X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.5"));
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        headers.insert(X_FORWARDED_HOST, HeaderValue::from_static("public.example"));
        headers.insert(FORWARDED, HeaderValue::from_static("for=198.51.100.66"));
        headers
    }

    fn trusted(list: &str) -> TrustedProxies {
        TrustedProxies::parse(Some(list)).expect("valid")
    }

    #[test]
    fn an_untrusted_peers_forwarding_headers_are_dropped() {
        let provenance = Provenance::of(ip("203.0.113.9"), &spoofed(), &TrustedProxies::default());
        assert_eq!(provenance.client, ip("203.0.113.9"));
        assert_eq!(provenance.front, None);
        let mut headers = spoofed();
        set_forwarding_headers(&mut headers, &provenance, "api.example.com");
        assert_eq!(headers[X_FORWARDED_FOR], "203.0.113.9");
        assert_eq!(headers[X_FORWARDED_PROTO], "http");
        assert_eq!(headers[X_FORWARDED_HOST], "api.example.com");
        assert_eq!(
            headers[FORWARDED],
            "for=203.0.113.9;proto=http;host=\"api.example.com\""
        );
        assert_eq!(headers.get_all(X_FORWARDED_FOR).iter().count(), 1);
    }

    #[test]
    fn a_trusted_proxys_values_are_extended_and_name_the_client() {
        let trusted = trusted("10.0.0.0/8");
        let provenance = Provenance::of(ip("10.0.0.2"), &spoofed(), &trusted);
        // 10.0.0.5 is a trusted hop too, so the client is the one before it.
        assert_eq!(provenance.client, ip("198.51.100.66"));
        let mut headers = HeaderMap::new();
        set_forwarding_headers(&mut headers, &provenance, "api.example.com");
        assert_eq!(
            headers[X_FORWARDED_FOR],
            "198.51.100.66, 10.0.0.5, 10.0.0.2"
        );
        assert_eq!(headers[X_FORWARDED_PROTO], "https");
        assert_eq!(headers[X_FORWARDED_HOST], "public.example");
        assert_eq!(
            headers[FORWARDED],
            "for=198.51.100.66, for=10.0.0.2;proto=http;host=\"api.example.com\""
        );
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_address() {
        let trusted = trusted("10.0.0.0/8");
        let peer = ip("10.0.0.2");
        // A client that prepends a fake address is still named by its real one.
        assert_eq!(
            rightmost_untrusted("6.6.6.6, 203.0.113.4, 10.1.1.1", peer, &trusted),
            ip("203.0.113.4")
        );
        // Garbage ends the walk at the last address believed.
        assert_eq!(
            rightmost_untrusted("203.0.113.4, junk, 10.1.1.1", peer, &trusted),
            ip("10.1.1.1")
        );
        assert_eq!(rightmost_untrusted("junk", peer, &trusted), peer);
        // Only trusted hops: the leftmost is the best there is.
        assert_eq!(
            rightmost_untrusted("10.9.9.9, 10.1.1.1", peer, &trusted),
            ip("10.9.9.9")
        );
    }

    #[test]
    fn ipv6_peers_are_quoted_in_forwarded() {
        let provenance = Provenance::of(
            ip("2001:db8::7"),
            &HeaderMap::new(),
            &TrustedProxies::default(),
        );
        let mut headers = HeaderMap::new();
        set_forwarding_headers(&mut headers, &provenance, "");
        assert_eq!(headers[FORWARDED], "for=\"[2001:db8::7]\";proto=http");
        assert_eq!(headers[X_FORWARDED_FOR], "2001:db8::7");
        assert!(!headers.contains_key(X_FORWARDED_HOST));
    }
}
