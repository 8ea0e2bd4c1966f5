//! Logging: subscriber setup, per-request timings, and the access log line.

pub mod access;
pub mod request_id;
pub mod spans;
pub mod timings;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub use access::{AccessLog, AccessLogBody, AccessRecord};
pub use timings::RequestTimings;

use crate::config::{Config, LogFormat, LogSettings};

/// Installing the global subscriber failed (one was already installed).
#[derive(Debug, thiserror::Error)]
#[error("could not install the log subscriber: {0}")]
pub struct TelemetryError(String);

/// Installs the global subscriber: JSON lines on stdout, or a human format when
/// stdout is a terminal, unless `LOG_FORMAT` says otherwise.
pub fn init(settings: &LogSettings) -> Result<(), TelemetryError> {
    let format = settings
        .format
        .unwrap_or(if std::io::stdout().is_terminal() {
            LogFormat::Pretty
        } else {
            LogFormat::Json
        });
    let filter = EnvFilter::new(filter_directives(settings));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    let result = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder
            .with_ansi(std::io::stdout().is_terminal())
            .try_init(),
    };
    result.map_err(|error| TelemetryError(error.to_string()))
}

/// Our crate logs at the configured level; dependencies (hyper, h2) never chattier
/// than warn, since their debug output would drown the relay's own.
fn filter_directives(settings: &LogSettings) -> String {
    match settings.level.as_tracing() {
        None => "off".to_owned(),
        Some(level) => {
            let dependencies = level.min(tracing::Level::WARN);
            let ours = level.to_string().to_ascii_lowercase();
            let theirs = dependencies.to_string().to_ascii_lowercase();
            format!("{theirs},mte_relay={ours}")
        }
    }
}

/// Logs the version, the effective configuration (redacted), the load warnings and
/// the notes about variables the relay does not read.
pub fn log_startup(config: &Config, warnings: &[String], notices: &[String]) {
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "mte-relay starting");
    let effective = crate::config::render::redacted_config(config);
    tracing::info!(config = %effective, "effective configuration");
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    for notice in notices {
        tracing::info!("{notice}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LogLevel;

    fn directives(level: LogLevel) -> String {
        filter_directives(&LogSettings {
            level,
            format: None,
            debug: false,
        })
    }

    #[test]
    fn levels_map_to_filters() {
        assert_eq!(directives(LogLevel::Trace), "warn,mte_relay=trace");
        assert_eq!(directives(LogLevel::Info), "warn,mte_relay=info");
        assert_eq!(directives(LogLevel::Warning), "warn,mte_relay=warn");
        assert_eq!(directives(LogLevel::Error), "error,mte_relay=error");
        assert_eq!(directives(LogLevel::Panic), "error,mte_relay=error");
        assert_eq!(directives(LogLevel::Off), "off");
    }
}
