//! One request, from host matching to the access log line.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{HOST, HeaderValue, ORIGIN};
use http::{Request, Response};
use hyper::body::Incoming;
use mte_relay_protocol::registry::{ERROR_HEADER, ErrorReason, reason_phrase};

use super::cors;
use super::route::{self, LocalRoute, RouteClass};
use crate::body::{DrainOnDrop, RelayBody, boxed};
use crate::context::RequestContext;
use crate::forwarded::Provenance;
use crate::observe::Forwarded;
use crate::pipeline;
use crate::pipeline::{echo, outbound, passthrough};
use crate::response::{RelayRefusal, registry_error};
use crate::state::AppState;
use crate::telemetry::access::{CountingBody, UnansweredGuard};
use crate::telemetry::{AccessLogBody, AccessRecord, RequestTimings, request_id};
use crate::trace_context;
use crate::upstream::headers::X_REQUEST_ID;

/// The service function of every connection.
pub async fn handle(
    state: Arc<AppState>,
    remote_addr: SocketAddr,
    request: Request<Incoming>,
) -> Result<Response<AccessLogBody>, Infallible> {
    let timings = Arc::new(RequestTimings::start());
    let request_id = request_id::accept_or_mint(request.headers());
    let host = request_host(&request);
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let origin = request.headers().get(ORIGIN).cloned();

    let mut record = AccessRecord {
        request_id: request_id.clone(),
        domain: None,
        route: "unmatched",
        forwarded: None,
        method: method.clone(),
        path: Some(path.clone()),
        status: http::StatusCode::OK,
        reason: None,
        timings: timings.clone(),
        observers: state.observers.clone(),
    };

    let Some(domain) = state.config.domains.lookup(&host).cloned() else {
        let response = registry_error(
            ErrorReason::DomainUnknown,
            "no configured domain matches the Host header",
        );
        return Ok(finish(response, record, None, &request_id));
    };
    let class = route::classify(&domain, &method, &path, request.headers());
    record.domain = Some(domain.name.clone());
    record.route = class.label();
    if class == RouteClass::Mte {
        record.path = None;
    }
    record.forwarded = match class {
        RouteClass::Mte => Some(Forwarded::Mte),
        RouteClass::PassThrough => Some(Forwarded::PassThrough),
        RouteClass::Outbound => Some(Forwarded::Outbound),
        _ => None,
    };

    let provenance = Provenance::of(
        remote_addr.ip(),
        request.headers(),
        &state.config.trusted_proxies,
    );
    let ctx = RequestContext {
        request_id: request_id.clone(),
        remote_addr,
        provenance,
        host,
        domain: domain.clone(),
        timings: timings.clone(),
    };
    // An MTE request's trace context travels inside its head (read once it opens).
    if class != RouteClass::Mte
        && let Some(parent) = trace_context::parse(request.headers())
    {
        timings.set_trace_parent(parent);
    }
    let mut request =
        request.map(|body| boxed(CountingBody::new(DrainOnDrop::new(body), timings.clone())));
    request.extensions_mut().insert(timings.clone());

    let unanswered = UnansweredGuard::new(record);
    let mut permit = None;
    let mut response = match class {
        RouteClass::Preflight => cors::preflight(&domain.cors, request.headers()),
        RouteClass::Local(LocalRoute::Capabilities) => {
            pipeline::capabilities(&state, &ctx, request).await
        }
        RouteClass::Local(LocalRoute::Pair) => pipeline::pair(&state, &ctx, request).await,
        RouteClass::Local(LocalRoute::Echo) => echo::echo(request.uri().query()),
        RouteClass::Mte => match state.mte_permits.clone().try_acquire_owned() {
            Ok(acquired) => {
                permit = Some(acquired);
                pipeline::handle_mte(&state, &ctx, request).await
            }
            Err(_) => registry_error(
                ErrorReason::Overloaded,
                "the relay is at its bound of in-flight requests; retry later",
            ),
        },
        RouteClass::PassThrough => passthrough::forward(&state, &ctx, request).await,
        // Outbound requests share the `POOL_SIZE` bound of MTE requests: each holds
        // a pair's worth of cipher state until its response ends.
        RouteClass::Outbound => match state.mte_permits.clone().try_acquire_owned() {
            Ok(acquired) => {
                permit = Some(acquired);
                outbound::forward(&state, &ctx, request).await
            }
            Err(_) => registry_error(
                ErrorReason::Overloaded,
                "the relay is at its bound of in-flight requests; retry later",
            ),
        },
        RouteClass::MethodNotServed => registry_error(
            ErrorReason::RouteNotFound,
            format!("{method} is not served on {path}"),
        ),
        RouteClass::NotFound => {
            registry_error(ErrorReason::RouteNotFound, "no route matches this path")
        }
        RouteClass::RelayHeaderMissing => registry_error(
            ErrorReason::RelayHeaderMissing,
            "this route requires an MTE request (x-mte-relay header missing)",
        ),
    };
    if class != RouteClass::Preflight {
        cors::apply(&domain.cors, origin.as_ref(), response.headers_mut());
    }
    Ok(finish(response, unanswered.answered(), permit, &request_id))
}

fn finish(
    mut response: Response<RelayBody>,
    mut record: AccessRecord,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    request_id: &str,
) -> Response<AccessLogBody> {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert(X_REQUEST_ID, value);
    }
    record.status = response.status();
    // The relay's own refusals carry their registry token in the clear (sealed ones
    // too, as advice). A pass-through answer carries the upstream's headers, and a
    // header of that name there is the upstream's (another relay behind this one),
    // not a refusal of this relay's: only the relay's own refusals on that route
    // (which never reach the upstream's response) are counted.
    let upstream_answered = record.forwarded == Some(Forwarded::PassThrough)
        && response.extensions().get::<RelayRefusal>().is_none();
    record.reason = (!upstream_answered)
        .then(|| response.headers().get(ERROR_HEADER))
        .flatten()
        .and_then(|value| value.to_str().ok())
        .and_then(ErrorReason::from_token);
    if let Some(phrase) = reason_phrase(response.status().as_u16()) {
        response
            .extensions_mut()
            .insert(hyper::ext::ReasonPhrase::from_static(phrase.as_bytes()));
    }
    response.map(|body| AccessLogBody::new(body, record, permit))
}

/// `:authority` for HTTP/2 (and absolute-form HTTP/1 targets), else the `Host` header.
fn request_host<B>(request: &Request<B>) -> String {
    request
        .uri()
        .authority()
        .map(|authority| authority.as_str().to_owned())
        .or_else(|| {
            request
                .headers()
                .get(HOST)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

/// Handlers run on a multi-threaded runtime, so the pipeline's futures must be `Send`.
/// Asserted here so that a non-`Send` pipeline fails to compile at this line rather
/// than as a missing `into_owned` in the listener. (A known trap:
/// `http_body_util::Limited` over a boxed body is not provably `Send`; use
/// [`crate::body::collect_limited`].)
#[allow(dead_code)]
fn pipeline_futures_are_send(
    state: &Arc<AppState>,
    ctx: &RequestContext,
    requests: [Request<RelayBody>; 3],
) {
    fn is_send<T: Send>(_: &T) {}
    let [capabilities, pair, mte] = requests;
    is_send(&pipeline::capabilities(state, ctx, capabilities));
    is_send(&pipeline::pair(state, ctx, pair));
    is_send(&pipeline::handle_mte(state, ctx, mte));
}
