//! `ftp:` (RFC 959): a control connection that logs in and asks, and data connections (passive
//! mode, binary) that carry a file down (`RETR`, from an offset with `REST`) or up (`STOR`), or a
//! directory's listing down (`LIST`).
//! Explicit FTPS (`AUTH TLS`, RFC 4217) protects both with the session's TLS trust.
//!
//! suppaftp speaks the protocol; its TLS is this crate's own connector
//! ([`SessionTls`]), so the certificate of the control and of every data connection is checked
//! as any of the session's (its roots, or its delegate's server-trust challenge). What a reply
//! means for a task is the engine's to say; here a failure is an [`FtpError`] with the reply's
//! code.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use suppaftp::FtpError as Wire;
use suppaftp::Status;
use suppaftp::tokio::{AsyncTlsConnector, ImplAsyncFtpStream, TokioTlsStream, TransferStream};
use suppaftp::types::FileType;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::Transport;
use crate::connect::Connector;
use crate::error::TransportError;
use crate::proxy::{RawUse, Route, RouteKind};

/// A TLS connection made by the session's connector (its trust decided as for HTTPS).
#[derive(Debug)]
pub struct SessionTlsStream(tokio_rustls::client::TlsStream<TcpStream>);

/// The TLS backend suppaftp uses: the session's connector.
#[derive(Clone)]
pub struct SessionTls {
    connector: Connector,
    port: u16,
}

impl fmt::Debug for SessionTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionTls").finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl AsyncTlsConnector for SessionTls {
    type Stream = SessionTlsStream;

    async fn connect(&self, domain: &str, stream: TcpStream) -> suppaftp::FtpResult<Self::Stream> {
        self.connector
            .secure(stream, domain, self.port)
            .await
            .map(SessionTlsStream)
            .map_err(|e| Wire::SecureError(e.to_string()))
    }
}

impl TokioTlsStream for SessionTlsStream {
    type InnerStream = tokio_rustls::client::TlsStream<TcpStream>;

    fn tcp_stream(self) -> suppaftp::FtpResult<TcpStream> {
        Ok(self.0.into_inner().0)
    }

    fn get_ref(&self) -> &TcpStream {
        self.0.get_ref().0
    }

    fn mut_ref(&mut self) -> &mut Self::InnerStream {
        &mut self.0
    }
}

impl AsyncRead for SessionTlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for SessionTlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// What went wrong with an FTP exchange.
#[derive(Debug)]
pub enum FtpError {
    /// The connection could not be made (DNS, TCP, TLS, trust): as for HTTP.
    Connect(TransportError),
    /// The server's reply refused what was asked: its code (`530` not logged in, `550` no such
    /// file, `552` no room...) and text.
    Refused {
        /// The reply's code.
        code: u32,
        /// The reply's text.
        text: String,
    },
    /// The connection failed, or the server spoke something other than FTP.
    Broken(String),
}

impl fmt::Display for FtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FtpError::Connect(e) => write!(f, "{e}"),
            FtpError::Refused { code, text } => write!(f, "the FTP server answered {code} {text}"),
            FtpError::Broken(why) => write!(f, "the FTP connection failed: {why}"),
        }
    }
}

impl std::error::Error for FtpError {}

impl From<Wire> for FtpError {
    fn from(e: Wire) -> FtpError {
        match e {
            Wire::UnexpectedResponse(r) => {
                let code = r.status.code();
                let body = String::from_utf8_lossy(&r.body).into_owned();
                // The reply's text, without the code it starts with.
                let text = body
                    .trim()
                    .trim_start_matches(&code.to_string())
                    .trim_start_matches(['-', ' '])
                    .to_owned();
                FtpError::Refused { code, text }
            }
            Wire::SecureError(why) => FtpError::Broken(format!("TLS: {why}")),
            other => FtpError::Broken(other.to_string()),
        }
    }
}

/// A data connection: a file's bytes coming down or going up. Read or write it, then
/// [`FtpSession::finish`] it to hear the server's verdict.
pub type FtpData = TransferStream<SessionTlsStream>;

/// A logged-in FTP control connection.
pub struct FtpSession {
    control: ImplAsyncFtpStream<SessionTlsStream>,
}

impl fmt::Debug for FtpSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FtpSession").finish_non_exhaustive()
    }
}

/// What `SIZE` and `MDTM` said of a file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileFacts {
    /// Its size in bytes.
    pub size: Option<u64>,
    /// When it was last modified.
    pub modified: Option<std::time::SystemTime>,
}

impl Transport {
    /// Connects to an FTP server, through the session's proxy for `ftp:` if it names one (and so
    /// each data connection, with `EPSV`); with `tls`, asks for explicit FTPS (`AUTH TLS`, then
    /// `PBSZ 0` and `PROT P` so the data connections are protected too) before anything else is
    /// said.
    ///
    /// # Errors
    /// The connection failed, the greeting was not a 220, or the server refused TLS.
    pub async fn ftp_connect(
        &self,
        host: &str,
        port: u16,
        tls: bool,
    ) -> Result<FtpSession, FtpError> {
        let connect_failed = |e| FtpError::Connect(TransportError::from(e));
        let mut route = self.connector.raw_route(RawUse::Ftp, host, port);
        // Every connection of the session goes to one server: through a `socks5` proxy (which is
        // handed addresses), the name is resolved here once, for the control and the data
        // connections alike.
        let target = match &route {
            Some(Route {
                kind: RouteKind::Socks5 { remote_dns, .. },
                ..
            }) if !remote_dns => self
                .connector
                .naming()
                .first_address(host, port)
                .await
                .map_err(connect_failed)?,
            _ => host.to_owned(),
        };
        let tcp = self
            .connector
            .open_tcp(&target, port, route.as_ref())
            .await
            .map_err(connect_failed)?;
        let over_ipv6 = tcp.peer_addr().is_ok_and(|a| a.is_ipv6());
        let mut control = ImplAsyncFtpStream::<SessionTlsStream>::connect_with_stream(tcp).await?;
        // A data connection goes to the server the control connection reached, at the port its
        // `PASV` names, never to the address the reply names: a hostile server could otherwise
        // point it at any host and port the client reaches (the FTP bounce), and have a `STOR`
        // deliver the file's bytes there. curl ignores that address too (`--ftp-skip-pasv-ip`).
        control.set_passive_nat_workaround(true);
        if over_ipv6 || route.is_some() {
            // `PASV` has no form for an IPv6 address (RFC 2428): `EPSV`, which names a port only.
            // Through a proxy the server's address is the proxy's to know: `EPSV` too, as curl
            // asks first.
            control.set_mode(suppaftp::Mode::ExtendedPassive);
        }
        if let Some(route) = route.take() {
            // Each data connection goes through the proxy too, to the same server and the port
            // the server named.
            let (connector, target) = (self.connector.clone(), target.clone());
            control = control.passive_stream_builder(move |named: std::net::SocketAddr| {
                let (connector, target, route) = (connector.clone(), target.clone(), route.clone());
                Box::pin(sync_wrapper::SyncFuture::new(async move {
                    connector
                        .open_tcp(&target, named.port(), Some(&route))
                        .await
                        .map_err(|e| Wire::ConnectionError(std::io::Error::other(e.to_string())))
                }))
            });
        }
        if tls {
            let backend = SessionTls {
                connector: self.connector.clone(),
                port,
            };
            control = control.into_secure(backend, host).await?;
        }
        Ok(FtpSession { control })
    }
}

impl FtpSession {
    /// Logs in (anonymous: `anonymous` and any address as the password), and asks for binary
    /// transfers.
    ///
    /// # Errors
    /// `Refused` with 530 for credentials the server does not take.
    pub async fn login(&mut self, user: &str, password: &str) -> Result<(), FtpError> {
        self.control.login(user, password).await?;
        self.control.transfer_type(FileType::Binary).await?;
        Ok(())
    }

    /// The file's size and modification time, as far as the server tells them (`SIZE`, `MDTM`:
    /// extensions of RFC 3659 that a server may lack).
    pub async fn facts(&mut self, path: &str) -> FileFacts {
        let size = self.control.size(path).await.ok().map(|s| s as u64);
        let modified = self.control.mdtm(path).await.ok().map(|t| {
            std::time::UNIX_EPOCH
                + std::time::Duration::from_secs(t.and_utc().timestamp().max(0) as u64)
        });
        FileFacts { size, modified }
    }

    /// Starts downloading `path` from `offset` (`REST`, then `RETR`).
    ///
    /// # Errors
    /// `Refused` (550 for a missing file, 350's absence for an offset the server would not
    /// take...).
    pub async fn retrieve(&mut self, path: &str, offset: u64) -> Result<FtpData, FtpError> {
        if offset > 0 {
            self.control.resume_transfer(offset as usize).await?;
        }
        Ok(self.control.retr_as_stream(path).await?)
    }

    /// Starts reading the listing of the directory `path` (`LIST`; the current one when `path` is
    /// empty): the server's lines, as it writes them (curl's and URLSession's `ftp://host/dir/`).
    ///
    /// # Errors
    /// `Refused` (550 for a missing directory...).
    pub async fn list(&mut self, path: &str) -> Result<FtpData, FtpError> {
        let command = if path.is_empty() {
            "LIST".to_owned()
        } else {
            format!("LIST {path}")
        };
        let opened = self
            .control
            .custom_data_command(command, &[Status::AboutToSend, Status::AlreadyOpen])
            .await?;
        Ok(opened.1)
    }

    /// Starts uploading to `path` (`STOR`).
    ///
    /// # Errors
    /// `Refused` (553 for a name the server will not store, 550 for no permission...).
    pub async fn store(&mut self, path: &str) -> Result<FtpData, FtpError> {
        Ok(self.control.put_with_stream(path).await?)
    }

    /// Ends a transfer and reads the server's verdict on it (226 or 250).
    ///
    /// # Errors
    /// The server says the transfer failed, or the connection did.
    pub async fn finish(&mut self, data: FtpData) -> Result<(), FtpError> {
        Ok(data.finish().await?)
    }

    /// Says goodbye (`QUIT`); errors are of no interest by then.
    pub async fn quit(mut self) {
        let _ = self.control.quit().await;
    }
}
