//! Watching a request body on its way to the upstream.
//!
//! The upstream response timeout must not count the time a client takes to upload:
//! a large body on a slow link would be cut off although both peers are healthy. So
//! the exchange has two phases. While the body streams, the limit is an idle timeout
//! between chunks (`BODY_IDLE_TIMEOUT_SECS`); once the last chunk has been handed to
//! the connection, the response timeout starts. [`Progress`] is what tells the two
//! phases apart: it wraps the body the upstream connection reads, records each chunk
//! that passes, whether it is waiting for the client, and when the body is finished.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::Notify;

/// Which side held up a request body for longer than the idle timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stall {
    /// The relay was waiting for the next chunk from the client.
    Client,
    /// The relay had a chunk ready, but the upstream did not take it.
    Upstream,
}

/// The shared record of one body's progress; cheap to clone.
#[derive(Clone, Debug)]
pub struct Progress {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    started: Instant,
    /// Nanoseconds after `started` at which the last chunk passed (or the body began).
    last_chunk_nanos: AtomicU64,
    /// The body's last poll found no chunk ready: the relay is waiting for the client.
    waiting_for_client: AtomicBool,
    finished: AtomicBool,
    finished_signal: Notify,
}

impl Progress {
    /// Wraps `body`; the returned body reports to the returned [`Progress`].
    pub fn watch<B>(body: B) -> (Progress, Watched<B>)
    where
        B: Body<Data = Bytes>,
    {
        let progress = Progress {
            shared: Arc::new(Shared {
                started: Instant::now(),
                last_chunk_nanos: AtomicU64::new(0),
                waiting_for_client: AtomicBool::new(false),
                finished: AtomicBool::new(false),
                finished_signal: Notify::new(),
            }),
        };
        // A body that is empty from the start is never polled by the connection.
        if body.is_end_stream() {
            progress.finish();
        }
        let watched = Watched {
            inner: body,
            progress: progress.clone(),
        };
        (progress, watched)
    }

    /// Resolves once the whole body has been handed to the connection, or the
    /// connection dropped it (it failed, or the upstream answered early).
    pub async fn finished(&self) {
        while !self.shared.finished.load(Ordering::Acquire) {
            self.shared.finished_signal.notified().await;
        }
    }

    /// Resolves when no chunk has passed for `idle`, naming the side that stalled.
    /// Never resolves while chunks keep passing at least every `idle`.
    pub async fn stalled(&self, idle: Duration) -> Stall {
        loop {
            let last_chunk = self.last_chunk();
            let deadline = last_chunk + idle;
            tokio::time::sleep_until(deadline.into()).await;
            if self.last_chunk() == last_chunk {
                return if self.shared.waiting_for_client.load(Ordering::Acquire) {
                    Stall::Client
                } else {
                    Stall::Upstream
                };
            }
        }
    }

    fn last_chunk(&self) -> Instant {
        let nanos = self.shared.last_chunk_nanos.load(Ordering::Acquire);
        self.shared.started + Duration::from_nanos(nanos)
    }

    fn chunk_passed(&self) {
        let nanos = u64::try_from(self.shared.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.shared.last_chunk_nanos.store(nanos, Ordering::Release);
    }

    fn finish(&self) {
        if !self.shared.finished.swap(true, Ordering::AcqRel) {
            // One waiter at most (the exchange); a stored permit covers a finish that
            // happens before it starts waiting.
            self.shared.finished_signal.notify_one();
        }
    }
}

/// A body that reports its progress; see [`Progress::watch`].
#[derive(Debug)]
pub struct Watched<B> {
    inner: B,
    progress: Progress,
}

impl<B> Body for Watched<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let shared = &this.progress.shared;
        match &polled {
            Poll::Pending => shared.waiting_for_client.store(true, Ordering::Release),
            Poll::Ready(Some(Ok(_))) => {
                shared.waiting_for_client.store(false, Ordering::Release);
                this.progress.chunk_passed();
                if this.inner.is_end_stream() {
                    this.progress.finish();
                }
            }
            Poll::Ready(Some(Err(_)) | None) => {
                shared.waiting_for_client.store(false, Ordering::Release);
                this.progress.finish();
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for Watched<B> {
    fn drop(&mut self) {
        self.progress.finish();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use http_body_util::{BodyExt, Empty, Full};
    use tokio::sync::mpsc;

    use super::*;

    /// A body of the chunks sent on a channel, ending when every sender is gone.
    struct ChannelBody(mpsc::Receiver<Bytes>);

    impl Body for ChannelBody {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            self.0
                .poll_recv(cx)
                .map(|chunk| chunk.map(|data| Ok(Frame::data(data))))
        }
    }

    /// A body of these chunks, all ready at once.
    struct ReadyBody(VecDeque<Bytes>);

    impl Body for ReadyBody {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop_front().map(|data| Ok(Frame::data(data))))
        }
    }

    #[tokio::test]
    async fn an_empty_body_is_finished_from_the_start() {
        let (progress, _body) = Progress::watch(Empty::<Bytes>::new());
        tokio::time::timeout(Duration::from_secs(5), progress.finished())
            .await
            .expect("finished at once");
    }

    #[tokio::test]
    async fn a_body_is_finished_after_its_last_chunk() {
        let (progress, mut body) = Progress::watch(Full::new(Bytes::from_static(b"abc")));
        assert!(
            tokio::time::timeout(Duration::from_millis(50), progress.finished())
                .await
                .is_err(),
            "not finished before it is read"
        );
        let chunk = body.frame().await.expect("a chunk").expect("no error");
        assert_eq!(chunk.into_data().ok(), Some(Bytes::from_static(b"abc")));
        tokio::time::timeout(Duration::from_secs(5), progress.finished())
            .await
            .expect("finished after the last chunk");
    }

    #[tokio::test]
    async fn dropping_the_body_finishes_it() {
        let (progress, body) = Progress::watch(Full::new(Bytes::from_static(b"abc")));
        drop(body);
        tokio::time::timeout(Duration::from_secs(5), progress.finished())
            .await
            .expect("finished when dropped");
    }

    #[tokio::test]
    async fn a_body_waiting_for_its_sender_is_a_client_stall() {
        let (sender, receiver) = mpsc::channel(1);
        let (progress, mut body) = Progress::watch(ChannelBody(receiver));
        sender.send(Bytes::from_static(b"a")).await.expect("send");
        body.frame().await.expect("a chunk").expect("no error");
        // The next poll finds nothing: the body now waits for its sender.
        let reader = tokio::spawn(async move { body.frame().await.is_none() });
        let stall = progress.stalled(Duration::from_millis(200)).await;
        assert_eq!(stall, Stall::Client);
        drop(sender);
        assert!(
            reader.await.expect("reader"),
            "the body ends with its sender"
        );
    }

    #[tokio::test]
    async fn a_body_nobody_reads_is_an_upstream_stall() {
        let chunks = (0..3).map(|_| Bytes::from_static(b"x")).collect();
        let (progress, mut body) = Progress::watch(ReadyBody(chunks));
        body.frame().await.expect("a chunk").expect("no error");
        // The reader holds the body but reads no further.
        let stall = progress.stalled(Duration::from_millis(200)).await;
        assert_eq!(stall, Stall::Upstream);
        drop(body);
    }

    #[tokio::test]
    async fn chunks_inside_the_idle_timeout_are_no_stall() {
        let (sender, receiver) = mpsc::channel(1);
        let (progress, mut body) = Progress::watch(ChannelBody(receiver));
        let writer = tokio::spawn(async move {
            for _ in 0..30 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                sender.send(Bytes::from_static(b"a")).await.expect("send");
            }
        });
        let reader = tokio::spawn(async move {
            let mut chunks = 0;
            while let Some(frame) = body.frame().await {
                frame.expect("no error");
                chunks += 1;
            }
            chunks
        });
        // A chunk every 50 ms, under an idle timeout twenty times as long; the whole
        // body takes longer than the idle timeout, so only a timer that restarts with
        // each chunk lets it through.
        tokio::select! {
            stall = progress.stalled(Duration::from_millis(1000)) => panic!("stalled: {stall:?}"),
            chunks = reader => assert_eq!(chunks.expect("reader"), 30),
        }
        writer.await.expect("writer");
        tokio::time::timeout(Duration::from_secs(1), progress.finished())
            .await
            .expect("finished");
    }
}
