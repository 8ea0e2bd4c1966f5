//! Prometheus metrics, served by the admin listener at `GET /metrics`.
//!
//! Built on `prometheus-client` (the Prometheus project's Rust client): typed label
//! sets, OpenMetrics text, and no global registry, so tests build their own. Every
//! label is bounded: a domain is a configured `DOMAIN_MAP` key (or `*`, or `-` for a
//! host that matched none), a method one of the standard nine or `OTHER`, a status a
//! class (`2xx`), a reason a registry token. No client id, path or header value ever
//! becomes a label.
//!
//! Requests are counted by one observer at the end of each request
//! ([`crate::observe`]); the store and the process are measured where they run.

mod process;

use std::sync::Arc;
use std::time::Duration;

use mte_relay_protocol::header::Mode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::observe::{FinishedRequest, RequestObserver};

/// Request and upstream times, in seconds: half a millisecond to a minute.
const REQUEST_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0,
];
/// Encryption and decryption times, in seconds: ten microseconds to half a second.
const CRYPTO_BUCKETS: [f64; 12] = [
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.5,
];
/// Pair store operations, in seconds: fifty microseconds to two seconds.
const STORE_BUCKETS: [f64; 12] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.0,
];

/// A domain label: shared, so the label sets of one request do not copy it.
type Domain = Arc<String>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    domain: Domain,
    route: &'static str,
    method: &'static str,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    domain: Domain,
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DomainLabels {
    domain: Domain,
}

/// A peer relay's origin as configured, or [`UNLISTED_PEER`]: never a value a caller
/// chose, so the label set stays bounded.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    peer: Arc<String>,
}

/// The `peer` label of an outbound request to a peer the configuration does not name
/// (a domain without an allow-list lets a caller name any).
pub const UNLISTED_PEER: &str = "unlisted";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModeLabels {
    domain: Domain,
    mode: &'static str,
    /// `mte` (this relay opened the request and sealed the answer) or `outbound`
    /// (this relay, as an API Relay's sender, sealed the request and opened the answer).
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    domain: Domain,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PairingLabels {
    domain: Domain,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

/// The pair store operations, as the `op` label names them.
pub const STORE_OPERATIONS: [&str; 7] = [
    "insert",
    "load",
    "commit",
    "record_token",
    "sweep",
    "count",
    "check",
];

/// Timings and failures of the pair store's operations.
#[derive(Debug)]
pub struct StoreMetrics {
    duration: Family<OperationLabels, Histogram, fn() -> Histogram>,
    errors: Family<OperationLabels, Counter>,
}

impl StoreMetrics {
    fn new() -> StoreMetrics {
        let metrics = StoreMetrics {
            duration: Family::new_with_constructor(|| Histogram::new(STORE_BUCKETS)),
            errors: Family::default(),
        };
        // Every operation's error count exists from the start, at 0, so an alert on
        // its rate has a series before the first failure.
        for op in STORE_OPERATIONS {
            metrics.errors.get_or_create(&OperationLabels { op }).get();
        }
        metrics
    }

    /// Records one operation (`insert`, `load`, `commit`, `record_token`, ...).
    pub fn observe(&self, op: &'static str, took: Duration, failed: bool) {
        let labels = OperationLabels { op };
        self.duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        if failed {
            self.errors.get_or_create(&labels).inc();
        }
    }
}

/// Every metric the relay exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    upstream_duration: Family<DomainLabels, Histogram, fn() -> Histogram>,
    outbound_duration: Family<PeerLabels, Histogram, fn() -> Histogram>,
    decode_duration: Family<ModeLabels, Histogram, fn() -> Histogram>,
    encode_duration: Family<ModeLabels, Histogram, fn() -> Histogram>,
    request_bytes: Family<DomainLabels, Counter>,
    response_bytes: Family<DomainLabels, Counter>,
    refusals: Family<ReasonLabels, Counter>,
    pairings: Family<PairingLabels, Counter>,
    pairs: Gauge,
    in_flight: Gauge,
    store_round_trips: Counter,
    /// The store's round-trip count at the last scrape.
    round_trips_seen: std::sync::atomic::AtomicU64,
    pub store: Arc<StoreMetrics>,
}

impl Metrics {
    /// The relay's metrics, `pool_size` being `POOL_SIZE`.
    pub fn new(pool_size: usize) -> Metrics {
        let mut root = Registry::default();
        // The process collector keeps the names every Prometheus client uses.
        root.register_collector(Box::new(process::ProcessCollector));
        let registry = root.sub_registry_with_prefix("mte_relay");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests served, by domain, route class, method and status class",
            requests.clone(),
        );
        let request_duration: Family<RouteLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(REQUEST_BUCKETS));
        registry.register_with_unit(
            "request_duration",
            "Time from the request's arrival to the end of its response body",
            Unit::Seconds,
            request_duration.clone(),
        );
        let upstream_duration: Family<DomainLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(REQUEST_BUCKETS));
        registry.register_with_unit(
            "upstream_duration",
            "Time from sending a request upstream to its response head (Upstream Proxy Time)",
            Unit::Seconds,
            upstream_duration.clone(),
        );
        let outbound_duration: Family<PeerLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(REQUEST_BUCKETS));
        registry.register_with_unit(
            "outbound_duration",
            "Time from sending an outbound request to a peer relay until its answer's head \
             was decrypted (Outbound Proxy Time, API Relay)",
            Unit::Seconds,
            outbound_duration.clone(),
        );
        let decode_duration: Family<ModeLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(CRYPTO_BUCKETS));
        registry.register_with_unit(
            "decode_duration",
            "Time spent decrypting one MTE request (head and body)",
            Unit::Seconds,
            decode_duration.clone(),
        );
        let encode_duration: Family<ModeLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(CRYPTO_BUCKETS));
        registry.register_with_unit(
            "encode_duration",
            "Time spent encrypting one MTE response (head and body)",
            Unit::Seconds,
            encode_duration.clone(),
        );
        let request_bytes = Family::<DomainLabels, Counter>::default();
        registry.register_with_unit(
            "request",
            "Request body bytes received from clients (ciphertext for MTE)",
            Unit::Bytes,
            request_bytes.clone(),
        );
        let response_bytes = Family::<DomainLabels, Counter>::default();
        registry.register_with_unit(
            "response",
            "Response body bytes sent to clients",
            Unit::Bytes,
            response_bytes.clone(),
        );
        let refusals = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "refusals",
            "Requests the relay refused, by registry reason",
            refusals.clone(),
        );
        let pairings = Family::<PairingLabels, Counter>::default();
        registry.register(
            "pairings",
            "Pairing requests, by result (ok or the registry reason)",
            pairings.clone(),
        );
        let pairs = Gauge::default();
        registry.register(
            "pairs",
            "Pairs the pair store holds (with Redis: over every replica)",
            pairs.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "in_flight",
            "MTE requests in flight (each holds one POOL_SIZE permit)",
            in_flight.clone(),
        );
        let pool = Gauge::<i64>::default();
        pool.set(i64::try_from(pool_size).unwrap_or(i64::MAX));
        registry.register(
            "pool_size",
            "POOL_SIZE: the bound on in-flight MTE requests",
            pool,
        );
        let store = StoreMetrics::new();
        registry.register_with_unit(
            "store_operation_duration",
            "Time of one pair store operation",
            Unit::Seconds,
            store.duration.clone(),
        );
        registry.register(
            "store_errors",
            "Pair store operations that failed (store-unavailable)",
            store.errors.clone(),
        );
        let store_round_trips = Counter::default();
        registry.register(
            "store_round_trips",
            "Network round trips to Redis (a command or a pipeline each); none in memory",
            store_round_trips.clone(),
        );
        let build = Family::<VersionLabels, Gauge>::default();
        build
            .get_or_create(&VersionLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("build_info", "The relay's version; always 1", build);
        Metrics {
            registry: root,
            requests,
            request_duration,
            upstream_duration,
            outbound_duration,
            decode_duration,
            encode_duration,
            request_bytes,
            response_bytes,
            refusals,
            pairings,
            pairs,
            in_flight,
            store_round_trips,
            round_trips_seen: std::sync::atomic::AtomicU64::new(0),
            store: Arc::new(store),
        }
    }

    /// Adds a collector read at each scrape (the adapters' counters).
    pub fn register_collector(
        &mut self,
        collector: Box<dyn prometheus_client::collector::Collector>,
    ) {
        self.registry.register_collector(collector);
    }

    /// Brings the round-trip counter up to the store's own count.
    pub fn set_store_round_trips(&self, total: u64) {
        // Two scrapes at once (redundant Prometheus servers) must not count a gap
        // twice: only the one that moves the high-water mark adds the difference.
        let seen = self
            .round_trips_seen
            .fetch_max(total, std::sync::atomic::Ordering::Relaxed);
        if total > seen {
            self.store_round_trips.inc_by(total - seen);
        }
    }

    /// Sets the gauges read at scrape time.
    pub fn set_gauges(&self, pairs: Option<usize>, in_flight: usize) {
        if let Some(pairs) = pairs {
            self.pairs.set(i64::try_from(pairs).unwrap_or(i64::MAX));
        }
        self.in_flight
            .set(i64::try_from(in_flight).unwrap_or(i64::MAX));
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::with_capacity(16 * 1024);
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// The content type of [`Metrics::encode`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

impl RequestObserver for Metrics {
    fn request_finished(&self, request: &FinishedRequest<'_>) {
        // One allocation for the request; every label set shares it.
        let domain: Domain = Arc::new(request.domain.unwrap_or("-").to_owned());
        let route = request.route;
        self.requests
            .get_or_create(&RequestLabels {
                domain: domain.clone(),
                route,
                method: method_label(request.method),
                status: status_class(request.status),
            })
            .inc();
        let domain_labels = DomainLabels {
            domain: domain.clone(),
        };
        self.request_duration
            .get_or_create(&RouteLabels {
                domain: domain.clone(),
                route,
            })
            .observe(request.duration.as_secs_f64());
        if request.forwarded.is_some() && !request.upstream.is_zero() {
            self.upstream_duration
                .get_or_create(&domain_labels)
                .observe(request.upstream.as_secs_f64());
        }
        if let Some(peer) = request.peer {
            let peer = if request.peer_configured {
                peer
            } else {
                UNLISTED_PEER
            };
            self.outbound_duration
                .get_or_create(&PeerLabels {
                    peer: Arc::new(peer.to_owned()),
                })
                .observe(request.outbound.as_secs_f64());
        }
        if let Some(mode) = request.mode {
            let labels = ModeLabels {
                domain: domain.clone(),
                mode: mode_label(mode),
                route,
            };
            if !request.decode.is_zero() {
                self.decode_duration
                    .get_or_create(&labels)
                    .observe(request.decode.as_secs_f64());
            }
            if !request.encode.is_zero() {
                self.encode_duration
                    .get_or_create(&labels)
                    .observe(request.encode.as_secs_f64());
            }
        }
        self.request_bytes
            .get_or_create(&domain_labels)
            .inc_by(request.bytes_in);
        self.response_bytes
            .get_or_create(&domain_labels)
            .inc_by(request.bytes_out);
        if let Some(reason) = request.reason {
            self.refusals
                .get_or_create(&ReasonLabels {
                    domain: domain.clone(),
                    reason: reason.token(),
                })
                .inc();
        }
        if route == PAIRING_ROUTE {
            // `failed`: the client left before the answer (499), or an answer without
            // a registry reason.
            let result = match request.reason {
                Some(reason) => reason.token(),
                None if (200..300).contains(&request.status) => "ok",
                None => "failed",
            };
            self.pairings
                .get_or_create(&PairingLabels {
                    domain: domain.clone(),
                    result,
                })
                .inc();
        }
    }
}

/// The access-log name of the pairing route.
const PAIRING_ROUTE: &str = "pair";

fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::PATCH => "PATCH",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::CONNECT => "CONNECT",
        http::Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        5 => "5xx",
        _ => "other",
    }
}

fn mode_label(mode: Mode) -> &'static str {
    match mode {
        Mode::Mke => "mke",
        Mode::Mte => "mte",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::Forwarded;
    use mte_relay_protocol::registry::ErrorReason;

    fn finished(route: &'static str, status: u16, reason: Option<ErrorReason>) -> String {
        let metrics = Metrics::new(600);
        let method = http::Method::from_bytes(b"BREW").expect("method");
        metrics.request_finished(&FinishedRequest {
            request_id: "r",
            domain: Some("api.example"),
            route,
            forwarded: Some(Forwarded::Mte),
            method: &method,
            path: None,
            status,
            completed: true,
            reason,
            mode: Some(Mode::Mte),
            client_id: Some("a-client-id-that-must-not-show"),
            trace_parent: None,
            peer: None,
            peer_configured: false,
            duration: Duration::from_millis(3),
            upstream: Duration::from_millis(2),
            decode: Duration::from_micros(40),
            encode: Duration::from_micros(30),
            outbound: Duration::ZERO,
            bytes_in: 100,
            bytes_out: 200,
        });
        metrics.set_gauges(Some(7), 1);
        metrics.encode().expect("encodes")
    }

    #[test]
    fn a_request_shows_in_every_family_with_bounded_labels() {
        let text = finished("mte", 565, Some(ErrorReason::Replay));
        for expected in [
            r#"mte_relay_requests_total{domain="api.example",route="mte",method="OTHER",status="5xx"} 1"#,
            r#"mte_relay_refusals_total{domain="api.example",reason="replay"} 1"#,
            r#"mte_relay_request_bytes_total{domain="api.example"} 100"#,
            r#"mte_relay_response_bytes_total{domain="api.example"} 200"#,
            r#"mte_relay_decode_duration_seconds_count{domain="api.example",mode="mte",route="mte"} 1"#,
            r#"mte_relay_upstream_duration_seconds_count{domain="api.example"} 1"#,
            "mte_relay_pairs 7",
            "mte_relay_in_flight 1",
            "mte_relay_pool_size 600",
            r#"mte_relay_build_info{version=""#,
            "process_resident_memory_bytes",
        ] {
            assert!(text.contains(expected), "missing {expected} in\n{text}");
        }
        assert!(!text.contains("a-client-id"), "no client id in a label");
        assert!(!text.contains("BREW"), "an unknown method is OTHER");
    }

    #[test]
    fn pairings_are_counted_by_result() {
        let text = finished("pair", 200, None);
        assert!(
            text.contains(r#"mte_relay_pairings_total{domain="api.example",result="ok"} 1"#),
            "{text}"
        );
        let text = finished("pair", 568, Some(ErrorReason::Overloaded));
        assert!(text.contains(r#"result="overloaded""#), "{text}");
    }

    #[test]
    fn store_operations_are_timed_and_failures_counted() {
        let metrics = Metrics::new(1);
        metrics
            .store
            .observe("commit", Duration::from_micros(300), false);
        metrics
            .store
            .observe("commit", Duration::from_micros(300), true);
        let text = metrics.encode().expect("encodes");
        assert!(
            text.contains(r#"mte_relay_store_operation_duration_seconds_count{op="commit"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"mte_relay_store_errors_total{op="commit"} 1"#),
            "{text}"
        );
    }
}
