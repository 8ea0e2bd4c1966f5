//! The context of one request: what the server learned before dispatching it. The
//! server builds it and the pipelines read it; the upstream side sees only the
//! [`Destination`] it gives.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::DomainConfig;
use crate::forwarded::Provenance;
use crate::telemetry::RequestTimings;
use crate::upstream::Destination;
use crate::upstream::headers::ForwardedFor;

/// What the server learned about one request before dispatching it.
#[derive(Clone, Debug)]
pub struct RequestContext {
    /// Correlation id: the client's `x-request-id` when sane, else minted. Sent upstream
    /// and returned on the response.
    pub request_id: String,
    /// The socket's peer.
    pub remote_addr: SocketAddr,
    /// Who the client is, and what a trusted front proxy said about the request.
    pub provenance: Provenance,
    /// The `Host` (or `:authority`) the client sent, for `x-forwarded-host`.
    pub host: String,
    /// The domain the host matched.
    pub domain: Arc<DomainConfig>,
    /// Filled along the way and written to the access log line.
    pub timings: Arc<RequestTimings>,
}

impl RequestContext {
    /// Where this request goes upstream, and what the relay says about it there.
    pub fn destination(&self) -> Destination<'_> {
        Destination {
            upstream: &self.domain.upstream,
            configured_headers: self.domain.headers.map(),
            forwarded: ForwardedFor {
                provenance: &self.provenance,
                host: &self.host,
                request_id: &self.request_id,
            },
            timings: &self.timings,
        }
    }
}
