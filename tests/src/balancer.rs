//! A load balancer without sticky sessions: each request goes to the next live relay
//! in turn, whatever connection it came on, as an L7 balancer in round-robin mode
//! does. A target that fails is taken out of the rotation (a passive health check),
//! and the request that met the failure has its client connection closed without an
//! answer, as a TCP-level balancer would, so the client decides whether to resend.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use http::Request;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::upstream::{BoxError, TestBody};

struct Target {
    addr: SocketAddr,
    served: AtomicUsize,
    down: AtomicBool,
}

/// Round-robin over `targets`, per request; stops when dropped.
pub struct RoundRobin {
    addr: SocketAddr,
    targets: Arc<Vec<Target>>,
    task: JoinHandle<()>,
}

impl RoundRobin {
    pub async fn start(addrs: Vec<SocketAddr>) -> RoundRobin {
        assert!(!addrs.is_empty(), "a balancer needs a target");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind balancer");
        let addr = listener.local_addr().expect("balancer address");
        let targets: Arc<Vec<Target>> = Arc::new(
            addrs
                .into_iter()
                .map(|addr| Target {
                    addr,
                    served: AtomicUsize::new(0),
                    down: AtomicBool::new(false),
                })
                .collect(),
        );
        let client: Client<_, Incoming> = Client::builder(TokioExecutor::new()).build_http();
        let next = Arc::new(AtomicUsize::new(0));
        let shared = targets.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (client, targets, next) = (client.clone(), shared.clone(), next.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let (client, targets, next) =
                            (client.clone(), targets.clone(), next.clone());
                        forward(client, targets, next, request)
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        RoundRobin {
            addr,
            targets,
            task,
        }
    }

    /// `http://127.0.0.1:PORT`, for clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests sent to each target so far, in target order.
    pub fn served(&self) -> Vec<usize> {
        self.targets
            .iter()
            .map(|target| target.served.load(Ordering::Relaxed))
            .collect()
    }
}

impl Drop for RoundRobin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Sends `request` to the next live target. A failure takes the target out and
/// closes the client's connection unanswered (the error ends hyper's connection).
async fn forward(
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Incoming>,
    targets: Arc<Vec<Target>>,
    next: Arc<AtomicUsize>,
    request: Request<Incoming>,
) -> Result<http::Response<TestBody>, BoxError> {
    let live: Vec<&Target> = targets
        .iter()
        .filter(|target| !target.down.load(Ordering::Relaxed))
        .collect();
    let Some(target) =
        (!live.is_empty()).then(|| live[next.fetch_add(1, Ordering::Relaxed) % live.len()])
    else {
        return Err("no live target".into());
    };
    target.served.fetch_add(1, Ordering::Relaxed);
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = format!("http://{}{path}", target.addr)
        .parse()
        .expect("target URI");
    match client.request(Request::from_parts(parts, body)).await {
        Ok(response) => Ok(response.map(|body| body.map_err(Into::into).boxed())),
        Err(error) => {
            target.down.store(true, Ordering::Relaxed);
            Err(BoxError::from(error))
        }
    }
}
