//! The four scenarios side by side: one upstream, one relay, the same load.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::Uri;

use crate::error::BenchError;
use crate::load::{Load, run_scenario};
use crate::relay::{RelayOptions, RelayProcess};
use crate::report::Report;
use crate::scenario::Scenario;

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
    };
    let mut relay = tokio::task::spawn_blocking(move || RelayProcess::start(&relay_options))
        .await
        .map_err(|error| BenchError::Relay {
            binary: options.relay_bin.clone(),
            message: format!("startup task failed: {error}"),
        })??;
    let mut reports = Vec::with_capacity(options.scenarios.len());
    for &scenario in &options.scenarios {
        let addr = match scenario {
            Scenario::Direct => upstream,
            _ => relay.addr(),
        };
        let report = run_scenario(scenario, &origin(addr)?, options.pairs, &options.load).await?;
        if !relay.is_running() {
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
