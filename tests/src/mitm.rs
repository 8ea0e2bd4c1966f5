//! A man in the middle between a client and the relay, as an on-path attacker (or a
//! misbehaving proxy) would stand: it forwards every request to the relay and may
//! rewrite each response head on its way back, or drop the relay's answer and send one
//! of its own.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use http::response::Parts;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::upstream::{Upstream, full};

/// What the interceptor sends back instead of the relay's answer.
pub type Forged = http::Response<Bytes>;

/// A forwarding proxy on a loopback port; stops when dropped.
pub struct Interceptor {
    server: Upstream,
}

impl Interceptor {
    /// Forwards to the relay at `relay`, passing each response head through `rewrite`.
    pub async fn start<F>(relay: SocketAddr, rewrite: F) -> Interceptor
    where
        F: Fn(&mut Parts) + Send + Sync + 'static,
    {
        Interceptor::replacing(relay, move |parts| {
            rewrite(parts);
            None
        })
        .await
    }

    /// Forwards to the relay at `relay`; once the relay has answered (so the request
    /// reached it, and perhaps the upstream), `replace` sees the answer's head and may
    /// rewrite it, or return a forged response that the client gets instead (the
    /// genuine body is read and dropped).
    pub async fn replacing<F>(relay: SocketAddr, replace: F) -> Interceptor
    where
        F: Fn(&mut Parts) -> Option<Forged> + Send + Sync + 'static,
    {
        let client: Client<_, Incoming> = Client::builder(TokioExecutor::new()).build_http();
        let replace = Arc::new(replace);
        let server = Upstream::start(move |request: Request<Incoming>| {
            let (client, replace) = (client.clone(), replace.clone());
            async move {
                let (mut parts, body) = request.into_parts();
                let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                parts.uri = format!("http://{relay}{target}")
                    .parse()
                    .expect("relay URI");
                let response = client
                    .request(Request::from_parts(parts, body))
                    .await
                    .expect("the relay answers the interceptor");
                let (mut parts, body) = response.into_parts();
                match replace(&mut parts) {
                    None => http::Response::from_parts(parts, body.map_err(Into::into).boxed()),
                    Some(forged) => {
                        // Let the relay finish its answer, so the exchange completed.
                        let _ = body.collect().await;
                        forged.map(full)
                    }
                }
            }
        })
        .await;
        Interceptor { server }
    }

    /// `http://127.0.0.1:PORT`, for clients.
    pub fn url(&self) -> String {
        self.server.url()
    }
}

/// A registry error as the relay would send it in the clear: the status, the token in
/// `x-mte-relay-error`, `Retry-After: 0`, and a JSON body.
pub fn forged_error(status: u16, token: &str) -> Forged {
    let body = serde_json::json!({ "error": token, "message": "forged" }).to_string();
    http::Response::builder()
        .status(status)
        .header("x-mte-relay-error", token)
        .header("retry-after", "0")
        .header("content-type", "application/json")
        .body(Bytes::from(body))
        .expect("forged response")
}
