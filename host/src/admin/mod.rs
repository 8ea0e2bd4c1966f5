//! The admin listener: liveness, readiness (and metrics), on a port of its own
//! (`ADMIN_PORT`, default 9090), never on the port clients reach, so probes and scrapes
//! need no domain and pass no admission bound, and the port can be kept off the
//! public side (`ADMIN_BIND`).
//!
//! - `GET /healthz`: 200 while the process serves (liveness);
//! - `GET /readyz`: 200 when ready, else 503 with the reason ([`readiness`]);
//! - `GET /metrics`: Prometheus metrics ([`crate::metrics`]).

pub mod readiness;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use readiness::{NotReady, Readiness};

use crate::config::AdminSettings;
use crate::metrics::{self, Metrics};
use crate::store::PairStore;

/// What `/metrics` reads besides the metrics themselves: the gauges sampled at
/// scrape time.
pub struct Scrape {
    pub metrics: Arc<Metrics>,
    /// Counted at each scrape (with Redis, over every replica).
    pub store: Arc<dyn PairStore>,
    /// MTE requests in flight now.
    pub in_flight: Box<dyn Fn() -> usize + Send + Sync>,
}

/// Everything the admin listener answers from. The listener binds before the
/// adapters load (so liveness answers while they compile); the metrics arrive once
/// the relay's state is built.
struct Admin {
    readiness: Arc<Readiness>,
    /// Unset while starting; `None` with `METRICS=false`.
    scrape: std::sync::OnceLock<Option<Scrape>>,
}

/// The running admin listener.
pub struct AdminHandle {
    admin: Arc<Admin>,
    task: JoinHandle<()>,
}

impl AdminHandle {
    /// Serves `/metrics` from `scrape` from now on (`None`: metrics are off).
    pub fn serve_metrics(&self, scrape: Option<Scrape>) {
        let _ = self.admin.scrape.set(scrape);
    }

    /// Stops the listener (at process exit).
    pub fn stop(self) {
        self.task.abort();
    }
}

/// How long an admin client may take to send its request head.
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The bound admin listener.
pub struct AdminServer {
    listener: TcpListener,
}

impl AdminServer {
    /// Binds `ADMIN_BIND:ADMIN_PORT`.
    pub async fn bind(settings: AdminSettings) -> std::io::Result<AdminServer> {
        let listener =
            TcpListener::bind(SocketAddr::new(settings.bind_address, settings.port)).await?;
        Ok(AdminServer { listener })
    }

    /// The bound address (the real port when `ADMIN_PORT=0`).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves on a task of its own until the task is aborted (at process exit), so
    /// probes keep their answers through a graceful shutdown.
    pub fn spawn(self, readiness: Arc<Readiness>) -> AdminHandle {
        let admin = Arc::new(Admin {
            readiness,
            scrape: std::sync::OnceLock::new(),
        });
        let serving = admin.clone();
        let task = tokio::spawn(async move {
            let admin = serving;
            loop {
                let (stream, _) = match self.listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "admin accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let admin = admin.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let admin = admin.clone();
                        async move { Ok::<_, std::convert::Infallible>(answer(&admin, request).await) }
                    });
                    let served = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_READ_TIMEOUT)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                    if let Err(error) = served {
                        tracing::debug!(%error, "admin connection ended with an error");
                    }
                });
            }
        });
        AdminHandle { admin, task }
    }
}

/// The answer to one admin request.
async fn answer(admin: &Admin, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return json(
            StatusCode::METHOD_NOT_ALLOWED,
            serde_json::json!({ "error": "only GET and HEAD are served here" }),
        );
    }
    match request.uri().path() {
        "/healthz" => json(StatusCode::OK, serde_json::json!({ "status": "ok" })),
        "/metrics" => match admin.scrape.get() {
            Some(Some(scrape)) => metrics_answer(scrape).await,
            Some(None) => json(
                StatusCode::NOT_FOUND,
                serde_json::json!({ "error": "metrics are off (METRICS=false)" }),
            ),
            None => json(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({ "error": "starting: the metrics are not set up yet" }),
            ),
        },
        "/readyz" => match admin.readiness.check().await {
            Ok(()) => json(StatusCode::OK, serde_json::json!({ "ready": true })),
            Err(not_ready) => json(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({
                    "ready": false,
                    "reason": not_ready.token(),
                    "detail": not_ready.to_string(),
                }),
            ),
        },
        _ => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({ "error": "not found; the admin listener serves /healthz, /readyz and /metrics" }),
        ),
    }
}

/// How long a scrape waits for the pair store's count before leaving the gauge as
/// it was.
const PAIR_COUNT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

async fn metrics_answer(scrape: &Scrape) -> Response<Full<Bytes>> {
    let metrics = &scrape.metrics;
    let pairs = match tokio::time::timeout(PAIR_COUNT_TIMEOUT, scrape.store.pair_count()).await {
        Ok(Ok(pairs)) => Some(pairs),
        _ => None,
    };
    metrics.set_gauges(pairs, (scrape.in_flight)());
    if let Some(round_trips) = scrape.store.round_trips() {
        metrics.set_store_round_trips(round_trips);
    }
    match metrics.encode() {
        Ok(text) => {
            let mut response = Response::new(Full::new(Bytes::from(text)));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(metrics::CONTENT_TYPE),
            );
            response
        }
        Err(error) => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({ "error": format!("metrics could not be encoded: {error}") }),
        ),
    }
}

fn json(status: StatusCode, document: serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(document.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
