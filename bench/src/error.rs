//! Errors of the load generator: why a run could not start or had to stop. Failures of
//! single requests under load are not errors of the run; they are counted in the
//! [`Report`](crate::Report) by class.

use std::path::PathBuf;

/// Why a benchmark run failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The command line or options are unusable; nothing was sent.
    #[error("invalid input: {0}")]
    Input(String),
    /// The relay binary could not be started or did not report its address.
    #[error("relay process {}: {message}", binary.display())]
    Relay {
        /// The binary that was run.
        binary: PathBuf,
        /// What went wrong, with the relay's last output lines when there are any.
        message: String,
    },
    /// The in-process demo upstream could not bind.
    #[error("demo upstream: {0}")]
    Upstream(#[source] std::io::Error),
    /// The relay client could not be built or could not pair before the run.
    #[error("relay client for {scenario}: {source}")]
    Client {
        /// The scenario being prepared.
        scenario: &'static str,
        /// The client's error.
        #[source]
        source: mte_relay_client::ClientError,
    },
    /// A preparation step (pairing, startup) did not finish in time.
    #[error("{what} took longer than {limit:?}")]
    Timeout {
        /// The step.
        what: String,
        /// The bound it exceeded.
        limit: std::time::Duration,
    },
    /// The warm-up request of a scenario failed, so its figures would mean nothing.
    #[error("warm-up request of {scenario} failed: {message}")]
    WarmUp {
        /// The scenario.
        scenario: &'static str,
        /// The request failure or the mismatch seen.
        message: String,
    },
}
