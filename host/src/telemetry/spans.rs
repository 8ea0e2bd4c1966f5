//! OTLP export of one span per request, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
//!
//! The span is made at the one end-of-request point, from what the access log line
//! reports: no tracing span lives through the request, so a relay without an endpoint
//! pays nothing, and the span is exactly the access line (start, duration, route,
//! status, reason, timings, peer). Its parent is the request's `traceparent` (read
//! from inside the sealed head for an MTE request), so it joins the caller's trace.
//!
//! Spans leave in batches from the OpenTelemetry SDK's own thread, over OTLP/HTTP
//! (protobuf or JSON), through a hyper client on a small runtime of their own: export
//! never runs on, or waits for, the threads that serve requests.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
    TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

use crate::config::UpstreamTls;
use crate::config::otlp::{OtlpProtocol, OtlpSettings};
use crate::observe::{FinishedRequest, RequestObserver};

/// How long an export may take before the SDK gives it up.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest collector answer read (an OTLP answer is a few bytes).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Exporting spans; stop it with [`SpanExport::shutdown`] to send what is queued.
pub struct SpanExport {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

impl std::fmt::Debug for SpanExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanExport").finish_non_exhaustive()
    }
}

impl SpanExport {
    /// Starts exporting to `settings`' collector; an `https://` one is verified against
    /// the web PKI roots and `UPSTREAM_CA_FILE`, as upstreams are.
    pub fn start(settings: &OtlpSettings, tls: &UpstreamTls) -> Result<SpanExport, String> {
        let protocol = match settings.protocol {
            OtlpProtocol::HttpProtobuf => Protocol::HttpBinary,
            OtlpProtocol::HttpJson => Protocol::HttpJson,
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(ExportClient::new(tls)?)
            .with_endpoint(settings.traces_endpoint.clone())
            .with_protocol(protocol)
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|error| format!("cannot build the OTLP exporter: {error}"))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                Resource::builder()
                    .with_service_name(settings.service_name.clone())
                    .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                    .build(),
            )
            .build();
        let tracer = provider.tracer("mte-relay");
        Ok(SpanExport { provider, tracer })
    }

    /// The observer that turns each finished request into a span.
    pub fn observer(&self) -> Arc<dyn RequestObserver> {
        Arc::new(RequestSpans {
            tracer: self.tracer.clone(),
        })
    }

    /// Sends the queued spans and stops. Blocks: call it off the async threads.
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::warn!(%error, "OTLP span export did not shut down cleanly");
        }
    }
}

/// Makes one server span per finished request.
struct RequestSpans {
    tracer: SdkTracer,
}

impl std::fmt::Debug for RequestSpans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestSpans").finish_non_exhaustive()
    }
}

impl RequestObserver for RequestSpans {
    fn request_finished(&self, request: &FinishedRequest<'_>) {
        let end = SystemTime::now();
        let start = end.checked_sub(request.duration).unwrap_or(end);
        let parent = request
            .trace_parent
            .and_then(|parent| {
                let context = SpanContext::new(
                    TraceId::from_hex(&parent.trace_id).ok()?,
                    SpanId::from_hex(&parent.parent_id).ok()?,
                    if parent.sampled {
                        TraceFlags::SAMPLED
                    } else {
                        TraceFlags::default()
                    },
                    true,
                    TraceState::default(),
                );
                Some(Context::new().with_remote_span_context(context))
            })
            .unwrap_or_default();
        let ms = |duration: Duration| duration.as_secs_f64() * 1000.0;
        let mut attributes = vec![
            KeyValue::new("http.request.method", request.method.to_string()),
            KeyValue::new("http.response.status_code", i64::from(request.status)),
            KeyValue::new("mte.route", request.route),
            KeyValue::new("mte.domain", request.domain.unwrap_or("-").to_owned()),
            KeyValue::new("mte.request_id", request.request_id.to_owned()),
            KeyValue::new("mte.completed", request.completed),
            KeyValue::new("mte.upstream_ms", ms(request.upstream)),
            KeyValue::new("mte.decode_ms", ms(request.decode)),
            KeyValue::new("mte.encode_ms", ms(request.encode)),
            KeyValue::new(
                "mte.bytes_in",
                i64::try_from(request.bytes_in).unwrap_or(i64::MAX),
            ),
            KeyValue::new(
                "mte.bytes_out",
                i64::try_from(request.bytes_out).unwrap_or(i64::MAX),
            ),
        ];
        // The path of an MTE request is secret: it never leaves the relay, in a span
        // either. Pass-through and outbound paths are the caller's plain ones.
        if let Some(path) = request.path {
            attributes.push(KeyValue::new("url.path", path.to_owned()));
        }
        if let Some(mode) = request.mode {
            attributes.push(KeyValue::new("mte.mode", mode.token()));
        }
        if let Some(reason) = request.reason {
            attributes.push(KeyValue::new("mte.reason", reason.token()));
        }
        if let Some(peer) = request.peer {
            attributes.push(KeyValue::new("mte.peer", peer.to_owned()));
            attributes.push(KeyValue::new("mte.outbound_ms", ms(request.outbound)));
        }
        let mut span = self
            .tracer
            .span_builder(format!("{} {}", request.method, request.route))
            .with_kind(SpanKind::Server)
            .with_start_time(start)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &parent);
        if request.status >= 500 || request.reason.is_some() {
            span.set_status(Status::error(
                request
                    .reason
                    .map_or("server error", |reason| reason.token()),
            ));
        }
        span.end_with_timestamp(end);
    }
}

/// The exporter's HTTP client: hyper (rustls for `https://`), driven by a runtime of
/// its own, since the SDK exports from a plain thread.
struct ExportClient {
    runtime: tokio::runtime::Handle,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl std::fmt::Debug for ExportClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportClient").finish_non_exhaustive()
    }
}

impl ExportClient {
    fn new(tls: &UpstreamTls) -> Result<ExportClient, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| format!("cannot start the OTLP export runtime: {error}"))?;
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("otlp-export".into())
            .spawn(move || runtime.block_on(std::future::pending::<()>()))
            .map_err(|error| format!("cannot start the OTLP export thread: {error}"))?;
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_connect_timeout(Some(EXPORT_TIMEOUT));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls.client_config).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(ExportClient {
            runtime: handle,
            client,
        })
    }
}

#[async_trait::async_trait]
impl HttpClient for ExportClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let exchange = async move {
            let response = client.request(request.map(Full::new)).await?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_ANSWER_BYTES)
                .collect()
                .await?
                .to_bytes();
            Ok::<_, HttpError>(Response::from_parts(parts, body))
        };
        // The SDK sets no deadline on an export from its own thread: without one, a
        // collector that accepts and never answers would stop span export for good.
        let bounded = async move {
            tokio::time::timeout(EXPORT_TIMEOUT, exchange)
                .await
                .map_err(|_elapsed| -> HttpError {
                    format!("the collector did not answer within {EXPORT_TIMEOUT:?}").into()
                })?
        };
        self.runtime.spawn(bounded).await?
    }
}
