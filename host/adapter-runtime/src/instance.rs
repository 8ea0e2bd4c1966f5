//! One compiled version of one adapter: its `InstancePre`, its pool of warm
//! instances, and the guarded hook call (deadline, memory cap, failure
//! classification, policy, breaker).

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use wasmtime::component::Component;
use wasmtime::{Store, Trap, WasmBacktrace};

use crate::bindings::filter::{Filter, FilterPre};
use crate::bindings::meter::{Meter, MeterPre};
use crate::bindings::types as wit;
use crate::config::{AdapterSpec, FailurePolicy, InstanceReuse};
use crate::edits::{HeaderEdit, LocalReply, validate_edits, validate_local_response};
use crate::engine::AdapterEngine;
use crate::error::{Disposition, FailureKind, Hook, HookError, LoadError};
use crate::health::{Health, Tripped};
use crate::host_log::LogLimiter;
use crate::host_state::{AdapterIdentity, HostState};
use crate::kv::KvStore;
use crate::outbound::OutboundPolicy;
use crate::stats::AdapterStats;

/// The world a component implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    Filter,
    Meter,
}

impl World {
    pub fn default_policy(self) -> FailurePolicy {
        match self {
            World::Filter => FailurePolicy::Closed,
            World::Meter => FailurePolicy::Open,
        }
    }
}

enum Pre {
    Filter(FilterPre<HostState>),
    Meter(MeterPre<HostState>),
}

enum Bound {
    Filter(Filter),
    Meter(Meter),
}

struct Warm {
    store: Store<HostState>,
    bound: Bound,
}

/// What a successful `on-request` asked for, validated.
pub(crate) enum RequestAction {
    Continue(Vec<HeaderEdit>),
    Respond(LocalReply),
}

/// Slack on top of the epoch deadline for the wall-clock guard, which only
/// matters when the guest is parked in a host call (outbound HTTP, kv backend).
const WALL_CLOCK_SLACK: Duration = Duration::from_millis(20);
/// `init` may build tables or parse keys; give it at least this long.
const MIN_INIT_DEADLINE: Duration = Duration::from_secs(1);

/// What one instantiation with its `init` call came to.
type InitOutcome = Result<
    wasmtime::Result<(Bound, Result<wit::FilterHooks, String>)>,
    tokio::time::error::Elapsed,
>;

/// How often, and how far apart, a first instantiation is tried when the module's
/// copy-on-write memory image could not be built.
///
/// Wasmtime builds that image once per module, at its first instantiation, in a
/// memfd that it seals read-only. Linux refuses the seal (`EBUSY`) while any page of
/// the just-written file still has an extra reference, which it waits only briefly
/// for; on a loaded machine that wait can run out. Nothing is cached on failure, so
/// a later attempt builds the image afresh.
const MEMORY_IMAGE_ATTEMPTS: u32 = 4;
const MEMORY_IMAGE_RETRY_DELAY: Duration = Duration::from_millis(50);

/// True when instantiation failed because the memory image could not be built. The
/// memfd crate's error is not re-exported by wasmtime, so its message is matched.
const MEMFD_SEAL_FAILURE: &str = "cannot add seals to the memfd";

fn is_memory_image_failure(error: &wasmtime::Error) -> bool {
    error
        .chain()
        .any(|cause| cause.to_string() == MEMFD_SEAL_FAILURE)
}

pub(crate) struct AdapterVersion {
    pub spec: AdapterSpec,
    pub world: World,
    pub policy: FailurePolicy,
    pub fingerprint: u64,
    identity: Arc<AdapterIdentity>,
    pre: Pre,
    allowed_hosts: Arc<[String]>,
    pool: Mutex<Vec<Warm>>,
    health: Health,
    stats: Arc<AdapterStats>,
    epoch_ticks: u64,
    init_ticks: u64,
    /// What the filter's `init` answered (the same for every instance of a version,
    /// which shares code and config); always true for meters.
    edits_responses: AtomicBool,
    /// The request headers the filter's `init` said it reads; unset or `None`: all.
    request_headers: OnceLock<Option<Arc<[String]>>>,
}

/// Content fingerprint of a component file: cheap change detection and a
/// version label for logs.
pub(crate) fn fingerprint(bytes: &[u8]) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

pub(crate) fn read_component(spec: &AdapterSpec) -> Result<Vec<u8>, LoadError> {
    std::fs::read(&spec.path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            LoadError::MissingFile {
                adapter: spec.name.clone(),
                path: spec.path.clone(),
            }
        } else {
            LoadError::Unreadable {
                adapter: spec.name.clone(),
                path: spec.path.clone(),
                reason: e.to_string(),
            }
        }
    })
}

impl AdapterVersion {
    /// Compile, type-check against the known worlds, and create one instance
    /// (running `init`) so a broken version is refused before it serves.
    pub async fn load(
        engine: &Arc<AdapterEngine>,
        spec: AdapterSpec,
        bytes: Vec<u8>,
        kv: Arc<dyn KvStore>,
        stats: Arc<AdapterStats>,
    ) -> Result<Arc<Self>, LoadError> {
        if spec.memory_cap_bytes > engine.options.max_memory_bytes {
            return Err(LoadError::Config(crate::error::ConfigError::Field {
                adapter: spec.name.clone(),
                field: "memory_mb",
                reason: format!(
                    "exceeds the engine's limit of {} MiB",
                    engine.options.max_memory_bytes >> 20
                ),
            }));
        }
        let fingerprint = fingerprint(&bytes);
        let compile_engine = engine.engine.clone();
        let component =
            // Binary only: a text file must not be parsed as WAT, whose errors span lines.
            tokio::task::spawn_blocking(move || Component::from_binary(&compile_engine, &bytes))
                .await
                .map_err(|e| LoadError::Engine(format!("compile task: {e}")))?
                .map_err(|e| LoadError::Compile {
                    adapter: spec.name.clone(),
                    path: spec.path.clone(),
                    reason: one_line(&format!("{e:#}")),
                })?;
        let unknown = |reason: String| LoadError::UnknownWorld {
            adapter: spec.name.clone(),
            reason,
        };
        let instance_pre = engine
            .linker
            .instantiate_pre(&component)
            .map_err(|e| unknown(format!("{e:#}")))?;
        let (pre, world) = match FilterPre::new(instance_pre.clone()) {
            Ok(pre) => (Pre::Filter(pre), World::Filter),
            Err(filter_err) => match MeterPre::new(instance_pre) {
                Ok(pre) => (Pre::Meter(pre), World::Meter),
                Err(meter_err) => {
                    return Err(unknown(format!(
                        "as filter: {filter_err:#}; as meter: {meter_err:#}"
                    )));
                }
            },
        };
        let policy = spec.failure_policy.unwrap_or(world.default_policy());
        let version = format!("{:012x}", fingerprint >> 16);
        let identity = Arc::new(AdapterIdentity {
            name: spec.name.clone(),
            version,
            kv,
            log: LogLimiter::new(),
        });
        let this = Arc::new(Self {
            world,
            policy,
            fingerprint,
            identity,
            pre,
            allowed_hosts: spec.allowed_hosts.clone().into(),
            pool: Mutex::new(Vec::new()),
            health: Health::new(policy, spec.breaker_threshold, spec.breaker_cooldown),
            epoch_ticks: engine.ticks_for(spec.deadline),
            init_ticks: engine.ticks_for(spec.deadline.max(MIN_INIT_DEADLINE)),
            edits_responses: AtomicBool::new(true),
            request_headers: OnceLock::new(),
            stats,
            spec,
        });
        let warm = this
            .instantiate(engine)
            .await
            .map_err(|source| LoadError::Init {
                adapter: this.spec.name.clone(),
                source: Box::new(source),
            })?;
        this.check_in(warm);
        Ok(this)
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn version(&self) -> &str {
        &self.identity.version
    }

    /// The request as this filter asked to see it: only the headers its `init` named.
    /// `None` when it reads them all (the request goes as it is).
    fn narrow(&self, request: &wit::RequestInfo) -> Option<wit::RequestInfo> {
        let names = self.request_headers.get()?.as_ref()?;
        Some(narrow_headers(request, names))
    }

    /// False when the filter's `init` said it never edits responses, so that its
    /// `on-response` is not called.
    pub fn edits_responses(&self) -> bool {
        self.edits_responses.load(Ordering::Relaxed)
    }

    pub async fn on_request(
        &self,
        engine: &Arc<AdapterEngine>,
        request: &wit::RequestInfo,
    ) -> Result<RequestAction, HookError> {
        let started = Instant::now();
        let result = self.on_request_untimed(engine, request).await;
        self.record_hook(Hook::OnRequest, &result, started);
        result
    }

    pub async fn on_response(
        &self,
        engine: &Arc<AdapterEngine>,
        request: &wit::RequestInfo,
        response: &wit::ResponseInfo,
    ) -> Result<Vec<HeaderEdit>, HookError> {
        let started = Instant::now();
        let result = self.on_response_untimed(engine, request, response).await;
        self.record_hook(Hook::OnResponse, &result, started);
        result
    }

    pub async fn on_usage(
        &self,
        engine: &Arc<AdapterEngine>,
        batch: &[wit::UsageRecord],
    ) -> Result<(), HookError> {
        let started = Instant::now();
        let result = self.on_usage_untimed(engine, batch).await;
        self.record_hook(Hook::OnUsage, &result, started);
        result
    }

    pub async fn on_tick(&self, engine: &Arc<AdapterEngine>, now_ms: u64) -> Result<(), HookError> {
        let started = Instant::now();
        let result = self.on_tick_untimed(engine, now_ms).await;
        self.record_hook(Hook::OnTick, &result, started);
        result
    }

    /// Counts one hook call by outcome and times it, for the metrics.
    fn record_hook<T>(&self, hook: Hook, result: &Result<T, HookError>, started: Instant) {
        let failure = result.as_ref().err().map(|error| &error.kind);
        self.stats.hook_finished(hook, failure, started.elapsed());
    }

    async fn on_request_untimed(
        &self,
        engine: &Arc<AdapterEngine>,
        request: &wit::RequestInfo,
    ) -> Result<RequestAction, HookError> {
        let hook = Hook::OnRequest;
        let mut warm = self.check_out(engine, hook).await?;
        let narrowed = self.narrow(request);
        let request = narrowed.as_ref().unwrap_or(request);
        let outcome = match &warm.bound {
            Bound::Filter(f) => {
                let call = f.call_on_request(&mut warm.store, request);
                tokio::time::timeout(self.wall_clock(), call).await
            }
            Bound::Meter(_) => return Err(self.wrong_world(hook)),
        };
        let action = self.settle(hook, warm, outcome)?;
        let validated = match action {
            wit::RequestAction::Continue(edits) => {
                validate_edits(edits).map(RequestAction::Continue)
            }
            wit::RequestAction::Respond(response) => {
                validate_local_response(self.name(), response).map(RequestAction::Respond)
            }
        };
        validated.map_err(|why| self.fail(hook, FailureKind::BadOutput(why), None))
    }

    async fn on_response_untimed(
        &self,
        engine: &Arc<AdapterEngine>,
        request: &wit::RequestInfo,
        response: &wit::ResponseInfo,
    ) -> Result<Vec<HeaderEdit>, HookError> {
        let hook = Hook::OnResponse;
        let mut warm = self.check_out(engine, hook).await?;
        let narrowed = self.narrow(request);
        let request = narrowed.as_ref().unwrap_or(request);
        let outcome = match &warm.bound {
            Bound::Filter(f) => {
                let call = f.call_on_response(&mut warm.store, request, response);
                tokio::time::timeout(self.wall_clock(), call).await
            }
            Bound::Meter(_) => return Err(self.wrong_world(hook)),
        };
        let edits = self.settle(hook, warm, outcome)?;
        validate_edits(edits).map_err(|why| self.fail(hook, FailureKind::BadOutput(why), None))
    }

    async fn on_usage_untimed(
        &self,
        engine: &Arc<AdapterEngine>,
        batch: &[wit::UsageRecord],
    ) -> Result<(), HookError> {
        let hook = Hook::OnUsage;
        let mut warm = self.check_out(engine, hook).await?;
        let outcome = match &warm.bound {
            Bound::Meter(m) => {
                let call = m.call_on_usage(&mut warm.store, batch);
                tokio::time::timeout(self.wall_clock(), call).await
            }
            Bound::Filter(_) => return Err(self.wrong_world(hook)),
        };
        self.settle(hook, warm, outcome)
    }

    async fn on_tick_untimed(
        &self,
        engine: &Arc<AdapterEngine>,
        now_ms: u64,
    ) -> Result<(), HookError> {
        let hook = Hook::OnTick;
        let mut warm = self.check_out(engine, hook).await?;
        let outcome = match &warm.bound {
            Bound::Meter(m) => {
                let call = m.call_on_tick(&mut warm.store, now_ms);
                tokio::time::timeout(self.wall_clock(), call).await
            }
            Bound::Filter(_) => return Err(self.wrong_world(hook)),
        };
        self.settle(hook, warm, outcome)
    }

    fn wall_clock(&self) -> Duration {
        self.spec.deadline + WALL_CLOCK_SLACK
    }

    fn wrong_world(&self, hook: Hook) -> HookError {
        self.fail(
            hook,
            FailureKind::BadOutput(format!("{hook} called on a {:?} adapter", self.world)),
            None,
        )
    }

    /// A warm instance, or a new one; armed with this call's deadline.
    async fn check_out(&self, engine: &Arc<AdapterEngine>, hook: Hook) -> Result<Warm, HookError> {
        self.stats.call();
        if let Err(why) = self.health.admit() {
            return Err(self.fail(hook, FailureKind::Unavailable(why), None));
        }
        let pooled = match self.spec.instance_reuse {
            InstanceReuse::Pooled => self.pool.lock().ok().and_then(|mut p| p.pop()),
            InstanceReuse::Fresh => None,
        };
        let mut warm = match pooled {
            Some(warm) => warm,
            None => self.instantiate(engine).await.map_err(|mut e| {
                e.hook = hook;
                e
            })?,
        };
        warm.store.data_mut().memory.exceeded = false;
        warm.store.set_epoch_deadline(self.epoch_ticks);
        Ok(warm)
    }

    fn check_in(&self, warm: Warm) {
        if self.spec.instance_reuse == InstanceReuse::Fresh {
            return;
        }
        if let Ok(mut pool) = self.pool.lock()
            && pool.len() < self.spec.max_warm
        {
            pool.push(warm);
        }
    }

    /// New store + instance + `init(config)`. Failures are reported as
    /// `Instantiate` (or the trap class that caused them) under the `init` hook.
    async fn instantiate(&self, engine: &Arc<AdapterEngine>) -> Result<Warm, HookError> {
        let hook = Hook::Init;
        let deadline = self.spec.deadline.max(MIN_INIT_DEADLINE) + WALL_CLOCK_SLACK;
        let mut attempts = 0;
        let (store, outcome) = loop {
            attempts += 1;
            let (store, outcome) = self.instantiate_once(engine, deadline).await;
            match &outcome {
                Ok(Err(error))
                    if attempts < MEMORY_IMAGE_ATTEMPTS && is_memory_image_failure(error) =>
                {
                    tracing::debug!(
                        adapter = %self.name(),
                        attempts,
                        error = %format!("{error:#}"),
                        "memory image not ready; instantiating again"
                    );
                    tokio::time::sleep(MEMORY_IMAGE_RETRY_DELAY).await;
                }
                _ => break (store, outcome),
            }
        };
        match outcome {
            Ok(Ok((bound, Ok(hooks)))) => {
                self.edits_responses
                    .store(hooks.on_response, Ordering::Relaxed);
                // Every instance of a version answers the same; the first answer stays.
                let _ = self
                    .request_headers
                    .set(hooks.request_headers.map(Arc::from));
                Ok(Warm { store, bound })
            }
            Ok(Ok((_, Err(message)))) => Err(self.fail(
                hook,
                FailureKind::Instantiate(format!("init returned an error: {message}")),
                None,
            )),
            Ok(Err(error)) => {
                let (kind, backtrace) = self.classify(&store, &error, deadline);
                let kind = match kind {
                    FailureKind::Trap => FailureKind::Instantiate(format!("{error:#}")),
                    other => other,
                };
                Err(self.fail(hook, kind, backtrace))
            }
            Err(_) => Err(self.fail(hook, FailureKind::Timeout(deadline), None)),
        }
    }

    /// One store, one instance, one `init(config)`, under `deadline`.
    async fn instantiate_once(
        &self,
        engine: &Arc<AdapterEngine>,
        deadline: Duration,
    ) -> (Store<HostState>, InitOutcome) {
        self.stats.instance_created();
        let cap = usize::try_from(self.spec.memory_cap_bytes).unwrap_or(usize::MAX);
        let outbound = OutboundPolicy::new(Arc::from(self.name()), self.allowed_hosts.clone());
        let mut store = Store::new(
            &engine.engine,
            HostState::new(self.identity.clone(), cap, outbound),
        );
        store.limiter(|state| &mut state.memory);
        store.set_epoch_deadline(self.init_ticks);
        let config = self.spec.config.as_str();
        let outcome = tokio::time::timeout(deadline, async {
            let bound = match &self.pre {
                Pre::Filter(pre) => Bound::Filter(pre.instantiate_async(&mut store).await?),
                Pre::Meter(pre) => Bound::Meter(pre.instantiate_async(&mut store).await?),
            };
            let init = match &bound {
                Bound::Filter(f) => f.call_init(&mut store, config).await?,
                Bound::Meter(m) => {
                    m.call_init(&mut store, config)
                        .await?
                        .map(|()| wit::FilterHooks {
                            on_response: true,
                            request_headers: None,
                        })
                }
            };
            wasmtime::Result::Ok((bound, init))
        })
        .await;
        (store, outcome)
    }

    /// Turn a call's outcome into the hook's value or a classified failure; keep
    /// the instance only when it is known to be healthy.
    fn settle<R>(
        &self,
        hook: Hook,
        warm: Warm,
        outcome: Result<wasmtime::Result<Result<R, String>>, tokio::time::error::Elapsed>,
    ) -> Result<R, HookError> {
        match outcome {
            Ok(Ok(Ok(value))) => {
                self.check_in(warm);
                self.health.record_success();
                Ok(value)
            }
            Ok(Ok(Err(message))) => {
                // The guest answered cleanly with an error: the instance is fine.
                self.check_in(warm);
                Err(self.fail(hook, FailureKind::GuestError(message), None))
            }
            Ok(Err(error)) => {
                let (kind, backtrace) = self.classify(&warm.store, &error, self.spec.deadline);
                drop(warm);
                Err(self.fail(hook, kind, backtrace))
            }
            // Dropping the instance mid-call is the only safe option: its state is
            // whatever the interrupted code left behind.
            Err(_) => Err(self.fail(hook, FailureKind::Timeout(self.wall_clock()), None)),
        }
    }

    fn classify(
        &self,
        store: &Store<HostState>,
        error: &wasmtime::Error,
        deadline: Duration,
    ) -> (FailureKind, Option<String>) {
        let backtrace = error
            .downcast_ref::<WasmBacktrace>()
            .map(|bt| format!("{bt}"))
            .filter(|bt| !bt.trim().is_empty());
        let kind = if store.data().memory.exceeded {
            FailureKind::MemoryExceeded {
                cap_bytes: self.spec.memory_cap_bytes,
            }
        } else if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            FailureKind::Timeout(deadline)
        } else {
            FailureKind::Trap
        };
        let backtrace = match (&kind, backtrace) {
            (FailureKind::Trap, Some(bt)) => Some(format!("{error:#}\n{bt}")),
            (FailureKind::Trap, None) => Some(format!("{error:#}")),
            (_, bt) => bt,
        };
        (kind, backtrace)
    }

    /// Build the error, apply the policy and breaker, count and log it.
    fn fail(&self, hook: Hook, kind: FailureKind, backtrace: Option<String>) -> HookError {
        let unavailable = matches!(kind, FailureKind::Unavailable(_));
        let disposition = match self.policy {
            FailurePolicy::Open => Disposition::Proceed,
            FailurePolicy::Closed | FailurePolicy::Reload => Disposition::Deny,
        };
        self.stats
            .failure(disposition == Disposition::Proceed, unavailable);
        let error = HookError {
            adapter: self.name().to_owned(),
            version: self.version().to_owned(),
            hook,
            kind,
            disposition,
            backtrace,
        };
        if unavailable {
            tracing::debug!(adapter = %error.adapter, hook = %hook, "{error}");
            return error;
        }
        tracing::error!(
            adapter = %error.adapter,
            version = %error.version,
            hook = %hook,
            failure = error.kind.token(),
            disposition = ?disposition,
            backtrace = error.backtrace.as_deref().unwrap_or(""),
            "adapter failure: {}",
            error.kind
        );
        if self.policy == FailurePolicy::Reload
            && let Ok(mut pool) = self.pool.lock()
        {
            pool.clear();
        }
        match self.health.record_failure() {
            Tripped::Nothing => {}
            Tripped::Breaker(cooldown) => tracing::error!(
                adapter = %error.adapter,
                version = %error.version,
                cooldown_ms = cooldown.as_millis() as u64,
                "crash breaker open: adapter keeps failing, not calling it until the cooldown ends; last failure: {}",
                error.kind
            ),
            Tripped::Backoff(backoff) => tracing::warn!(
                adapter = %error.adapter,
                backoff_ms = backoff.as_millis() as u64,
                "reload policy: dropped warm instances; rebuilding after the backoff"
            ),
        }
        error
    }
}

/// A copy of `request` with only the headers named in `names` (compared
/// case-insensitively), in their original order.
fn narrow_headers(request: &wit::RequestInfo, names: &[String]) -> wit::RequestInfo {
    wit::RequestInfo {
        headers: request
            .headers
            .iter()
            .filter(|header| {
                names
                    .iter()
                    .any(|name| name.eq_ignore_ascii_case(&header.name))
            })
            .cloned()
            .collect(),
        method: request.method.clone(),
        path_with_query: request.path_with_query.clone(),
        domain: request.domain.clone(),
        route_class: request.route_class,
        client_id: request.client_id.clone(),
        pair_id: request.pair_id.clone(),
        correlation_id: request.correlation_id.clone(),
        remote_addr: request.remote_addr.clone(),
    }
}

/// Joins a multi-line diagnostic into one line: configuration errors print as one.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, value: &str) -> wit::Header {
        wit::Header {
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn only_a_refused_memfd_seal_counts_as_a_memory_image_failure() {
        let sealed = wasmtime::Error::from(std::io::Error::other(MEMFD_SEAL_FAILURE))
            .context("instantiating the component");
        assert!(is_memory_image_failure(&sealed));
        let other = wasmtime::Error::msg("unknown import: `wasi:http/types`");
        assert!(!is_memory_image_failure(&other));
    }

    #[test]
    fn narrowing_keeps_only_the_named_headers_in_order() {
        let request = wit::RequestInfo {
            method: "GET".into(),
            path_with_query: "/a?b=1".into(),
            headers: vec![
                header("accept", "*/*"),
                header("x-api-key", "k1"),
                header("cookie", "c"),
                header("x-api-key", "k2"),
            ],
            domain: "api.example.com".into(),
            route_class: wit::RouteClass::Mte,
            client_id: Some("client".into()),
            pair_id: Some("pair".into()),
            correlation_id: "corr".into(),
            remote_addr: "127.0.0.1:1".into(),
        };
        let narrowed = narrow_headers(&request, &["X-API-KEY".to_owned()]);
        assert_eq!(
            narrowed.headers,
            vec![header("x-api-key", "k1"), header("x-api-key", "k2")]
        );
        assert_eq!(
            wit::RequestInfo {
                headers: request.headers.clone(),
                ..narrowed.clone()
            },
            request,
            "every other field is kept"
        );
        assert!(narrow_headers(&request, &[]).headers.is_empty());
    }
}
