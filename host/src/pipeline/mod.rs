//! Seams for the MTE pipeline (decode -> filters -> upstream -> filters -> encode).
//! The server calls exactly these three functions; each answers `Internal` until the
//! pipeline is wired in.

use std::sync::Arc;

use http::{Request, Response};
use mte_relay_protocol::registry::ErrorReason;

use crate::body::RelayBody;
use crate::response::registry_error;
use crate::state::{AppState, RequestContext};

const NOT_WIRED: &str = "not yet wired";

/// `GET`/`HEAD /api/mte-relay`: capabilities, and the client id issued or refreshed.
pub async fn capabilities(
    _state: &Arc<AppState>,
    _ctx: &RequestContext,
    _request: Request<RelayBody>,
) -> Response<RelayBody> {
    registry_error(ErrorReason::Internal, NOT_WIRED)
}

/// `POST /api/mte-pair`: one batch of pairings.
pub async fn pair(
    _state: &Arc<AppState>,
    _ctx: &RequestContext,
    _request: Request<RelayBody>,
) -> Response<RelayBody> {
    registry_error(ErrorReason::Internal, NOT_WIRED)
}

/// A request carrying `x-mte-relay`. The caller holds a `POOL_SIZE` permit until the
/// returned response's body is finished.
pub async fn handle_mte(
    _state: &Arc<AppState>,
    _ctx: &RequestContext,
    _request: Request<RelayBody>,
) -> Response<RelayBody> {
    registry_error(ErrorReason::Internal, NOT_WIRED)
}
