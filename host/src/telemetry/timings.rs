//! Per-request measurements, filled by whichever stage does the work.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mte_relay_protocol::header::Mode;

use crate::trace_context::TraceParent;

/// Shared (`Arc`) between the server, the upstream client and the pipeline; also
/// inserted in the request's extensions. Durations accumulate, so a stage that runs
/// per chunk (decode, encode) adds each chunk's time.
#[derive(Debug)]
pub struct RequestTimings {
    started: Instant,
    upstream_micros: AtomicU64,
    decode_micros: AtomicU64,
    encode_micros: AtomicU64,
    outbound_micros: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// The verified client id of an MTE request, for usage records.
    client_id: OnceLock<String>,
    /// The mode of an MTE request, once its relay header parsed.
    mode: OnceLock<Mode>,
    /// The request's valid `traceparent`, when it carried one.
    trace_parent: OnceLock<TraceParent>,
    /// The peer relay of an outbound request.
    peer: OnceLock<Peer>,
}

/// The peer relay of an outbound request, and whether the configuration names it (a
/// default or on the allow-list): only those are metric labels, which stay bounded.
#[derive(Debug)]
pub struct Peer {
    pub origin: String,
    pub configured: bool,
}

impl RequestTimings {
    pub fn start() -> Self {
        RequestTimings {
            started: Instant::now(),
            upstream_micros: AtomicU64::new(0),
            decode_micros: AtomicU64::new(0),
            encode_micros: AtomicU64::new(0),
            outbound_micros: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            client_id: OnceLock::new(),
            mode: OnceLock::new(),
            trace_parent: OnceLock::new(),
            peer: OnceLock::new(),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Time from sending the upstream request to its response head.
    pub fn add_upstream(&self, spent: Duration) {
        add(&self.upstream_micros, spent);
    }

    /// Time spent decrypting the request (head and body chunks).
    pub fn add_decode(&self, spent: Duration) {
        add(&self.decode_micros, spent);
    }

    /// Time spent encrypting the response (head and body chunks).
    pub fn add_encode(&self, spent: Duration) {
        add(&self.encode_micros, spent);
    }

    /// Time from sending an outbound request to the peer relay until its answer's
    /// head was decrypted (the documents' Outbound Proxy Time).
    pub fn add_outbound(&self, spent: Duration) {
        add(&self.outbound_micros, spent);
    }

    /// Records the peer relay of an outbound request (first call wins).
    pub fn set_peer(&self, origin: &str, configured: bool) {
        let _ = self.peer.set(Peer {
            origin: origin.to_owned(),
            configured,
        });
    }

    pub fn peer(&self) -> Option<&Peer> {
        self.peer.get()
    }

    pub fn outbound(&self) -> Duration {
        Duration::from_micros(self.outbound_micros.load(Ordering::Relaxed))
    }

    /// Request body bytes received from the client (as sent: ciphertext for MTE).
    pub fn add_bytes_in(&self, bytes: u64) {
        self.bytes_in.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Response body bytes sent to the client.
    pub fn add_bytes_out(&self, bytes: u64) {
        self.bytes_out.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Records the request's verified client id (first call wins).
    pub fn set_client_id(&self, client_id: &str) {
        let _ = self.client_id.set(client_id.to_owned());
    }

    /// Records the MTE request's mode (first call wins).
    pub fn set_mode(&self, mode: Mode) {
        let _ = self.mode.set(mode);
    }

    pub fn mode(&self) -> Option<Mode> {
        self.mode.get().copied()
    }

    /// Records the request's `traceparent` (first call wins).
    pub fn set_trace_parent(&self, parent: TraceParent) {
        let _ = self.trace_parent.set(parent);
    }

    pub fn trace_parent(&self) -> Option<&TraceParent> {
        self.trace_parent.get()
    }

    pub fn trace_id(&self) -> Option<&str> {
        self.trace_parent().map(|parent| parent.trace_id.as_str())
    }

    pub fn client_id(&self) -> Option<&str> {
        self.client_id.get().map(String::as_str)
    }

    pub fn upstream(&self) -> Duration {
        Duration::from_micros(self.upstream_micros.load(Ordering::Relaxed))
    }

    pub fn decode(&self) -> Duration {
        Duration::from_micros(self.decode_micros.load(Ordering::Relaxed))
    }

    pub fn encode(&self) -> Duration {
        Duration::from_micros(self.encode_micros.load(Ordering::Relaxed))
    }

    pub fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Ordering::Relaxed)
    }

    pub fn bytes_out(&self) -> u64 {
        self.bytes_out.load(Ordering::Relaxed)
    }
}

fn add(counter: &AtomicU64, spent: Duration) {
    let micros = u64::try_from(spent.as_micros()).unwrap_or(u64::MAX);
    counter.fetch_add(micros, Ordering::Relaxed);
}

/// The client SDK's sealing and opening bodies report here: sealing is the relay's
/// encoding (a response, or an outbound request), opening its decoding.
impl mte_relay_client::CodecObserver for RequestTimings {
    fn sealed(&self, took: Duration) {
        self.add_encode(took);
    }

    fn opened(&self, took: Duration) {
        self.add_decode(took);
    }
}
