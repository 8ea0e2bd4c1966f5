//! Where a scenario's requests go and how one request is sent and read to the end.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use mte_relay::cli::demo::DEMO_API_KEY;
use mte_relay::pipeline::outbound::OUTBOUND_TOKEN_HEADER;

/// The header the demo's `api-key-auth` reads.
const API_KEY_HEADER: &str = "x-api-key";

/// The outbound token of the `api-relay` scenario's relay A.
pub const BENCH_OUTBOUND_TOKEN: &str = "an-outbound-token-for-the-load-generator-0123";
use http::uri::{PathAndQuery, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mte_relay_client::{ClientError, Mode, RelayClient};

use crate::error::BenchError;
use crate::scenario::Scenario;

/// The class of a failed request, as counted in a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureClass {
    /// Connecting, sending or receiving failed (plain client or relay client transport).
    Transport,
    /// The request did not complete within the per-request timeout.
    Timeout,
    /// A plain answer with a status that is not 2xx.
    Status,
    /// The relay refused an encrypted request with a registry error.
    Relay,
    /// The relay's encrypted answer violated the protocol.
    Protocol,
    /// The request could not be sent as given (for example over an MTE size limit).
    Invalid,
}

impl FailureClass {
    /// Short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            FailureClass::Transport => "transport",
            FailureClass::Timeout => "timeout",
            FailureClass::Status => "status",
            FailureClass::Relay => "relay",
            FailureClass::Protocol => "protocol",
            FailureClass::Invalid => "invalid",
        }
    }
}

/// One failed request: its class and a human-readable explanation.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The class.
    pub class: FailureClass,
    /// What happened.
    pub message: String,
}

impl Failure {
    fn new(class: FailureClass, message: impl Into<String>) -> Self {
        Failure {
            class,
            message: message.into(),
        }
    }

    fn from_client(error: &ClientError) -> Self {
        let class = match error {
            ClientError::Transport { .. } => FailureClass::Transport,
            ClientError::Registry { .. } => FailureClass::Relay,
            ClientError::Protocol { .. } => FailureClass::Protocol,
            ClientError::InvalidRequest { .. } => FailureClass::Invalid,
            // The enum is non-exhaustive; a new class reads as a protocol-level failure.
            _ => FailureClass::Protocol,
        };
        Failure::new(class, error.to_string())
    }
}

/// A prepared destination for one scenario.
#[expect(
    clippy::large_enum_variant,
    reason = "one Target exists per scenario; its size never matters"
)]
pub enum Target {
    /// Plain HTTP/1.1 through a pooled hyper-util client.
    Plain {
        /// The pooled client.
        client: Client<HttpConnector, Full<Bytes>>,
        /// `http://host:port` of the upstream or relay.
        origin: Uri,
        /// Headers added to every request (the outbound token of `api-relay`).
        headers: http::HeaderMap,
    },
    /// Encrypted through the client SDK.
    Relay {
        /// The paired client.
        client: RelayClient,
        /// The mode of every request.
        mode: Mode,
    },
}

/// Parses `url` as an `http://` origin on a loopback address: the load generator never
/// aims at other hosts.
pub fn loopback_origin(url: &str) -> Result<Uri, BenchError> {
    let uri: Uri = url
        .parse()
        .map_err(|_| BenchError::Input(format!("target {url:?} is not a valid URL")))?;
    if uri.scheme_str() != Some("http") {
        return Err(BenchError::Input(format!(
            "target {url:?} must be an http:// URL"
        )));
    }
    let Some(authority) = uri.authority() else {
        return Err(BenchError::Input(format!("target {url:?} has no host")));
    };
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(BenchError::Input(format!(
            "target {url:?} must be an origin without path or query (use --path)"
        )));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Err(BenchError::Input(format!(
            "target {url:?} is not a loopback address; the load generator only runs locally"
        )));
    }
    Ok(uri)
}

impl Target {
    /// Prepares `scenario` against `origin` (already checked by [`loopback_origin`]).
    /// Encrypted scenarios pair `pairs` pairs now, so pairing is not timed.
    pub async fn prepare(
        scenario: Scenario,
        origin: Uri,
        pairs: usize,
        timeout: Duration,
    ) -> Result<Target, BenchError> {
        if !scenario.encrypted() {
            let mut connector = HttpConnector::new();
            connector.set_nodelay(true);
            connector.set_connect_timeout(Some(timeout));
            let client = Client::builder(TokioExecutor::new()).build(connector);
            let mut headers = http::HeaderMap::new();
            if scenario == Scenario::ApiRelay {
                headers.insert(
                    OUTBOUND_TOKEN_HEADER,
                    HeaderValue::from_static(BENCH_OUTBOUND_TOKEN),
                );
            }
            return Ok(Target::Plain {
                client,
                origin,
                headers,
            });
        }
        let mode = match scenario {
            Scenario::Mte => Mode::Mte,
            _ => Mode::Mke,
        };
        let client_error = |source| BenchError::Client {
            scenario: scenario.name(),
            source,
        };
        let base = format!("http://{}", origin.authority().map_or("", |a| a.as_str()));
        let client = RelayClient::builder(base)
            .pairs(pairs)
            .mode(mode)
            .connect_timeout(timeout)
            .request_timeout(timeout)
            .build()
            .map_err(client_error)?;
        match tokio::time::timeout(timeout, client.connect()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(client_error(error)),
            Err(_) => {
                return Err(BenchError::Timeout {
                    what: format!("pairing of {scenario}"),
                    limit: timeout,
                });
            }
        }
        Ok(Target::Relay { client, mode })
    }

    /// Sends `POST path` with `payload`, reads the whole response and returns its body.
    pub async fn send(&self, path: &PathAndQuery, payload: &Bytes) -> Result<Bytes, Failure> {
        match self {
            Target::Plain {
                client,
                origin,
                headers,
            } => {
                let uri = Uri::builder()
                    .scheme("http")
                    .authority(origin.authority().map_or("", |a| a.as_str()))
                    .path_and_query(path.clone())
                    .build()
                    .map_err(|error| Failure::new(FailureClass::Invalid, error.to_string()))?;
                let mut request = benchmark_request(uri, Full::new(payload.clone()));
                request.headers_mut().extend(
                    headers
                        .iter()
                        .map(|(name, value)| (name.clone(), value.clone())),
                );
                let response = client.request(request).await.map_err(|error| {
                    Failure::new(FailureClass::Transport, format!("request: {error}"))
                })?;
                let status = response.status();
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|error| {
                        Failure::new(FailureClass::Transport, format!("response body: {error}"))
                    })?
                    .to_bytes();
                successful(status, body)
            }
            Target::Relay { client, mode } => {
                let mut request = benchmark_request(Uri::from(path.clone()), payload.clone());
                request.extensions_mut().insert(*mode);
                let response = client
                    .send(request)
                    .await
                    .map_err(|error| Failure::from_client(&error))?;
                let status = response.status();
                let body = response
                    .into_body()
                    .collect_bytes()
                    .await
                    .map_err(|error| Failure::from_client(&error))?;
                successful(status, body)
            }
        }
    }
}

/// `POST uri` with `body`, as every scenario sends it: the same headers everywhere,
/// including the key the `mke-adapters` chain checks.
fn benchmark_request<B>(uri: Uri, body: B) -> http::Request<B> {
    let mut request = http::Request::new(body);
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(API_KEY_HEADER, HeaderValue::from_static(DEMO_API_KEY));
    request
}

/// The body of a 2xx answer; any other status is a failure carrying the body.
fn successful(status: http::StatusCode, body: Bytes) -> Result<Bytes, Failure> {
    if status.is_success() {
        Ok(body)
    } else {
        Err(Failure::new(
            FailureClass::Status,
            format!("status {status}: {}", String::from_utf8_lossy(&body)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_http_origins_are_targets() {
        for good in [
            "http://127.0.0.1:8080",
            "http://localhost:1",
            "http://[::1]:9/",
        ] {
            assert!(loopback_origin(good).is_ok(), "{good}");
        }
        for bad in [
            "https://127.0.0.1:8080",
            "http://example.com",
            "http://10.0.0.1:80",
            "http://127.0.0.1:80/echo",
            "not a url",
        ] {
            assert!(
                matches!(loopback_origin(bad), Err(BenchError::Input(_))),
                "{bad}"
            );
        }
    }
}
