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

/// A body that keeps `guard` alive until the body is dropped: a slot counted per
/// client is held until the last byte of the response has gone.
#[derive(Debug)]
pub struct Holding<G> {
    body: RelayBody,
    _guard: G,
}

impl<G> Holding<G> {
    pub fn new(body: RelayBody, guard: G) -> Self {
        Holding {
            body,
            _guard: guard,
        }
    }
}

impl<G: Unpin> Body for Holding<G> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        std::pin::Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Most bytes of a request body read and discarded after the relay answered without
/// reading it (a refusal), and how long that may take.
const DRAIN_LIMIT: usize = 1024 * 1024;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// A request body that, when dropped unfinished, reads the rest in the background (at
/// most [`DRAIN_LIMIT`] bytes for at most [`DRAIN_TIME`]) and discards it.
///
/// When the relay refuses a request before reading its body, the client (or a proxy in
/// front of the relay) may still be writing it. Closing the connection then would reset
/// that write, and a proxy would answer its client with its own error instead of the
/// relay's refusal, losing a sealed `already-processed`, say. Draining lets the
/// refusal arrive, and keeps the connection for the next request.
#[derive(Debug)]
pub struct DrainOnDrop<B: Body<Data = Bytes> + Send + Unpin + 'static> {
    inner: Option<B>,
}

impl<B: Body<Data = Bytes> + Send + Unpin + 'static> DrainOnDrop<B> {
    pub fn new(inner: B) -> Self {
        DrainOnDrop { inner: Some(inner) }
    }
}

impl<B> Body for DrainOnDrop<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, B::Error>>> {
        match self.get_mut().inner.as_mut() {
            Some(inner) => std::pin::Pin::new(inner).poll_frame(cx),
            None => std::task::Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| http_body::SizeHint::with_exact(0), Body::size_hint)
    }
}

impl<B: Body<Data = Bytes> + Send + Unpin + 'static> Drop for DrainOnDrop<B> {
    fn drop(&mut self) {
        let Some(mut rest) = self.inner.take().filter(|body| !body.is_end_stream()) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let drain = async {
                let mut read = 0;
                while read <= DRAIN_LIMIT {
                    match rest.frame().await {
                        Some(Ok(frame)) => read += frame.data_ref().map_or(0, Bytes::len),
                        Some(Err(_)) | None => return,
                    }
                }
            };
            // Past either bound the body drops, and the connection closes.
            let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
        });
    }
}

/// Why [`collect_limited`] failed.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// The body is longer than the limit; reading stopped at the limit.
    #[error("body exceeds {limit} bytes")]
    TooLarge { limit: usize },
    /// The body stream failed (client or upstream side).
    #[error("body stream failed: {0}")]
    Body(#[source] BoxError),
}

/// Reads a whole body of at most `limit` bytes, failing as soon as it grows past it.
///
/// Prefer this to `http_body_util::Limited::new(body, n).collect()`: over a boxed
/// body, that future is one rustc cannot prove `Send` ("implementation of `From` is
/// not general enough"), and the server needs `Send` handler futures.
pub async fn collect_limited(mut body: RelayBody, limit: usize) -> Result<Bytes, CollectError> {
    let mut collected = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(CollectError::Body)?;
        if let Ok(data) = frame.into_data() {
            if data.len() > limit.saturating_sub(collected.len()) {
                return Err(CollectError::TooLarge { limit });
            }
            collected.extend_from_slice(&data);
        }
    }
    Ok(collected.freeze())
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use http_body::Frame;

    use super::*;

    /// A body that yields these chunks, one frame each.
    struct Chunks(VecDeque<Bytes>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(self.0.pop_front().map(|chunk| Ok(Frame::data(chunk))))
        }
    }

    fn chunks(parts: &[&'static str]) -> RelayBody {
        boxed(Chunks(
            parts
                .iter()
                .map(|p| Bytes::from_static(p.as_bytes()))
                .collect(),
        ))
    }

    #[tokio::test]
    async fn collects_up_to_the_limit() {
        let body = collect_limited(chunks(&["ab", "cd"]), 4)
            .await
            .expect("fits");
        assert_eq!(body, "abcd");
    }

    #[tokio::test]
    async fn refuses_past_the_limit() {
        let error = collect_limited(chunks(&["ab", "cde"]), 4)
            .await
            .expect_err("too long");
        assert!(matches!(error, CollectError::TooLarge { limit: 4 }));
    }

    #[test]
    fn the_future_is_send() {
        fn is_send<T: Send>(_: &T) {}
        is_send(&collect_limited(empty(), 1));
    }
}
