//! Raw connections for stream tasks (URLSessionStreamTask): a TCP connection to a host and port,
//! and TLS started on it later and stopped again (STARTTLS), with the session's trust.
//!
//! Not HTTP: no pool, no per-host slot. The connect timeout applies, and the session's proxy
//! (an explicit one, or the environment's `ALL_PROXY`) carries the connection.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::Transport;
use crate::error::TransportError;

/// A stream task's connection: cleartext, or TLS after `start_secure_connection`.
#[derive(Debug)]
pub enum RawStream {
    /// TCP as it is.
    Plain(TcpStream),
    /// TLS over the same TCP connection.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// An HTTP/1.1 connection whose `101 Switching Protocols` handed it over (a data task that
    /// became a stream task): whatever TLS it had stays under it.
    Upgraded(hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>),
}

impl RawStream {
    /// Takes over the connection of a `101` answer (`OnUpgrade`, from its extensions).
    ///
    /// # Errors
    /// The connection could not be taken over.
    pub async fn upgraded(upgrade: hyper::upgrade::OnUpgrade) -> Result<RawStream, TransportError> {
        upgrade
            .await
            .map(|io| RawStream::Upgraded(hyper_util::rt::TokioIo::new(io)))
            .map_err(|e| {
                TransportError::new(crate::TransportErrorKind::ConnectionLost, e.to_string())
            })
    }

    /// True once TLS runs on it.
    pub fn is_secure(&self) -> bool {
        matches!(self, RawStream::Tls(_))
    }
}

impl Transport {
    /// Opens a TCP connection to `host:port` for a stream task, through the session's proxy for
    /// it if there is one.
    ///
    /// # Errors
    /// The host does not resolve, nothing answers, the proxy would not carry it, or the connect
    /// timeout passed.
    pub async fn open_stream(&self, host: &str, port: u16) -> Result<RawStream, TransportError> {
        let route = self
            .connector
            .raw_route(crate::proxy::RawUse::Stream, host, port);
        let tcp = self
            .connector
            .open_tcp(host, port, route.as_ref())
            .await
            .map_err(TransportError::from)?;
        Ok(RawStream::Plain(tcp))
    }

    /// Starts TLS on `stream` (STARTTLS), verifying `host`'s certificate as the session does
    /// (its extra roots, or its server-trust challenge). A stream already secure is returned as is.
    ///
    /// # Errors
    /// The handshake failed, or the server's certificate was not trusted.
    pub async fn secure_stream(
        &self,
        stream: RawStream,
        host: &str,
        port: u16,
    ) -> Result<RawStream, TransportError> {
        match stream {
            RawStream::Plain(tcp) => {
                let tls = self
                    .connector
                    .secure(tcp, host, port)
                    .await
                    .map_err(TransportError::from)?;
                Ok(RawStream::Tls(Box::new(tls)))
            }
            secure => Ok(secure),
        }
    }
}

/// How long `insecure` waits for the server's close_notify.
const CLOSE_NOTIFY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Stops TLS on `stream` (`stop_secure_connection`): sends TLS's close_notify, waits (5 s at most)
/// for the server's, and goes on in cleartext on the same TCP connection. What the server still
/// sent under TLS before its close_notify is dropped: the protocol that stops TLS says when that
/// is.
///
/// # Errors
/// Writing the close_notify failed.
pub async fn insecure(stream: RawStream) -> io::Result<RawStream> {
    use tokio::io::AsyncReadExt;
    match stream {
        RawStream::Tls(mut tls) => {
            tls.get_mut().1.send_close_notify();
            tls.flush().await?;
            let mut discarded = [0u8; 4096];
            let _ = tokio::time::timeout(CLOSE_NOTIFY_WAIT, async {
                // Until the server's close_notify (an end of stream under TLS).
                while matches!(tls.read(&mut discarded).await, Ok(n) if n > 0) {}
            })
            .await;
            let (tcp, _) = tls.into_inner();
            Ok(RawStream::Plain(tcp))
        }
        other => Ok(other),
    }
}

impl AsyncRead for RawStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            RawStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            RawStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            RawStream::Upgraded(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for RawStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            RawStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            RawStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            RawStream::Upgraded(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            RawStream::Plain(s) => Pin::new(s).poll_flush(cx),
            RawStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            RawStream::Upgraded(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            RawStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            RawStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            RawStream::Upgraded(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
