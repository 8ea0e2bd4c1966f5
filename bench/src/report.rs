//! Measurements of one scenario and the comparison table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::scenario::Scenario;
use crate::target::FailureClass;

/// Latencies of the successful requests, sorted.
#[derive(Clone, Debug, Default)]
pub struct Latencies {
    sorted_ns: Vec<u64>,
}

impl Latencies {
    /// Takes unsorted samples in nanoseconds.
    pub fn from_nanos(mut samples: Vec<u64>) -> Self {
        samples.sort_unstable();
        Latencies { sorted_ns: samples }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.sorted_ns.len()
    }

    /// True without samples.
    pub fn is_empty(&self) -> bool {
        self.sorted_ns.is_empty()
    }

    /// The `q`-quantile (0 < q ≤ 1) by nearest rank, or `None` without samples.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let n = self.sorted_ns.len();
        if n == 0 {
            return None;
        }
        // Nearest rank: the smallest sample with at least q·n samples at or below it.
        let rank = (q.clamp(0.0, 1.0) * n as f64).ceil() as usize;
        let index = rank.clamp(1, n) - 1;
        self.sorted_ns.get(index).copied().map(Duration::from_nanos)
    }
}

/// What one scenario measured.
#[derive(Clone, Debug)]
pub struct Report {
    /// The scenario.
    pub scenario: Scenario,
    /// Requests that completed with a 2xx status and a fully read body.
    pub ok: u64,
    /// Failed requests by class: count and the first message seen.
    pub failures: BTreeMap<FailureClass, (u64, String)>,
    /// Wall-clock time from the first request to the last answer.
    pub elapsed: Duration,
    /// Latencies of the successful requests.
    pub latencies: Latencies,
    /// Redis round trips per request (the relay's own count), for a scenario whose
    /// relay keeps pairs in Redis.
    pub store_round_trips_per_request: Option<f64>,
}

impl Report {
    /// Failed requests.
    pub fn errors(&self) -> u64 {
        self.failures.values().map(|(count, _)| count).sum()
    }

    /// Requests sent (successful and failed).
    pub fn requests(&self) -> u64 {
        self.ok + self.errors()
    }

    /// Successful requests per second.
    pub fn rate(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.ok as f64 / seconds
        } else {
            0.0
        }
    }
}

fn millis(latency: Option<Duration>) -> String {
    latency.map_or_else(
        || "-".to_owned(),
        |d| format!("{:.2}", d.as_secs_f64() * 1e3),
    )
}

/// Renders `reports` as a Markdown table. Ratios are req/s relative to the direct
/// scenario when there is one (else the first report), and named after it.
pub fn render_table(reports: &[Report]) -> String {
    let baseline = reports
        .iter()
        .find(|report| report.scenario == Scenario::Direct)
        .or_else(|| reports.first());
    let baseline_name = baseline.map_or("-", |report| report.scenario.name());
    let baseline = baseline.map(Report::rate);
    let mut table = format!(
        "| scenario | requests | errors | req/s | p50 ms | p90 ms | p99 ms | req/s vs {baseline_name} |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for report in reports {
        let ratio = match baseline {
            Some(base) if base > 0.0 => format!("{:.2}", report.rate() / base),
            _ => "-".to_owned(),
        };
        let _ = writeln!(
            table,
            "| {} | {} | {} | {:.0} | {} | {} | {} | {} |",
            report.scenario,
            report.requests(),
            report.errors(),
            report.rate(),
            millis(report.latencies.quantile(0.50)),
            millis(report.latencies.quantile(0.90)),
            millis(report.latencies.quantile(0.99)),
            ratio,
        );
    }
    for report in reports {
        if let Some(commands) = report.store_round_trips_per_request {
            let _ = writeln!(
                table,
                "\n{}: {commands:.2} Redis round trips per request",
                report.scenario
            );
        }
    }
    for report in reports {
        for (class, (count, message)) in &report.failures {
            let _ = writeln!(
                table,
                "\n{}: {count} {} error(s), first: {message}",
                report.scenario,
                class.name()
            );
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let latencies = Latencies::from_nanos((1..=100).rev().collect());
        assert_eq!(latencies.quantile(0.5), Some(Duration::from_nanos(50)));
        assert_eq!(latencies.quantile(0.9), Some(Duration::from_nanos(90)));
        assert_eq!(latencies.quantile(0.99), Some(Duration::from_nanos(99)));
        assert_eq!(latencies.quantile(1.0), Some(Duration::from_nanos(100)));
        assert_eq!(Latencies::default().quantile(0.5), None);
        let one = Latencies::from_nanos(vec![7]);
        assert_eq!(one.quantile(0.01), Some(Duration::from_nanos(7)));
    }

    #[test]
    fn table_has_ratios_to_direct_and_lists_failures() {
        let report = |scenario, ok, secs| Report {
            scenario,
            ok,
            failures: BTreeMap::new(),
            elapsed: Duration::from_secs(secs),
            latencies: Latencies::from_nanos(vec![1_000_000, 2_000_000]),
            store_round_trips_per_request: None,
        };
        let mut mke = report(Scenario::Mke, 100, 1);
        mke.failures
            .insert(FailureClass::Relay, (2, "overloaded".to_owned()));
        let table = render_table(&[report(Scenario::Direct, 200, 1), mke]);
        assert!(
            table.contains("| direct | 200 | 0 | 200 | 1.00 | 2.00 | 2.00 | 1.00 |"),
            "{table}"
        );
        assert!(table.contains("| mke | 102 | 2 | 100 |"), "{table}");
        assert!(table.contains("| 0.50 |"), "{table}");
        assert!(
            table.contains("mke: 2 relay error(s), first: overloaded"),
            "{table}"
        );
    }
}
