//! The end of a request: what every observer (the access log, the meters, the
//! metrics) learns when a request's response is done, and the trait they implement.
//!
//! One list of observers is called once per request, from the one place that knows a
//! request has ended (the response body's drop, or the handler's if the client left
//! first). Observers are independent: none calls another, and this module depends on
//! nothing above it.

use std::time::Duration;

use http::Method;
use mte_relay_protocol::header::Mode;
use mte_relay_protocol::registry::ErrorReason;

use crate::trace_context::TraceParent;

/// How a request reached an upstream, for those that did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forwarded {
    /// An MTE request, decrypted and forwarded.
    Mte,
    /// A pass-through route, forwarded as it came.
    PassThrough,
    /// An outbound request, sent encrypted to a peer relay (API Relay).
    Outbound,
}

/// One finished request. Borrowed: observers copy what they keep.
#[derive(Debug)]
pub struct FinishedRequest<'a> {
    pub request_id: &'a str,
    /// The configured domain (a `DOMAIN_MAP` key or `*`), when the host matched one.
    pub domain: Option<&'a str>,
    /// The route class as the access log names it (`mte`, `pass-through`, `pair`, ...).
    pub route: &'static str,
    /// Set for routes that forward to an upstream.
    pub forwarded: Option<Forwarded>,
    pub method: &'a Method,
    /// The request path, `None` for MTE requests (their real path is secret).
    pub path: Option<&'a str>,
    /// The status sent, or 499 when the client left before the answer.
    pub status: u16,
    /// Whether the whole response body was sent.
    pub completed: bool,
    /// The registry reason of a refusal, when the relay refused.
    pub reason: Option<ErrorReason>,
    /// The MTE mode of an MTE request whose relay header parsed.
    pub mode: Option<Mode>,
    /// The verified client id of an MTE request.
    pub client_id: Option<&'a str>,
    /// The request's valid `traceparent` (inside the head, for an MTE request): its
    /// trace id for the access log, and the parent of the request's exported span.
    pub trace_parent: Option<&'a TraceParent>,
    /// The peer relay's origin, for an outbound request.
    pub peer: Option<&'a str>,
    /// Whether the configuration names that peer (a bounded metric label if so).
    pub peer_configured: bool,
    pub duration: Duration,
    pub upstream: Duration,
    pub decode: Duration,
    pub encode: Duration,
    /// Outbound Proxy Time: to the peer relay and back to its answer's head.
    pub outbound: Duration,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Something that learns of every finished request. Called on the request's task:
/// keep it short and never block.
pub trait RequestObserver: std::fmt::Debug + Send + Sync + 'static {
    fn request_finished(&self, request: &FinishedRequest<'_>);
}

/// The observers of every request, in the order they are called.
pub type Observers = std::sync::Arc<[std::sync::Arc<dyn RequestObserver>]>;
