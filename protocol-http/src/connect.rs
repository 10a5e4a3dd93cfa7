//! `Connector`: opens connections for the pool: DNS, TCP, TLS with ALPN, and the per-host cap.
//!
//! hyper-util's pool has no hard cap on connections per host (it only bounds idle ones), so the
//! connector takes a permit from a per-host semaphore before dialing and keeps it inside the connection:
//! dropping the connection frees the slot. An HTTP/2 connection gives its permit back at once, since one
//! connection carries every request to that host. Until a TLS host is known to speak HTTP/1.1, its
//! connections are made one at a time, so a burst of requests to an HTTP/2 server shares one
//! connection instead of racing to open one each.
//!
//! hyper-util starts a connect for every request that finds no idle connection, races it against
//! the pool, and when the pool wins lets the connect finish in the background. At the cap such a
//! connect would wait for a slot long after its request was served (and then open a connection
//! nobody asked for). So each connect knows its request ([`for_one_request`]) and stops waiting for
//! a slot once that request is over.
//!
//! `conn` holds what a connect hands the pool: the stream and the pooled connection. `raw` opens
//! connections outside the pool (a stream task's TCP, and TLS started on it later).
//! `server_trust` is the session's own trust decision after a handshake, for both; `resolve`
//! finds a host's addresses; `wanted` is what a connect knows of its request; `per_host` is what
//! the connector knows of each host (its slots, its probe, its protocol, its identity).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::Uri;
use hyper_util::rt::TokioIo;
use rustls::sign::CertifiedKey;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

use tokio_rustls::TlsConnector;

use crate::error::{ConnectFailure, TlsFailure, TransportErrorKind};
use crate::happy_eyeballs;
use crate::identity::{AskingResolver, ClientIdentityProvider, IdentityDecision};
use crate::proxy::{self, Proxies, Route, RouteKind};
use crate::trust::{StandardVerifier, TrustEvaluator};

mod conn;
mod per_host;
mod raw;
mod read_pause;
mod resolve;
mod server_trust;
mod wanted;

pub(crate) use conn::Conn;
use conn::{Counted, ReadShare, Stream, Watch};
use per_host::Host;
pub use read_pause::{ReadHold, ReadPause};
pub(crate) use resolve::bare_host;
pub use resolve::{GivenAddresses, IpVersion, Naming, is_localhost_name};
pub(crate) use wanted::for_one_request;
use wanted::{Wanted, served};

/// Facts about the connection a response came over; found in every response's extensions.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    /// Unique per transport; a repeated id means the connection was reused.
    pub id: u64,
    /// The server's address.
    pub remote: SocketAddr,
    /// True when the connection is TLS.
    pub tls: bool,
    /// True when ALPN chose HTTP/2.
    pub h2: bool,
    /// Time spent resolving the host.
    pub dns: Duration,
    /// Time spent on the TCP connect.
    pub connect: Duration,
    /// Time spent on the TLS handshake (zero for cleartext).
    pub tls_handshake: Duration,
    /// True when the connection goes through an HTTP proxy, which takes cleartext requests in
    /// absolute form. (Through any proxy, HTTP or SOCKS, `remote` is the proxy's address.)
    pub proxied: bool,
    /// True when the connection goes through any proxy, HTTP or SOCKS.
    pub via_proxy: bool,
    /// This end of the connection.
    pub local: Option<SocketAddr>,
    /// The TLS version negotiated (`TLSv1.3`, `TLSv1.2`); `None` for cleartext.
    pub tls_version: Option<&'static str>,
    /// The cipher suite negotiated, by its IANA name; `None` for cleartext. (A static name: this
    /// record is copied for every response, and must not allocate.)
    pub cipher_suite: Option<&'static str>,
    /// True when the application trusted a server whose certificate standard verification refuses
    /// (a delegate's "trust" answer, `--insecure`): what comes over it must not outlive the session
    /// (no URL cache, no persistent cookies).
    pub trust_overridden: bool,
    /// Requests that have used this connection so far.
    uses: Arc<AtomicU64>,
    /// Holds on the connection's reads (HTTP/2 only).
    reads: Option<ReadPause>,
}

impl ConnectionInfo {
    /// Counts one more request on this connection; true when it had carried one before.
    pub fn note_use(&self) -> bool {
        self.uses.fetch_add(1, Ordering::Relaxed) > 0
    }

    /// The connection's reads, for a download to hold while its file writes catch up; `None`
    /// over HTTP/1.1, whose connection reads only as fast as its one body is read.
    pub fn reads(&self) -> Option<&ReadPause> {
        self.reads.as_ref()
    }
}

/// Connection settings of a [`Connector`].
#[derive(Clone)]
pub(crate) struct ConnectorSettings {
    pub(crate) tls: Arc<rustls::ClientConfig>,
    /// Server trust decided after the handshake: the evaluator, and standard verification.
    pub(crate) trust: Option<(Arc<dyn TrustEvaluator>, Arc<StandardVerifier>)>,
    /// Who provides a client certificate when a server asks.
    pub(crate) identities: Option<Arc<dyn ClientIdentityProvider>>,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) max_connections_per_host: usize,
    /// Which connections go through a proxy.
    pub(crate) proxies: Arc<Proxies>,
    /// Cleartext connections through an HTTP proxy are tunnels too (`CONNECT`), not requests in
    /// absolute form: for connections that switch protocols (a `ws:` WebSocket), which a proxy
    /// forwarding requests would not carry.
    pub(crate) tunnel_cleartext: bool,
    /// How names become addresses (given ones, one IP version).
    pub(crate) naming: Arc<Naming>,
}

/// Opens connections; cheap to clone (the pool clones it per connect).
#[derive(Clone)]
pub(crate) struct Connector {
    inner: Arc<Inner>,
}

struct Inner {
    settings: ConnectorSettings,
    next_id: AtomicU64,
    /// Open connections, which share the read budget (`conn::ReadShare`).
    open: Arc<AtomicUsize>,
    /// What is known of each host, by [`HostKey`]. Hashed with FNV, not SipHash: an HTTPS request
    /// looks its host up here (`speaks_http1`), and the keys are the hosts this session's own
    /// requests dialed, not a table a peer fills.
    per_host: Mutex<HashMap<Box<str>, Arc<Host>, fnv::FnvBuildHasher>>,
    /// True once any TLS host negotiated HTTP/1.1: until then no HTTPS request needs its host
    /// looked up to know it goes over HTTP/2 (a key, a lock and a hash, about 1,000 instructions).
    any_tls_h1: AtomicBool,
}

/// A server-trust decision the session took on a chain: whether it trusted a chain that standard
/// verification refuses.
struct Decided {
    chain: Vec<rustls_pki_types::CertificateDer<'static>>,
    overridden: bool,
}

impl Connector {
    pub(crate) fn new(settings: ConnectorSettings) -> Connector {
        Connector {
            inner: Arc::new(Inner {
                settings,
                next_id: AtomicU64::new(1),
                open: Arc::new(AtomicUsize::new(0)),
                per_host: Mutex::new(HashMap::default()),
                any_tls_h1: AtomicBool::new(false),
            }),
        }
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = Conn;
    type Error = ConnectFailure;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, ConnectFailure>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let inner = self.inner.clone();
        // hyper-util calls this while polling the request that needs the connection, so the
        // request's marker is in scope here, even if the connect goes on in the background later.
        let wanted = Wanted::current();
        Box::pin(async move {
            match inner.settings.connect_timeout {
                Some(limit) => tokio::time::timeout(limit, inner.connect(uri, wanted))
                    .await
                    .unwrap_or_else(|_| {
                        Err(ConnectFailure::new(
                            TransportErrorKind::ConnectTimeout,
                            "connecting timed out",
                            None,
                        ))
                    }),
                None => inner.connect(uri, wanted).await,
            }
        })
    }
}

impl Connector {
    /// Where the request's `Proxy-Authorization` goes: `Some(credentials)` on a cleartext request
    /// to its proxy (the request's own, an answer to the proxy's challenge, else the proxy URL's),
    /// `None` to take it off the request (an
    /// `https` request presents it on its tunnel's `CONNECT`; a direct request has no proxy to
    /// give it to).
    pub(crate) fn proxy_authorization(
        &self,
        uri: &Uri,
        given: Option<http::HeaderValue>,
    ) -> Option<http::HeaderValue> {
        if uri.scheme_str() != Some("http") {
            return None;
        }
        // Only an HTTP proxy reads the field: through a SOCKS proxy it would reach the origin.
        let route = self.inner.settings.proxies.route(uri)?;
        matches!(route.kind, crate::proxy::RouteKind::Http { .. }).then_some(())?;
        given.or(route.auth)
    }

    /// The HTTP proxy a request to `uri` goes through, if any.
    pub(crate) fn http_proxy(&self, uri: &Uri) -> Option<crate::HttpProxy> {
        let route = self.inner.settings.proxies.route(uri)?;
        match route.kind {
            crate::proxy::RouteKind::Http { login } => Some(crate::HttpProxy {
                host: route.host,
                port: route.port,
                login,
            }),
            _ => None,
        }
    }
}

impl Inner {
    async fn connect(&self, uri: Uri, wanted: Option<Wanted>) -> Result<Conn, ConnectFailure> {
        self.connect_trusting(uri, wanted, None).await
    }

    /// As [`Inner::connect`]; `decided` is the server-trust decision the session took on this
    /// host's chain a moment ago, in the handshake that learnt the server wants a client
    /// certificate: the same chain again is not put to the delegate a second time (URLSession asks
    /// server trust once, then for the identity).
    async fn connect_trusting(
        &self,
        uri: Uri,
        wanted: Option<Wanted>,
        decided: Option<Decided>,
    ) -> Result<Conn, ConnectFailure> {
        let uri_again = uri.clone();
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            other => {
                return Err(ConnectFailure::new(
                    TransportErrorKind::InvalidUrl,
                    format!("unsupported scheme {other:?}"),
                    None,
                ));
            }
        };
        let host = uri
            .host()
            .ok_or_else(|| ConnectFailure::new(TransportErrorKind::InvalidUrl, "no host", None))?;
        // `Uri::host` keeps the brackets of an IPv6 literal; resolution and SNI want it bare.
        let host = bare_host(host).to_owned();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });

        let state = self.host(tls, &host, port);
        let (_probe, permit) = tokio::select! {
            taken = state.take_slot(tls) => taken?,
            () = served(wanted.clone()) => {
                return Err(ConnectFailure::new(
                    TransportErrorKind::Other,
                    "no longer needed: its request was served by another connection",
                    None,
                ));
            }
        };

        // Through a proxy, the connection is made to the proxy; the cap stays the server's.
        let route = self.settings.proxies.route(&uri);
        if let Some(Route {
            kind: RouteKind::Unsupported(scheme),
            ..
        }) = &route
        {
            return Err(proxy::unsupported(&host, scheme));
        }
        let (dial_host, dial_port) = match &route {
            Some(r) => (r.host.as_str(), r.port),
            None => (host.as_str(), port),
        };
        let started = Instant::now();
        let addrs = self.settings.naming.addresses(dial_host, dial_port).await?;
        let dns = started.elapsed();

        let connect_started = Instant::now();
        let (mut tcp, remote) = happy_eyeballs::connect(&addrs, TcpStream::connect)
            .await
            .map_err(|last| ConnectFailure::dial(dial_host, dial_port, last))?;
        // Only an HTTP proxy takes cleartext requests in absolute form.
        let mut proxied = false;
        match route.as_ref().map(|r| (r, &r.kind)) {
            Some((_, RouteKind::Http { .. })) if !tls && !self.settings.tunnel_cleartext => {
                proxied = true;
            }
            Some((route, kind)) => {
                // The request's own `Proxy-Authorization` (an answer to the proxy's challenge),
                // else the proxy URL's credentials: both go to the proxy on the `CONNECT`, never
                // through the tunnel (curl CVE-2015-3153).
                let auth = wanted
                    .as_ref()
                    .and_then(|w| w.proxy_authorization.as_ref())
                    .or(route.auth.as_ref());
                tcp = proxy::carry(tcp, route, &host, port, auth, &self.settings.naming).await?;
                // Through a tunnel, a cleartext request goes as to the server itself (origin form).
                proxied = tls && matches!(kind, RouteKind::Http { .. });
            }
            None => {}
        }
        let connect = connect_started.elapsed();
        // Small requests and HTTP/2 frames should not wait for Nagle.
        let _ = tcp.set_nodelay(true);
        let (local, via_proxy) = (tcp.local_addr().ok(), route.is_some());

        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if !tls {
            return Ok(Conn {
                io: TokioIo::new(Stream::plain(tcp, ReadShare::new(self.open.clone()))),
                info: ConnectionInfo {
                    id,
                    remote,
                    local,
                    via_proxy,
                    tls_version: None,
                    cipher_suite: None,
                    tls: false,
                    h2: false,
                    dns,
                    connect,
                    tls_handshake: Duration::ZERO,
                    proxied,
                    trust_overridden: false,
                    uses: Arc::default(),
                    reads: None,
                },
                _permit: Some(permit),
                _h2: None,
            });
        }

        let name = ServerName::try_from(host.clone()).map_err(|e| {
            ConnectFailure::new(
                TransportErrorKind::InvalidUrl,
                format!("invalid TLS server name {host}: {e}"),
                None,
            )
        })?;
        // Each handshake gets its own resolver, to learn whether this server asks for a client
        // certificate.
        let known = state
            .identity
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let resolver = Arc::new(AskingResolver::new(known));
        let mut config = (*self.settings.tls).clone();
        config.client_auth_cert_resolver = resolver.clone();
        let handshake_started = Instant::now();
        let tls_stream = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(ConnectFailure::tls)?;
        let tls_handshake = handshake_started.elapsed();
        let trust_overridden = match decided {
            Some(d) if Some(d.chain.as_slice()) == tls_stream.get_ref().1.peer_certificates() => {
                d.overridden
            }
            _ => self.decide_trust(&tls_stream, &host, port).await?,
        };
        if resolver.asked_in_vain()
            && let Some(provider) = &self.settings.identities
        {
            match provider.identity(&host, port).await {
                IdentityDecision::Use(identity) => {
                    let crypto = rustls::crypto::ring::default_provider();
                    let key = CertifiedKey::from_der(identity.chain, identity.key, &crypto)
                        .map_err(|e| {
                            ConnectFailure::new(
                                TransportErrorKind::Tls(TlsFailure::ClientCertificateRejected),
                                format!("the client identity is unusable: {e}"),
                                None,
                            )
                        })?;
                    *state.identity.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(key));
                    // Connect again, presenting it (this connection goes, with its slot).
                    let decided = Decided {
                        chain: tls_stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
                            .unwrap_or_default(),
                        overridden: trust_overridden,
                    };
                    drop((tls_stream, permit, _probe));
                    return Box::pin(self.connect_trusting(uri_again, wanted, Some(decided))).await;
                }
                IdentityDecision::Cancel => {
                    return Err(ConnectFailure::new(
                        TransportErrorKind::Cancelled,
                        "cancelled at the client-certificate challenge",
                        None,
                    ));
                }
                // Without one: the server may accept the connection anyway.
                _ => {}
            }
        }
        let session = tls_stream.get_ref().1;
        let h2 = session.alpn_protocol() == Some(b"h2");
        let tls_version = session.protocol_version().map(|v| match v {
            rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3",
            rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2",
            _ => "TLS",
        });
        let cipher_suite = session
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str());
        if !h2 {
            state.speaks_h1.store(true, Ordering::Release);
            self.any_tls_h1.store(true, Ordering::Release);
        }
        let reads = h2.then(ReadPause::default);
        Ok(Conn {
            io: TokioIo::new(Stream::tls(
                tls_stream,
                Watch {
                    host: state.clone(),
                    presented_identity: resolver.presented(),
                    got_data: false,
                },
                ReadShare::new(self.open.clone()),
                reads.clone(),
            )),
            info: ConnectionInfo {
                id,
                remote,
                local,
                via_proxy,
                tls_version,
                cipher_suite,
                tls: true,
                h2,
                dns,
                connect,
                tls_handshake,
                proxied,
                trust_overridden,
                uses: Arc::default(),
                reads,
            },
            // HTTP/2 multiplexes every request on one connection: the per-host cap does not apply.
            _permit: if h2 { None } else { Some(permit) },
            _h2: h2.then(|| Counted::new(state.h2_open.clone())),
        })
    }
}
