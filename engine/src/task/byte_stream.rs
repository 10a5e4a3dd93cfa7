//! `ByteStream`: a data task's body, read as it arrives (URLSession's `bytes(for:)`).
//!
//! [`Session::bytes`](crate::Session::bytes) returns once the response head is in, with this stream
//! for the body. Each chunk holds its place in the task's 1 MiB window until the reader takes it, so
//! a reader that stops reading stops the transfer instead of filling memory. Dropping the stream
//! before its end cancels the task.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use courier_delegates::Error;
use tokio::io::{AsyncRead, ReadBuf};

use crate::completion::BodyReceiver;
use crate::task::Task;

/// A response body read as it arrives, from [`Session::bytes`](crate::Session::bytes).
///
/// Read it with [`ByteStream::chunk`], as a [`futures_core::Stream`] of `Result<Bytes, Error>`, or
/// as a Tokio [`AsyncRead`] (for `tokio::io::copy`; errors become [`io::Error`]s wrapping the
/// task's [`Error`]). The stream ends after the last byte; a transfer that fails part-way ends it
/// with that error (a cut connection: -1005). Dropping it before the end cancels the task.
pub struct ByteStream {
    task: Task,
    body: BodyReceiver,
    /// What is left of the chunk an `AsyncRead` caller is part-way through.
    unread: Bytes,
    ended: bool,
}

impl ByteStream {
    pub(crate) fn new(task: Task, body: BodyReceiver) -> Self {
        ByteStream {
            task,
            body,
            unread: Bytes::new(),
            ended: false,
        }
    }

    /// The task behind the stream: its counters, state and metrics through [`Task::info`], and
    /// the controls (suspending it stops reading from the network).
    pub fn task(&self) -> &Task {
        &self.task
    }

    /// The next piece of the body; `None` after the last one.
    ///
    /// # Errors
    /// The transfer failed part-way; the stream ends after the error.
    pub async fn chunk(&mut self) -> Option<Result<Bytes, Error>> {
        std::future::poll_fn(|cx| self.poll_chunk(cx)).await
    }

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Error>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.body.poll_recv(cx) {
            // The permit drops here: the window has room again.
            Poll::Ready(Some(Ok((bytes, _permit)))) => Poll::Ready(Some(Ok(bytes))),
            Poll::Ready(Some(Err(e))) => {
                self.ended = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl futures_core::Stream for ByteStream {
    type Item = Result<Bytes, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_chunk(cx)
    }
}

impl AsyncRead for ByteStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        while me.unread.is_empty() {
            match me.poll_chunk(cx) {
                Poll::Ready(Some(Ok(bytes))) => me.unread = bytes,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(io::Error::other(e))),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = me.unread.len().min(buf.remaining());
        buf.put_slice(&me.unread[..n]);
        me.unread.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl Drop for ByteStream {
    fn drop(&mut self) {
        // Cancelling a completed task does nothing.
        if !self.ended {
            self.task.cancel();
        }
    }
}

impl std::fmt::Debug for ByteStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteStream")
            .field("task", &self.task.info().id())
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}
