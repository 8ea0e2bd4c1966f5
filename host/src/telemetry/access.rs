//! The access log: one line per request, written when the response body is done.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body::{Body, Frame, SizeHint};
use tokio::sync::OwnedSemaphorePermit;

use mte_relay_protocol::registry::ErrorReason;

use super::timings::RequestTimings;
use crate::body::{BoxError, RelayBody};
use crate::observe::{FinishedRequest, Forwarded, Observers, RequestObserver};

/// What the end of a request reports to the observers. `path` is `None` for MTE
/// requests: their outer path is meaningless and the real one is secret.
#[derive(Clone)]
pub struct AccessRecord {
    pub request_id: String,
    pub domain: Option<String>,
    pub route: &'static str,
    pub forwarded: Option<Forwarded>,
    pub method: Method,
    pub path: Option<String>,
    pub status: StatusCode,
    /// The registry reason, when the relay refused the request.
    pub reason: Option<ErrorReason>,
    pub timings: Arc<RequestTimings>,
    pub observers: Observers,
}

/// The status logged for a request the client abandoned before the relay answered
/// (nginx's "client closed request"); never sent on the wire.
pub const CLIENT_CLOSED_REQUEST: u16 = 499;

impl AccessRecord {
    fn emit(&self, completed: bool) {
        self.emit_with_status(self.status.as_u16(), completed);
    }

    fn emit_with_status(&self, status: u16, completed: bool) {
        let timings = &self.timings;
        let finished = FinishedRequest {
            request_id: &self.request_id,
            domain: self.domain.as_deref(),
            route: self.route,
            forwarded: self.forwarded,
            method: &self.method,
            path: self.path.as_deref(),
            status,
            completed,
            reason: self.reason,
            mode: timings.mode(),
            client_id: timings.client_id(),
            trace_parent: timings.trace_parent(),
            peer: timings.peer().map(|peer| peer.origin.as_str()),
            peer_configured: timings.peer().is_some_and(|peer| peer.configured),
            duration: timings.elapsed(),
            upstream: timings.upstream(),
            decode: timings.decode(),
            encode: timings.encode(),
            outbound: timings.outbound(),
            bytes_in: timings.bytes_in(),
            bytes_out: timings.bytes_out(),
        };
        for observer in self.observers.iter() {
            observer.request_finished(&finished);
        }
    }
}

/// The access log: one line per request.
#[derive(Debug, Default)]
pub struct AccessLog;

impl RequestObserver for AccessLog {
    fn request_finished(&self, request: &FinishedRequest<'_>) {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        tracing::info!(
            target: "mte_relay::access",
            request_id = %request.request_id,
            domain = request.domain.unwrap_or("-"),
            route = request.route,
            method = %request.method,
            path = request.path.unwrap_or("-"),
            trace_id = request
                .trace_parent
                .map_or("-", |parent| parent.trace_id.as_str()),
            status = request.status,
            duration_ms = ms(request.duration),
            upstream_ms = ms(request.upstream),
            decode_ms = ms(request.decode),
            encode_ms = ms(request.encode),
            peer = request.peer,
            outbound_ms = request.peer.map(|_| ms(request.outbound)),
            bytes_in = request.bytes_in,
            bytes_out = request.bytes_out,
            completed = request.completed,
            "request"
        );
    }
}

/// Logs a request whose handler was dropped before it produced a response (the client
/// went away), so that every request leaves an access line.
pub struct UnansweredGuard {
    record: AccessRecord,
    armed: bool,
}

impl UnansweredGuard {
    pub fn new(record: AccessRecord) -> Self {
        UnansweredGuard {
            record,
            armed: true,
        }
    }

    /// The request got a response: the response body logs it from now on.
    pub fn answered(mut self) -> AccessRecord {
        self.armed = false;
        self.record.clone()
    }
}

impl Drop for UnansweredGuard {
    fn drop(&mut self) {
        if self.armed {
            self.record.emit_with_status(CLIENT_CLOSED_REQUEST, false);
        }
    }
}

/// The response body handed to hyper: counts bytes out, keeps the request's
/// `POOL_SIZE` permit until the last byte, and writes the access line when dropped.
pub struct AccessLogBody {
    inner: RelayBody,
    record: AccessRecord,
    finished: bool,
    _permit: Option<OwnedSemaphorePermit>,
}

impl AccessLogBody {
    pub fn new(
        inner: RelayBody,
        record: AccessRecord,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Self {
        AccessLogBody {
            inner,
            record,
            finished: false,
            _permit: permit,
        }
    }
}

impl Body for AccessLogBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.record.timings.add_bytes_out(data.len() as u64);
                }
            }
            Poll::Ready(None) => this.finished = true,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for AccessLogBody {
    fn drop(&mut self) {
        let completed = self.finished || self.inner.is_end_stream();
        self.record.emit(completed);
    }
}

/// The request body handed to handlers: counts bytes in.
pub struct CountingBody<B> {
    inner: B,
    timings: Arc<RequestTimings>,
}

impl<B> CountingBody<B> {
    pub fn new(inner: B, timings: Arc<RequestTimings>) -> Self {
        CountingBody { inner, timings }
    }
}

impl<B> Body for CountingBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            this.timings.add_bytes_in(data.len() as u64);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
