//! `TRUSTED_PROXIES`: the front proxies whose forwarding headers the relay believes.

use std::net::IpAddr;

use super::error::ConfigError;

/// One address or CIDR block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Block {
    network: IpAddr,
    prefix: u8,
}

impl Block {
    fn parse(text: &str) -> Option<Block> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address.trim().parse().ok()?;
        let width = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(prefix) => prefix.trim().parse::<u8>().ok().filter(|p| *p <= width)?,
        };
        Some(Block { network, prefix })
    }

    fn contains(&self, address: IpAddr) -> bool {
        match (self.network, canonical(address)) {
            (IpAddr::V4(network), IpAddr::V4(address)) => prefix_matches(
                u32::from(network).into(),
                u32::from(address).into(),
                self.prefix,
                32,
            ),
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                prefix_matches(u128::from(network), u128::from(address), self.prefix, 128)
            }
            _ => false,
        }
    }
}

/// An IPv4-mapped IPv6 address (a dual-stack listener's view of an IPv4 peer) as IPv4.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        IpAddr::V4(_) => address,
    }
}

fn prefix_matches(network: u128, address: u128, prefix: u8, width: u32) -> bool {
    let host_bits = width - u32::from(prefix);
    if host_bits >= width {
        return true;
    }
    (network >> host_bits) == (address >> host_bits)
}

/// The peers allowed to tell the relay who the client is (`x-forwarded-for`,
/// `forwarded`) and how it connected (`x-forwarded-proto`, `x-forwarded-host`). Empty
/// by default: then every forwarding header a client sends is dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    blocks: Vec<Block>,
}

impl TrustedProxies {
    /// Parses a comma-separated list of addresses and CIDR blocks.
    pub fn parse(raw: Option<&str>) -> Result<TrustedProxies, ConfigError> {
        let Some(raw) = raw else {
            return Ok(TrustedProxies::default());
        };
        let blocks = raw
            .split(',')
            .map(str::trim)
            .enumerate()
            .map(|(index, entry)| {
                Block::parse(entry).ok_or_else(|| {
                    ConfigError::new(
                        format!("TRUSTED_PROXIES[{index}]"),
                        format!("{entry:?} is not an IP address or CIDR block"),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(TrustedProxies { blocks })
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        self.blocks.iter().any(|block| block.contains(address))
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// The list as configured, for `check-config`.
    pub fn describe(&self) -> Vec<String> {
        self.blocks
            .iter()
            .map(|block| format!("{}/{}", block.network, block.prefix))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn addresses_and_blocks_match_as_configured() {
        let trusted =
            TrustedProxies::parse(Some("10.0.0.0/8, 192.0.2.7 ,2001:db8::/32")).expect("valid");
        assert!(trusted.contains(ip("10.200.3.4")));
        assert!(trusted.contains(ip("192.0.2.7")));
        assert!(!trusted.contains(ip("192.0.2.8")));
        assert!(trusted.contains(ip("2001:db8:ffff::1")));
        assert!(!trusted.contains(ip("2001:db9::1")));
        assert!(
            trusted.contains(ip("::ffff:10.1.2.3")),
            "IPv4-mapped counts as IPv4"
        );
        let everything = TrustedProxies::parse(Some("0.0.0.0/0")).expect("valid");
        assert!(everything.contains(ip("203.0.113.1")));
        assert!(!everything.contains(ip("2001:db8::1")));
        assert!(TrustedProxies::parse(None).expect("unset").is_empty());
    }

    #[test]
    fn bad_entries_are_named() {
        for (raw, location) in [
            ("10.0.0.0/8, nonsense", "TRUSTED_PROXIES[1]"),
            ("10.0.0.0/33", "TRUSTED_PROXIES[0]"),
            ("2001:db8::/129", "TRUSTED_PROXIES[0]"),
            ("10.0.0.1,", "TRUSTED_PROXIES[1]"),
        ] {
            let error = TrustedProxies::parse(Some(raw)).expect_err(raw);
            assert_eq!(error.location, location, "{raw}");
        }
    }
}
