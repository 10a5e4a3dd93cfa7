//! [`ReadPause`]: an HTTP/2 connection's reads, held while a download on it waits for its file.
//!
//! hyper's HTTP/2 connection task reads every frame the flow-control windows allow, whatever each
//! stream's reader is doing, and keeps what it read in memory until the reader takes it. A
//! download whose file writes fall behind the network would have its connection hold up to a
//! window's worth (megabytes) in the process. Instead, while the download waits for its disk, it
//! holds its connection's reads: the bytes wait in the kernel's socket buffer and TCP slows the
//! server, as over HTTP/1.1 (whose connection reads only for its one body) and as curl does.
//!
//! Only waits the disk bounds may hold reads. A reader that can wait indefinitely (a delegate, a
//! suspended task) never holds them: every stream on the connection would wait with it.
//!
//! [`PacedReads`] is the connection's side. Besides waiting out holds, it lets the connection's
//! task read at most [`READ_BURST`] before it yields, so that the streams' readers run between its
//! bursts: on a current-thread runtime the task otherwise read until Tokio's budget ran out (128
//! reads), and the body of a download on a fast server piled up in its buffers meanwhile.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

/// The reads of one connection, which any number of [`ReadHold`]s can hold at once. Cheap to
/// clone; clones share the state.
#[derive(Clone, Debug, Default)]
pub struct ReadPause(Arc<Holds>);

#[derive(Debug, Default)]
struct Holds {
    count: AtomicUsize,
    /// The connection's reader, parked while held.
    reader: AtomicWaker,
}

/// Holds a connection's reads until dropped. Reads resume when the last hold is dropped.
#[must_use = "reads resume as soon as the hold is dropped"]
#[derive(Debug)]
pub struct ReadHold(Arc<Holds>);

impl ReadPause {
    /// Holds the reads until the returned guard is dropped.
    pub fn hold(&self) -> ReadHold {
        self.0.count.fetch_add(1, Ordering::AcqRel);
        ReadHold(self.0.clone())
    }

    /// Ready when nothing holds the reads; otherwise the reader is woken once nothing does.
    pub(super) fn poll_released(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.count.load(Ordering::Acquire) == 0 {
            return Poll::Ready(());
        }
        self.0.reader.register(cx.waker());
        // Looked at again after registering: a release in between has woken nobody.
        match self.0.count.load(Ordering::Acquire) {
            0 => Poll::Ready(()),
            _ => Poll::Pending,
        }
    }
}

impl Drop for ReadHold {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.reader.wake();
        }
    }
}

/// The most a connection reads before it lets other tasks run.
pub(super) const READ_BURST: usize = 256 << 10;

/// A connection's reads as its stream makes them: held while any [`ReadHold`] is, and in bursts.
#[derive(Debug)]
pub(super) struct PacedReads {
    pause: ReadPause,
    /// Read since the connection last waited (for the network, a hold, or its turn).
    burst: usize,
}

impl PacedReads {
    pub(super) fn new(pause: ReadPause) -> PacedReads {
        PacedReads { pause, burst: 0 }
    }

    /// Ready when the connection may read now; otherwise it is woken when it may.
    pub(super) fn poll_may_read(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        std::task::ready!(self.pause.poll_released(cx));
        if self.burst >= READ_BURST {
            // Its turn is over: back of the runtime's queue, behind the readers it woke.
            self.burst = 0;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(())
    }

    /// Counts what a read brought; a read that waits ends the burst.
    pub(super) fn after(&mut self, read: &Poll<io::Result<()>>, n: usize) {
        match read {
            Poll::Ready(Ok(())) => self.burst += n,
            _ => self.burst = 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::task::Wake;

    use super::*;

    #[derive(Default)]
    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    fn poll(pause: &ReadPause, flag: &Arc<Flag>) -> Poll<()> {
        let waker = flag.clone().into();
        pause.poll_released(&mut Context::from_waker(&waker))
    }

    #[test]
    fn reads_resume_when_the_last_hold_is_dropped() {
        let pause = ReadPause::default();
        let flag = Arc::new(Flag::default());
        assert!(poll(&pause, &flag).is_ready());
        let (first, second) = (pause.hold(), pause.clone().hold());
        assert!(poll(&pause, &flag).is_pending());
        drop(first);
        assert!(!flag.0.load(Ordering::SeqCst), "one hold is left");
        assert!(poll(&pause, &flag).is_pending());
        drop(second);
        assert!(flag.0.load(Ordering::SeqCst), "the parked reader is woken");
        assert!(poll(&pause, &flag).is_ready());
    }

    #[test]
    fn a_burst_ends_with_a_turn_for_the_others() {
        let mut paced = PacedReads::new(ReadPause::default());
        let flag = Arc::new(Flag::default());
        let waker = flag.clone().into();
        let mut cx = Context::from_waker(&waker);
        let got = Poll::Ready(Ok(()));
        for _ in 0..READ_BURST / 1000 {
            assert!(paced.poll_may_read(&mut cx).is_ready());
            paced.after(&got, 1000);
        }
        // A read that waited for the network ended that burst: the count starts again.
        paced.after(&Poll::Pending, 0);
        for _ in 0..READ_BURST / 1000 {
            assert!(paced.poll_may_read(&mut cx).is_ready());
            paced.after(&got, 1000);
        }
        paced.after(&got, 1000);
        assert!(
            paced.poll_may_read(&mut cx).is_pending(),
            "a full burst yields"
        );
        assert!(flag.0.load(Ordering::SeqCst), "and is polled again");
        assert!(paced.poll_may_read(&mut cx).is_ready(), "then reads on");
    }

    #[tokio::test]
    async fn a_held_connection_reads_nothing_until_released() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut server, client) = tokio::io::duplex(64);
        let pause = ReadPause::default();
        let mut reader = Held {
            io: client,
            pause: pause.clone(),
        };
        server.write_all(b"hello").await.unwrap();
        let hold = pause.hold();
        let mut buf = [0u8; 5];
        let read = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            reader.read_exact(&mut buf),
        )
        .await;
        assert!(read.is_err(), "read while held");
        drop(hold);
        reader.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
    }

    /// A reader gated the way a connection's stream is.
    struct Held {
        io: tokio::io::DuplexStream,
        pause: ReadPause,
    }

    impl tokio::io::AsyncRead for Held {
        fn poll_read(
            self: std::pin::Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let this = self.get_mut();
            std::task::ready!(this.pause.poll_released(cx));
            std::pin::Pin::new(&mut this.io).poll_read(cx, buf)
        }
    }
}
