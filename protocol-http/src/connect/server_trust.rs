//! The session's own decision on a server's trust, after a handshake that did not verify it (its
//! delegate's server-trust challenge): the same for the pool's connections, STARTTLS and FTPS.

use std::io;

use rustls_pki_types::CertificateDer;
use tokio::net::TcpStream;

use super::Inner;
use crate::error::{ConnectFailure, TlsFailure, TransportErrorKind};
use crate::trust::{TrustDecision, verify_standard};

impl Inner {
    /// Decides whether to trust the server of a finished handshake, when the session decides trust
    /// itself (its delegate's server-trust challenge): true when it trusted a server that standard
    /// verification refuses.
    pub(super) async fn decide_trust(
        &self,
        tls_stream: &tokio_rustls::client::TlsStream<TcpStream>,
        host: &str,
        port: u16,
    ) -> Result<bool, ConnectFailure> {
        let Some((evaluator, standard)) = &self.settings.trust else {
            return Ok(false);
        };
        let chain: Vec<CertificateDer<'static>> = tls_stream
            .get_ref()
            .1
            .peer_certificates()
            .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
            .unwrap_or_default();
        match evaluator.evaluate(host, port, &chain).await {
            // Remember whether standard verification would have refused it.
            TrustDecision::Accept => Ok(verify_standard(standard, host, &chain).is_err()),
            TrustDecision::Reject => Err(ConnectFailure::new(
                TransportErrorKind::Tls(TlsFailure::Untrusted),
                "the server's certificate was refused",
                None,
            )),
            TrustDecision::Cancel => Err(ConnectFailure::new(
                TransportErrorKind::Cancelled,
                "cancelled at the server-trust challenge",
                None,
            )),
            _ => verify_standard(standard, host, &chain)
                .map(|()| false)
                .map_err(|e| ConnectFailure::tls(io::Error::new(io::ErrorKind::InvalidData, e))),
        }
    }
}
