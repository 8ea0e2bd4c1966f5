//! The ways of sending the same request.

use std::fmt;

/// One way of sending the benchmark request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum Scenario {
    /// Plain HTTP straight to the upstream: the baseline.
    Direct,
    /// Plain HTTP to the relay on a pass-through route: the proxy's own cost.
    Passthrough,
    /// Through the relay, encrypted with the client SDK in MKE mode.
    Mke,
    /// MKE through a relay started with `METRICS=false`: with `mke`, the cost of
    /// recording the metrics, measured side by side.
    MkeNoMetrics,
    /// MKE through a relay whose pairs live in Redis (a `redis-server` started for
    /// the run): the shared store's cost, with Redis commands per request reported.
    MkeRedis,
    /// MKE through a second relay that runs the example adapter chain
    /// `[api-key-auth, header-rewrite, usage-log]` on every request.
    MkeAdapters,
    /// Through the relay, encrypted with the client SDK in MTE mode.
    Mte,
    /// The API Relay: plain HTTP to relay A with the outbound token, A sends it
    /// encrypted (MKE) to relay B, B forwards it to the upstream. Two relays do the
    /// work of one `mke` request each way.
    ApiRelay,
}

impl Scenario {
    /// All scenarios in the order `compare` runs them (the baseline first, and the
    /// adapter chain right after plain MKE, its point of comparison).
    pub const ALL: [Scenario; 8] = [
        Scenario::Direct,
        Scenario::Passthrough,
        Scenario::Mke,
        Scenario::ApiRelay,
        Scenario::MkeNoMetrics,
        Scenario::MkeRedis,
        Scenario::MkeAdapters,
        Scenario::Mte,
    ];

    /// The name used on the command line and in tables.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Direct => "direct",
            Scenario::Passthrough => "passthrough",
            Scenario::Mke => "mke",
            Scenario::MkeNoMetrics => "mke-no-metrics",
            Scenario::MkeRedis => "mke-redis",
            Scenario::MkeAdapters => "mke-adapters",
            Scenario::Mte => "mte",
            Scenario::ApiRelay => "api-relay",
        }
    }

    /// True when the scenario goes through the relay client SDK.
    pub fn encrypted(self) -> bool {
        matches!(
            self,
            Scenario::Mke
                | Scenario::MkeNoMetrics
                | Scenario::MkeRedis
                | Scenario::MkeAdapters
                | Scenario::Mte
        )
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
