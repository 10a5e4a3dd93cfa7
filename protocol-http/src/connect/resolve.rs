//! Name resolution for connections.

use std::io;
use std::net::SocketAddr;

use crate::error::{ConnectFailure, TransportErrorKind};

/// The addresses `host:port` resolves to; at least one.
pub(crate) async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, ConnectFailure> {
    let cannot = |e: Option<io::Error>| {
        ConnectFailure::new(
            TransportErrorKind::Dns,
            format!("cannot find host {host}"),
            e,
        )
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| cannot(Some(e)))?
        .collect();
    if addrs.is_empty() {
        return Err(cannot(None));
    }
    Ok(addrs)
}

/// The first address of `host`, as text (for a `socks5://` proxy, which is handed addresses, not
/// names).
pub(crate) async fn resolve_one(host: &str, port: u16) -> Result<String, ConnectFailure> {
    Ok(resolve(host, port).await?[0].ip().to_string())
}
