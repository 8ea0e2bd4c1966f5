//! Small helpers shared by these tests.

use bytes::Bytes;
use http::Response;
use mte_relay_tests::upstream::{TestBody, Upstream, full};

/// An upstream that answers every request with `name`.
pub async fn named_upstream(name: &'static str) -> Upstream {
    Upstream::start(move |_request| async move {
        Response::new(full(Bytes::from_static(name.as_bytes())))
    })
    .await
}

/// An upstream that answers with the request's method, path and headers as JSON.
pub async fn mirror_upstream() -> Upstream {
    Upstream::start(|request| async move {
        let headers: serde_json::Map<String, serde_json::Value> = request
            .headers()
            .keys()
            .map(|name| {
                let values: Vec<String> = request
                    .headers()
                    .get_all(name)
                    .iter()
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .collect();
                (name.as_str().to_owned(), values.join(", ").into())
            })
            .collect();
        let json = serde_json::json!({
            "method": request.method().as_str(),
            "path": request.uri().path_and_query().map(|p| p.as_str()),
            "headers": headers,
        });
        let mut response: Response<TestBody> = Response::new(full(json.to_string()));
        response.headers_mut().insert(
            "content-type",
            http::HeaderValue::from_static("application/json"),
        );
        response
    })
    .await
}

/// `{"<host>": {"upstream": url, "pass_through_routes": ["/*"]}}`-style one-domain map.
pub fn pass_all_map(host: &str, upstream: &str) -> String {
    serde_json::json!({ host: { "upstream": upstream, "pass_through_routes": ["/*"] } }).to_string()
}

/// Asserts a registry error response: status, header token and JSON body.
pub async fn assert_registry_error(
    response: Response<hyper::body::Incoming>,
    status: u16,
    token: &str,
) {
    assert_eq!(response.status().as_u16(), status, "status");
    assert_eq!(
        response
            .headers()
            .get("x-mte-relay-error")
            .map(|v| v.as_bytes()),
        Some(token.as_bytes()),
        "x-mte-relay-error"
    );
    let body = mte_relay_tests::client::body_json(response).await;
    assert_eq!(body["error"], token, "body error token");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "body message"
    );
}

/// An upstream that holds its first request until released, answering `body`: for
/// tests of what happens while a request is in flight (shutdown, readiness).
pub struct GatedUpstream {
    pub upstream: Upstream,
    arrived: Option<tokio::sync::oneshot::Receiver<()>>,
    release: Option<tokio::sync::oneshot::Sender<()>>,
}

impl GatedUpstream {
    pub async fn start(body: &'static [u8]) -> GatedUpstream {
        let (arrived_tx, arrived_rx) = tokio::sync::oneshot::channel::<()>();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        let gates = std::sync::Arc::new((
            std::sync::Mutex::new(Some(arrived_tx)),
            tokio::sync::Mutex::new(Some(release_rx)),
        ));
        let upstream = Upstream::start(move |_request| {
            let gates = gates.clone();
            async move {
                if let Some(arrived) = gates.0.lock().expect("lock").take() {
                    let _ = arrived.send(());
                }
                if let Some(release) = gates.1.lock().await.take() {
                    let _ = release.await;
                }
                Response::new(full(Bytes::from_static(body)))
            }
        })
        .await;
        GatedUpstream {
            upstream,
            arrived: Some(arrived_rx),
            release: Some(release_tx),
        }
    }

    /// Waits (bounded) until the first request reached the upstream.
    pub async fn arrived(&mut self) {
        let arrived = self.arrived.take().expect("waited for once");
        mte_relay_tests::within("the request to reach the upstream", arrived)
            .await
            .expect("the upstream saw the request");
    }

    /// Lets the held request answer.
    pub fn release(&mut self) {
        let release = self.release.take().expect("released once");
        release.send(()).expect("the upstream is waiting");
    }
}
