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
                let target = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
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
                headers.insert("content-type", http::HeaderValue::from_static("application/json"));
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
    let mut env = vec![("UPSTREAM", upstream_url), ("CLIENT_ID_SECRET", CLIENT_ID_SECRET)];
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
