//! The `mte-relay` command line.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use mte_relay::adapters::Adapters;
use mte_relay::adapters::metrics::AdapterCollector;
use mte_relay::admin::{AdminServer, Readiness, Scrape};
use mte_relay::config::StoreSettings;
use mte_relay::config::{Config, ConfigError, Loaded, render};
use mte_relay::metrics::Metrics;
use mte_relay::server::tls::{self, CertificateStore};
use mte_relay::server::{Drained, Server};
use mte_relay::state::AppState;
use mte_relay::store::{
    InstrumentedStore, MemoryPairStore, PairStore, RedisPairStore, Sweeper, sweep_interval,
};
use mte_relay::telemetry;
use mte_relay_adapter_runtime::KvStore;

/// Exit code for invalid configuration (documented in docs/configuration.md).
const EXIT_BAD_CONFIG: u8 = 2;

#[derive(Parser)]
#[command(
    name = "mte-relay",
    version,
    about = "MTE Relay: an end-to-end encryption reverse proxy",
    long_about = "MTE Relay: an end-to-end encryption reverse proxy.\n\n\
        All settings come from environment variables (DOMAIN_MAP, or UPSTREAM and the \
        other single-domain variables; PORT, LOG_LEVEL, ADAPTERS or ADAPTERS_FILE, ...). \
        Pairs live in memory, or in Redis shared by replicas with REDIS_URL and STORE_KEY. \
        See docs/configuration.md.\n\
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
    /// for up to SHUTDOWN_GRACE_SECS, delivers queued usage records to meter adapters,
    /// then exits 0. SIGHUP (or a changed ADAPTERS_FILE) reloads the adapters.
    Serve,
    /// Validate the configuration from the environment without serving.
    ///
    /// Prints the effective configuration with secrets redacted, then a one-line
    /// `export DOMAIN_MAP='...'` equivalent. Adapters are loaded for real (compiled,
    /// matched to a world, initialised). Exits 0 when valid, 2 when not.
    CheckConfig,
    /// Run the relay on localhost in front of a built-in demo API, and print how to
    /// try it.
    ///
    /// The demo upstream answers /echo (JSON echo), /sse (Server-Sent Events),
    /// /download?bytes=N, /upload (size and SHA-256 of the body) and /health. The
    /// relay uses the in-memory pair store and a fresh random client id secret, and
    /// runs the example adapters embedded in the binary on every request:
    /// api-key-auth (send `x-api-key: demo-key`; /health is public), header-rewrite
    /// and usage-log. The environment is not read.
    Demo {
        /// Port of the relay on 127.0.0.1.
        #[arg(long, default_value_t = mte_relay::cli::demo::DEFAULT_PORT)]
        port: u16,
    },
    /// Run only the demo's upstream API (no relay), for a relay started apart: the
    /// compose file's upstream (deploy/compose.yaml).
    ///
    /// Serves /echo, /sse, /download, /upload and /health, as `demo` does, until
    /// SIGTERM or SIGINT.
    DemoUpstream {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: std::net::SocketAddr,
    },
    /// Send one request through a relay, encrypted, and print the decrypted response.
    ///
    /// Like curl: `mte-relay request [-X METHOD] [-H 'Name: value']... [-d DATA |
    /// --data-binary @FILE | -d @-] [--mode mke|mte] [-i] [-o FILE] URL`. Any HTTP
    /// status exits 0; a registry error from the relay exits 3 and any other failure
    /// exits 1, each with a one-line reason on standard error.
    Request(mte_relay::cli::request::RequestArgs),
    /// Probe a running relay's admin listener; exit 0 when healthy, 1 when not.
    ///
    /// `mte-relay health` asks /healthz (the process serves); `--ready` asks /readyz
    /// (listener bound, pair store reachable, no shutdown begun). The address comes
    /// from ADMIN_BIND (or BIND_ADDRESS) and ADMIN_PORT, or --address. For container
    /// HEALTHCHECKs in an image without a shell.
    Health(mte_relay::cli::health::HealthArgs),
    /// Print a new relay identity key and the pin clients use for it.
    ///
    /// Two lines on standard output: `RELAY_IDENTITY_KEY=...` (the secret: set it, or
    /// a domain's `identity_key` in DOMAIN_MAP, on every replica) and
    /// `RELAY_IDENTITY_PIN=sha256:...` (public: give it to clients, which then refuse
    /// a pairing not signed by this relay). `check-config` prints the pin of a
    /// configured key.
    Keygen,
    /// Print the version and exit.
    Version,
}

fn main() -> ExitCode {
    // `--help` lists every variable: a container image has no docs/ directory.
    let command = Cli::command().after_long_help(variables_help());
    let cli = match Cli::from_arg_matches(&command.get_matches()) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => match load_config() {
            Ok(loaded) => serve(loaded),
            Err(code) => code,
        },
        Command::CheckConfig => match load_config() {
            Ok(loaded) => check_config(&loaded),
            Err(code) => code,
        },
        Command::Demo { port } => demo(port),
        Command::DemoUpstream { listen } => demo_upstream(listen),
        Command::Request(args) => mte_relay::cli::request::run(args),
        Command::Health(args) => mte_relay::cli::health::run(args),
        Command::Keygen => mte_relay::cli::keygen::run(),
        Command::Version => {
            println!("mte-relay {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
    }
}

/// The variables the relay reads, for `--help`; docs/configuration.md describes each.
fn variables_help() -> String {
    let mut text = String::from(
        "Environment variables (each also as NAME_FILE, a file holding the value; \
         docs/configuration.md describes them):\n",
    );
    let mut line = String::from(" ");
    for name in mte_relay::config::env::VARIABLES {
        if line.len() + name.len() + 1 > 88 {
            text.push_str(&line);
            text.push('\n');
            line = String::from(" ");
        }
        line.push(' ');
        line.push_str(name);
    }
    text.push_str(&line);
    text
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
    for notice in &loaded.notices {
        eprintln!("note: {notice}");
    }
    // Adapters are validated for real: each component is compiled, matched against a
    // world and initialised, exactly as `serve` would.
    let adapters = runtime().map_err(|error| {
        eprintln!("mte-relay: {error:#}");
        ExitCode::FAILURE
    });
    let adapters = match adapters {
        Ok(runtime) => runtime.block_on(Adapters::load(&loaded.config, None)),
        Err(code) => return code,
    };
    let adapters = match adapters {
        Ok(adapters) => adapters,
        Err(error) => {
            eprintln!("mte-relay: invalid configuration: {error}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    let mut effective = render::redacted_config(&loaded.config);
    if let Some(adapters) = adapters {
        effective["adapters"]["loaded"] = adapters.describe();
    }
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

/// Why the relay did not run.
enum StartError {
    /// Invalid configuration found after the environment parsed (adapters): exit 2.
    Config(String),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for StartError {
    fn from(error: anyhow::Error) -> Self {
        StartError::Other(error)
    }
}

fn exit_code(result: Result<(), StartError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(StartError::Config(line)) => {
            eprintln!("mte-relay: invalid configuration: {line}");
            ExitCode::from(EXIT_BAD_CONFIG)
        }
        Err(StartError::Other(error)) => report(Err(error)),
    }
}

fn serve(loaded: Loaded) -> ExitCode {
    exit_code(run_relay(loaded))
}

fn run_relay(loaded: Loaded) -> Result<(), StartError> {
    telemetry::init(&loaded.config.log).map_err(anyhow::Error::from)?;
    runtime()?.block_on(serve_until_signal(loaded, |_, _| {}))
}

fn demo(port: u16) -> ExitCode {
    exit_code(run_demo(port))
}

fn run_demo(port: u16) -> Result<(), StartError> {
    runtime()?.block_on(async {
        let upstream = mte_relay::cli::demo::start_upstream()
            .await
            .context("cannot start the demo upstream")?;
        let adapters = mte_relay::cli::demo::DemoAdapters::write()
            .context("cannot write the demo's adapters to the temporary directory")?;
        let loaded = mte_relay::cli::demo::config(upstream, port, &adapters)
            .map_err(|error| StartError::Config(format!("demo: {error}")))?;
        telemetry::init(&loaded.config.log).map_err(anyhow::Error::from)?;
        serve_until_signal(loaded, move |relay, admin| {
            println!("{}", mte_relay::cli::demo::banner(relay, admin, upstream));
        })
        .await
    })
}

fn demo_upstream(listen: std::net::SocketAddr) -> ExitCode {
    report(runtime().and_then(|runtime| {
        runtime.block_on(async {
            let address = mte_relay::demo::upstream::spawn(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            println!("demo upstream on http://{address}");
            shutdown_signal().await;
            Ok(())
        })
    }))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Serves until SIGTERM or SIGINT; `on_listening` runs once the data address is bound,
/// with it and the admin listener's address.
async fn serve_until_signal(
    loaded: Loaded,
    on_listening: impl FnOnce(std::net::SocketAddr, std::net::SocketAddr),
) -> Result<(), StartError> {
    {
        telemetry::log_startup(&loaded.config, &loaded.warnings, &loaded.notices);
        let backends = open_store(&loaded.config.store)?;
        // The admin listener comes first: liveness answers while the adapters compile,
        // and readiness says `starting` until the data listener is bound.
        let readiness = Arc::new(Readiness::new(backends.pairs.clone()));
        let admin_settings = loaded.config.admin;
        let admin = AdminServer::bind(admin_settings).await.with_context(|| {
            format!(
                "cannot listen for admin on {}:{} (ADMIN_BIND, ADMIN_PORT)",
                admin_settings.bind_address, admin_settings.port
            )
        })?;
        let admin_address = admin.local_addr().map_err(anyhow::Error::from)?;
        tracing::info!(address = %admin_address, "admin listening");
        let admin = admin.spawn(readiness.clone());
        let adapters = Adapters::load(&loaded.config, backends.adapter_kv)
            .await
            .map_err(|error| StartError::Config(error.to_string()))?;
        let _watcher = adapters
            .as_ref()
            .map(|adapters| adapters.watch(ADAPTER_WATCH_INTERVAL));
        // TLS on the data port: the certificate was checked with the configuration;
        // it is reloaded on SIGHUP and when its files change.
        let certificate = match &loaded.config.listener_tls {
            None => None,
            Some(tls) => Some(Arc::new(
                CertificateStore::load(&tls.cert_file, &tls.key_file)
                    .map_err(|error| StartError::Config(format!("TLS_CERT_FILE: {error}")))?,
            )),
        };
        let _certificate_watcher = certificate
            .as_ref()
            .map(|certificate| certificate.watch(ADAPTER_WATCH_INTERVAL));
        spawn_reload_on_sighup(adapters.clone(), certificate.clone());
        // Measured unless METRICS=false: the request observer and a timed store.
        let metrics = loaded.config.admin.metrics.then(|| {
            let mut metrics = Metrics::new(loaded.config.pool_size);
            if let Some(adapters) = &adapters {
                metrics.register_collector(Box::new(AdapterCollector(adapters.clone())));
            }
            Arc::new(metrics)
        });
        let store: Arc<dyn PairStore> = match &metrics {
            Some(metrics) => Arc::new(InstrumentedStore::new(
                backends.pairs,
                metrics.store.clone(),
            )),
            None => backends.pairs,
        };
        // One span per request to an OTLP collector, when one is configured.
        let spans = match &loaded.config.otlp {
            None => None,
            Some(settings) => Some(
                telemetry::spans::SpanExport::start(settings, &loaded.config.upstream_tls)
                    .map_err(StartError::Config)?,
            ),
        };
        let mut state = AppState::new(loaded.config, store).with_adapters(adapters);
        if let Some(metrics) = &metrics {
            state = state.with_observer(metrics.clone());
        }
        if let Some(spans) = &spans {
            state = state.with_observer(spans.observer());
        }
        let state = Arc::new(state);
        let _sweeper = Sweeper::spawn(
            state.mte.store.clone(),
            // Resend tokens expire too, usually long before pairs do.
            sweep_interval(
                state
                    .config
                    .pairing
                    .pair_ttl
                    .min(state.config.resend.window),
            ),
        );
        let permits = state.mte_permits.clone();
        let pool_size = state.config.pool_size;
        admin.serve_metrics(metrics.map(|metrics| Scrape {
            metrics,
            store: state.mte.store.clone(),
            in_flight: Box::new(move || pool_size.saturating_sub(permits.available_permits())),
        }));
        let mut server = Server::bind(state.clone()).await.with_context(|| {
            format!(
                "cannot listen on {}:{}",
                state.config.bind_address, state.config.port
            )
        })?;
        if let Some(certificate) = certificate {
            let config = tls::server_config(certificate)
                .map_err(|error| StartError::Config(format!("TLS_CERT_FILE: {error}")))?;
            server = server.with_tls(config);
        }
        let address = server.local_addr().map_err(anyhow::Error::from)?;
        // Bound: connections queue from here, and `run` accepts them at once.
        readiness.mark_serving();
        tracing::info!(address = %address, "listening");
        on_listening(address, admin_address);
        let draining = readiness.clone();
        let delay = state.config.timeouts.shutdown_delay;
        let drained = server
            .run(async move {
                shutdown_signal().await;
                // Probes answer 503 from here on, so load balancers stop sending; the
                // listener stays open for SHUTDOWN_DELAY_SECS while they notice.
                draining.mark_shutting_down();
                if !delay.is_zero() {
                    tracing::info!(
                        delay_secs = delay.as_secs(),
                        "shutdown begun: readiness fails, still accepting until the delay ends"
                    );
                    tokio::time::sleep(delay).await;
                }
            })
            .await;
        admin.stop();
        if let Some(adapters) = &state.adapters {
            adapters.shutdown().await;
        }
        if let Some(spans) = spans {
            // The last batch goes out before the process ends.
            let _ = tokio::task::spawn_blocking(move || spans.shutdown()).await;
        }
        match drained {
            Drained::Cleanly => tracing::info!("stopped"),
            Drained::GraceExpired => {
                tracing::warn!("stopped: grace period expired with requests still in flight")
            }
        }
        Ok(())
    }
}

/// Where the relay keeps shared state: pairs and resend tokens, and the adapters'
/// key-value data (in memory when `None`).
struct Backends {
    pairs: Arc<dyn PairStore>,
    adapter_kv: Option<Arc<dyn KvStore>>,
}

/// The stores the configuration chose (docs/operations.md, "Running replicas"). Redis
/// is not connected here: a relay whose Redis is away starts, serves pass-through and
/// local routes, and answers MTE requests `store-unavailable` until Redis is back.
fn open_store(settings: &StoreSettings) -> Result<Backends, StartError> {
    let backends = match settings {
        StoreSettings::Memory => Backends {
            pairs: Arc::new(MemoryPairStore::new()),
            adapter_kv: None,
        },
        StoreSettings::Redis(redis) => {
            let store = RedisPairStore::new(redis)
                .map_err(|error| StartError::Config(format!("REDIS_URL: {error}")))?;
            let adapter_kv: Arc<dyn KvStore> = Arc::new(store.adapter_kv());
            Backends {
                pairs: Arc::new(store),
                adapter_kv: Some(adapter_kv),
            }
        }
    };
    let probe = backends.pairs.clone();
    tokio::spawn(async move {
        match probe.check().await {
            Ok(()) => tracing::info!(store = ?probe, "pair store reachable"),
            Err(error) => tracing::warn!(
                store = ?probe,
                %error,
                "pair store unreachable; MTE requests answer store-unavailable until it is back"
            ),
        }
    });
    Ok(backends)
}

/// How often adapter files are checked for changes.
const ADAPTER_WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// SIGHUP reloads the adapters (changed components are recompiled and swapped in; a
/// version that fails to compile or initialise leaves the old one serving) and the
/// data port's TLS certificate (one that does not load leaves the old one in use).
fn spawn_reload_on_sighup(
    adapters: Option<Arc<Adapters>>,
    certificate: Option<Arc<CertificateStore>>,
) {
    if adapters.is_none() && certificate.is_none() {
        return;
    }
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(stream) => stream,
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGHUP; adapters and certificates reload only on file changes");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            if let Some(adapters) = &adapters {
                let report = adapters.reload().await;
                if report.is_clean() {
                    tracing::info!(outcomes = ?report.outcomes, "adapters reloaded on SIGHUP");
                } else {
                    tracing::warn!(outcomes = ?report.outcomes, error = ?report.error, "adapter reload kept some old versions");
                }
            }
            if let Some(certificate) = &certificate {
                certificate.reload_and_log("SIGHUP");
            }
        }
    });
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
