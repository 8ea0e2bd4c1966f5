//! Typed failures. Every error says which side failed (the guest, the host's
//! configuration, the operator's files) and, for hook failures, whether the
//! request may still proceed under the adapter's failure policy.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The hook being called when a failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    Init,
    OnRequest,
    OnResponse,
    OnUsage,
    OnTick,
}

impl Hook {
    /// The WIT name of the hook.
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::Init => "init",
            Hook::OnRequest => "on-request",
            Hook::OnResponse => "on-response",
            Hook::OnUsage => "on-usage",
            Hook::OnTick => "on-tick",
        }
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What went wrong in a hook call. The class decides logging and the relay's
/// registry mapping; it never depends on the message text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// The guest trapped (panic, unreachable, out-of-bounds access...).
    Trap,
    /// The hook ran past its deadline (epoch interruption or a stuck host call).
    Timeout(Duration),
    /// The guest tried to grow its memory past the instance's cap.
    MemoryExceeded { cap_bytes: u64 },
    /// The guest returned something the host refuses (bad header name or value,
    /// bad status, oversized body).
    BadOutput(String),
    /// The guest itself returned an error from the hook.
    GuestError(String),
    /// A fresh instance could not be created or its `init` failed.
    Instantiate(String),
    /// The crash breaker is open (or a reload backoff is running): not called.
    Unavailable(String),
    /// The adapter disappeared from the configuration on reload.
    Removed,
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureKind::Trap => f.write_str("guest trapped"),
            FailureKind::Timeout(d) => write!(f, "deadline of {} ms exceeded", d.as_millis()),
            FailureKind::MemoryExceeded { cap_bytes } => {
                write!(f, "memory cap of {cap_bytes} bytes exceeded")
            }
            FailureKind::BadOutput(why) => write!(f, "invalid output: {why}"),
            FailureKind::GuestError(msg) => write!(f, "adapter returned an error: {msg}"),
            FailureKind::Instantiate(why) => write!(f, "instantiation failed: {why}"),
            FailureKind::Unavailable(why) => write!(f, "not called: {why}"),
            FailureKind::Removed => f.write_str("adapter was removed from the configuration"),
        }
    }
}

impl FailureKind {
    /// A short stable token for metrics and logs.
    pub fn token(&self) -> &'static str {
        match self {
            FailureKind::Trap => "trap",
            FailureKind::Timeout(_) => "timeout",
            FailureKind::MemoryExceeded { .. } => "memory",
            FailureKind::BadOutput(_) => "bad_output",
            FailureKind::GuestError(_) => "guest_error",
            FailureKind::Instantiate(_) => "instantiate",
            FailureKind::Unavailable(_) => "unavailable",
            FailureKind::Removed => "removed",
        }
    }
}

/// Whether the request may go on after a failure, per the adapter's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Fail closed: the relay answers with a registry error.
    Deny,
    /// Fail open: the relay carries on as if the adapter had not been there.
    Proceed,
}

/// A failed hook call, with everything needed to log it and map it to a response.
#[derive(Debug, Clone, thiserror::Error)]
#[error("adapter `{adapter}` ({version}) {hook}: {kind}")]
pub struct HookError {
    /// Instance name from the configuration.
    pub adapter: String,
    /// Content fingerprint of the component that failed.
    pub version: String,
    pub hook: Hook,
    pub kind: FailureKind,
    pub disposition: Disposition,
    /// Symbolised wasm backtrace, when the failure was a trap and one was captured.
    pub backtrace: Option<String>,
}

/// A problem in the adapters configuration. Names the instance and field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("ADAPTERS: not valid JSON: {0}")]
    Json(String),
    #[error("ADAPTERS: cannot read {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("adapter `{adapter}`: field `{field}`: {reason}")]
    Field {
        adapter: String,
        field: &'static str,
        reason: String,
    },
    #[error("adapter `{0}` is declared twice")]
    Duplicate(String),
}

/// Why an adapter could not be (re)loaded. The previous version, if any, keeps serving.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("adapter `{adapter}`: component file {path} not found")]
    MissingFile { adapter: String, path: PathBuf },
    #[error("adapter `{adapter}`: cannot read {path}: {reason}")]
    Unreadable {
        adapter: String,
        path: PathBuf,
        reason: String,
    },
    #[error("adapter `{adapter}`: {path} is not a valid component: {reason}")]
    Compile {
        adapter: String,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "adapter `{adapter}`: component does not implement a known world \
         (mte-relay:adapter/filter or /meter @0.1.0): {reason}"
    )]
    UnknownWorld { adapter: String, reason: String },
    #[error("adapter `{adapter}`: init failed: {source}")]
    Init {
        adapter: String,
        #[source]
        source: Box<HookError>,
    },
    #[error("engine: {0}")]
    Engine(String),
}

impl LoadError {
    /// The instance name concerned, when the error is about one adapter.
    pub fn adapter(&self) -> Option<&str> {
        match self {
            LoadError::Config(ConfigError::Field { adapter, .. })
            | LoadError::Config(ConfigError::Duplicate(adapter))
            | LoadError::MissingFile { adapter, .. }
            | LoadError::Unreadable { adapter, .. }
            | LoadError::Compile { adapter, .. }
            | LoadError::UnknownWorld { adapter, .. }
            | LoadError::Init { adapter, .. } => Some(adapter),
            _ => None,
        }
    }
}

/// A domain's chain names something unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("adapter chain names `{0}`, which is not declared in ADAPTERS")]
    Unknown(String),
    #[error("adapter chain names `{0}` twice")]
    Repeated(String),
}
