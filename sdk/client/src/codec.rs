//! The bodies that seal or open as they stream: the one pair of `http-body` wrappers
//! around the protocol's [`BodyEncoder`] and [`BodyDecoder`]. The client uses them for
//! its requests and the responses it reads; the relay for the requests it opens and the
//! responses it seals.
//!
//! Each frame of the inner body becomes records at once (sealing flushes after every
//! frame, so a Server-Sent Event goes out when produced), and neither holds more than
//! one record (MKE) or one MTE message, whatever the body's size. Trailers are dropped:
//! the protocol has no place for them, and sending them in the clear would leak them.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use mte_relay_protocol::stream::{BodyDecoder, BodyEncoder, BodyError};

use crate::error::BoxError;
use crate::timing::CodecTimer;

/// Why a sealing or opening body stopped.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The inner body failed (the caller's body, or the connection it arrives on).
    #[error("body source failed: {0}")]
    Source(#[source] BoxError),
    /// Sealing or opening failed: a record that does not authenticate, a stream cut
    /// short, a body over its limit or other than its stated length.
    #[error(transparent)]
    Body(#[from] BodyError),
}

/// A body sealed record by record as the inner body yields data. If the inner body
/// fails, the stream ends without its final record, so the reader can never take it
/// for a whole body.
pub struct SealingBody<B> {
    inner: B,
    encoder: BodyEncoder,
    timer: Option<CodecTimer>,
    done: bool,
}

impl<B> SealingBody<B> {
    /// Seals `inner` with `encoder`, telling `timer` the time each record takes.
    pub fn new(inner: B, encoder: BodyEncoder, timer: Option<CodecTimer>) -> Self {
        SealingBody {
            inner,
            encoder,
            timer,
            done: false,
        }
    }

    fn seal(&mut self, data: Option<&[u8]>) -> Result<Bytes, CodecError> {
        let mut sealed = Vec::with_capacity(data.map_or(32, |data| data.len() + 64));
        let encoder = &mut self.encoder;
        CodecTimer::seal(self.timer.as_ref(), || match data {
            Some(data) => encoder
                .push(data, &mut sealed)
                .and_then(|()| encoder.flush(&mut sealed)),
            None => encoder.finish(&mut sealed),
        })?;
        Ok(Bytes::from(sealed))
    }
}

impl<B> HttpBody for SealingBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = CodecError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, CodecError>>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    if data.is_empty() {
                        continue;
                    }
                    match this.seal(Some(&data)) {
                        // MTE seals one message at the end: nothing to send yet, and an
                        // empty frame is noise (an HTTP/2 peer counts them as a flood).
                        Ok(sealed) if sealed.is_empty() => continue,
                        Ok(sealed) => return Poll::Ready(Some(Ok(Frame::data(sealed)))),
                        Err(error) => {
                            this.done = true;
                            return Poll::Ready(Some(Err(error)));
                        }
                    }
                }
                Some(Err(error)) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(CodecError::Source(error.into()))));
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

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// A body opened record by record as the sealed inner body arrives. A record that does
/// not authenticate, or a stream that ends before its final record, fails the body.
pub struct OpeningBody<B> {
    inner: B,
    decoder: BodyDecoder,
    timer: Option<CodecTimer>,
    done: bool,
    /// The plaintext length the sealed head states, when it states one: the body
    /// announces it, and fails if the records hold more or fewer bytes.
    declared: Option<u64>,
    /// Plaintext bytes yielded so far.
    yielded: u64,
}

impl<B> OpeningBody<B> {
    /// Opens `inner` with `decoder`, telling `timer` the time each record takes.
    pub fn new(inner: B, decoder: BodyDecoder, timer: Option<CodecTimer>) -> Self {
        OpeningBody {
            inner,
            decoder,
            timer,
            done: false,
            declared: None,
            yielded: 0,
        }
    }

    /// The same body, holding the records to `length` plaintext bytes when given.
    pub fn with_length(mut self, length: Option<u64>) -> Self {
        self.declared = length;
        self
    }

    fn fail(&mut self, error: CodecError) -> Poll<Option<Result<Frame<Bytes>, CodecError>>> {
        self.done = true;
        Poll::Ready(Some(Err(error)))
    }
}

impl<B> HttpBody for OpeningBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = CodecError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, CodecError>>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    let mut plain = Vec::with_capacity(data.len());
                    let decoder = &mut this.decoder;
                    let opened =
                        CodecTimer::open(this.timer.as_ref(), || decoder.push(&data, &mut plain));
                    if let Err(error) = opened {
                        return this.fail(error.into());
                    }
                    if plain.is_empty() {
                        continue;
                    }
                    this.yielded = this.yielded.saturating_add(plain.len() as u64);
                    if this
                        .declared
                        .is_some_and(|declared| this.yielded > declared)
                    {
                        return this.fail(BodyError::LengthMismatch.into());
                    }
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(plain)))));
                }
                Some(Err(error)) => return this.fail(CodecError::Source(error.into())),
                None => {
                    let decoder = &mut this.decoder;
                    if let Err(error) = CodecTimer::open(this.timer.as_ref(), || decoder.finish()) {
                        return this.fail(error.into());
                    }
                    if this
                        .declared
                        .is_some_and(|declared| this.yielded != declared)
                    {
                        return this.fail(BodyError::LengthMismatch.into());
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
        // A stated length goes on as `content-length`, as the sender gave it.
        match self.declared {
            Some(declared) => SizeHint::with_exact(declared.saturating_sub(self.yielded)),
            None => SizeHint::default(),
        }
    }
}
