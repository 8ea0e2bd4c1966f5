//! Logging into the relay's structured log. Prefer the `trace!` .. `error!` macros.

use crate::bindings::common::mte_relay::adapter::log as wit;
pub use crate::bindings::common::mte_relay::adapter::log::Level;

/// Emit one line at `level`. The host tags it with the instance's name and version.
pub fn log(level: Level, message: &str) {
    wit::log(level, message);
}

/// `format!`-style logging at a level: `log_at!(Level::Info, "x = {}", x)`.
#[macro_export]
macro_rules! log_at {
    ($level:expr, $($arg:tt)*) => {
        $crate::log::log($level, &::std::format!($($arg)*))
    };
}

/// Log at trace level.
#[macro_export]
macro_rules! trace { ($($arg:tt)*) => { $crate::log_at!($crate::log::Level::Trace, $($arg)*) }; }
/// Log at debug level.
#[macro_export]
macro_rules! debug { ($($arg:tt)*) => { $crate::log_at!($crate::log::Level::Debug, $($arg)*) }; }
/// Log at info level.
#[macro_export]
macro_rules! info { ($($arg:tt)*) => { $crate::log_at!($crate::log::Level::Info, $($arg)*) }; }
/// Log at warn level.
#[macro_export]
macro_rules! warn { ($($arg:tt)*) => { $crate::log_at!($crate::log::Level::Warn, $($arg)*) }; }
/// Log at error level.
#[macro_export]
macro_rules! error { ($($arg:tt)*) => { $crate::log_at!($crate::log::Level::Error, $($arg)*) }; }
