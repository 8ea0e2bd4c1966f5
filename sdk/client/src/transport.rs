//! The HTTP connection pool that carries every exchange with the relay.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::builder::Config;
use crate::codec::CodecError;
use crate::error::{BoxError, ClientError};
use crate::request::RequestBodyError;
use mte_relay_protocol::stream::BodyError;

/// The body type of every request sent to the relay.
pub(crate) type OuterBody = UnsyncBoxBody<Bytes, BoxError>;

#[cfg(feature = "rustls")]
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
#[cfg(not(feature = "rustls"))]
type Connector = HttpConnector;

/// Idle connections are kept this long for reuse.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A shared HTTP/1.1 or HTTP/2 client bound to one relay.
#[derive(Clone, Debug)]
pub(crate) struct Transport {
    client: Client<Connector, OuterBody>,
    request_timeout: Option<Duration>,
}

impl Transport {
    pub fn new(config: &Config) -> Result<Self, ClientError> {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(config.connect_timeout);
        let connector = wrap_connector(http, config)?;
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .http2_only(config.http2_prior_knowledge)
            .build(connector);
        Ok(Transport {
            client,
            request_timeout: config.request_timeout,
        })
    }

    /// Sends a request and waits for the response head, within the request timeout.
    pub async fn send(
        &self,
        request: Request<OuterBody>,
    ) -> Result<Response<Incoming>, ClientError> {
        let exchange = self.client.request(request);
        let result = match self.request_timeout {
            Some(limit) => tokio::time::timeout(limit, exchange)
                .await
                .map_err(|elapsed| {
                    ClientError::transport("no response from the relay in time", false, elapsed)
                })?,
            None => exchange.await,
        };
        result.map_err(classify_failure)
    }
}

#[cfg(feature = "rustls")]
fn wrap_connector(mut http: HttpConnector, config: &Config) -> Result<Connector, ClientError> {
    // The TLS layer decides per URI whether to speak TLS.
    http.enforce_http(false);
    if let Some(tls) = &config.tls {
        return Ok(hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((**tls).clone())
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http));
    }
    // An explicit provider: rustls's process-wide default is ambiguous when another
    // crate in the same program enables a second crypto backend.
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
        .map_err(|error| ClientError::transport("TLS configuration failed", true, error))?;
    Ok(builder
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http))
}

#[cfg(not(feature = "rustls"))]
fn wrap_connector(http: HttpConnector, _config: &Config) -> Result<Connector, ClientError> {
    Ok(http)
}

/// Maps a client failure to a transport error, or to the error our own request body
/// raised when that is what aborted the exchange (a body over the MTE cap, say).
fn classify_failure(error: hyper_util::client::legacy::Error) -> ClientError {
    match find_body_failure(&error) {
        Some(RequestBodyError::TooLarge) => {
            ClientError::invalid_request(RequestBodyError::TooLarge.to_string())
        }
        Some(RequestBodyError::Source(message)) => {
            ClientError::transport(format!("request body failed: {message}"), false, error)
        }
        None => match find_cause::<hyper::Error>(&error) {
            // Closed before the request was written: nothing left this process.
            Some(cause) if cause.is_canceled() => {
                ClientError::transport("the relay closed the connection first", true, error)
            }
            Some(cause) if cause.is_incomplete_message() => ClientError::connection_closed(
                "the relay closed the connection without answering",
                error,
            ),
            // A failed connect means no byte of the request left this process.
            _ => {
                ClientError::transport("exchange with the relay failed", error.is_connect(), error)
            }
        },
    }
}

fn find_body_failure(error: &(dyn std::error::Error + 'static)) -> Option<RequestBodyError> {
    // The caller's body's own failure, under the sealing body's `Source`.
    if let Some(failure) = find_cause::<RequestBodyError>(error) {
        return Some(failure.clone());
    }
    match find_cause::<CodecError>(error)? {
        CodecError::Body(BodyError::TooLarge) => Some(RequestBodyError::TooLarge),
        CodecError::Body(other) => Some(RequestBodyError::Source(other.to_string())),
        CodecError::Source(_) => None,
    }
}

/// The first error of type `E` in `error`'s source chain.
fn find_cause<'a, E: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(layer) = current {
        if let Some(found) = layer.downcast_ref::<E>() {
            return Some(found);
        }
        current = layer.source();
    }
    None
}
