//! A domain's adapter chain, as the relay pipeline calls it: filters' `on-request`
//! in chain order, `on-response` in reverse order; meters are fed by the
//! [`MeterSink`](crate::MeterSink).

use std::sync::Arc;

use crate::bindings::types as wit;
use crate::edits::{HeaderEdit, LocalReply};
use crate::engine::AdapterEngine;
use crate::error::{Disposition, FailureKind, Hook, HookError};
use crate::instance::{AdapterVersion, RequestAction, World};
use crate::runtime::Slot;

/// Filters and meters resolved from one domain's list of instance names.
#[derive(Clone)]
pub struct Chain {
    pub filters: FilterChain,
    pub meters: MeterGroup,
}

/// What the relay does with the request after the filters ran.
#[derive(Debug, Clone)]
pub enum RequestOutcome {
    /// Forward upstream after applying these edits in order (all filters' edits,
    /// already validated).
    Continue(Vec<HeaderEdit>),
    /// A filter answered; send this to the client and skip the upstream.
    Respond(LocalReply),
}

/// The filters of a chain, in order.
#[derive(Clone)]
pub struct FilterChain {
    engine: Arc<AdapterEngine>,
    slots: Arc<[Arc<Slot>]>,
}

fn current(slot: &Slot, hook: Hook) -> Result<Arc<AdapterVersion>, HookError> {
    slot.current.load_full().ok_or_else(|| HookError {
        adapter: slot.name.clone(),
        version: String::new(),
        hook,
        kind: FailureKind::Removed,
        disposition: match slot.world {
            World::Filter => Disposition::Deny,
            World::Meter => Disposition::Proceed,
        },
        backtrace: None,
    })
}

impl FilterChain {
    pub(crate) fn new(engine: Arc<AdapterEngine>, slots: Vec<Arc<Slot>>) -> Self {
        Self {
            engine,
            slots: slots.into(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn names(&self) -> Vec<&str> {
        self.slots.iter().map(|s| s.name.as_str()).collect()
    }

    /// Run `on-request` in chain order. Each filter sees the headers as edited by
    /// the filters before it (`request.headers` is updated in place). A failure
    /// whose disposition is `Proceed` is skipped (already logged and counted);
    /// `Err` means the relay must refuse the request.
    pub async fn on_request(
        &self,
        request: &mut wit::RequestInfo,
    ) -> Result<RequestOutcome, HookError> {
        let mut all_edits = Vec::new();
        for slot in self.slots.iter() {
            let version = match current(slot, Hook::OnRequest) {
                Ok(v) => v,
                Err(e) if e.disposition == Disposition::Proceed => continue,
                Err(e) => return Err(e),
            };
            match version.on_request(&self.engine, request).await {
                Ok(RequestAction::Continue(edits)) => {
                    for edit in &edits {
                        edit.apply_to_list(&mut request.headers);
                    }
                    all_edits.extend(edits);
                }
                Ok(RequestAction::Respond(reply)) => return Ok(RequestOutcome::Respond(reply)),
                Err(e) if e.disposition == Disposition::Proceed => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(RequestOutcome::Continue(all_edits))
    }

    /// True when at least one filter wants `on-response` (or is gone, which only
    /// `on-response` can report): otherwise the relay can skip preparing a response.
    pub fn edits_responses(&self) -> bool {
        self.slots.iter().any(|slot| {
            slot.current
                .load()
                .as_ref()
                .is_none_or(|version| version.edits_responses())
        })
    }

    /// Run `on-response` in reverse chain order, updating `response.headers` in
    /// place and returning the validated edits for the relay to apply. Filters whose
    /// `init` said they never edit responses are not called.
    pub async fn on_response(
        &self,
        request: &wit::RequestInfo,
        response: &mut wit::ResponseInfo,
    ) -> Result<Vec<HeaderEdit>, HookError> {
        let mut all_edits = Vec::new();
        for slot in self.slots.iter().rev() {
            let version = match current(slot, Hook::OnResponse) {
                Ok(v) => v,
                Err(e) if e.disposition == Disposition::Proceed => continue,
                Err(e) => return Err(e),
            };
            if !version.edits_responses() {
                continue;
            }
            match version.on_response(&self.engine, request, response).await {
                Ok(edits) => {
                    for edit in &edits {
                        edit.apply_to_list(&mut response.headers);
                    }
                    all_edits.extend(edits);
                }
                Err(e) if e.disposition == Disposition::Proceed => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(all_edits)
    }
}

/// The meters a domain's usage records go to.
#[derive(Clone, Default)]
pub struct MeterGroup {
    pub(crate) slots: Arc<[Arc<Slot>]>,
}

impl MeterGroup {
    pub(crate) fn new(slots: Vec<Arc<Slot>>) -> Self {
        Self {
            slots: slots.into(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn names(&self) -> Vec<&str> {
        self.slots.iter().map(|s| s.name.as_str()).collect()
    }
}

pub(crate) async fn deliver_usage(
    engine: &Arc<AdapterEngine>,
    slot: &Slot,
    batch: &[wit::UsageRecord],
) -> Result<(), HookError> {
    current(slot, Hook::OnUsage)?.on_usage(engine, batch).await
}

pub(crate) async fn deliver_tick(
    engine: &Arc<AdapterEngine>,
    slot: &Slot,
    now_ms: u64,
) -> Result<(), HookError> {
    current(slot, Hook::OnTick)?.on_tick(engine, now_ms).await
}
