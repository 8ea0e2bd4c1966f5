//! Request bodies that arrive at a chosen pace: a slow uploader, or one that stops.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use tokio::sync::mpsc;

use crate::upstream::BoxError;

/// A body fed by a task: yields what the task sends, ends when the task is done.
pub struct FedBody {
    chunks: mpsc::Receiver<Bytes>,
}

impl Body for FedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.chunks
            .poll_recv(cx)
            .map(|chunk| chunk.map(|data| Ok(Frame::data(data))))
    }
}

/// `count` chunks of `size` bytes, each sent `interval` after the one before (the
/// first too), so the whole upload takes at least `count * interval`.
pub fn trickle(count: usize, size: usize, interval: Duration) -> FedBody {
    let (sender, chunks) = mpsc::channel(1);
    tokio::spawn(async move {
        for n in 0..count {
            tokio::time::sleep(interval).await;
            let chunk = Bytes::from(vec![b'a' + (n % 26) as u8; size]);
            if sender.send(chunk).await.is_err() {
                return;
            }
        }
    });
    FedBody { chunks }
}

/// One chunk of `size` bytes at once, then nothing, ever: the body never ends (until
/// it is dropped).
pub fn stalls_after(size: usize) -> FedBody {
    let (sender, chunks) = mpsc::channel(1);
    tokio::spawn(async move {
        if sender.send(Bytes::from(vec![b's'; size])).await.is_ok() {
            // Keep the channel open for as long as the reader holds the body.
            sender.closed().await;
        }
    });
    FedBody { chunks }
}

/// Chunks of `size` bytes for as long as the reader takes them. The returned receiver
/// resolves once the reader has dropped the body (it stopped taking chunks for good).
pub fn endless(size: usize) -> (FedBody, tokio::sync::oneshot::Receiver<()>) {
    let (sender, chunks) = mpsc::channel(1);
    let (dropped, dropped_signal) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let chunk = Bytes::from(vec![b'e'; size]);
        while sender.send(chunk.clone()).await.is_ok() {}
        let _ = dropped.send(());
    });
    (FedBody { chunks }, dropped_signal)
}
