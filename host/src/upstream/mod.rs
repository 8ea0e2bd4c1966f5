//! The upstream side: one shared connection pool, header hygiene, classified errors,
//! and the pass-through reverse proxy.

pub mod error;
pub mod headers;
pub mod passthrough;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Body;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub use error::UpstreamError;

use crate::body::{BoxError, RelayBody, boxed};
use crate::config::{Timeouts, UpstreamTls};
use crate::state::RequestContext;

/// The relay's client to every upstream, shared by all domains and requests.
#[derive(Clone, Debug)]
pub struct UpstreamClient {
    client: Client<HttpsConnector<HttpConnector>, RelayBody>,
    response_timeout: Duration,
}

impl UpstreamClient {
    pub fn new(timeouts: &Timeouts, tls: &UpstreamTls) -> Self {
        let mut tcp = HttpConnector::new();
        // The connect timeout covers the TCP connection; the TLS handshake counts
        // against the response timeout.
        tcp.set_connect_timeout(Some(timeouts.upstream_connect));
        tcp.set_nodelay(true);
        tcp.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls.client_config).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        UpstreamClient {
            client,
            response_timeout: timeouts.upstream_response,
        }
    }

    /// Sends `request` to the domain's upstream and returns its response head; the
    /// body streams both ways as the peers produce it.
    ///
    /// `request` carries the path-and-query the client meant (for MTE requests: the
    /// decrypted one) and the client's end-to-end headers. This applies header hygiene
    /// (see [`headers::prepare_request_headers`]), rewrites the URI onto the upstream,
    /// records the time to the response head in `ctx.timings`, and cleans the response
    /// headers. Upgrade requests are forwarded as upgrades.
    pub async fn send<B>(
        &self,
        ctx: &RequestContext,
        request: Request<B>,
    ) -> Result<Response<Incoming>, UpstreamError>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (mut parts, body) = request.into_parts();
        let path_and_query = parts
            .uri
            .path_and_query()
            .map_or("/", |value| value.as_str())
            .to_owned();
        parts.uri = ctx
            .domain
            .upstream
            .uri_for(&path_and_query)
            .map_err(UpstreamError::InvalidRequest)?;
        // The pool speaks HTTP/1.1 upstream whatever the client spoke.
        parts.version = http::Version::HTTP_11;
        headers::prepare_request_headers(
            &mut parts.headers,
            &headers::ForwardedFor {
                client_ip: ctx.remote_addr.ip(),
                host: &ctx.host,
                request_id: &ctx.request_id,
            },
            ctx.domain.headers.map(),
        );
        let request = Request::from_parts(parts, boxed(body));

        let started = Instant::now();
        let outcome =
            tokio::time::timeout(self.response_timeout, self.client.request(request)).await;
        ctx.timings.add_upstream(started.elapsed());
        let mut response = match outcome {
            Err(_elapsed) => return Err(UpstreamError::Timeout(self.response_timeout)),
            Ok(Err(error)) if error.is_connect() => {
                return Err(UpstreamError::Unreachable(Box::new(error)));
            }
            Ok(Err(error)) => return Err(UpstreamError::Failed(Box::new(error))),
            Ok(Ok(response)) => response,
        };
        let switching_protocols = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        headers::prepare_response_headers(response.headers_mut(), switching_protocols);
        Ok(response)
    }
}
