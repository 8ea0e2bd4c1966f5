//! The outbound role of an API Relay: which callers may send through this relay (the
//! outbound token), to which peer relays (a default and an allow-list), and how the
//! pairs with each peer are kept. See docs/api-relay.md.

use mte_relay_protocol::header::Mode;
use mte_relay_protocol::identity::Pin;

use super::error::{ConfigError, index};
use super::secret::Secret;
use super::target::UpstreamTarget;

/// Minimum length, in characters, of an outbound token: it is the only thing that lets
/// a caller send through the relay, so it must not be guessable.
pub const MIN_OUTBOUND_TOKEN_CHARS: usize = 32;

/// Pairs kept with each peer relay unless `OUTBOUND_PAIRS` says otherwise.
pub const DEFAULT_OUTBOUND_PAIRS: usize = 8;

/// A peer relay's origin, `scheme://host[:port]` in lowercase: what `x-mte-upstream`,
/// `outbound_upstream` and `outbound_peers` name, compared in this form.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerOrigin(String);

impl PeerOrigin {
    /// Parses an http(s) origin; a trailing `/` is accepted, any other path is not.
    pub fn parse(raw: &str) -> Result<PeerOrigin, String> {
        let raw = raw.trim();
        let target = UpstreamTarget::parse(raw)?;
        if !target.base_path.is_empty() {
            return Err(format!(
                "{raw:?} has a path; a peer relay is named by its origin only \
                 (scheme://host[:port])"
            ));
        }
        Ok(PeerOrigin(
            format!("{}://{}", target.scheme, target.authority).to_ascii_lowercase(),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PeerOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One domain's outbound role: present when it has an outbound token.
#[derive(Clone, Debug)]
pub struct DomainOutbound {
    /// What a caller sends in `x-mte-outbound-token`.
    pub token: Secret,
    /// The peer relay of requests that name none (`outbound_upstream`).
    pub default_peer: Option<PeerOrigin>,
    /// The peers a request may name (`outbound_peers`); empty: any http(s) origin.
    /// The default peer is always allowed.
    pub peers: Vec<PeerOrigin>,
    /// Pins of the peers' identity keys (`outbound_pins`): when set, a peer must sign
    /// its pairing answers under one of them (docs/protocol.md §4.7).
    pub pins: Vec<String>,
}

impl DomainOutbound {
    /// Whether a request may be sent to `peer`.
    pub fn allows(&self, peer: &PeerOrigin) -> bool {
        self.peers.is_empty() || self.names(peer)
    }

    /// Whether the configuration names `peer` (the default, or on the allow-list).
    pub fn names(&self, peer: &PeerOrigin) -> bool {
        self.default_peer.as_ref() == Some(peer) || self.peers.contains(peer)
    }

    /// Validates the outbound fields of one domain. `at(field)` names a field in
    /// errors (`DOMAIN_MAP["x"].outbound_token` or `OUTBOUND_TOKEN`).
    pub(crate) fn validate(
        at: &dyn Fn(&'static str) -> String,
        token: Option<String>,
        default_peer: Option<String>,
        peers: Vec<String>,
        pins: Vec<String>,
    ) -> Result<Option<DomainOutbound>, ConfigError> {
        let Some(token) = token else {
            for (field, given) in [
                ("outbound_upstream", default_peer.is_some()),
                ("outbound_peers", !peers.is_empty()),
                ("outbound_pins", !pins.is_empty()),
            ] {
                if given {
                    return Err(ConfigError::new(
                        at(field),
                        format!(
                            "has no effect without {}: set the token callers send in \
                             x-mte-outbound-token",
                            at("outbound_token")
                        ),
                    ));
                }
            }
            return Ok(None);
        };
        let token = Secret::at_least(&at("outbound_token"), token, MIN_OUTBOUND_TOKEN_CHARS)?;
        let default_peer = default_peer
            .map(|raw| {
                PeerOrigin::parse(&raw)
                    .map_err(|problem| ConfigError::new(at("outbound_upstream"), problem))
            })
            .transpose()?;
        let peers_at = at("outbound_peers");
        let peers = peers
            .iter()
            .enumerate()
            .map(|(i, raw)| {
                PeerOrigin::parse(raw)
                    .map_err(|problem| ConfigError::new(index(&peers_at, i), problem))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let pins_at = at("outbound_pins");
        for (i, pin) in pins.iter().enumerate() {
            Pin::parse(pin).map_err(|error| {
                ConfigError::new(
                    index(&pins_at, i),
                    format!("{error}; `mte-relay check-config` on the peer prints its pin"),
                )
            })?;
        }
        Ok(Some(DomainOutbound {
            token,
            default_peer,
            peers,
            pins,
        }))
    }
}

/// How this relay keeps its pairs with peer relays (`OUTBOUND_PAIRS`, `OUTBOUND_MODE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutboundSettings {
    /// Pairs kept with each peer relay.
    pub pairs: usize,
    /// The mode of requests that do not choose one in `x-mte-encode-type`.
    pub mode: Mode,
}

impl Default for OutboundSettings {
    fn default() -> Self {
        OutboundSettings {
            pairs: DEFAULT_OUTBOUND_PAIRS,
            mode: Mode::Mke,
        }
    }
}

/// Parses an encode mode as `OUTBOUND_MODE` and `x-mte-encode-type` spell it.
pub fn parse_mode(text: &str) -> Option<Mode> {
    match text.trim().to_ascii_lowercase().as_str() {
        "mke" => Some(Mode::Mke),
        "mte" => Some(Mode::Mte),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(field: &'static str) -> String {
        field.to_ascii_uppercase()
    }

    #[test]
    fn peers_are_origins_in_one_form() {
        assert_eq!(
            PeerOrigin::parse("HTTP://Relay-B.internal:8080/")
                .expect("origin")
                .as_str(),
            "http://relay-b.internal:8080"
        );
        assert!(PeerOrigin::parse("http://relay-b/api").is_err());
        let bare = PeerOrigin::parse("relay-b:8080").expect_err("no scheme");
        assert!(
            bare.contains("did you mean \"http://relay-b:8080\""),
            "{bare}"
        );
    }

    #[test]
    fn tokens_are_long_and_peers_need_one() {
        let short =
            DomainOutbound::validate(&at, Some("short".into()), None, Vec::new(), Vec::new())
                .expect_err("short token");
        assert_eq!(short.location, "OUTBOUND_TOKEN");
        assert!(short.problem.contains("at least 32 characters"), "{short}");

        let orphan =
            DomainOutbound::validate(&at, None, Some("http://b:1".into()), Vec::new(), Vec::new())
                .expect_err("peer without token");
        assert_eq!(orphan.location, "OUTBOUND_UPSTREAM");

        let outbound = DomainOutbound::validate(
            &at,
            Some("t".repeat(32)),
            Some("http://default:1".into()),
            vec!["http://listed:2".into()],
            Vec::new(),
        )
        .expect("valid")
        .expect("configured");
        let peer = |raw: &str| PeerOrigin::parse(raw).expect("origin");
        assert!(outbound.allows(&peer("http://listed:2")));
        assert!(
            outbound.allows(&peer("http://default:1")),
            "the default is allowed"
        );
        assert!(!outbound.allows(&peer("http://other:3")));

        let open =
            DomainOutbound::validate(&at, Some("t".repeat(32)), None, Vec::new(), Vec::new())
                .expect("valid")
                .expect("configured");
        assert!(open.allows(&peer("http://anywhere:9")));
    }

    #[test]
    fn pins_are_checked_and_need_a_token() {
        let bad = DomainOutbound::validate(
            &at,
            Some("t".repeat(32)),
            None,
            Vec::new(),
            vec!["sha256:not-a-pin".into()],
        )
        .expect_err("bad pin");
        assert_eq!(bad.location, "OUTBOUND_PINS[0]");
        let orphan = DomainOutbound::validate(&at, None, None, Vec::new(), vec!["sha256:x".into()])
            .expect_err("pins without a token");
        assert_eq!(orphan.location, "OUTBOUND_PINS");
    }

    #[test]
    fn modes_parse_in_either_case() {
        assert_eq!(parse_mode("MKE"), Some(Mode::Mke));
        assert_eq!(parse_mode(" mte "), Some(Mode::Mte));
        assert_eq!(parse_mode("aes"), None);
    }
}
