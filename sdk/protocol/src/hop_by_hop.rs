//! Which header fields describe one connection rather than the message: the one list
//! the relay (towards its upstream and its clients) and the client SDK (building and
//! opening encrypted heads) both apply. Such a field never travels inside a sealed
//! head and is never forwarded (RFC 9110 §7.6.1).

/// Hop-by-hop fields by name, lowercase: the ones RFC 9110 §7.6.1 and RFC 9112 name,
/// and the `proxy-*` connection fields older proxies send.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// True for a field in [`HOP_BY_HOP`]; `name` is lowercase, as the `http` crate keeps
/// names.
pub fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.contains(&name)
}

/// The fields a `Connection` header's values name, lowercase: they are hop-by-hop
/// for this message too.
pub fn connection_named<'a>(
    connection_values: impl IntoIterator<Item = &'a str>,
) -> impl Iterator<Item = String> {
    connection_values
        .into_iter()
        .flat_map(|value| value.split(','))
        .map(|token| token.trim().to_ascii_lowercase())
        .filter(|token| !token.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_and_connection_named_fields() {
        assert!(is_hop_by_hop("transfer-encoding"));
        assert!(is_hop_by_hop("proxy-authorization"));
        assert!(!is_hop_by_hop("content-type"));
        assert!(!is_hop_by_hop("proxy-status"));
        let named: Vec<_> = connection_named(["keep-alive, X-Private", " ,close"]).collect();
        assert_eq!(named, ["keep-alive", "x-private", "close"]);
    }
}
