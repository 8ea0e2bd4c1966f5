//! Adapters in the relay: loading the declared instances, resolving each domain's
//! chain, running filters around the upstream call, and feeding meters.
//!
//! ```text
//! request  -> [MTE: decrypt head] -> filters on-request (chain order)
//!          -> upstream (or a filter's local response)
//!          -> filters on-response (reverse order) -> [MTE: encrypt] -> client
//! response body finished -> usage record -> meter queue (never blocks) -> on-usage
//! ```

pub mod metrics;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderMap, Request, Response};
use mte_relay_adapter_runtime::{
    AdapterRuntime, AdaptersSource, Chain, Header, HookError, KvStore, LocalReply, MeterSink,
    MeterSinkOptions, ReloadReport, RequestInfo, RequestOutcome, ResponseInfo, RouteClass,
    RuntimeOptions, UsageRecord, World, apply_edits,
};

use crate::body::{RelayBody, full};
use crate::config::{AdapterDeclarations, Config};
use crate::observe::{FinishedRequest, Forwarded, RequestObserver};

/// Why the adapters could not be set up at startup.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A domain names adapters but no declarations were given.
    #[error(
        "{location}: names adapters {names:?}, but neither ADAPTERS nor ADAPTERS_FILE declares any"
    )]
    Undeclared {
        location: String,
        names: Vec<String>,
    },
    /// The runtime could not start, or a declaration failed to load.
    #[error("{variable}: {error}")]
    Load {
        variable: &'static str,
        error: mte_relay_adapter_runtime::LoadError,
    },
    /// A domain's chain names an instance that is not declared.
    #[error("{location}: {error}")]
    Chain {
        location: String,
        error: mte_relay_adapter_runtime::ChainError,
    },
}

/// The relay's adapters: the runtime, each domain's chain, and the meter queue.
pub struct Adapters {
    runtime: AdapterRuntime,
    chains: HashMap<String, Chain>,
    sink: MeterSink,
}

impl std::fmt::Debug for Adapters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adapters")
            .field("domains", &self.chains.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Adapters {
    /// Loads the declared adapters and resolves every domain's chain. `None` when the
    /// configuration uses no adapters. `kv` is the adapters' key-value backend (Redis
    /// when replicas share one), in memory when `None`. Must run inside the tokio
    /// runtime.
    pub async fn load(
        config: &Config,
        kv: Option<Arc<dyn KvStore>>,
    ) -> Result<Option<Arc<Adapters>>, SetupError> {
        let (source, variable) = match &config.adapters.declarations {
            AdapterDeclarations::None => {
                if let Some(domain) = config.domains.iter().find(|d| !d.adapters.is_empty()) {
                    return Err(SetupError::Undeclared {
                        location: domain_location(&domain.name),
                        names: domain.adapters.clone(),
                    });
                }
                return Ok(None);
            }
            AdapterDeclarations::File(path) => {
                (AdaptersSource::File(path.clone()), "ADAPTERS_FILE")
            }
            AdapterDeclarations::Inline(json) => (AdaptersSource::Inline(json.clone()), "ADAPTERS"),
        };
        let options = RuntimeOptions {
            kv,
            ..RuntimeOptions::default()
        };
        let runtime =
            AdapterRuntime::new(options).map_err(|error| SetupError::Load { variable, error })?;
        runtime
            .load(source)
            .await
            .map_err(|error| SetupError::Load { variable, error })?;
        let mut chains = HashMap::new();
        for domain in config.domains.iter() {
            let chain = runtime
                .chain(&domain.adapters)
                .map_err(|error| SetupError::Chain {
                    location: domain_location(&domain.name),
                    error,
                })?;
            chains.insert(domain.name.clone(), chain);
        }
        let options = MeterSinkOptions {
            tick_interval: config.adapters.tick,
            ..MeterSinkOptions::default()
        };
        let sink = MeterSink::spawn(&runtime, options);
        Ok(Some(Arc::new(Adapters {
            runtime,
            chains,
            sink,
        })))
    }

    /// The loaded instances, for `check-config`: name, world and version.
    pub fn describe(&self) -> serde_json::Value {
        self.runtime
            .adapters()
            .into_iter()
            .map(|(name, world, version)| {
                let world = match world {
                    World::Filter => "filter",
                    World::Meter => "meter",
                };
                serde_json::json!({ "name": name, "world": world, "version": version })
            })
            .collect()
    }

    /// The chain of the domain named `domain`, when it has filters or meters.
    pub fn chain(&self, domain: &str) -> Option<&Chain> {
        self.chains
            .get(domain)
            .filter(|chain| !chain.filters.is_empty() || !chain.meters.is_empty())
    }

    /// Recompiles changed adapters and swaps them in; see the runtime's reload.
    pub async fn reload(&self) -> ReloadReport {
        self.runtime.reload().await
    }

    /// Polls the declarations and component files, reloading when they change.
    pub fn watch(&self, interval: std::time::Duration) -> mte_relay_adapter_runtime::WatchHandle {
        self.runtime.watch(interval)
    }

    /// Delivers the usage records still queued to the meters and stops the meter
    /// worker; records of requests that finish later are dropped (and counted). Run
    /// once the server has drained, so that shutdown loses no usage.
    pub async fn shutdown(&self) {
        self.sink.shutdown().await;
    }

    /// True when the domain's chain has meters, so its requests need usage records.
    pub fn meters(&self, domain: &str) -> bool {
        self.chains
            .get(domain)
            .is_some_and(|chain| !chain.meters.is_empty())
    }

    /// Queues a usage record for the domain's meters; never blocks.
    pub fn record_usage(&self, domain: &str, record: UsageRecord) {
        if let Some(chain) = self
            .chains
            .get(domain)
            .filter(|chain| !chain.meters.is_empty())
        {
            self.sink.record(&chain.meters, record);
        }
    }
}

/// Feeds each forwarded request of a domain with meters to those meters, as a usage
/// record, when the request ends.
#[derive(Debug)]
pub struct Meters(pub Arc<Adapters>);

impl RequestObserver for Meters {
    fn request_finished(&self, request: &FinishedRequest<'_>) {
        let (Some(domain), Some(forwarded)) = (request.domain, request.forwarded) else {
            return;
        };
        if !self.0.meters(domain) {
            return;
        }
        let micros = |d: std::time::Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let timestamp_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            });
        let record = UsageRecord {
            domain: domain.to_owned(),
            client_id: request.client_id.map(str::to_owned),
            route_class: match forwarded {
                // The interface knows two classes; an outbound request is encrypted
                // traffic, as an MTE request is.
                Forwarded::Mte | Forwarded::Outbound => RouteClass::Mte,
                Forwarded::PassThrough => RouteClass::PassThrough,
            },
            method: request.method.to_string(),
            status: request.status,
            bytes_in: request.bytes_in,
            bytes_out: request.bytes_out,
            duration_us: micros(request.duration),
            upstream_us: micros(request.upstream),
            decode_us: micros(request.decode),
            encode_us: micros(request.encode),
            timestamp_ms,
        };
        self.0.record_usage(domain, record);
    }
}

/// The filters of `domain`'s chain, when the relay has adapters and the chain has
/// filters.
pub fn filters_of<'a>(adapters: Option<&'a Adapters>, domain: &str) -> Option<&'a Chain> {
    adapters
        .and_then(|adapters| adapters.chain(domain))
        .filter(|chain| !chain.filters.is_empty())
}

/// A filter failed under the closed policy: logs it with the request's correlation id
/// and returns the client's message, which names only the adapter (the runtime has
/// already logged the version, failure class and backtrace).
pub fn refusal_message(error: &HookError, request_id: &str, domain: &str) -> String {
    tracing::warn!(%request_id, %domain, hook = %error.hook, %error, "adapter refused the request");
    format!("adapter {} failed", error.adapter)
}

/// How `DOMAIN_MAP` names a domain in error messages.
fn domain_location(name: &str) -> String {
    if name == "*" {
        "ADAPTER_CHAIN".to_owned()
    } else {
        format!("DOMAIN_MAP[{name:?}].adapters")
    }
}

/// What filters learn about a request besides the request itself (its method,
/// target and headers).
pub struct RequestFacts<'a> {
    pub domain: &'a str,
    pub mte: bool,
    pub client_id: Option<&'a str>,
    pub pair_id: Option<String>,
    pub correlation_id: &'a str,
    pub remote_addr: SocketAddr,
}

/// What the pipeline does after the filters' `on-request`.
pub enum Decision {
    /// Forward upstream; the request headers were edited in place.
    Forward(RequestInfo),
    /// Answer with this response instead of calling the upstream.
    Respond(Response<RelayBody>),
}

/// Runs the filters' `on-request` on `request` as the upstream would receive it, and
/// applies their edits to its headers.
pub async fn filter_request(
    chain: &Chain,
    facts: RequestFacts<'_>,
    request: &mut Request<RelayBody>,
) -> Result<Decision, HookError> {
    let mut info = RequestInfo {
        method: request.method().to_string(),
        path_with_query: request
            .uri()
            .path_and_query()
            .map_or("/", |target| target.as_str())
            .to_owned(),
        headers: to_wit(request.headers()),
        domain: facts.domain.to_owned(),
        route_class: if facts.mte {
            RouteClass::Mte
        } else {
            RouteClass::PassThrough
        },
        client_id: facts.client_id.map(str::to_owned),
        pair_id: facts.pair_id,
        correlation_id: facts.correlation_id.to_owned(),
        remote_addr: facts.remote_addr.to_string(),
    };
    match chain.filters.on_request(&mut info).await? {
        RequestOutcome::Continue(edits) => {
            apply_edits(request.headers_mut(), &edits);
            Ok(Decision::Forward(info))
        }
        RequestOutcome::Respond(reply) => Ok(Decision::Respond(local_response(reply))),
    }
}

/// Runs the filters' `on-response` (reverse order) and applies their edits.
pub async fn filter_response(
    chain: &Chain,
    request: &RequestInfo,
    response: &mut Response<RelayBody>,
) -> Result<(), HookError> {
    if !chain.filters.edits_responses() {
        return Ok(());
    }
    let mut info = ResponseInfo {
        status: response.status().as_u16(),
        headers: to_wit(response.headers()),
    };
    let edits = chain.filters.on_response(request, &mut info).await?;
    apply_edits(response.headers_mut(), &edits);
    Ok(())
}

fn local_response(reply: LocalReply) -> Response<RelayBody> {
    let mut response = Response::new(full(reply.body));
    *response.status_mut() = reply.status;
    *response.headers_mut() = reply.headers;
    response
}

/// Header values that are not UTF-8 reach adapters lossily converted; adapters only
/// read them (their edits are validated by the runtime).
fn to_wit(headers: &HeaderMap) -> Vec<Header> {
    headers
        .iter()
        .map(|(name, value)| Header {
            name: name.as_str().to_owned(),
            value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
        })
        .collect()
}
