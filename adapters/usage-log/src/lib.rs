//! Counts requests and bytes per domain in the key-value store (so counts survive
//! instance recycling and are shared by every instance) and logs a summary line
//! per domain on each tick.
//!
//! Keys: `domains` (newline-separated list), and per domain `requests:<d>`,
//! `bytes_in:<d>`, `bytes_out:<d>`, `errors:<d>` (status >= 500).

use std::collections::BTreeMap;

use mte_relay_adapter::{Config, Meter, UsageRecord, kv};
use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Zero the counters after each summary (per-interval figures).
    #[serde(default)]
    reset_on_tick: bool,
}

pub struct UsageLog {
    reset_on_tick: bool,
}

/// Totals of one batch for one domain.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub requests: i64,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub errors: i64,
}

fn saturate(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Sum a batch per domain (one kv round trip per counter, not per record).
pub fn summarise(batch: &[UsageRecord]) -> BTreeMap<&str, Totals> {
    let mut per_domain: BTreeMap<&str, Totals> = BTreeMap::new();
    for record in batch {
        let t = per_domain.entry(record.domain.as_str()).or_default();
        t.requests += 1;
        t.bytes_in = t.bytes_in.saturating_add(saturate(record.bytes_in));
        t.bytes_out = t.bytes_out.saturating_add(saturate(record.bytes_out));
        if record.status >= 500 {
            t.errors += 1;
        }
    }
    per_domain
}

fn kv_err(e: kv::KvError) -> String {
    format!("kv: {e:?}")
}

fn domains() -> Result<Vec<String>, String> {
    Ok(kv::get_string("domains")
        .map_err(kv_err)?
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect())
}

impl Meter for UsageLog {
    fn init(config: Config) -> Result<Self, String> {
        let settings: Option<Settings> = config.parse()?;
        Ok(UsageLog {
            reset_on_tick: settings.unwrap_or_default().reset_on_tick,
        })
    }

    fn on_usage(&mut self, batch: &[UsageRecord]) -> Result<(), String> {
        let mut known = domains()?;
        for (domain, totals) in summarise(batch) {
            if !known.iter().any(|d| d == domain) {
                known.push(domain.to_owned());
                kv::set("domains", known.join("\n"), None).map_err(kv_err)?;
            }
            kv::increment(&format!("requests:{domain}"), totals.requests, None).map_err(kv_err)?;
            kv::increment(&format!("bytes_in:{domain}"), totals.bytes_in, None).map_err(kv_err)?;
            kv::increment(&format!("bytes_out:{domain}"), totals.bytes_out, None)
                .map_err(kv_err)?;
            kv::increment(&format!("errors:{domain}"), totals.errors, None).map_err(kv_err)?;
        }
        Ok(())
    }

    fn on_tick(&mut self, now_ms: u64) -> Result<(), String> {
        for domain in domains()? {
            let get = |what: &str| kv::get_counter(&format!("{what}:{domain}")).map_err(kv_err);
            let (requests, bytes_in, bytes_out, errors) = (
                get("requests")?,
                get("bytes_in")?,
                get("bytes_out")?,
                get("errors")?,
            );
            mte_relay_adapter::info!(
                "usage domain={domain} requests={requests} bytes_in={bytes_in} bytes_out={bytes_out} errors={errors} at_ms={now_ms}"
            );
            if self.reset_on_tick {
                for what in ["requests", "bytes_in", "bytes_out", "errors"] {
                    kv::set(&format!("{what}:{domain}"), "0", None).map_err(kv_err)?;
                }
            }
        }
        Ok(())
    }
}

mte_relay_adapter::export_meter!(UsageLog);

#[cfg(test)]
mod tests {
    use super::*;
    use mte_relay_adapter::RouteClass;

    fn record(domain: &str, status: u16) -> UsageRecord {
        UsageRecord {
            domain: domain.into(),
            client_id: None,
            route_class: RouteClass::PassThrough,
            method: "GET".into(),
            status,
            bytes_in: 10,
            bytes_out: 100,
            duration_us: 0,
            upstream_us: 0,
            decode_us: 0,
            encode_us: 0,
            timestamp_ms: 0,
        }
    }

    #[test]
    fn sums_per_domain() {
        let batch = [record("a", 200), record("a", 503), record("b", 200)];
        let totals = summarise(&batch);
        assert_eq!(
            totals["a"],
            Totals {
                requests: 2,
                bytes_in: 20,
                bytes_out: 200,
                errors: 1
            }
        );
        assert_eq!(totals["b"].requests, 1);
    }
}
