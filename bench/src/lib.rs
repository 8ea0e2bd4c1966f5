//! Load generator for MTE Relay.
//!
//! One *scenario* sends `POST <path>` with a fixed payload from `concurrency` workers,
//! bounded by a duration or a request count, and reports requests per second and
//! latency percentiles ([`load`], [`report`]). The scenarios are the same request
//! sent four ways: straight to the upstream, through the relay as pass-through, and
//! through the relay encrypted in MKE and in MTE mode ([`Scenario`]).
//!
//! [`compare`] runs the four side by side against the in-process demo upstream and the
//! real `mte-relay` binary ([`relay`]), so that the ratios compare like with like.
//! Every wait is bounded and every target is a loopback address.

pub mod compare;
pub mod error;
pub mod load;
pub mod redis;
pub mod relay;
pub mod report;
pub mod scenario;
pub mod target;

pub use compare::{CompareOptions, compare};
pub use error::BenchError;
pub use load::{Bound, Load, run_scenario};
pub use report::{Report, render_table};
pub use scenario::Scenario;
