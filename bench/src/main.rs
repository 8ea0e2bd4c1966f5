//! `mte-relay-bench`: a bounded load generator for MTE Relay (loopback only).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use mte_relay_bench::relay::default_binary;
use mte_relay_bench::target::loopback_origin;
use mte_relay_bench::{
    BenchError, Bound, CompareOptions, Load, Scenario, compare, render_table, run_scenario,
};

#[derive(Parser)]
#[command(
    name = "mte-relay-bench",
    version,
    about = "Bounded load generator for MTE Relay: direct vs pass-through vs MKE (with and without adapters) vs MTE (loopback only)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one scenario against a running target.
    Run {
        /// Origin of the upstream (direct) or relay (other scenarios), e.g. http://127.0.0.1:8080.
        #[arg(long)]
        target: String,
        /// How requests are sent.
        #[arg(long, value_enum)]
        scenario: Scenario,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Start the demo upstream and the relay binary (and, for mke-adapters, a second
    /// relay running the example adapters), then run the scenarios with the same load
    /// and print a table with ratios.
    Compare {
        /// The relay binary (default: $CARGO_TARGET_DIR or ./target, then release/mte-relay).
        #[arg(long)]
        relay_bin: Option<PathBuf>,
        /// LOG_LEVEL of the relay: info, debug or trace (info writes one access log line per request).
        #[arg(long, default_value = "info")]
        relay_log_level: String,
        /// Scenarios to run, in this order (default: all). Ratios are to `direct` when
        /// it runs, else to the first scenario.
        #[arg(long, value_enum, value_delimiter = ',')]
        scenarios: Vec<Scenario>,
        #[command(flatten)]
        load: LoadArgs,
    },
}

#[derive(Args)]
#[group(id = "bound", multiple = false)]
struct BoundArgs {
    /// Seconds of load per scenario (default 10 unless --requests is given).
    #[arg(long)]
    duration: Option<f64>,
    /// Requests per scenario, instead of a duration.
    #[arg(long)]
    requests: Option<u64>,
}

#[derive(Args)]
struct LoadArgs {
    /// Workers, each with one request in flight.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    #[command(flatten)]
    bound: BoundArgs,
    /// Request body size in bytes.
    #[arg(long, default_value_t = 1024)]
    payload: usize,
    /// Path POSTed to.
    #[arg(long, default_value = "/echo")]
    path: String,
    /// Pairs of the MKE/MTE client.
    #[arg(long, default_value_t = 8)]
    pairs: usize,
    /// Seconds allowed for one request (and for pairing).
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
}

fn seconds(what: &str, value: f64) -> Result<Duration, BenchError> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            BenchError::Input(format!(
                "{what} must be a positive number of seconds, got {value}"
            ))
        })
}

impl LoadArgs {
    fn load(&self) -> Result<Load, BenchError> {
        let bound = match (self.bound.duration, self.bound.requests) {
            (_, Some(requests)) => Bound::Requests(requests),
            (Some(duration), None) => Bound::Duration(seconds("--duration", duration)?),
            (None, None) => Bound::Duration(Duration::from_secs(10)),
        };
        let load = Load {
            concurrency: self.concurrency,
            bound,
            payload: self.payload,
            path: self.path.clone(),
            request_timeout: seconds("--timeout", self.timeout)?,
        };
        load.validate()?;
        if self.pairs == 0 {
            return Err(BenchError::Input("--pairs must be at least 1".into()));
        }
        Ok(load)
    }
}

fn describe(load: &Load, pairs: usize) -> String {
    let bound = match load.bound {
        Bound::Duration(d) => format!("{:.1} s", d.as_secs_f64()),
        Bound::Requests(n) => format!("{n} requests"),
    };
    format!(
        "POST {} with {} B, concurrency {}, {bound} per scenario, {pairs} pairs",
        load.path, load.payload, load.concurrency
    )
}

async fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run {
            target,
            scenario,
            load,
        } => {
            let origin = loopback_origin(&target)?;
            let pairs = load.pairs;
            let load = load.load()?;
            eprintln!("{scenario} against {target}: {}", describe(&load, pairs));
            let report = run_scenario(scenario, &origin, pairs, &load)
                .await
                .with_context(|| format!("scenario {scenario}"))?;
            print!("{}", render_table(&[report]));
        }
        Command::Compare {
            relay_bin,
            relay_log_level,
            scenarios,
            load,
        } => {
            let options = CompareOptions {
                relay_bin: relay_bin.unwrap_or_else(default_binary),
                relay_log_level,
                pairs: load.pairs,
                load: load.load()?,
                scenarios: if scenarios.is_empty() {
                    Scenario::ALL.to_vec()
                } else {
                    scenarios
                },
            };
            eprintln!(
                "compare ({}), relay {}",
                describe(&options.load, options.pairs),
                options.relay_bin.display()
            );
            let reports = compare(&options, |report| {
                eprintln!(
                    "  {}: {} requests, {} errors, {:.0} req/s",
                    report.scenario,
                    report.requests(),
                    report.errors(),
                    report.rate()
                );
            })
            .await?;
            print!("{}", render_table(&reports));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("mte-relay-bench: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let input = error
                .downcast_ref::<BenchError>()
                .is_some_and(|e| matches!(e, BenchError::Input(_)));
            eprintln!("mte-relay-bench: {error:#}");
            ExitCode::from(if input { 2 } else { 1 })
        }
    }
}
