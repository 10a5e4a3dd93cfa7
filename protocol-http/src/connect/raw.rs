//! Connections outside the pool, for stream tasks and ftp: a TCP connection to a host and port
//! (through the proxy the session's rules name for it), and TLS started on one later (STARTTLS,
//! `AUTH TLS`), with the session's trust decided as for the pool's.

use std::sync::Arc;

use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::Connector;
use crate::error::{ConnectFailure, TransportErrorKind};
use crate::happy_eyeballs;
use crate::proxy::{self, RawUse, Route, RouteKind};

impl Connector {
    /// How this connector's names become addresses.
    pub(crate) fn naming(&self) -> &super::Naming {
        &self.inner.settings.naming
    }

    /// Where a connection for `what` to `host:port` goes: through the proxy the session's rules
    /// name for it, or `None` for straight to the host.
    pub(crate) fn raw_route(&self, what: RawUse, host: &str, port: u16) -> Option<Route> {
        self.inner.settings.proxies.route_raw(what, host, port)
    }

    /// Opens a TCP connection that carries bytes to `host:port` (the first of its addresses that
    /// answers), straight or through the proxy `route` names, within the connect timeout: a raw
    /// stream, for a stream task or ftp. No per-host slot: it is not an HTTP connection.
    pub(crate) async fn open_tcp(
        &self,
        host: &str,
        port: u16,
        route: Option<&Route>,
    ) -> Result<TcpStream, ConnectFailure> {
        // Refused before anything is dialled, as the pool's connections are.
        if let Some(Route {
            kind: RouteKind::Unsupported(scheme),
            ..
        }) = route
        {
            return Err(proxy::unsupported(host, scheme));
        }
        let dial = async {
            let (dial_host, dial_port) = route.map_or((host, port), |r| (r.host.as_str(), r.port));
            let naming = &self.inner.settings.naming;
            let addrs = naming.addresses(dial_host, dial_port).await?;
            let (tcp, _) = happy_eyeballs::connect(&addrs, TcpStream::connect)
                .await
                .map_err(|last| ConnectFailure::dial(dial_host, dial_port, last))?;
            let _ = tcp.set_nodelay(true);
            match route {
                Some(route) => {
                    proxy::carry(tcp, route, host, port, route.auth.as_ref(), naming).await
                }
                None => Ok(tcp),
            }
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
