//! A minimal HTTP/1.1 client with full control of the request (Host header included).

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpSocket, TcpStream};

use crate::upstream::{BoxError, TestBody, full};
use crate::within;

/// Sends `request` on a new connection to `addr` and returns the response head.
/// Upgrades are enabled on the connection.
pub async fn send<B>(addr: SocketAddr, request: Request<B>) -> Response<Incoming>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    send_from(None, addr, request).await
}

/// Like [`send`], from the local address `from` when given. Every address in
/// 127.0.0.0/8 reaches a relay on 127.0.0.1, so a test can act as several remote
/// addresses.
pub async fn send_from<B>(
    from: Option<IpAddr>,
    addr: SocketAddr,
    request: Request<B>,
) -> Response<Incoming>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    within("a response from the relay", exchange(from, addr, request)).await
}

/// One request on a new HTTP/1.1 connection (upgrades enabled), to its response head.
async fn exchange<B>(
    from: Option<IpAddr>,
    addr: SocketAddr,
    request: Request<B>,
) -> Response<Incoming>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let stream = connect_from(from, addr).await.expect("connect to relay");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(connection.with_upgrades());
    sender.send_request(request).await.expect("send request")
}

/// Like [`send`], waiting up to `limit` for the response head (a large upload's answer
/// comes only after the whole body).
pub async fn send_within<B>(
    limit: std::time::Duration,
    addr: SocketAddr,
    request: Request<B>,
) -> Response<Incoming>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    crate::within_for(
        limit,
        "a response from the relay",
        exchange(None, addr, request),
    )
    .await
}

/// Opens a TCP connection to `addr`, from the local address `from` when given.
pub async fn connect_from(from: Option<IpAddr>, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let Some(from) = from else {
        return TcpStream::connect(addr).await;
    };
    let socket = match from {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(addr).await
}

/// A request builder preset with the `Host` header.
pub fn request(method: &str, host: &str, path: &str) -> http::request::Builder {
    Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, host)
}

/// `GET path` with `Host: host` and an empty body.
pub async fn get(addr: SocketAddr, host: &str, path: &str) -> Response<Incoming> {
    let request = request("GET", host, path)
        .body(full(Bytes::new()))
        .expect("request");
    send::<TestBody>(addr, request).await
}

/// Reads a whole (small) response body.
pub async fn body_bytes(response: Response<Incoming>) -> Bytes {
    within("a response body", response.into_body().collect())
        .await
        .expect("read body")
        .to_bytes()
}

/// Reads a whole (small) response body as JSON.
pub async fn body_json(response: Response<Incoming>) -> serde_json::Value {
    let bytes = body_bytes(response).await;
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
}

/// One HTTP/1.1 connection kept alive for many requests. A load test that opened a
/// connection per request from one address would run out of that address's ephemeral
/// ports (each closed connection waits in TIME_WAIT) long before it troubled the relay.
pub struct KeptAlive {
    sender: hyper::client::conn::http1::SendRequest<TestBody>,
}

impl KeptAlive {
    /// Connects to `addr`, from the local address `from` when given.
    pub async fn open(from: Option<IpAddr>, addr: SocketAddr) -> KeptAlive {
        within("a kept-alive connection", async {
            let stream = connect_from(from, addr).await.expect("connect to relay");
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .expect("HTTP/1.1 handshake");
            tokio::spawn(connection);
            KeptAlive { sender }
        })
        .await
    }

    /// Sends `request` and reads the whole answer: status, headers and body.
    pub async fn send(&mut self, request: Request<TestBody>) -> (Response<()>, Bytes) {
        within("an answer on the kept-alive connection", async {
            self.sender.ready().await.expect("connection ready");
            let response = self
                .sender
                .send_request(request)
                .await
                .expect("send request");
            let (parts, body) = response.into_parts();
            let body = body.collect().await.expect("body").to_bytes();
            (Response::from_parts(parts, ()), body)
        })
        .await
    }
}
