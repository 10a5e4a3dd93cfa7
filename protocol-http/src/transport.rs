//! `Transport`: sends requests over pooled HTTP/1.1 and HTTP/2 connections and returns streamed
//! responses. One per session, so connections are shared by the session's tasks and no one else's.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_pki_types::CertificateDer;

use crate::connect::{Connector, ConnectorSettings};
use crate::error::{TransportError, TransportErrorKind};
use crate::identity::ClientIdentityProvider;
use crate::trust::TrustEvaluator;

/// A request body: any boxed stream of bytes. Build one with [`body_from_bytes`] or [`empty_body`].
pub type RequestBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// A body holding `bytes`.
pub fn body_from_bytes(bytes: Bytes) -> RequestBody {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

/// An empty body.
pub fn empty_body() -> RequestBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// What a [`Transport`] is built from.
#[derive(Clone, Debug)]
pub struct TransportSettings {
    /// Certificates trusted as roots besides Mozilla's.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// The most HTTP/1.1 connections open to one host at a time (HTTP/2 uses one).
    pub max_connections_per_host: usize,
    /// How long connecting (DNS, TCP, TLS) may take.
    pub connect_timeout: Option<Duration>,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
    /// Who decides server trust after each TLS handshake; `None` verifies during the handshake,
    /// against the roots.
    pub trust: Option<Arc<dyn TrustEvaluator>>,
    /// Who provides client certificates when servers ask; `None` connects without one.
    pub identities: Option<Arc<dyn ClientIdentityProvider>>,
}

impl Default for TransportSettings {
    fn default() -> TransportSettings {
        TransportSettings {
            extra_roots: Vec::new(),
            max_connections_per_host: 6,
            connect_timeout: None,
            pool_idle_timeout: Duration::from_secs(90),
            trust: None,
            identities: None,
        }
    }
}

/// The most header fields a response head may have.
pub const MAX_RESPONSE_HEADERS: usize = 128;
/// The most bytes of header fields an HTTP/2 response head may have (HTTP/1.1 heads are bounded by
/// hyper's read buffer, about 400 KiB).
pub const MAX_HEADER_LIST_BYTES: u32 = 256 * 1024;

/// A connection pool and the client that uses it. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct Transport {
    client: Client<Connector, RequestBody>,
    connector: Connector,
}

impl Transport {
    /// Builds a transport. It needs no runtime to be built; [`Transport::send`] must run on a Tokio
    /// runtime.
    ///
    /// # Errors
    /// An unusable extra root certificate.
    pub fn new(settings: &TransportSettings) -> Result<Transport, TransportError> {
        let tls = crate::tls::client_config(&settings.extra_roots, settings.trust.is_some())?;
        let trust = match (settings.trust.clone(), tls.deferred) {
            (Some(evaluator), Some(standard)) => Some((evaluator, standard)),
            _ => None,
        };
        let connector = Connector::new(ConnectorSettings {
            tls: tls.config,
            trust,
            identities: settings.identities.clone(),
            connect_timeout: settings.connect_timeout,
            max_connections_per_host: settings.max_connections_per_host,
        });
        let client = Client::builder(TokioExecutor::new())
            // At least as many idle connections as the cap, or the pool closes and reopens them.
            .pool_max_idle_per_host(settings.max_connections_per_host.max(1))
            .pool_idle_timeout(settings.pool_idle_timeout)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            // Limits on what a response head may hold: past them the response is refused as
            // unparsable instead of filling memory.
            .http1_max_headers(MAX_RESPONSE_HEADERS)
            .http2_max_header_list_size(MAX_HEADER_LIST_BYTES)
            .build(connector.clone());
        Ok(Transport { client, connector })
    }

    /// Sends `request` and waits for the response head. The body streams from the returned
    /// response; it is read only as fast as the caller polls it.
    ///
    /// # Errors
    /// The failure, classified by [`crate::TransportErrorKind`].
    pub async fn send(
        &self,
        request: http::Request<RequestBody>,
    ) -> Result<http::Response<Incoming>, TransportError> {
        let target = (
            request.uri().scheme_str() == Some("https"),
            request.uri().host().unwrap_or("").to_owned(),
            request.uri().port_u16().unwrap_or(443),
        );
        self.client.request(request).await.map_err(|e| {
            let error = TransportError::from_client(e);
            // A connection that died of a client-certificate alert read by its own task.
            match (error.kind(), target) {
                (
                    TransportErrorKind::ConnectionLost | TransportErrorKind::ClosedBeforeResponse,
                    (true, host, port),
                ) => match self.connector.recent_alert(true, &host, port) {
                    Some(failure) => error.reclassified(TransportErrorKind::Tls(failure)),
                    None => error,
                },
                _ => error,
            }
        })
    }
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport").finish_non_exhaustive()
    }
}
