//! Bodies that decrypt or encrypt as they stream: one record in, one frame out.
//!
//! Neither body buffers more than one record (MKE) or one MTE message, so memory per
//! request is bounded by the chunk size whatever the payload size.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use mte_relay_protocol::stream::{BodyDecoder, BodyEncoder, BodyError};

use crate::body::{BoxError, RelayBody};
use crate::telemetry::RequestTimings;

/// Where a decrypting body reports the reason it aborted, so the pipeline can answer
/// with the right registry error instead of a generic upstream failure.
pub type DecodeFailure = Arc<OnceLock<BodyError>>;

/// The client's encrypted request body, opened record by record on its way upstream.
/// A record that fails to open, or a stream that ends early, fails the body, which
/// aborts the upstream request.
pub struct DecryptingBody {
    inner: RelayBody,
    decoder: BodyDecoder,
    failure: DecodeFailure,
    timings: Arc<RequestTimings>,
    done: bool,
    /// The plaintext length the sealed head states, when it states one: the body is
    /// sent upstream with it, and fails if the records hold more or fewer bytes.
    declared: Option<u64>,
    /// Plaintext bytes yielded so far.
    yielded: u64,
}

impl DecryptingBody {
    pub fn new(
        inner: RelayBody,
        decoder: BodyDecoder,
        failure: DecodeFailure,
        timings: Arc<RequestTimings>,
    ) -> Self {
        DecryptingBody {
            inner,
            decoder,
            failure,
            timings,
            done: false,
            declared: None,
            yielded: 0,
        }
    }

    /// The same body, stating `length` plaintext bytes (the head's `content-length`),
    /// which it then holds the records to.
    pub fn with_length(mut self, length: Option<u64>) -> Self {
        self.declared = length;
        self
    }

    fn fail(&mut self, error: BodyError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.done = true;
        let _ = self.failure.set(error);
        Poll::Ready(Some(Err(Box::new(error))))
    }
}

impl Body for DecryptingBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        // Trailers from the client are not part of the protocol.
                        continue;
                    };
                    let started = Instant::now();
                    let mut plain = Vec::with_capacity(data.len());
                    let outcome = this.decoder.push(&data, &mut plain);
                    this.timings.add_decode(started.elapsed());
                    if let Err(error) = outcome {
                        return this.fail(error);
                    }
                    if !plain.is_empty() {
                        this.yielded = this.yielded.saturating_add(plain.len() as u64);
                        if this
                            .declared
                            .is_some_and(|declared| this.yielded > declared)
                        {
                            return this.fail(BodyError::LengthMismatch);
                        }
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(plain)))));
                    }
                }
                Some(Err(error)) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(error)));
                }
                None => {
                    if let Err(error) = this.decoder.finish() {
                        return this.fail(error);
                    }
                    if this
                        .declared
                        .is_some_and(|declared| this.yielded != declared)
                    {
                        return this.fail(BodyError::LengthMismatch);
                    }
                    this.done = true;
                    return Poll::Ready(None);
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        // A stated length goes upstream as `content-length`, as the client sent it.
        match self.declared {
            Some(declared) => SizeHint::with_exact(declared.saturating_sub(self.yielded)),
            None => SizeHint::default(),
        }
    }
}

/// The upstream's response body, sealed as it streams. Every upstream frame is sealed
/// and flushed at once, so a Server-Sent Event reaches the client when produced.
pub struct EncryptingBody<B> {
    inner: B,
    encoder: BodyEncoder,
    timings: Arc<RequestTimings>,
    done: bool,
}

impl<B> EncryptingBody<B> {
    pub fn new(inner: B, encoder: BodyEncoder, timings: Arc<RequestTimings>) -> Self {
        EncryptingBody {
            inner,
            encoder,
            timings,
            done: false,
        }
    }

    fn seal(&mut self, data: Option<&[u8]>) -> Result<Bytes, BoxError> {
        let started = Instant::now();
        let mut sealed = Vec::with_capacity(data.map_or(32, |d| d.len() + 64));
        let outcome = match data {
            Some(data) => self
                .encoder
                .push(data, &mut sealed)
                .and_then(|()| self.encoder.flush(&mut sealed)),
            None => self.encoder.finish(&mut sealed),
        };
        self.timings.add_encode(started.elapsed());
        outcome.map_err(|error| -> BoxError { Box::new(error) })?;
        Ok(Bytes::from(sealed))
    }
}

impl<B> Body for EncryptingBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    // Upstream trailers are dropped: the protocol has no place for them.
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    if data.is_empty() {
                        continue;
                    }
                    return Poll::Ready(Some(this.seal(Some(&data)).map(Frame::data)));
                }
                Some(Err(error)) => {
                    // Leaving the stream without its final record tells the client the
                    // response is incomplete; it cannot be mistaken for a whole one.
                    this.done = true;
                    return Poll::Ready(Some(Err(error.into())));
                }
                None => {
                    this.done = true;
                    return Poll::Ready(Some(this.seal(None).map(Frame::data)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}
