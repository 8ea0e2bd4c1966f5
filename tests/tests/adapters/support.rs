//! Shared setup: a recording upstream, relays with adapters, and a client.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use mte_relay_client::{ClientError, RelayClient, RequestBody};
use mte_relay_tests::relay::Relay;
use mte_relay_tests::upstream::{TestBody, Upstream, full};
use serde_json::Value;

pub const CLIENT_ID_SECRET: &str = "adapter-end-to-end-test-client-id-secret-0123456789";

/// Requests under this prefix are pass-through routes in every test relay.
pub const PLAIN_PREFIX: &str = "/plain";

/// One request as the upstream saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub target: String,
    pub headers: HeaderMap,
}

/// An upstream that records every request and answers 200 with a `server` header
/// and the body `upstream`.
pub struct RecordingUpstream {
    pub upstream: Upstream,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl RecordingUpstream {
    pub async fn start() -> RecordingUpstream {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let record = seen.clone();
        let upstream = Upstream::start(move |request| {
            let record = record.clone();
            async move {
                let (parts, body) = request.into_parts();
                let _ = body.collect().await;
                record.lock().expect("lock").push(Seen {
                    target: parts
                        .uri
                        .path_and_query()
                        .map_or("/", |p| p.as_str())
                        .to_owned(),
                    headers: parts.headers,
                });
                let mut response: Response<TestBody> = Response::new(full("upstream"));
                response
                    .headers_mut()
                    .insert("server", http::HeaderValue::from_static("test-upstream"));
                response
            }
        })
        .await;
        RecordingUpstream { upstream, seen }
    }

    pub fn url(&self) -> String {
        self.upstream.url()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    /// The requests the upstream saw for `target` (path and query).
    pub fn seen_for(&self, target: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|seen| seen.target == target)
            .collect()
    }
}

/// The `ADAPTERS` value declaring these instances.
pub fn adapters_json(declarations: Vec<Value>) -> String {
    serde_json::json!({ "adapters": declarations }).to_string()
}

/// A single-domain relay in front of `upstream` with these adapter declarations and
/// `ADAPTER_CHAIN`; `/plain/*` is a pass-through route.
pub fn relay_with_chain(upstream: &str, declarations: Vec<Value>, chain: &str) -> Relay {
    relay_with_chain_and(upstream, declarations, chain, &[])
}

/// Like [`relay_with_chain`], with more variables.
pub fn relay_with_chain_and(
    upstream: &str,
    declarations: Vec<Value>,
    chain: &str,
    extra: &[(&str, &str)],
) -> Relay {
    let adapters = adapters_json(declarations);
    let pass_through = format!("{PLAIN_PREFIX}/*");
    let mut env = vec![
        ("UPSTREAM", upstream),
        ("CLIENT_ID_SECRET", CLIENT_ID_SECRET),
        ("PASS_THROUGH_ROUTES", pass_through.as_str()),
        ("ADAPTERS", adapters.as_str()),
        ("ADAPTER_CHAIN", chain),
    ];
    env.extend_from_slice(extra);
    Relay::start(&env)
}

/// A relay serving two hostnames in front of `upstream`: `localhost` runs the chain
/// `[closed_instance]`, `127.0.0.1` runs `[open_instance]`.
pub fn relay_with_two_policies(
    upstream: &str,
    declarations: Vec<Value>,
    closed_instance: &str,
    open_instance: &str,
) -> Relay {
    let domain = |instance: &str| {
        serde_json::json!({
            "upstream": upstream,
            "client_id_secret": CLIENT_ID_SECRET,
            "pass_through_routes": [format!("{PLAIN_PREFIX}/*")],
            "adapters": [instance],
        })
    };
    let domain_map = serde_json::json!({
        "localhost": domain(closed_instance),
        "127.0.0.1": domain(open_instance),
    })
    .to_string();
    let adapters = adapters_json(declarations);
    Relay::start(&[
        ("DOMAIN_MAP", domain_map.as_str()),
        ("ADAPTERS", adapters.as_str()),
    ])
}

/// A client of `relay` reached under `host` (`localhost` or `127.0.0.1`), which
/// selects the domain.
pub fn client_via(relay: &Relay, host: &str) -> RelayClient {
    RelayClient::builder(format!("http://{host}:{}", relay.addr().port()))
        .pairs(2)
        .build()
        .expect("client builds")
}

pub fn client(relay: &Relay) -> RelayClient {
    client_via(relay, "127.0.0.1")
}

/// A decrypted answer.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Sends `request` through `client`; the error is the client's (a registry error
/// when the relay refused).
pub async fn try_send(
    client: &RelayClient,
    request: Request<impl Into<RequestBody>>,
) -> Result<Answer, ClientError> {
    let what = format!("{} {}", request.method(), request.uri());
    let response = mte_relay_tests::within(&what, client.send(request)).await?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = mte_relay_tests::within(&what, response.into_body().collect_bytes())
        .await
        .unwrap_or_else(|error| panic!("body of {what} failed: {error}"));
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// Sends `GET path` with `headers` and expects an answer (any status).
pub async fn get(client: &RelayClient, path: &str, headers: &[(&str, &str)]) -> Answer {
    try_send(client, get_request(path, headers))
        .await
        .unwrap_or_else(|error| panic!("GET {path} through the relay failed: {error}"))
}

pub fn get_request(path: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut request = Request::get(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(()).expect("request")
}

/// Sends `GET path` and expects the relay's `adapter-failed` refusal.
pub async fn expect_adapter_failed(client: &RelayClient, path: &str, headers: &[(&str, &str)]) {
    match try_send(client, get_request(path, headers)).await {
        Err(error) => assert_eq!(
            error.reason(),
            Some(mte_relay_client::ErrorReason::AdapterFailed),
            "GET {path}: {error}"
        ),
        Ok(answer) => panic!(
            "GET {path} was answered {} instead of refused by the closed policy",
            answer.status
        ),
    }
}

/// The relay's `adapter failure` log lines for the instance `adapter`.
pub fn failures_logged(relay: &Relay, adapter: &str) -> Vec<Value> {
    relay
        .json_logs()
        .into_iter()
        .filter(|json| {
            json["adapter"] == adapter
                && json["message"]
                    .as_str()
                    .is_some_and(|message| message.starts_with("adapter failure"))
        })
        .collect()
}

/// Waits (bounded) for an `adapter failure` line of `adapter` with this failure class.
pub fn wait_for_failure(relay: &Relay, adapter: &str, failure: &str) -> Value {
    relay
        .wait_for_log(|json| {
            json["adapter"] == adapter
                && json["failure"] == failure
                && json["message"]
                    .as_str()
                    .is_some_and(|message| message.starts_with("adapter failure"))
        })
        .unwrap_or_else(|| {
            panic!(
                "no `{failure}` failure of {adapter} was logged: {:?}",
                failures_logged(relay, adapter)
            )
        })
}
