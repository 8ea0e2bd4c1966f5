//! The demo upstream: a small HTTP API to put the relay in front of.
//!
//! | route | answer |
//! | --- | --- |
//! | any method `/echo...` | JSON: method, path, query, headers, body length, body text (when UTF-8) |
//! | `GET /sse?count=N&interval_ms=M` | `text/event-stream`, N events M ms apart |
//! | `GET /download?bytes=N` | N bytes streamed in 64 KiB pieces (byte i = i mod 251) |
//! | `POST`/`PUT /upload` | reads the body as it streams: `{"bytes": n, "sha256": "..."}` |
//! | `GET /status/NNN` | an empty response with that status |
//! | `GET /health` | `ok` |

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

use crate::body::{RelayBody, boxed, empty, full};

/// Largest `/download` the demo serves.
const MAX_DOWNLOAD: u64 = 1 << 34;
const PIECE: usize = 64 * 1024;

/// Serves the demo API on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service =
                service_fn(|request| async move { Ok::<_, Infallible>(route(request).await) });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Binds `addr` and serves the demo API in a background task; returns the bound address.
pub async fn spawn(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(serve(listener));
    Ok(bound)
}

async fn route(request: Request<Incoming>) -> Response<RelayBody> {
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    match path.as_str() {
        "/health" => text(StatusCode::OK, "ok"),
        "/sse" => sse(query.as_deref()),
        "/download" => download(query.as_deref()),
        "/upload" => upload(request).await,
        _ if path.starts_with("/status/") => status(&path["/status/".len()..]),
        _ if path.starts_with("/echo") => echo(request).await,
        _ => text(StatusCode::NOT_FOUND, "no such demo route"),
    }
}

async fn echo(request: Request<Incoming>) -> Response<RelayBody> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return text(StatusCode::BAD_REQUEST, "request body failed"),
    };
    let mut headers = serde_json::Map::new();
    for (name, value) in &parts.headers {
        let entry = headers
            .entry(name.as_str())
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if let serde_json::Value::Array(values) = entry {
            values.push(
                String::from_utf8_lossy(value.as_bytes())
                    .into_owned()
                    .into(),
            );
        }
    }
    let document = json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body_bytes": body.len(),
        "body": std::str::from_utf8(&body).ok(),
    });
    let mut response = Response::new(full(document.to_string()));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn sse(query: Option<&str>) -> Response<RelayBody> {
    let count = query_u64(query, "count").unwrap_or(5).min(10_000);
    let interval =
        Duration::from_millis(query_u64(query, "interval_ms").unwrap_or(500).min(60_000));
    let events = futures_stream(count, move |n| async move {
        if n > 0 {
            tokio::time::sleep(interval).await;
        }
        Bytes::from(format!("id: {n}\nevent: tick\ndata: {{\"n\":{n}}}\n\n"))
    });
    let mut response = Response::new(boxed(StreamBody::new(events)));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn download(query: Option<&str>) -> Response<RelayBody> {
    let total = query_u64(query, "bytes")
        .unwrap_or(1 << 20)
        .min(MAX_DOWNLOAD);
    let pieces = total.div_ceil(PIECE as u64);
    let stream = futures_stream(pieces, move |n| async move {
        let start = n * PIECE as u64;
        let len = (total - start).min(PIECE as u64);
        Bytes::from(
            (start..start + len)
                .map(|i| (i % 251) as u8)
                .collect::<Vec<u8>>(),
        )
    });
    let mut response = Response::new(boxed(StreamBody::new(stream)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
}

async fn upload(request: Request<Incoming>) -> Response<RelayBody> {
    let mut body = request.into_body();
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    hasher.update(data);
                    bytes += data.len() as u64;
                }
            }
            Err(_) => return text(StatusCode::BAD_REQUEST, "request body failed"),
        }
    }
    let digest: [u8; 32] = hasher.finalize().into();
    let document = json!({ "bytes": bytes, "sha256": hex_string(&digest) });
    let mut response = Response::new(full(document.to_string()));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn status(code: &str) -> Response<RelayBody> {
    match code
        .parse::<u16>()
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
    {
        Some(code) => {
            let mut response = Response::new(empty());
            *response.status_mut() = code;
            response
        }
        None => text(StatusCode::BAD_REQUEST, "not a status code"),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<RelayBody> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A stream of `count` frames, frame `n` produced by `make(n)`.
fn futures_stream<F, Fut>(
    count: u64,
    make: F,
) -> impl futures_core::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Bytes> + Send,
{
    let (sender, receiver) = tokio::sync::mpsc::channel(2);
    tokio::spawn(async move {
        for n in 0..count {
            if sender.send(Ok(Frame::data(make(n).await))).await.is_err() {
                return;
            }
        }
    });
    ReceiverStream(receiver)
}

struct ReceiverStream<T>(tokio::sync::mpsc::Receiver<T>);

impl<T> futures_core::Stream for ReceiverStream<T> {
    type Item = T;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}

fn query_u64(query: Option<&str>, name: &str) -> Option<u64> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| value.parse().ok()).flatten()
    })
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
