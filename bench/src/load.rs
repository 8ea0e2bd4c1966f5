//! Running one scenario: workers, the bound, and the collected measurements.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{PathAndQuery, Uri};

use crate::error::BenchError;
use crate::report::{Latencies, Report};
use crate::scenario::Scenario;
use crate::target::{FailureClass, Target};

/// Largest payload accepted (the relay's default `MAX_BODY_BYTES`).
pub const MAX_PAYLOAD: usize = 64 * 1024 * 1024;
/// Most concurrent workers accepted.
pub const MAX_CONCURRENCY: usize = 4096;
/// Longest run accepted per scenario.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// Most latency samples kept per scenario (8 bytes each); requests past it are still
/// counted, and the percentiles describe the first ones.
pub const MAX_SAMPLES: usize = 4_000_000;

/// What stops a scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// Workers start no new request after this long.
    Duration(Duration),
    /// Exactly this many requests are sent in all.
    Requests(u64),
}

/// The shape of the load, identical for every scenario of a comparison.
#[derive(Clone, Debug)]
pub struct Load {
    /// Workers, each with one request in flight at a time.
    pub concurrency: usize,
    /// Duration or request count.
    pub bound: Bound,
    /// Request body size in bytes.
    pub payload: usize,
    /// Path (and query) requested; `/echo` by default.
    pub path: String,
    /// Bound on one request, and on pairing.
    pub request_timeout: Duration,
}

impl Load {
    /// Checks every field, so that bad input gets a clear message before anything runs.
    pub fn validate(&self) -> Result<PathAndQuery, BenchError> {
        let input = |message: String| Err(BenchError::Input(message));
        if self.concurrency == 0 || self.concurrency > MAX_CONCURRENCY {
            return input(format!(
                "concurrency must be from 1 to {MAX_CONCURRENCY}, got {}",
                self.concurrency
            ));
        }
        match self.bound {
            Bound::Duration(duration) if duration.is_zero() || duration > MAX_DURATION => {
                return input(format!(
                    "duration must be more than 0 and at most {} s, got {duration:?}",
                    MAX_DURATION.as_secs()
                ));
            }
            Bound::Requests(0) => return input("request count must be at least 1".into()),
            _ => {}
        }
        if self.payload > MAX_PAYLOAD {
            return input(format!(
                "payload must be at most {MAX_PAYLOAD} bytes, got {}",
                self.payload
            ));
        }
        if self.request_timeout.is_zero() {
            return input("request timeout must be more than 0".into());
        }
        if !self.path.starts_with('/') {
            return input(format!("path {:?} must start with '/'", self.path));
        }
        self.path
            .parse::<PathAndQuery>()
            .or_else(|_| input(format!("path {:?} is not a valid path", self.path)))
    }
}

/// Hands out the right to send one more request.
enum Plan {
    Until(Instant),
    Remaining(AtomicU64),
}

impl Plan {
    fn take(&self) -> bool {
        match self {
            Plan::Until(deadline) => Instant::now() < *deadline,
            Plan::Remaining(left) => left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
        }
    }
}

#[derive(Default)]
struct WorkerTally {
    latencies_ns: Vec<u64>,
    ok: u64,
    failures: BTreeMap<FailureClass, (u64, String)>,
}

/// The payload: printable bytes, so that the demo echo can return it as text.
pub fn payload(size: usize) -> Bytes {
    Bytes::from(
        (0..size)
            .map(|i| b'a' + (i % 26) as u8)
            .collect::<Vec<u8>>(),
    )
}

/// Runs `scenario` against `origin` with `load` and returns its report. One warm-up
/// request (not counted) is sent first; with `/echo` paths it also checks that the
/// upstream saw the whole payload, so a misrouted scenario fails instead of measuring
/// something else.
pub async fn run_scenario(
    scenario: Scenario,
    origin: &Uri,
    pairs: usize,
    load: &Load,
) -> Result<Report, BenchError> {
    let path = load.validate()?;
    let target =
        Arc::new(Target::prepare(scenario, origin.clone(), pairs, load.request_timeout).await?);
    let body = payload(load.payload);

    let warm_up = tokio::time::timeout(load.request_timeout, target.send(&path, &body)).await;
    let answer = match warm_up {
        Ok(Ok(answer)) => answer,
        Ok(Err(failure)) => {
            return Err(BenchError::WarmUp {
                scenario: scenario.name(),
                message: format!("{}: {}", failure.class.name(), failure.message),
            });
        }
        Err(_) => {
            return Err(BenchError::Timeout {
                what: format!("warm-up request of {scenario}"),
                limit: load.request_timeout,
            });
        }
    };
    if path.path().starts_with("/echo") {
        check_echo(scenario, &answer, load.payload)?;
    }

    let plan = Arc::new(match load.bound {
        Bound::Duration(duration) => Plan::Until(Instant::now() + duration),
        Bound::Requests(count) => Plan::Remaining(AtomicU64::new(count)),
    });
    let samples_per_worker = (MAX_SAMPLES / load.concurrency).max(1);
    let started = Instant::now();
    let mut workers = Vec::with_capacity(load.concurrency);
    for _ in 0..load.concurrency {
        let target = Arc::clone(&target);
        let plan = Arc::clone(&plan);
        let path = path.clone();
        let body = body.clone();
        let timeout = load.request_timeout;
        workers.push(tokio::spawn(async move {
            let mut tally = WorkerTally::default();
            while plan.take() {
                let sent = Instant::now();
                let outcome = tokio::time::timeout(timeout, target.send(&path, &body)).await;
                let took = sent.elapsed();
                match outcome {
                    Ok(Ok(_)) => {
                        tally.ok += 1;
                        if tally.latencies_ns.len() < samples_per_worker {
                            let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
                            tally.latencies_ns.push(nanos);
                        }
                    }
                    Ok(Err(failure)) => {
                        let entry = tally
                            .failures
                            .entry(failure.class)
                            .or_insert((0, failure.message));
                        entry.0 += 1;
                    }
                    Err(_) => {
                        let entry = tally
                            .failures
                            .entry(FailureClass::Timeout)
                            .or_insert((0, format!("no complete response within {timeout:?}")));
                        entry.0 += 1;
                    }
                }
            }
            tally
        }));
    }
    let mut ok = 0;
    let mut samples = Vec::new();
    let mut failures: BTreeMap<FailureClass, (u64, String)> = BTreeMap::new();
    for worker in workers {
        // A worker only ends by returning its tally; a panic is a bug worth surfacing.
        let tally = match worker.await {
            Ok(tally) => tally,
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        };
        ok += tally.ok;
        samples.extend(tally.latencies_ns);
        for (class, (count, message)) in tally.failures {
            failures.entry(class).or_insert((0, message)).0 += count;
        }
    }
    let elapsed = started.elapsed();
    Ok(Report {
        scenario,
        ok,
        failures,
        elapsed,
        latencies: Latencies::from_nanos(samples),
        store_round_trips_per_request: None,
    })
}

/// Checks the demo echo's answer to the warm-up request.
fn check_echo(scenario: Scenario, answer: &[u8], payload: usize) -> Result<(), BenchError> {
    let mismatch = |message: String| BenchError::WarmUp {
        scenario: scenario.name(),
        message,
    };
    let document: serde_json::Value = serde_json::from_slice(answer).map_err(|_| {
        mismatch(format!(
            "the answer is not the demo echo's JSON ({} bytes); is the target the demo upstream?",
            answer.len()
        ))
    })?;
    match document["body_bytes"].as_u64() {
        Some(seen) if seen == payload as u64 => Ok(()),
        other => Err(mismatch(format!(
            "the upstream saw body_bytes {other:?}, expected {payload}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load() -> Load {
        Load {
            concurrency: 4,
            bound: Bound::Requests(10),
            payload: 16,
            path: "/echo".into(),
            request_timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn bad_loads_are_refused_with_a_message() {
        assert!(load().validate().is_ok());
        let cases = [
            Load {
                concurrency: 0,
                ..load()
            },
            Load {
                bound: Bound::Requests(0),
                ..load()
            },
            Load {
                bound: Bound::Duration(Duration::ZERO),
                ..load()
            },
            Load {
                payload: MAX_PAYLOAD + 1,
                ..load()
            },
            Load {
                path: "echo".into(),
                ..load()
            },
            Load {
                path: "/a b".into(),
                ..load()
            },
        ];
        for case in cases {
            assert!(
                matches!(case.validate(), Err(BenchError::Input(_))),
                "{case:?}"
            );
        }
    }

    #[test]
    fn a_request_count_plan_hands_out_exactly_that_many() {
        let plan = Plan::Remaining(AtomicU64::new(3));
        assert_eq!((0..10).filter(|_| plan.take()).count(), 3);
    }

    #[test]
    fn payload_has_the_size_asked_and_is_text() {
        let body = payload(1000);
        assert_eq!(body.len(), 1000);
        assert!(std::str::from_utf8(&body).is_ok());
    }
}
