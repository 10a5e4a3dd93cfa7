//! What a connect hands the pool: the byte stream (cleartext or TLS), the watch a TLS stream keeps
//! for its host on client-certificate alerts, and the pooled connection with its facts, its slot
//! under the per-host cap and its count among the host's HTTP/2 connections.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncRead;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_rustls::client::TlsStream;

use super::read_pause::PacedReads;
use super::{ConnectionInfo, Host, ReadPause};
use crate::error::{TlsFailure, alert_after_handshake};

/// A byte stream, cleartext or TLS, that reads no more at a time than its share of the
/// connector's read buffering.
pub(super) struct Stream {
    kind: Kind,
    share: ReadShare,
    /// Reads held and paced, for an HTTP/2 connection (see [`ReadPause`]).
    paced: Option<PacedReads>,
    /// Whether the server still reads what we write ([`Stream::unread`]).
    peer: PeerReads,
}

/// Whether the server still reads what a connection writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PeerReads {
    /// Not watched: over HTTP/2, a failed write ends every stream of the connection as it is.
    Unwatched,
    /// It reads, as far as we know.
    Yes,
    /// It closed its end: the error our write met, and whether any byte came after it.
    Stopped {
        error: io::ErrorKind,
        answered: bool,
    },
}

impl Stream {
    pub(super) fn plain(tcp: TcpStream, share: ReadShare) -> Stream {
        Stream {
            kind: Kind::Plain(tcp),
            share,
            paced: None,
            peer: PeerReads::Yes,
        }
    }

    pub(super) fn tls(
        tls: TlsStream<TcpStream>,
        watch: Watch,
        share: ReadShare,
        pause: Option<ReadPause>,
    ) -> Stream {
        Stream {
            kind: Kind::Tls(Box::new(tls), watch),
            share,
            peer: match pause {
                Some(_) => PeerReads::Unwatched,
                None => PeerReads::Yes,
            },
            paced: pause.map(PacedReads::new),
        }
    }

    /// A write that failed because the server closed its end (a broken pipe, a reset), over
    /// HTTP/1.1: taken as written, and so is every later write, which goes nowhere. A server may
    /// answer a large upload early (a 413, a 401) and close without reading the rest; its answer
    /// came before the reset that failed the write and waits in the receive queue, so hyper, going
    /// on, reads it, as curl does. When the server sent nothing, the read that finds the end fails
    /// with the write's error ([`Stream::after_read`]).
    fn unread(&mut self, written: Poll<io::Result<usize>>, len: usize) -> Poll<io::Result<usize>> {
        match &written {
            Poll::Ready(Err(e))
                if self.peer == PeerReads::Yes
                    && matches!(
                        e.kind(),
                        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                    ) =>
            {
                self.peer = PeerReads::Stopped {
                    error: e.kind(),
                    answered: false,
                };
                Poll::Ready(Ok(len))
            }
            _ => written,
        }
    }

    /// After a read of `got` bytes: once the server stopped reading, the end of the stream before
    /// any answer is the write's error, not a response cut short (the reset was taken by the
    /// write, and the socket reads as closed after it).
    fn after_read(&mut self, read: Poll<io::Result<()>>, got: usize) -> Poll<io::Result<()>> {
        match (&read, &mut self.peer) {
            (Poll::Ready(Ok(())), PeerReads::Stopped { answered, .. }) if got > 0 => {
                *answered = true;
                read
            }
            (
                Poll::Ready(Ok(())),
                PeerReads::Stopped {
                    error,
                    answered: false,
                },
            ) => Poll::Ready(Err(io::Error::from(*error))),
            _ => read,
        }
    }

    fn peer_stopped_reading(&self) -> bool {
        matches!(self.peer, PeerReads::Stopped { .. })
    }
}

enum Kind {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>, Watch),
}

/// The most bytes all of a connector's connections are asked to read at once: hyper's read
/// buffer grows toward what each read returns, so this bounds what the connections hold in
/// memory together. Up to 32 connections read up to hyper's own limit; 10,000 slow downloads at
/// once read [`MIN_READ`] each (they held 57 KiB each in hyper's buffers before, the whole 64 KiB
/// body of a download that fell behind).
const READ_BUDGET: usize = 32 * crate::transport::MAX_HEAD_BYTES;
/// The least a connection reads at a time, however many are open: a 4 KiB read keeps hyper's
/// buffer at its initial 8 KiB.
const MIN_READ: usize = 4 << 10;
/// The most a connection reads at a time once it shares the budget: a capped read zeroes the
/// space it lends (hyper hands it uninitialized), and 16 KiB (curl's buffer) keeps that small
/// beside the copy, even when little has arrived.
const MAX_SHARED_READ: usize = 16 << 10;

/// One connection's share of its connector's read budget.
pub(super) struct ReadShare(Counted);

impl ReadShare {
    pub(super) fn new(open: Arc<AtomicUsize>) -> ReadShare {
        ReadShare(Counted::new(open))
    }

    /// The most one read may take now; `None` while hyper's own limit keeps within the share.
    fn limit(&self) -> Option<usize> {
        let share = READ_BUDGET / self.0.count().max(1);
        (share < crate::transport::MAX_HEAD_BYTES).then(|| share.clamp(MIN_READ, MAX_SHARED_READ))
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(paced) = &mut this.paced {
            std::task::ready!(paced.poll_may_read(cx));
        }
        let before = buf.filled().len();
        let read = this.read_shared(cx, buf);
        let got = buf.filled().len() - before;
        if let Some(paced) = &mut this.paced {
            paced.after(&read, got);
        }
        this.after_read(read, got)
    }
}

impl Stream {
    /// Reads no more than the connection's share of the connector's read budget.
    fn read_shared(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let Some(limit) = self.share.limit().filter(|l| buf.remaining() > *l) else {
            return self.kind.poll_read(cx, buf);
        };
        // Nothing to read yet: no space zeroed for it.
        if let Kind::Plain(s) = &self.kind {
            std::task::ready!(s.poll_read_ready(cx))?;
        }
        // Read into the first `limit` bytes of the space (zeroed first: the safe way to lend
        // part of an uninitialized buffer), then count what arrived as filled.
        let mut part = tokio::io::ReadBuf::new(buf.initialize_unfilled_to(limit));
        let read = self.kind.poll_read(cx, &mut part);
        let n = part.filled().len();
        buf.advance(n);
        read
    }
}

impl Kind {
    fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self {
            Kind::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Kind::Tls(s, watch) => {
                let before = buf.filled().len();
                let read = Pin::new(s.as_mut()).poll_read(cx, buf);
                watch.saw(&read, buf.filled().len() > before);
                read
            }
        }
    }
}

impl tokio::io::AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.peer_stopped_reading() {
            return Poll::Ready(Ok(buf.len()));
        }
        let written = match &mut this.kind {
            Kind::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Kind::Tls(s, watch) => {
                let written = Pin::new(s.as_mut()).poll_write(cx, buf);
                if let Poll::Ready(Err(e)) = &written {
                    watch.saw(
                        &Poll::Ready(Err(io::Error::new(e.kind(), e.to_string()))),
                        false,
                    );
                }
                written
            }
        };
        this.unread(written, buf.len())
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let len = bufs.iter().map(|b| b.len()).sum();
        if this.peer_stopped_reading() {
            return Poll::Ready(Ok(len));
        }
        let written = match &mut this.kind {
            Kind::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Kind::Tls(s, _) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        };
        this.unread(written, len)
    }

    fn is_write_vectored(&self) -> bool {
        match &self.kind {
            Kind::Plain(s) => s.is_write_vectored(),
            Kind::Tls(s, _) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.peer_stopped_reading() {
            return Poll::Ready(Ok(()));
        }
        let flushed = match &mut this.kind {
            Kind::Plain(s) => Pin::new(s).poll_flush(cx),
            Kind::Tls(s, _) => Pin::new(s.as_mut()).poll_flush(cx),
        };
        this.unread(flushed.map_ok(|()| 0), 0).map_ok(drop)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.peer_stopped_reading() {
            return Poll::Ready(Ok(()));
        }
        match &mut this.kind {
            Kind::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Kind::Tls(s, _) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// What a TLS stream tells its host about client-certificate failures it reads. A server that refuses
/// a client certificate under TLS 1.3 does so after the handshake, with an alert (or, when the
/// alert is lost to a reset, by closing before it ever sends a byte); over HTTP/2 only the
/// connection's task reads it, so the host keeps it for the transport to name the failure.
pub(super) struct Watch {
    pub(super) host: Arc<Host>,
    pub(super) presented_identity: bool,
    pub(super) got_data: bool,
}

impl Watch {
    fn saw(&mut self, read: &Poll<io::Result<()>>, data: bool) {
        // Closed or reset before a single byte, right after we presented a certificate: refused.
        let refused_fresh = !data && !self.got_data && self.presented_identity;
        let failure = match read {
            Poll::Ready(Err(e)) => alert_after_handshake(e)
                .or_else(|| refused_fresh.then_some(TlsFailure::ClientCertificateRejected)),
            Poll::Ready(Ok(())) if refused_fresh => Some(TlsFailure::ClientCertificateRejected),
            _ => None,
        };
        self.got_data |= data;
        if let Some(failure) = failure {
            *self.host.alert.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((failure, Instant::now()));
        }
    }
}

/// One pooled connection: the stream, its facts, and its slot under the per-host cap.
pub(crate) struct Conn {
    pub(super) io: TokioIo<Stream>,
    pub(super) info: ConnectionInfo,
    /// Held for the connection's life; dropping the connection frees the slot.
    pub(super) _permit: Option<OwnedSemaphorePermit>,
    /// Counts this connection among its host's open HTTP/2 connections.
    pub(super) _h2: Option<Counted>,
}

/// One member of a count (open connections, open HTTP/2 connections to a host), counted until
/// dropped.
pub(super) struct Counted(Arc<AtomicUsize>);

impl Counted {
    pub(super) fn new(count: Arc<AtomicUsize>) -> Counted {
        count.fetch_add(1, Ordering::AcqRel);
        Counted(count)
    }

    /// How many are counted now, this one included.
    fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        // A cleartext connection to a proxy takes requests in absolute form.
        let connected = Connected::new()
            .extra(self.info.clone())
            .proxy(self.info.proxied && !self.info.tls);
        if self.info.h2 {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}

impl Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl Write for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    fn shares(open: &Arc<AtomicUsize>, n: usize) -> Vec<ReadShare> {
        (0..n).map(|_| ReadShare::new(open.clone())).collect()
    }

    #[test]
    fn open_connections_share_the_read_budget() {
        let open = Arc::new(AtomicUsize::new(0));
        let one = shares(&open, 1);
        assert_eq!(
            one[0].limit(),
            None,
            "one connection reads up to hyper's limit"
        );
        let many = shares(&open, 1023);
        assert_eq!(many[0].limit(), Some(READ_BUDGET / 1024));
        let more = shares(&open, 10_000);
        assert_eq!(more[0].limit(), Some(MIN_READ));
        drop((many, more));
        assert_eq!(one[0].limit(), None, "dropped shares are uncounted");
        // Shared, a read is never larger than a zeroing stays cheap for.
        let some = shares(&open, 40);
        assert_eq!(some[0].limit(), Some(MAX_SHARED_READ));
    }

    #[tokio::test]
    async fn a_capped_read_takes_its_share_and_every_byte_arrives() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let sent = body.clone();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(&sent).await.unwrap();
        });
        let open = Arc::new(AtomicUsize::new(0));
        let _others = shares(&open, 5_000);
        let mut stream = Stream::plain(
            TcpStream::connect(addr).await.unwrap(),
            ReadShare::new(open.clone()),
        );
        server.await.unwrap();
        let (mut got, mut buf) = (Vec::new(), vec![0u8; 64 << 10]);
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            assert!(n <= MIN_READ, "a read of {n} bytes");
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, body);
    }
}
