//! The client connection's transport, with a bound on writes the client does not take.
//!
//! A client that stops reading a response fills its receive window, and the relay's
//! writes then wait forever, holding the connection, a `POOL_SIZE` slot and the
//! upstream response. hyper has no timeout for that, so the socket carries one: a
//! write that has waited for longer than the idle timeout fails, and hyper drops the
//! connection. Only a write that is waiting counts: an idle keep-alive connection, or
//! a response the upstream is slow to produce, never trips it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep, sleep_until};

/// `inner`, whose writes fail with `TimedOut` after waiting `limit` for the peer.
#[derive(Debug)]
pub struct StalledWriteTimeout<T> {
    inner: T,
    limit: Duration,
    /// The timer, allocated at the first write that waits and reset for later ones.
    timer: Option<Pin<Box<Sleep>>>,
    /// A write is waiting and the timer runs for it.
    armed: bool,
}

impl<T> StalledWriteTimeout<T> {
    pub fn new(inner: T, limit: Duration) -> Self {
        StalledWriteTimeout {
            inner,
            limit,
            timer: None,
            armed: false,
        }
    }

    /// Passes on the outcome of a write or flush: progress disarms the timer; a write
    /// that waits arms it, and fails once it has waited for `limit`.
    fn watch<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if polled.is_ready() {
            self.armed = false;
            return polled;
        }
        let deadline = Instant::now() + self.limit;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(sleep_until(deadline)));
        if !self.armed {
            timer.as_mut().reset(deadline);
            self.armed = true;
        }
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the client took no response bytes for {:?}", self.limit),
        )))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StalledWriteTimeout<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StalledWriteTimeout<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    use super::*;

    #[tokio::test]
    async fn a_write_the_peer_never_takes_times_out() {
        let (near, _far) = duplex(1024);
        let mut stream = StalledWriteTimeout::new(near, Duration::from_millis(200));
        let block = vec![0u8; 64 * 1024];
        let error = tokio::time::timeout(Duration::from_secs(5), stream.write_all(&block))
            .await
            .expect("the write fails instead of waiting forever")
            .expect_err("the peer reads nothing");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn a_slow_reader_that_keeps_reading_is_served() {
        let (near, mut far) = duplex(1024);
        let mut stream = StalledWriteTimeout::new(near, Duration::from_millis(500));
        let reader = tokio::spawn(async move {
            let mut total = 0;
            let mut buffer = [0u8; 256];
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                match far.read(&mut buffer).await {
                    Ok(0) | Err(_) => break total,
                    Ok(n) => total += n,
                }
            }
        });
        // 16 KiB through a 1 KiB pipe read 256 bytes every 20 ms: about 1.3 s in all,
        // longer than the limit, but no single write waits that long.
        let block = vec![1u8; 16 * 1024];
        stream
            .write_all(&block)
            .await
            .expect("a reading peer is served");
        stream.shutdown().await.expect("shutdown");
        drop(stream);
        assert_eq!(reader.await.expect("reader"), 16 * 1024);
    }
}
