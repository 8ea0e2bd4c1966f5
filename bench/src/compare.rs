//! The scenarios side by side: one upstream, one relay (and a second one running the
//! example adapter chain), the same load.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::Uri;
use mte_relay::cli::demo::{DEMO_CHAIN, DemoAdapters};

use crate::error::BenchError;
use crate::load::{Load, run_scenario};
use crate::redis::RedisServer;
use crate::relay::{RelayOptions, RelayProcess};
use crate::report::Report;
use crate::scenario::Scenario;
use crate::target::BENCH_OUTBOUND_TOKEN;

/// Options of a comparison.
#[derive(Clone, Debug)]
pub struct CompareOptions {
    /// The `mte-relay` binary to start.
    pub relay_bin: PathBuf,
    /// `LOG_LEVEL` of the relay.
    pub relay_log_level: String,
    /// The load of every scenario.
    pub load: Load,
    /// Pairs of the MKE and MTE clients.
    pub pairs: usize,
    /// The scenarios to run, in order.
    pub scenarios: Vec<Scenario>,
}

fn origin(addr: SocketAddr) -> Result<Uri, BenchError> {
    format!("http://{addr}")
        .parse()
        .map_err(|_| BenchError::Input(format!("bad address {addr}")))
}

/// Starts the demo upstream in this process and the relay binary in front of it, then
/// runs the scenarios one after another. `on_report` sees each report as it completes.
pub async fn compare(
    options: &CompareOptions,
    mut on_report: impl FnMut(&Report),
) -> Result<Vec<Report>, BenchError> {
    options.load.validate()?;
    // The relay's address comes from its `listening` line, logged at info.
    if !matches!(
        options.relay_log_level.to_ascii_lowercase().as_str(),
        "info" | "debug" | "trace"
    ) {
        return Err(BenchError::Input(format!(
            "relay log level must be info, debug or trace (the bound address is read from \
             the `listening` log line), got {:?}",
            options.relay_log_level
        )));
    }
    if options.pairs == 0 {
        return Err(BenchError::Input("pairs must be at least 1".into()));
    }
    let upstream = mte_relay::demo::upstream::spawn(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .map_err(BenchError::Upstream)?;
    let relay_options = RelayOptions {
        binary: options.relay_bin.clone(),
        upstream,
        log_level: options.relay_log_level.clone(),
        startup_timeout: Duration::from_secs(20),
        extra_env: Vec::new(),
    };
    let mut relay = start_relay(relay_options.clone()).await?;
    // The adapter chain runs in a relay of its own, so that the other scenarios
    // measure a relay without adapters.
    let mut with_adapters = None;
    if options.scenarios.contains(&Scenario::MkeAdapters) {
        let adapters = DemoAdapters::write().map_err(|error| BenchError::Relay {
            binary: options.relay_bin.clone(),
            message: format!("cannot write the example adapters: {error}"),
        })?;
        let mut adapter_options = relay_options.clone();
        adapter_options.extra_env = vec![
            ("ADAPTERS".to_owned(), adapters.declarations().to_owned()),
            ("ADAPTER_CHAIN".to_owned(), DEMO_CHAIN.to_owned()),
        ];
        with_adapters = Some((start_relay(adapter_options).await?, adapters));
    }
    // The metrics' cost: the same relay with METRICS=false.
    let mut without_metrics = None;
    if options.scenarios.contains(&Scenario::MkeNoMetrics) {
        let mut quiet_options = relay_options.clone();
        quiet_options.extra_env = vec![("METRICS".to_owned(), "false".to_owned())];
        without_metrics = Some(start_relay(quiet_options).await?);
    }
    // The shared store's cost: a relay whose pairs live in a Redis of its own.
    let (mut with_redis, mut _redis): (Option<RelayProcess>, Option<RedisServer>) = (None, None);
    if options.scenarios.contains(&Scenario::MkeRedis) {
        let server = RedisServer::start()?;
        let mut redis_options = relay_options.clone();
        redis_options.extra_env = vec![
            ("REDIS_URL".to_owned(), server.url()),
            ("STORE_KEY".to_owned(), BENCH_STORE_KEY.to_owned()),
        ];
        with_redis = Some(start_relay(redis_options).await?);
        _redis = Some(server);
    }
    // The API Relay: relay B in front of the upstream, relay A sending to it; both
    // share a SECRET, as a deployment's would.
    let mut api_relay: Option<(RelayProcess, RelayProcess)> = None;
    if options.scenarios.contains(&Scenario::ApiRelay) {
        let mut peer_options = relay_options.clone();
        peer_options.extra_env = vec![("SECRET".to_owned(), BENCH_SECRET.to_owned())];
        let peer = start_relay(peer_options).await?;
        let mut sender_options = relay_options.clone();
        sender_options.extra_env = vec![
            ("SECRET".to_owned(), BENCH_SECRET.to_owned()),
            ("OUTBOUND_TOKEN".to_owned(), BENCH_OUTBOUND_TOKEN.to_owned()),
            (
                "OUTBOUND_UPSTREAM".to_owned(),
                format!("http://{}", peer.addr()),
            ),
            (
                "OUTBOUND_PEERS".to_owned(),
                format!("http://{}", peer.addr()),
            ),
            ("OUTBOUND_PAIRS".to_owned(), options.pairs.to_string()),
        ];
        let sender = start_relay(sender_options).await?;
        api_relay = Some((sender, peer));
    }
    let mut reports = Vec::with_capacity(options.scenarios.len());
    for &scenario in &options.scenarios {
        let serving = match scenario {
            Scenario::Direct => None,
            Scenario::MkeAdapters => with_adapters.as_mut().map(|(relay, _)| relay),
            Scenario::MkeNoMetrics => without_metrics.as_mut(),
            Scenario::MkeRedis => with_redis.as_mut(),
            Scenario::ApiRelay => api_relay.as_mut().map(|(sender, _)| sender),
            _ => Some(&mut relay),
        };
        let addr = serving.as_ref().map_or(upstream, |relay| relay.addr());
        let round_trips = |relay: &Option<&mut RelayProcess>| {
            relay
                .as_ref()
                .filter(|_| scenario == Scenario::MkeRedis)
                .and_then(|relay| relay.metric("mte_relay_store_round_trips_total"))
        };
        let before = round_trips(&serving);
        let mut report =
            run_scenario(scenario, &origin(addr)?, options.pairs, &options.load).await?;
        if let (Some(before), Some(after)) = (before, round_trips(&serving)) {
            // Pairing and the scrapes' own reads are included: a few over the run.
            let requests = report.requests().max(1);
            report.store_round_trips_per_request = Some((after - before) / requests as f64);
        }
        if serving.is_some_and(|relay| !relay.is_running()) {
            return Err(BenchError::Relay {
                binary: options.relay_bin.clone(),
                message: format!("exited during the {scenario} scenario"),
            });
        }
        on_report(&report);
        reports.push(report);
    }
    Ok(reports)
}

/// The `SECRET` both relays of the `api-relay` scenario share.
const BENCH_SECRET: &str = "a-pre-shared-secret-for-the-load-generator-0123";

/// The `STORE_KEY` of the `mke-redis` relay.
const BENCH_STORE_KEY: &str = "a-store-key-for-the-load-generator-0123456789";

/// Starts a relay process off the async threads (startup blocks on its output).
async fn start_relay(options: RelayOptions) -> Result<RelayProcess, BenchError> {
    let binary = options.binary.clone();
    tokio::task::spawn_blocking(move || RelayProcess::start(&options))
        .await
        .map_err(|error| BenchError::Relay {
            binary,
            message: format!("startup task failed: {error}"),
        })?
}
