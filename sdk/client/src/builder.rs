//! Configuration of a [`RelayClient`]: where the relay is and how the client behaves.

use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, Scheme, Uri};
use mte_relay_protocol::header::Mode;
use mte_relay_protocol::identity::Pin;
use mte_relay_protocol::secret::SecretBytes;

use crate::client::RelayClient;
use crate::error::ClientError;
use crate::request::is_reserved_outer_header;

/// Pairs kept by default.
pub const DEFAULT_PAIRS: usize = 4;
/// Longest wait honoured from a `Retry-After` by default.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long MTE messages of one pair may use one ratchet epoch (docs/protocol.md §8).
pub const DEFAULT_MTE_EPOCH_INTERVAL: Duration = Duration::from_secs(300);
/// The shortest epoch interval: an MTE request in flight for longer than the interval
/// while a later one moves two epochs on would find its key erased.
pub const MIN_MTE_EPOCH_INTERVAL: Duration = Duration::from_secs(1);

/// Wait after an `overloaded` answer that carries no usable `Retry-After`.
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);

/// Everything a client needs to know, validated once by [`RelayClientBuilder::build`].
#[derive(Debug)]
pub(crate) struct Config {
    /// Scheme of the relay's origin.
    pub scheme: Scheme,
    /// Host and port of the relay's origin, as addressed on the wire.
    pub authority: Authority,
    /// The host the protocol binds keys to: lowercase, without port.
    pub domain: String,
    /// Pairs wanted in the pool (clamped to the relay's limits at pairing).
    pub pairs: usize,
    /// Mode of requests that carry no [`Mode`] extension.
    pub default_mode: Mode,
    pub connect_timeout: Option<Duration>,
    /// Bound on the time until the response head arrives.
    pub request_timeout: Option<Duration>,
    /// The pre-shared `SECRET` of API Relay mode.
    pub secret: Option<SecretBytes>,
    /// Clear headers added to every request sent to the relay.
    pub extra_headers: HeaderMap,
    pub http2_prior_knowledge: bool,
    pub max_backoff: Duration,
    /// The relay's pinned identity keys (during a rotation, old and new): when any is
    /// set, pairing answers must be signed under a key that matches one of them.
    pub pins: Vec<Pin>,
    /// How long MTE messages of one pair may use one ratchet epoch.
    pub mte_epoch_interval: Duration,
    /// TLS for an `https://` relay in place of the web PKI roots.
    #[cfg(feature = "rustls")]
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl Config {
    /// The absolute URI of `path` on the relay's origin.
    pub fn uri(&self, path: &str) -> Result<Uri, ClientError> {
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|error| ClientError::invalid_request(format!("bad relay URI: {error}")))
    }
}

/// Builds a [`RelayClient`]; start with [`RelayClient::builder`].
#[derive(Debug)]
#[must_use]
pub struct RelayClientBuilder {
    base_url: String,
    pairs: usize,
    default_mode: Mode,
    connect_timeout: Option<Duration>,
    request_timeout: Option<Duration>,
    secret: Option<SecretBytes>,
    extra_headers: HeaderMap,
    http2_prior_knowledge: bool,
    max_backoff: Duration,
    pins: Vec<String>,
    mte_epoch_interval: Duration,
    #[cfg(feature = "rustls")]
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl RelayClientBuilder {
    pub(crate) fn new(base_url: impl Into<String>) -> Self {
        RelayClientBuilder {
            base_url: base_url.into(),
            pairs: DEFAULT_PAIRS,
            default_mode: Mode::Mke,
            connect_timeout: None,
            request_timeout: None,
            secret: None,
            extra_headers: HeaderMap::new(),
            http2_prior_knowledge: false,
            max_backoff: DEFAULT_MAX_BACKOFF,
            pins: Vec::new(),
            mte_epoch_interval: DEFAULT_MTE_EPOCH_INTERVAL,
            #[cfg(feature = "rustls")]
            tls: None,
        }
    }

    /// Number of pairs kept in the pool (default 4). Requests use them round-robin. It
    /// is lowered to the relay's `max_pairs_per_client` when that is smaller.
    pub fn pairs(mut self, pairs: usize) -> Self {
        self.pairs = pairs;
        self
    }

    /// Mode of requests without a [`Mode`] extension (default MKE).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.default_mode = mode;
        self
    }

    /// Bound on establishing a TCP connection.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Bound on the time from sending a request until its response head arrives. The
    /// response body may stream for longer (Server-Sent Events).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// The pre-shared `SECRET` of API Relay mode; it must equal the relay's.
    pub fn secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.secret = Some(SecretBytes::new(secret));
        self
    }

    /// A header added, in the clear, to every request sent to the relay (for example a
    /// gateway key). It is not encrypted: put end-to-end headers on the requests.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.extra_headers.append(name, value);
        self
    }

    /// Speak HTTP/2 without TLS from the first byte (h2c with prior knowledge) instead
    /// of HTTP/1.1. Over https the protocol is negotiated with ALPN either way.
    pub fn http2_prior_knowledge(mut self, enabled: bool) -> Self {
        self.http2_prior_knowledge = enabled;
        self
    }

    /// Longest wait honoured from a `Retry-After` (default 30 s).
    pub fn max_backoff(mut self, max: Duration) -> Self {
        self.max_backoff = max;
        self
    }

    /// Pins the relay's identity key: `sha256:<fingerprint>` as `mte-relay keygen` and
    /// `mte-relay check-config` print it, or the whole public key. The client then
    /// pairs only with a relay that announces this key and signs its pairing answers
    /// with it, so an active man in the middle (a TLS-terminating proxy, say) cannot
    /// pair in the relay's place. Without a pin such a proxy goes unnoticed.
    ///
    /// Call it again to accept another key as well, as during a key rotation: the
    /// relay's key must then match one of the pins.
    pub fn pin(mut self, pin: impl Into<String>) -> Self {
        self.pins.push(pin.into());
        self
    }

    /// The TLS configuration for an `https://` relay, in place of the web PKI roots: for
    /// a relay whose certificate chains to a private CA. The client sets its ALPN
    /// protocols (HTTP/2 and HTTP/1.1).
    #[cfg(feature = "rustls")]
    pub fn tls_config(mut self, config: rustls::ClientConfig) -> Self {
        self.tls = Some(std::sync::Arc::new(config));
        self
    }

    /// How long MTE messages of one pair may use one ratchet epoch (default five
    /// minutes, at least one second). Past it the next MTE message moves to a new
    /// epoch, and after a pause that long it skips one, so the relay forgets the keys
    /// of older messages even on a pair that sends few (docs/protocol.md §8).
    pub fn mte_epoch_interval(mut self, interval: Duration) -> Self {
        self.mte_epoch_interval = interval;
        self
    }

    /// Validates the configuration and builds the client. No network traffic happens
    /// until [`RelayClient::connect`] or the first [`RelayClient::send`].
    pub fn build(self) -> Result<RelayClient, ClientError> {
        let config = self.into_config()?;
        RelayClient::from_config(Arc::new(config))
    }

    fn into_config(self) -> Result<Config, ClientError> {
        let (scheme, authority, domain) = parse_base_url(&self.base_url)?;
        if self.pairs == 0 {
            return Err(ClientError::invalid_request(
                "the pool needs at least one pair",
            ));
        }
        if let Some(name) = self
            .extra_headers
            .keys()
            .find(|name| is_reserved_outer_header(name))
        {
            return Err(ClientError::invalid_request(format!(
                "header `{name}` is set by the client itself"
            )));
        }
        if self.mte_epoch_interval < MIN_MTE_EPOCH_INTERVAL {
            return Err(ClientError::invalid_request(format!(
                "the MTE epoch interval must be at least {MIN_MTE_EPOCH_INTERVAL:?}"
            )));
        }
        let pins = self
            .pins
            .iter()
            .map(|pin| Pin::parse(pin))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| ClientError::invalid_request(error.to_string()))?;
        Ok(Config {
            pins,
            scheme,
            authority,
            domain,
            pairs: self.pairs,
            default_mode: self.default_mode,
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
            secret: self.secret,
            extra_headers: self.extra_headers,
            http2_prior_knowledge: self.http2_prior_knowledge,
            max_backoff: self.max_backoff,
            mte_epoch_interval: self.mte_epoch_interval,
            #[cfg(feature = "rustls")]
            tls: self.tls,
        })
    }
}

/// Splits a base URL into scheme, authority and the protocol's domain (the host,
/// lowercase, without port). Only an origin is accepted: MTE requests always go to `/`.
fn parse_base_url(base_url: &str) -> Result<(Scheme, Authority, String), ClientError> {
    let invalid = |why: &str| ClientError::invalid_request(format!("base URL {base_url:?} {why}"));
    let uri: Uri = base_url
        .parse()
        .map_err(|_| invalid("is not a valid URL"))?;
    let scheme = uri
        .scheme()
        .cloned()
        .ok_or_else(|| invalid("has no scheme"))?;
    let supported = scheme == Scheme::HTTP || (cfg!(feature = "rustls") && scheme == Scheme::HTTPS);
    if !supported {
        return Err(invalid(
            "must use http:// (or https:// with the `rustls` feature)",
        ));
    }
    let authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| invalid("has no host"))?;
    if authority.as_str().contains('@') {
        return Err(invalid("must not carry credentials"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(invalid("must be an origin without path or query"));
    }
    let domain = mte_relay_protocol::host::protocol_domain(authority.host());
    Ok((scheme, authority, domain))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_gives_origin_and_lowercase_domain_without_port() {
        let (scheme, authority, domain) =
            parse_base_url("http://API.Example.com:8443/").expect("valid");
        assert_eq!(scheme, Scheme::HTTP);
        assert_eq!(authority.as_str(), "API.Example.com:8443");
        assert_eq!(domain, "api.example.com");
        let (_, _, domain) = parse_base_url("http://127.0.0.1:1").expect("valid");
        assert_eq!(domain, "127.0.0.1");
    }

    #[test]
    fn pins_and_epoch_intervals_are_checked_when_the_client_is_built() {
        let invalid = |builder: RelayClientBuilder| match builder.build() {
            Err(ClientError::InvalidRequest { message }) => message,
            other => panic!("refused expected: {other:?}"),
        };
        let base = || RelayClientBuilder::new("http://relay.example");
        assert!(invalid(base().pin("sha256:abc")).contains("pin"));
        assert!(
            invalid(
                base()
                    .pin(format!("sha256:{}", "A".repeat(43)))
                    .pin("md5:x")
            )
            .contains("pin")
        );
        assert!(
            invalid(base().mte_epoch_interval(Duration::from_millis(999)))
                .contains("epoch interval")
        );
        let config = base()
            .pin(format!("sha256:{}", "A".repeat(43)))
            .pin(format!("sha256:{}", "E".repeat(43)))
            .mte_epoch_interval(MIN_MTE_EPOCH_INTERVAL)
            .into_config()
            .expect("valid");
        assert_eq!(config.pins.len(), 2);
        assert_eq!(config.mte_epoch_interval, MIN_MTE_EPOCH_INTERVAL);
    }

    #[test]
    fn base_urls_that_are_not_origins_are_refused() {
        for bad in [
            "api.example.com",
            "ftp://api.example.com",
            "http://api.example.com/prefix",
            "http://api.example.com/?q=1",
            "http://user:pw@api.example.com",
            "not a url",
        ] {
            assert!(
                matches!(parse_base_url(bad), Err(ClientError::InvalidRequest { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn builder_refuses_zero_pairs_and_reserved_headers() {
        let zero = RelayClientBuilder::new("http://relay.test").pairs(0);
        assert!(zero.into_config().is_err());
        let reserved = RelayClientBuilder::new("http://relay.test").header(
            HeaderName::from_static("x-mte-relay"),
            HeaderValue::from_static("v=1"),
        );
        assert!(reserved.into_config().is_err());
        let fine = RelayClientBuilder::new("http://relay.test")
            .header(
                HeaderName::from_static("x-gateway-key"),
                HeaderValue::from_static("k"),
            )
            .into_config()
            .expect("valid");
        assert_eq!(fine.pairs, DEFAULT_PAIRS);
        assert_eq!(fine.default_mode, Mode::Mke);
    }
}
