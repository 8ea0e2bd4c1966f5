//! The one body type the relay's handlers produce and the upstream client consumes.

use bytes::Bytes;
use http_body::Body;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

/// Error type of every boxed body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A streaming body, boxed. Not `Sync`, so streaming encoders need not be.
pub type RelayBody = UnsyncBoxBody<Bytes, BoxError>;

/// Boxes any streaming body without buffering it.
pub fn boxed<B>(body: B) -> RelayBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

pub fn empty() -> RelayBody {
    boxed(Empty::<Bytes>::new())
}

pub fn full(bytes: impl Into<Bytes>) -> RelayBody {
    boxed(Full::new(bytes.into()))
}
