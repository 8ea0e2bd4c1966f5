//! A man in the middle between a client and the relay, as an on-path attacker (or a
//! misbehaving proxy) would stand: it forwards every request to the relay and may
//! rewrite each response head on its way back.

use std::net::SocketAddr;
use std::sync::Arc;

use http::Request;
use http::response::Parts;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::upstream::Upstream;

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
        let client: Client<_, Incoming> = Client::builder(TokioExecutor::new()).build_http();
        let rewrite = Arc::new(rewrite);
        let server = Upstream::start(move |request: Request<Incoming>| {
            let (client, rewrite) = (client.clone(), rewrite.clone());
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
                rewrite(&mut parts);
                http::Response::from_parts(parts, body.map_err(Into::into).boxed())
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
