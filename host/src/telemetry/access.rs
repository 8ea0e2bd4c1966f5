//! The access log: one line per request, written when the response body is done.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body::{Body, Frame, SizeHint};
use tokio::sync::OwnedSemaphorePermit;

use super::timings::RequestTimings;
use crate::body::{BoxError, RelayBody};

/// What the access line says about a request. `path` is `None` for MTE requests:
/// their outer path is meaningless and the real one is secret.
#[derive(Clone, Debug)]
pub struct AccessRecord {
    pub request_id: String,
    pub domain: Option<String>,
    pub route: &'static str,
    pub method: Method,
    pub path: Option<String>,
    pub status: StatusCode,
    pub timings: Arc<RequestTimings>,
    /// Where the request's usage record goes, when its domain has meter adapters.
    pub usage: Option<UsageTap>,
}

/// A domain's meters, fed one usage record per request when its access line is written.
#[derive(Clone, Debug)]
pub struct UsageTap {
    pub adapters: Arc<crate::adapters::Adapters>,
    pub domain: String,
    pub mte: bool,
}

impl UsageTap {
    fn record(&self, method: &Method, status: u16, timings: &RequestTimings) {
        let micros = |d: std::time::Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let timestamp_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            });
        let record = mte_relay_adapter_runtime::UsageRecord {
            domain: self.domain.clone(),
            client_id: timings.client_id().map(str::to_owned),
            route_class: if self.mte {
                mte_relay_adapter_runtime::RouteClass::Mte
            } else {
                mte_relay_adapter_runtime::RouteClass::PassThrough
            },
            method: method.to_string(),
            status,
            bytes_in: timings.bytes_in(),
            bytes_out: timings.bytes_out(),
            duration_us: micros(timings.elapsed()),
            upstream_us: micros(timings.upstream()),
            decode_us: micros(timings.decode()),
            encode_us: micros(timings.encode()),
            timestamp_ms,
        };
        self.adapters.record_usage(&self.domain, record);
    }
}

/// The status logged for a request the client abandoned before the relay answered
/// (nginx's "client closed request"); never sent on the wire.
pub const CLIENT_CLOSED_REQUEST: u16 = 499;

impl AccessRecord {
    fn emit(&self, completed: bool) {
        self.emit_with_status(self.status.as_u16(), completed);
    }

    fn emit_with_status(&self, status: u16, completed: bool) {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        tracing::info!(
            target: "mte_relay::access",
            request_id = %self.request_id,
            domain = self.domain.as_deref().unwrap_or("-"),
            route = self.route,
            method = %self.method,
            path = self.path.as_deref().unwrap_or("-"),
            status,
            duration_ms = ms(self.timings.elapsed()),
            upstream_ms = ms(self.timings.upstream()),
            decode_ms = ms(self.timings.decode()),
            encode_ms = ms(self.timings.encode()),
            bytes_in = self.timings.bytes_in(),
            bytes_out = self.timings.bytes_out(),
            completed,
            "request"
        );
        if let Some(usage) = &self.usage {
            usage.record(&self.method, status, &self.timings);
        }
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
