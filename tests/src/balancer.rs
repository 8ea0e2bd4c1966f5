//! A load balancer without sticky sessions: each request goes to the next relay in
//! turn, whatever connection it came on, as an L7 balancer in round-robin mode does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::Request;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::upstream::{Upstream, full};

/// Round-robin over `targets`, per request; stops when dropped.
pub struct RoundRobin {
    server: Upstream,
    served: Arc<Vec<AtomicUsize>>,
}

impl RoundRobin {
    pub async fn start(targets: Vec<SocketAddr>) -> RoundRobin {
        assert!(!targets.is_empty(), "a balancer needs a target");
        let client: Client<_, Incoming> = Client::builder(TokioExecutor::new()).build_http();
        let served: Arc<Vec<AtomicUsize>> =
            Arc::new(targets.iter().map(|_| AtomicUsize::new(0)).collect());
        let next = Arc::new(AtomicUsize::new(0));
        let targets = Arc::new(targets);
        let counts = served.clone();
        let server = Upstream::start(move |request: Request<Incoming>| {
            let (client, targets, next, counts) = (
                client.clone(),
                targets.clone(),
                next.clone(),
                counts.clone(),
            );
            async move {
                let index = next.fetch_add(1, Ordering::Relaxed) % targets.len();
                counts[index].fetch_add(1, Ordering::Relaxed);
                let (mut parts, body) = request.into_parts();
                let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                parts.uri = format!("http://{}{target}", targets[index])
                    .parse()
                    .expect("target URI");
                match client.request(Request::from_parts(parts, body)).await {
                    Ok(response) => response.map(|body| body.map_err(Into::into).boxed()),
                    Err(error) => {
                        let mut response = http::Response::new(full(format!(
                            "balancer: target {} failed: {error}",
                            targets[index]
                        )));
                        *response.status_mut() = http::StatusCode::BAD_GATEWAY;
                        response
                    }
                }
            }
        })
        .await;
        RoundRobin { server, served }
    }

    /// `http://127.0.0.1:PORT`, for clients.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Requests sent to each target so far, in target order.
    pub fn served(&self) -> Vec<usize> {
        self.served
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .collect()
    }
}
