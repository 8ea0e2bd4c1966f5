//! Shared setup: an upstream that records what it received, and a relay in front of it.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::Response;
use http_body_util::BodyExt;
use mte_relay_client::RelayClient;
use mte_relay_tests::relay::Relay;
use mte_relay_tests::upstream::{TestBody, Upstream, full};

pub const CLIENT_ID_SECRET: &str = "an-end-to-end-test-client-id-secret-0123456789";

/// One request as the upstream saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub target: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// An upstream that records every complete request and answers with a JSON summary
/// (method, target, body length) and a repeated `set-cookie`.
pub struct RecordingUpstream {
    pub upstream: Upstream,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl RecordingUpstream {
    pub async fn start() -> RecordingUpstream {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let record = seen.clone();
        let upstream = Upstream::start(move |request| {
            let record = record.clone();
            async move {
                let (parts, body) = request.into_parts();
                let Ok(body) = body.collect().await.map(|c| c.to_bytes()) else {
                    // An aborted body never counts as a request the upstream processed.
                    let mut response = Response::new(full("aborted"));
                    *response.status_mut() = http::StatusCode::BAD_REQUEST;
                    return response;
                };
                let target = parts
                    .uri
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_owned();
                let status = target
                    .strip_prefix("/status/")
                    .and_then(|code| code.split('?').next()?.parse::<u16>().ok())
                    .unwrap_or(200);
                let summary = serde_json::json!({
                    "method": parts.method.as_str(),
                    "target": target,
                    "body_bytes": body.len(),
                });
                record.lock().expect("lock").push(Seen {
                    target,
                    headers: parts.headers,
                    body,
                });
                let mut response: Response<TestBody> = Response::new(full(summary.to_string()));
                *response.status_mut() = http::StatusCode::from_u16(status).expect("status");
                let headers = response.headers_mut();
                headers.insert(
                    "content-type",
                    http::HeaderValue::from_static("application/json"),
                );
                headers.append("set-cookie", http::HeaderValue::from_static("a=1; Path=/"));
                headers.append("set-cookie", http::HeaderValue::from_static("b=2; Path=/"));
                response
            }
        })
        .await;
        RecordingUpstream { upstream, seen }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

/// A relay in front of `upstream_url` with the test secret, plus extra settings.
pub fn relay_for(upstream_url: &str, extra: &[(&str, &str)]) -> Relay {
    let mut env = vec![
        ("UPSTREAM", upstream_url),
        ("CLIENT_ID_SECRET", CLIENT_ID_SECRET),
    ];
    env.extend_from_slice(extra);
    Relay::start(&env)
}

/// A client of `relay` with two pairs.
pub fn client_for(relay: &Relay) -> RelayClient {
    RelayClient::builder(format!("http://{}", relay.addr()))
        .pairs(2)
        .build()
        .expect("client builds")
}

/// What a [`StreamingUpstream`] observed of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyEvent {
    /// The request head arrived (its target).
    Started(String),
    /// A piece of the body arrived (its length).
    Data(usize),
    /// The body ended cleanly (its total length): a completed request.
    Completed(usize),
    /// Reading the body failed: the request was aborted.
    Aborted,
}

/// An upstream that reads each request body piece by piece and reports every step, so a
/// test can tell a request that was started and then aborted from one that completed.
pub struct StreamingUpstream {
    pub upstream: Upstream,
    events: tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<BodyEvent>>,
}

impl StreamingUpstream {
    pub async fn start() -> StreamingUpstream {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let upstream = Upstream::start(move |request| {
            let events = sender.clone();
            async move {
                let (parts, mut body) = request.into_parts();
                let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                let _ = events.send(BodyEvent::Started(target.to_owned()));
                let mut total = 0;
                loop {
                    match body.frame().await {
                        Some(Ok(frame)) => {
                            if let Some(data) = frame.data_ref() {
                                total += data.len();
                                let _ = events.send(BodyEvent::Data(data.len()));
                            }
                        }
                        Some(Err(_)) => {
                            let _ = events.send(BodyEvent::Aborted);
                            let mut response = Response::new(full("aborted"));
                            *response.status_mut() = http::StatusCode::BAD_REQUEST;
                            return response;
                        }
                        None => break,
                    }
                }
                let _ = events.send(BodyEvent::Completed(total));
                Response::new(full(serde_json::json!({ "body_bytes": total }).to_string()))
            }
        })
        .await;
        StreamingUpstream {
            upstream,
            events: tokio::sync::Mutex::new(receiver),
        }
    }

    /// The next event (bounded wait).
    pub async fn next(&self) -> BodyEvent {
        let mut events = self.events.lock().await;
        mte_relay_tests::within("an upstream event", events.recv())
            .await
            .expect("upstream event channel open")
    }

    /// Events reported so far, without waiting.
    pub async fn drain(&self) -> Vec<BodyEvent> {
        let mut events = self.events.lock().await;
        let mut drained = Vec::new();
        while let Ok(event) = events.try_recv() {
            drained.push(event);
        }
        drained
    }
}

/// A loopback port that refuses connections (bound, not listening); keep the socket
/// alive while the relay may connect to it.
pub fn refusing_port() -> (tokio::net::TcpSocket, String) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind");
    let url = format!("http://{}", socket.local_addr().expect("address"));
    (socket, url)
}

/// An HTTP/1.1 upstream written on raw TCP: for every request it sends a response head
/// announcing `announced` body bytes, then `sent` bytes of body, then closes the
/// connection, so the response breaks in the middle of its body.
pub struct BreakingUpstream {
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl BreakingUpstream {
    pub async fn start(announced: usize, sent: usize) -> BreakingUpstream {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    // Read the request head (the tests send no request body here).
                    let mut head = Vec::new();
                    let mut buffer = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {announced}\r\n\r\n"
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.write_all(&vec![b'x'; sent]).await;
                    let _ = stream.flush().await;
                    // Give the relay time to forward what was sent, then break off.
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    drop(stream);
                });
            }
        });
        BreakingUpstream { url, task }
    }
}

impl Drop for BreakingUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The relay's demo upstream (`/download`, `/upload`, `/sse`, `/status/NNN`, `/echo`),
/// served by this test process on an ephemeral loopback port; returns its URL.
pub async fn demo_upstream() -> String {
    let addr = mte_relay::demo::upstream::spawn(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("demo upstream binds");
    format!("http://{addr}")
}

/// A client of the relay at `addr` with `pairs` pairs.
pub fn client_with_pairs(addr: std::net::SocketAddr, pairs: usize) -> RelayClient {
    RelayClient::builder(format!("http://{addr}"))
        .pairs(pairs)
        .build()
        .expect("client builds")
}

/// The access lines (one per request) the relay logged so far.
pub fn access_lines(relay: &Relay) -> Vec<serde_json::Value> {
    relay
        .json_logs()
        .into_iter()
        .filter(|json| json["target"] == "mte_relay::access")
        .collect()
}

/// The statuses of the relay's access lines so far, in order.
pub fn logged_statuses(relay: &Relay) -> Vec<u64> {
    access_lines(relay)
        .iter()
        .filter_map(|json| json["status"].as_u64())
        .collect()
}

/// Sends a plain `GET path` through `client` and returns the status and the body.
pub async fn get_through(client: &RelayClient, path: &str) -> (http::StatusCode, Bytes) {
    let request = http::Request::get(path).body(()).expect("request");
    let response = mte_relay_tests::within(&format!("GET {path}"), client.send(request))
        .await
        .unwrap_or_else(|error| panic!("GET {path} through the relay failed: {error:?}"));
    let status = response.status();
    let body = mte_relay_tests::within(
        &format!("the body of GET {path}"),
        response.into_body().collect_bytes(),
    )
    .await
    .unwrap_or_else(|error| panic!("body of GET {path} failed: {error}"));
    (status, body)
}
