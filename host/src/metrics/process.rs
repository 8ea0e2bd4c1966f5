//! The process collector: resident memory, CPU time, open file descriptors and start
//! time, read from `/proc/self` at each scrape, under the names every Prometheus
//! client uses (`process_*`), so stock dashboards and alerts work unchanged.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// Reads `/proc/self` when scraped; on systems without it, exports nothing.
#[derive(Debug)]
pub struct ProcessCollector;

/// What one read of `/proc/self` found.
#[derive(Debug, Default, PartialEq)]
struct ProcessStats {
    resident_bytes: Option<i64>,
    cpu_seconds: Option<f64>,
    start_time_seconds: Option<f64>,
    open_fds: Option<i64>,
    max_fds: Option<i64>,
}

impl ProcessStats {
    fn read() -> ProcessStats {
        let ticks = clock_ticks();
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        let fields = stat.as_deref().and_then(stat_fields);
        let field =
            |index: usize| -> Option<f64> { fields.as_ref()?.get(index)?.parse::<f64>().ok() };
        // Fields after the command, 0-based from `state` (field 3 of proc(5)):
        // utime 11, stime 12, starttime 19.
        let cpu_seconds = match (field(11), field(12)) {
            (Some(user), Some(system)) => Some((user + system) / ticks),
            _ => None,
        };
        let boot = boot_time_seconds();
        let start_time_seconds = match (field(19), boot) {
            (Some(start), Some(boot)) => Some(boot + start / ticks),
            _ => None,
        };
        // VmRSS is in kB whatever the page size (4, 16 or 64 KiB on aarch64 kernels).
        let resident_bytes = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| parse_vm_rss_bytes(&status));
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|entries| entries.count() as i64);
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|limits| parse_max_open_files(&limits));
        ProcessStats {
            resident_bytes,
            cpu_seconds,
            start_time_seconds,
            open_fds,
            max_fds,
        }
    }
}

/// The fields of `/proc/self/stat` after the command name (which may hold spaces and
/// parentheses, so it is skipped up to its last `)`).
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let after_command = &stat[stat.rfind(')')? + 1..];
    Some(after_command.split_whitespace().collect())
}

fn parse_max_open_files(limits: &str) -> Option<i64> {
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn boot_time_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// `VmRSS` of `/proc/self/status`, in bytes.
fn parse_vm_rss_bytes(status: &str) -> Option<i64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kilobytes: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes * 1024)
}

/// Linux's clock tick as `/proc` reports times: USER_HZ, 100 on every architecture
/// the image targets (it is part of the kernel's user-space ABI).
fn clock_ticks() -> f64 {
    100.0
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = ProcessStats::read();
        if let Some(bytes) = stats.resident_bytes {
            let metric = ConstGauge::new(bytes);
            let descriptor = encoder.encode_descriptor(
                "process_resident_memory",
                "Resident memory size",
                Some(&Unit::Bytes),
                metric.metric_type(),
            )?;
            metric.encode(descriptor)?;
        }
        if let Some(seconds) = stats.cpu_seconds {
            let metric = ConstCounter::new(seconds);
            let descriptor = encoder.encode_descriptor(
                "process_cpu",
                "User and system CPU time spent",
                Some(&Unit::Seconds),
                metric.metric_type(),
            )?;
            metric.encode(descriptor)?;
        }
        if let Some(seconds) = stats.start_time_seconds {
            let metric = ConstGauge::new(seconds);
            let descriptor = encoder.encode_descriptor(
                "process_start_time",
                "Start time of the process since the Unix epoch",
                Some(&Unit::Seconds),
                metric.metric_type(),
            )?;
            metric.encode(descriptor)?;
        }
        for (name, help, value) in [
            ("process_open_fds", "Open file descriptors", stats.open_fds),
            (
                "process_max_fds",
                "Limit of open file descriptors",
                stats.max_fds,
            ),
        ] {
            if let Some(value) = value {
                let metric = ConstGauge::new(value);
                let descriptor =
                    encoder.encode_descriptor(name, help, None, metric.metric_type())?;
                metric.encode(descriptor)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_with_spaces_and_parentheses_does_not_shift_the_fields() {
        let stat =
            "4242 (my (odd) name) S 1 2 3 4 5 6 7 8 9 10 150 50 13 14 15 16 17 18 900 20 321";
        let fields = stat_fields(stat).expect("fields");
        assert_eq!(fields[0], "S");
        assert_eq!(fields[11], "150", "utime");
        assert_eq!(fields[12], "50", "stime");
        assert_eq!(fields[19], "900", "starttime");
    }

    #[test]
    fn resident_memory_is_read_in_bytes() {
        let status = "Name:\tmte-relay\nVmRSS:\t   51200 kB\nThreads:\t4\n";
        assert_eq!(parse_vm_rss_bytes(status), Some(51_200 * 1024));
    }

    #[test]
    fn the_open_files_limit_is_read() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1048576              1048576              files\n";
        assert_eq!(parse_max_open_files(limits), Some(1_048_576));
    }

    #[test]
    fn this_process_is_measured() {
        let stats = ProcessStats::read();
        assert!(stats.resident_bytes.is_some_and(|bytes| bytes > 1_000_000));
        assert!(stats.open_fds.is_some_and(|fds| fds >= 3));
        assert!(stats.cpu_seconds.is_some());
    }
}
