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
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_rustls::client::TlsStream;

use super::{ConnectionInfo, Host};
use crate::error::{TlsFailure, alert_after_handshake};

/// A byte stream, cleartext or TLS.
pub(super) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>, Watch),
}

impl tokio::io::AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s, watch) => {
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
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s, watch) => {
                let written = Pin::new(s.as_mut()).poll_write(cx, buf);
                if let Poll::Ready(Err(e)) = &written {
                    watch.saw(
                        &Poll::Ready(Err(io::Error::new(e.kind(), e.to_string()))),
                        false,
                    );
                }
                written
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s, _) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s, _) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s, _) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s, _) => Pin::new(s.as_mut()).poll_shutdown(cx),
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
    pub(super) _h2: Option<OpenH2>,
}

/// One open HTTP/2 connection, counted until dropped.
pub(super) struct OpenH2(Arc<AtomicUsize>);

impl OpenH2 {
    pub(super) fn new(count: Arc<AtomicUsize>) -> OpenH2 {
        count.fetch_add(1, Ordering::AcqRel);
        OpenH2(count)
    }
}

impl Drop for OpenH2 {
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
