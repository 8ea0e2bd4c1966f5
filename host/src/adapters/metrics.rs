//! The adapters' metrics, read from the runtime's counters at each scrape:
//! `mte_relay_adapter_calls_total{adapter,hook,outcome}`,
//! `mte_relay_adapter_call_duration_seconds{adapter,hook}` and
//! `mte_relay_meter_records_dropped_total{adapter}`. Adapter names are the configured
//! instance names, so the labels are bounded.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::registry::Unit;

use super::Adapters;

/// Reads every adapter's counters when scraped.
#[derive(Debug)]
pub struct AdapterCollector(pub Arc<Adapters>);

impl Collector for AdapterCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshots = self.0.runtime.stats();
        {
            let mut family = encoder.encode_descriptor(
                "mte_relay_adapter_calls",
                "Adapter hook calls, by adapter, hook and outcome",
                None,
                MetricType::Counter,
            )?;
            for adapter in &snapshots {
                for hook in adapter.hooks.iter().filter(|hook| hook.count > 0) {
                    for (outcome, calls) in &hook.outcomes {
                        let labels = [
                            ("adapter", adapter.name.as_str()),
                            ("hook", hook.hook),
                            ("outcome", *outcome),
                        ];
                        ConstCounter::new(*calls).encode(family.encode_family(&labels)?)?;
                    }
                }
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "mte_relay_adapter_call_duration",
                "Time of one adapter hook call, instance checkout included",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            for adapter in &snapshots {
                for hook in adapter.hooks.iter().filter(|hook| hook.count > 0) {
                    let labels = [("adapter", adapter.name.as_str()), ("hook", hook.hook)];
                    family
                        .encode_family(&labels)?
                        .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                            hook.sum_seconds,
                            hook.count,
                            &hook.buckets,
                            None,
                        )?;
                }
            }
        }
        let mut family = encoder.encode_descriptor(
            "mte_relay_meter_records_dropped",
            "Usage records a meter adapter never received: its queue was full or stopped",
            None,
            MetricType::Counter,
        )?;
        for adapter in &snapshots {
            let labels = [("adapter", adapter.name.as_str())];
            ConstCounter::new(adapter.records_dropped).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
