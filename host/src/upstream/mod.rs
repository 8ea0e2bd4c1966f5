//! The upstream side: one shared connection pool, header hygiene and classified
//! errors. It knows nothing of the request's context beyond a [`Destination`].

pub mod error;
pub mod headers;
pub mod progress;

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
use progress::{Progress, Stall};

use crate::body::{BoxError, RelayBody, boxed};
use crate::config::{Timeouts, UpstreamTarget, UpstreamTls};
use crate::telemetry::RequestTimings;

/// Where one request goes upstream, and what the relay says about it there.
#[derive(Clone, Copy, Debug)]
pub struct Destination<'a> {
    /// The domain's upstream.
    pub upstream: &'a UpstreamTarget,
    /// Headers the domain adds to every upstream request.
    pub configured_headers: &'a http::HeaderMap,
    /// What the forwarding headers and `x-request-id` say.
    pub forwarded: headers::ForwardedFor<'a>,
    /// Where the time to the response head is recorded.
    pub timings: &'a RequestTimings,
}

/// The relay's client to every upstream, shared by all domains and requests.
#[derive(Clone, Debug)]
pub struct UpstreamClient {
    client: Client<HttpsConnector<HttpConnector>, RelayBody>,
    response_timeout: Duration,
    body_idle_timeout: Duration,
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
            body_idle_timeout: timeouts.body_idle,
        }
    }

    /// Sends `request` to the domain's upstream and returns its response head; the
    /// body streams both ways as the peers produce it.
    ///
    /// `request` carries the path-and-query the client meant (for MTE requests: the
    /// decrypted one) and the client's end-to-end headers. This applies header hygiene
    /// (see [`headers::prepare_request_headers`]), rewrites the URI onto the upstream,
    /// records the time to the response head in the destination's timings, and cleans
    /// the response headers. Upgrade requests are forwarded as upgrades.
    ///
    /// Two limits apply, one after the other (see [`progress`]): while the request body
    /// streams, no more than the body idle timeout may pass between two chunks, whichever
    /// side holds them up; once the body has been handed over whole, the upstream has the
    /// response timeout to send its response head. An upstream may answer before it has
    /// read the whole body; that response is taken as it comes.
    pub async fn send<B>(
        &self,
        destination: Destination<'_>,
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
        parts.uri = destination
            .upstream
            .uri_for(&path_and_query)
            .map_err(UpstreamError::InvalidRequest)?;
        // The pool speaks HTTP/1.1 upstream whatever the client spoke.
        parts.version = http::Version::HTTP_11;
        headers::prepare_request_headers(
            &mut parts.headers,
            &destination.forwarded,
            destination.configured_headers,
        );
        headers::frame_body(&mut parts, &body);
        let (progress, body) = Progress::watch(boxed(body));
        let request = Request::from_parts(parts, boxed(body));

        let started = Instant::now();
        let outcome = self.exchange(request, &progress).await;
        destination.timings.add_upstream(started.elapsed());
        let mut response = outcome?;
        let switching_protocols = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        headers::prepare_response_headers(response.headers_mut(), switching_protocols);
        Ok(response)
    }

    /// Drives one request to its response head under the two limits of [`Self::send`].
    async fn exchange(
        &self,
        request: Request<RelayBody>,
        progress: &Progress,
    ) -> Result<Response<Incoming>, UpstreamError> {
        // The connection task streams the body; this future only waits for the head.
        let response = self.client.request(request);
        tokio::pin!(response);
        tokio::select! {
            outcome = &mut response => return outcome.map_err(UpstreamError::from_client),
            () = progress.finished() => {}
            stall = progress.stalled(self.body_idle_timeout) => {
                return Err(match stall {
                    Stall::Client => UpstreamError::ClientBodyIdle(self.body_idle_timeout),
                    Stall::Upstream => UpstreamError::BodyNotRead(self.body_idle_timeout),
                });
            }
        }
        match tokio::time::timeout(self.response_timeout, response).await {
            Ok(outcome) => outcome.map_err(UpstreamError::from_client),
            Err(_elapsed) => Err(UpstreamError::Timeout(self.response_timeout)),
        }
    }
}
