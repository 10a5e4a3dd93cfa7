//! Connections outside the pool, for stream tasks and ftp: a TCP connection to a host and port,
//! and TLS started on one later (STARTTLS, `AUTH TLS`), with the session's trust decided as for
//! the pool's.

use std::sync::Arc;

use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::{Connector, resolve};
use crate::error::{ConnectFailure, TransportErrorKind};
use crate::happy_eyeballs;

impl Connector {
    /// Opens a TCP connection to `host:port` (the first of its addresses that answers), within the
    /// connect timeout: a raw stream, for a stream task. No proxy and no per-host slot: it is not
    /// an HTTP connection.
    pub(crate) async fn open_tcp(
        &self,
        host: &str,
        port: u16,
    ) -> Result<TcpStream, ConnectFailure> {
        let dial = async {
            let addrs = resolve(host, port).await?;
            let (tcp, _) = happy_eyeballs::connect(&addrs, TcpStream::connect)
                .await
                .map_err(|last| ConnectFailure::dial(host, port, last))?;
            let _ = tcp.set_nodelay(true);
            Ok(tcp)
        };
        match self.inner.settings.connect_timeout {
            Some(limit) => tokio::time::timeout(limit, dial).await.unwrap_or_else(|_| {
                Err(ConnectFailure::new(
                    TransportErrorKind::ConnectTimeout,
                    "connecting timed out",
                    None,
                ))
            }),
            None => dial.await,
        }
    }

    /// Starts TLS on an open connection (a stream task's STARTTLS) with the session's TLS
    /// configuration, no ALPN, and its server-trust decision.
    pub(crate) async fn secure(
        &self,
        tcp: TcpStream,
        host: &str,
        port: u16,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ConnectFailure> {
        let bare = super::bare_host(host).to_owned();
        let name = ServerName::try_from(bare.clone()).map_err(|e| {
            ConnectFailure::new(
                TransportErrorKind::InvalidUrl,
                format!("invalid TLS server name {bare}: {e}"),
                None,
            )
        })?;
        let mut config = (*self.inner.settings.tls).clone();
        config.alpn_protocols.clear();
        let tls_stream = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(ConnectFailure::tls)?;
        self.inner.decide_trust(&tls_stream, &bare, port).await?;
        Ok(tls_stream)
    }
}
