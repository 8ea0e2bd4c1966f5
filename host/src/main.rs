//! The `mte-relay` command line.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use mte_relay::config::{Config, ConfigError, Loaded, render};
use mte_relay::server::{Drained, Server};
use mte_relay::state::AppState;
use mte_relay::telemetry;

/// Exit code for invalid configuration (documented in docs/configuration.md).
const EXIT_BAD_CONFIG: u8 = 2;

#[derive(Parser)]
#[command(
    name = "mte-relay",
    version,
    about = "MTE Relay: an end-to-end encryption reverse proxy",
    long_about = "MTE Relay: an end-to-end encryption reverse proxy.\n\n\
        All settings come from environment variables (DOMAIN_MAP, or UPSTREAM and the \
        other single-domain variables; PORT, LOG_LEVEL, ...). See docs/configuration.md.\n\
        Invalid configuration exits with code 2 and one line naming the variable and field."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the relay with the configuration from the environment (the default).
    ///
    /// Stops on SIGTERM or SIGINT: stops accepting, lets in-flight requests finish
    /// for up to SHUTDOWN_GRACE_SECS, then exits 0.
    Serve,
    /// Validate the configuration from the environment without serving.
    ///
    /// Prints the effective configuration with secrets redacted, then a one-line
    /// `export DOMAIN_MAP='...'` equivalent. Exits 0 when valid, 2 when not.
    CheckConfig,
    /// Print the version and exit.
    Version,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => match load_config() {
            Ok(loaded) => report(serve(loaded)),
            Err(code) => code,
        },
        Command::CheckConfig => match load_config() {
            Ok(loaded) => check_config(&loaded),
            Err(code) => code,
        },
        Command::Version => {
            println!("mte-relay {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
    }
}

/// Loads the configuration, or prints the one-line error and yields exit code 2.
fn load_config() -> Result<Loaded, ExitCode> {
    Config::from_process_env().map_err(|error: ConfigError| {
        eprintln!("mte-relay: invalid configuration: {error}");
        ExitCode::from(EXIT_BAD_CONFIG)
    })
}

fn check_config(loaded: &Loaded) -> ExitCode {
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    let effective = render::redacted_config(&loaded.config);
    match serde_json::to_string_pretty(&effective) {
        Ok(pretty) => println!("{pretty}"),
        Err(error) => {
            eprintln!("mte-relay: cannot render the configuration: {error}");
            return ExitCode::FAILURE;
        }
    }
    println!("{}", render::domain_map_export_line(&loaded.config));
    ExitCode::SUCCESS
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("mte-relay: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(loaded: Loaded) -> anyhow::Result<()> {
    telemetry::init(&loaded.config.log)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        telemetry::log_startup(&loaded.config, &loaded.warnings);
        let state = Arc::new(AppState::new(loaded.config));
        let server = Server::bind(state.clone()).await.with_context(|| {
            format!(
                "cannot listen on {}:{}",
                state.config.bind_address, state.config.port
            )
        })?;
        let address = server.local_addr()?;
        tracing::info!(address = %address, "listening");
        match server.run(shutdown_signal()).await {
            Drained::Cleanly => tracing::info!("stopped"),
            Drained::GraceExpired => {
                tracing::warn!("stopped: grace period expired with requests still in flight")
            }
        }
        Ok(())
    })
}

/// Resolves on the first SIGTERM or SIGINT.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!(signal = "SIGINT", "shutdown requested"),
        () = terminate => tracing::info!(signal = "SIGTERM", "shutdown requested"),
    }
}
