//! Pass-through routes: streaming both ways, WebSocket upgrades, header hygiene, echo.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper_util::rt::TokioIo;
use mte_relay_tests::client::{body_bytes, body_json, get, request, send, send_from};
use mte_relay_tests::relay::Relay;
use mte_relay_tests::upstream::{BoxError, TestBody, Upstream, full};
use mte_relay_tests::within;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::support::{mirror_upstream, pass_all_map};

type Chunks = mpsc::Sender<Result<Frame<Bytes>, BoxError>>;

/// A streaming body fed through a channel.
fn channel_body() -> (Chunks, TestBody) {
    let (sender, receiver) = mpsc::channel(4);
    let stream = tokio_stream_from(receiver);
    (sender, BodyExt::boxed(StreamBody::new(stream)))
}

fn tokio_stream_from(
    mut receiver: mpsc::Receiver<Result<Frame<Bytes>, BoxError>>,
) -> impl futures_util::Stream<Item = Result<Frame<Bytes>, BoxError>> + Send + Sync + 'static {
    futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

async fn chunk(sender: &Chunks, data: &'static str) {
    sender
        .send(Ok(Frame::data(Bytes::from_static(data.as_bytes()))))
        .await
        .expect("body receiver alive");
}

/// The upstream must see the first chunk of an upload while the client is still
/// holding back the second: a relay that buffered whole bodies would deadlock here.
#[tokio::test]
async fn uploads_stream_to_the_upstream_chunk_by_chunk() {
    let (first_seen_tx, first_seen_rx) = oneshot::channel::<Bytes>();
    let first_seen_tx = Arc::new(Mutex::new(Some(first_seen_tx)));
    let upstream = Upstream::start(move |request| {
        let first_seen_tx = first_seen_tx.clone();
        async move {
            let mut body = request.into_body();
            let mut received = Vec::new();
            while let Some(frame) = body.frame().await {
                let Ok(data) = frame.expect("upload frame").into_data() else {
                    continue;
                };
                if received.is_empty()
                    && let Some(tx) = first_seen_tx.lock().expect("lock").take()
                {
                    let _ = tx.send(data.clone());
                }
                received.extend_from_slice(&data);
            }
            Response::new(full(received))
        }
    })
    .await;
    let relay = Relay::start(&[("DOMAIN_MAP", &pass_all_map("up.example", &upstream.url()))]);

    let (sender, body) = channel_body();
    let request = request("POST", "up.example", "/upload")
        .body(body)
        .expect("request");
    let response = tokio::spawn(send(relay.addr(), request));
    chunk(&sender, "first-").await;
    let first = within("the upstream to read the first chunk", first_seen_rx)
        .await
        .expect("first chunk reported");
    assert_eq!(first, "first-");
    chunk(&sender, "second").await;
    drop(sender);
    let response = within("the upload response", response).await.expect("task");
    assert_eq!(response.status(), 200);
    assert_eq!(body_bytes(response).await, "first-second");
}

/// The client must receive the first chunk of a download while the upstream has not
/// yet produced the second.
#[tokio::test]
async fn downloads_stream_to_the_client_chunk_by_chunk() {
    let (next_tx, next_rx) = mpsc::channel::<()>(1);
    let next_rx = Arc::new(tokio::sync::Mutex::new(Some(next_rx)));
    let upstream = Upstream::start(move |_request| {
        let next_rx = next_rx.clone();
        async move {
            let mut next_rx = next_rx.lock().await.take().expect("one download");
            let (sender, body) = channel_body();
            tokio::spawn(async move {
                chunk(&sender, "part-1;").await;
                if next_rx.recv().await.is_some() {
                    chunk(&sender, "part-2").await;
                }
            });
            Response::new(body)
        }
    })
    .await;
    let relay = Relay::start(&[("DOMAIN_MAP", &pass_all_map("down.example", &upstream.url()))]);

    let response = get(relay.addr(), "down.example", "/download").await;
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let first = within("the first downloaded chunk", body.frame())
        .await
        .expect("a frame")
        .expect("frame ok")
        .into_data()
        .expect("data");
    assert_eq!(first, "part-1;");
    next_tx.send(()).await.expect("upstream waiting");
    let rest = within("the rest of the download", body.collect())
        .await
        .expect("rest")
        .to_bytes();
    assert_eq!(rest, "part-2");
}

/// An upstream that accepts a WebSocket and echoes every message.
async fn websocket_echo_upstream() -> Upstream {
    Upstream::start(|mut request| async move {
        let key = request
            .headers()
            .get("sec-websocket-key")
            .cloned()
            .expect("websocket key");
        let upgrade = hyper::upgrade::on(&mut request);
        tokio::spawn(async move {
            let upgraded = upgrade.await.expect("upstream upgrade");
            let mut socket = tokio_tungstenite::WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                Role::Server,
                None,
            )
            .await;
            while let Some(Ok(message)) = socket.next().await {
                if message.is_text() || message.is_binary() {
                    if socket.send(message).await.is_err() {
                        break;
                    }
                } else if message.is_close() {
                    break;
                }
            }
        });
        let mut response = Response::new(full(Bytes::new()));
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert("connection", http::HeaderValue::from_static("upgrade"));
        headers.insert("upgrade", http::HeaderValue::from_static("websocket"));
        headers.insert(
            "sec-websocket-accept",
            derive_accept_key(key.as_bytes())
                .parse()
                .expect("accept value"),
        );
        response
    })
    .await
}

#[tokio::test]
async fn websocket_upgrades_are_tunnelled() {
    let upstream = websocket_echo_upstream().await;
    let relay = Relay::start(&[("DOMAIN_MAP", &pass_all_map("ws.example", &upstream.url()))]);

    let stream = within("connect", tokio::net::TcpStream::connect(relay.addr()))
        .await
        .expect("connect");
    let request = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        "ws://ws.example/socket",
    )
    .expect("ws request");
    let (mut socket, response) = within(
        "the websocket handshake",
        tokio_tungstenite::client_async(request, stream),
    )
    .await
    .expect("handshake through the relay");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);

    for text in ["hello", "through the relay"] {
        socket.send(Message::text(text)).await.expect("send");
        let echoed = within("an echoed message", socket.next())
            .await
            .expect("a message")
            .expect("message ok");
        assert_eq!(echoed, Message::text(text));
    }
    socket.close(None).await.expect("close");
}

#[tokio::test]
async fn upstream_requests_get_configured_headers_and_lose_hop_by_hop_ones() {
    let upstream = mirror_upstream().await;
    let map = serde_json::json!({
        "h.example": {
            "upstream": upstream.url(),
            "pass_through_routes": ["/mirror"],
            "headers": { "x-api-key": "from-config", "x-tenant": "t1" },
        }
    })
    .to_string();
    let relay = Relay::start(&[("DOMAIN_MAP", &map)]);

    let request = request("GET", "h.example", "/mirror?q=1")
        .header("connection", "keep-alive, x-hop")
        .header("keep-alive", "timeout=5")
        .header("x-hop", "dropped")
        .header("te", "trailers")
        .header("x-api-key", "from-client")
        .header("x-mte-relay-head", "never-forwarded")
        .header("x-mte-relay-client-id", "never-forwarded")
        .header("x-request-id", "req-headers-1")
        .header("accept", "application/json")
        .body(full(Bytes::new()))
        .expect("request");
    let response = send(relay.addr(), request).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "req-headers-1");
    let mirrored = body_json(response).await;
    let headers = &mirrored["headers"];

    assert_eq!(mirrored["path"], "/mirror?q=1");
    assert_eq!(headers["x-api-key"], "from-config");
    assert_eq!(headers["x-tenant"], "t1");
    assert_eq!(headers["accept"], "application/json");
    assert_eq!(headers["x-request-id"], "req-headers-1");
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["x-forwarded-host"], "h.example");
    assert_eq!(headers["host"], upstream.addr().to_string());
    for gone in [
        "x-hop",
        "keep-alive",
        "te",
        "x-mte-relay-head",
        "x-mte-relay-client-id",
    ] {
        assert!(
            headers.get(gone).is_none(),
            "{gone} reached the upstream: {headers}"
        );
    }
}

#[tokio::test]
async fn pass_through_accepts_any_method_and_upstream_status() {
    let upstream = Upstream::start(|request| async move {
        let mut response = Response::new(full(format!("{} seen", request.method())));
        *response.status_mut() = StatusCode::IM_A_TEAPOT;
        response
    })
    .await;
    let relay = Relay::start(&[("DOMAIN_MAP", &pass_all_map("m.example", &upstream.url()))]);
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "PROPFIND"] {
        let request: Request<TestBody> = request(method, "m.example", "/x")
            .body(full(Bytes::new()))
            .expect("request");
        let response = send(relay.addr(), request).await;
        assert_eq!(response.status(), StatusCode::IM_A_TEAPOT, "{method}");
        assert_eq!(body_bytes(response).await, format!("{method} seen"));
    }
}

#[tokio::test]
async fn plain_echo_answers_json_and_the_request_is_logged() {
    let upstream = mirror_upstream().await;
    let relay = Relay::start(&[("UPSTREAM", &upstream.url())]);

    let request = request("GET", "any.example", "/api/mte-echo?msg=hello%20relay")
        .header("x-request-id", "echo-req-1")
        .body(full(Bytes::new()))
        .expect("request");
    let response = send(relay.addr(), request).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "echo-req-1");
    let json = body_json(response).await;
    assert_eq!(json["message"], "hello relay");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let timestamp = json["timestamp"].as_u64().expect("numeric timestamp");
    assert!(
        timestamp <= now_ms && timestamp + 60_000 > now_ms,
        "{timestamp} vs {now_ms}"
    );

    let line = relay.access_line("echo-req-1").expect("access line");
    assert_eq!(line["route"], "echo");
    assert_eq!(line["domain"], "*");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["status"], 200);
    assert!(line["bytes_out"].as_u64().is_some_and(|n| n > 0), "{line}");
    assert!(line["duration_ms"].is_number());

    let minted = get(relay.addr(), "any.example", "/api/mte-echo").await;
    let id = minted.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(id.len(), 32, "minted id {id}");
    assert_eq!(body_json(minted).await["message"], "mte-relay echo");
}

/// The listener speaks HTTP/2 cleartext with prior knowledge, and host matching uses
/// `:authority` there.
#[tokio::test]
async fn h2c_clients_are_served() {
    let upstream = crate::support::named_upstream("over h2c").await;
    let relay = Relay::start(&[("DOMAIN_MAP", &pass_all_map("h2.example", &upstream.url()))]);

    let stream = within("connect", tokio::net::TcpStream::connect(relay.addr()))
        .await
        .expect("connect");
    let (mut sender, connection) = within(
        "the h2c handshake",
        hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            TokioIo::new(stream),
        ),
    )
    .await
    .expect("h2c handshake");
    tokio::spawn(connection);
    for path in ["/api/mte-echo?msg=h2", "/proxied"] {
        let request = Request::builder()
            .uri(format!("http://h2.example{path}"))
            .body(full(Bytes::new()))
            .expect("request");
        let response = within("an h2c response", sender.send_request(request))
            .await
            .expect("h2c response");
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.version(), http::Version::HTTP_2);
        let body = body_bytes(response).await;
        if path == "/proxied" {
            assert_eq!(body, "over h2c");
        } else {
            assert!(
                String::from_utf8_lossy(&body).contains("\"h2\""),
                "{body:?}"
            );
        }
    }
}

/// A pass-through request carrying every forwarding header, as a client could forge
/// them or a front proxy would set them.
fn with_forwarding_headers() -> Request<TestBody> {
    request("GET", "h.example", "/mirror")
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "public.example.com")
        .header("forwarded", "for=203.0.113.7")
        .body(full(Bytes::new()))
        .expect("request")
}

async fn forwarding_seen(relay: &Relay, from: Option<std::net::IpAddr>) -> serde_json::Value {
    let response = send_from(from, relay.addr(), with_forwarding_headers()).await;
    assert_eq!(response.status(), 200);
    let mirrored = body_json(response).await;
    let headers = &mirrored["headers"];
    serde_json::json!({
        "x-forwarded-for": headers["x-forwarded-for"],
        "x-forwarded-proto": headers["x-forwarded-proto"],
        "x-forwarded-host": headers["x-forwarded-host"],
        "forwarded": headers["forwarded"],
    })
}

#[tokio::test]
async fn forwarding_headers_are_the_relays_unless_a_trusted_proxy_sent_them() {
    let upstream = mirror_upstream().await;
    let map = pass_all_map("h.example", &upstream.url());
    let own = serde_json::json!({
        "x-forwarded-for": "127.0.0.1",
        "x-forwarded-proto": "http",
        "x-forwarded-host": "h.example",
        "forwarded": "for=127.0.0.1;proto=http;host=\"h.example\"",
    });

    // No trusted proxy: a client's forwarding headers never reach the upstream.
    let relay = Relay::start(&[("DOMAIN_MAP", &map)]);
    assert_eq!(forwarding_seen(&relay, None).await, own);

    // A trusted front proxy's values are kept and extended by one hop.
    let relay = Relay::start(&[("DOMAIN_MAP", &map), ("TRUSTED_PROXIES", "127.0.0.1/32")]);
    assert_eq!(
        forwarding_seen(&relay, None).await,
        serde_json::json!({
            "x-forwarded-for": "203.0.113.7, 127.0.0.1",
            "x-forwarded-proto": "https",
            "x-forwarded-host": "public.example.com",
            "forwarded": "for=203.0.113.7, for=127.0.0.1;proto=http;host=\"h.example\"",
        })
    );
    // The same headers from a peer that is not in the list are dropped.
    let untrusted = std::net::IpAddr::from([127, 0, 0, 2]);
    let seen = forwarding_seen(&relay, Some(untrusted)).await;
    assert_eq!(seen["x-forwarded-for"], "127.0.0.2");
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert_eq!(seen["x-forwarded-host"], "h.example");
}

/// A GET with a streamed body (no content-length) reaches the upstream with its body:
/// the upstream client must say the body is chunked, since an HTTP client assumes a
/// GET of unknown length has none.
#[tokio::test]
async fn a_get_with_a_streamed_body_keeps_its_body() {
    let upstream = Upstream::start(|request| async move {
        let method = request.method().clone();
        let body = request
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        Response::new(full(format!("{method} {}", String::from_utf8_lossy(&body))))
    })
    .await;
    let relay = Relay::start(&[("DOMAIN_MAP", &pass_all_map("*", &upstream.url()))]);
    let (sender, body) = channel_body();
    let request = request("GET", "api.example", "/search")
        .header("transfer-encoding", "chunked")
        .body(body)
        .expect("request");
    let answer = tokio::spawn(send(relay.addr(), request));
    chunk(&sender, "query ").await;
    chunk(&sender, "document").await;
    drop(sender);
    let response = answer.await.expect("task");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_bytes(response).await, "GET query document");
}
