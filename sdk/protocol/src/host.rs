//! Host names as the relay and its clients compare them: the one rule for turning a
//! `Host` header, an `:authority` or a base URL's host into the domain the protocol
//! binds keys and client ids to, and into the key a relay looks a domain up by.
//!
//! A host is compared without surrounding whitespace, in lowercase (RFC 9110 §4.2.3:
//! the host is case-insensitive) and without a trailing dot: `API.example.com.` and
//! `api.example.com` name the same fully qualified host, so a pair made under one
//! must open under the other. A port is kept apart: the protocol's domain never holds
//! one, a relay's lookup tries `host:port` before the bare host.

/// A host split into its normalised name and its port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NormalHost {
    /// The host: lowercase, without port or trailing dot; IPv6 literals keep their
    /// brackets.
    pub name: String,
    /// The port's digits, when the host named one.
    pub port: Option<String>,
}

impl NormalHost {
    /// Normalises a `Host` value, an `:authority` or a `host[:port]` key.
    pub fn parse(host: &str) -> NormalHost {
        let host = host.trim();
        let (name, port) = split_port(host);
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        NormalHost {
            name,
            port: port.map(str::to_owned),
        }
    }

    /// `name:port`, or the name alone when there is no port.
    pub fn with_port(&self) -> String {
        match &self.port {
            Some(port) => format!("{}:{port}", self.name),
            None => self.name.clone(),
        }
    }
}

/// The domain the protocol binds a request to (pairing transcripts, message keys,
/// client ids): the host of `Host`/`:authority` or of a base URL, normalised, without
/// its port.
pub fn protocol_domain(host: &str) -> String {
    NormalHost::parse(host).name
}

/// Splits `host[:port]` into the host and the port's digits, understanding bracketed
/// IPv6 literals (an unbracketed one has several colons and no port). A colon that is
/// not followed by digits only is part of the host.
pub fn split_port(host: &str) -> (&str, Option<&str>) {
    let Some(colon) = host.rfind(':') else {
        return (host, None);
    };
    let before = &host[..colon];
    let is_port_colon = if host.starts_with('[') {
        before.ends_with(']')
    } else {
        !before.contains(':')
    };
    let digits = &host[colon + 1..];
    if is_port_colon && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        (before, Some(digits))
    } else {
        (host, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_domain_drops_port_case_and_trailing_dot() {
        assert_eq!(protocol_domain("API.Example.com:8443"), "api.example.com");
        assert_eq!(protocol_domain("api.example.com."), "api.example.com");
        assert_eq!(protocol_domain(" api.example.com.:443 "), "api.example.com");
        assert_eq!(protocol_domain("[::1]:8080"), "[::1]");
        assert_eq!(protocol_domain("[::1]"), "[::1]");
        assert_eq!(protocol_domain("127.0.0.1:9"), "127.0.0.1");
    }

    #[test]
    fn ports_are_found_in_names_and_ipv6_literals() {
        assert_eq!(
            split_port("api.example.com:8080"),
            ("api.example.com", Some("8080"))
        );
        assert_eq!(split_port("api.example.com"), ("api.example.com", None));
        assert_eq!(split_port("[::1]:8080"), ("[::1]", Some("8080")));
        assert_eq!(split_port("[::1]"), ("[::1]", None));
        assert_eq!(split_port("::1"), ("::1", None));
        assert_eq!(split_port("host:"), ("host:", None));
        assert_eq!(split_port("host:8x"), ("host:8x", None));
    }

    #[test]
    fn with_port_puts_the_port_back() {
        assert_eq!(
            NormalHost::parse("Api.Example.COM.:8080").with_port(),
            "api.example.com:8080"
        );
        assert_eq!(
            NormalHost::parse("api.example.com").with_port(),
            "api.example.com"
        );
    }

    proptest::proptest! {
        /// Normalising is idempotent, and the domain never keeps a port, an upper-case
        /// letter or a trailing dot.
        #[test]
        fn normalising_is_idempotent(
            host in "([A-Za-z0-9\\-]{1,12}\\.?){1,3}(:[0-9]{1,5})?|\\[[0-9a-fA-F:]{2,12}\\](:[0-9]{1,5})?",
        ) {
            let once = NormalHost::parse(&host);
            let twice = NormalHost::parse(&once.with_port());
            proptest::prop_assert_eq!(&once, &twice);
            proptest::prop_assert!(!once.name.ends_with('.'));
            proptest::prop_assert_eq!(once.name.to_ascii_lowercase(), once.name.clone());
        }
    }
}
