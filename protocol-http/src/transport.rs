//! `Transport`: sends requests over pooled HTTP/1.1 and HTTP/2 connections and returns streamed
//! responses. One per session, so connections are shared by the session's tasks and no one else's.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_pki_types::CertificateDer;

use crate::connect::{Connector, ConnectorSettings, Naming};
use crate::error::{TransportError, TransportErrorKind};
use crate::identity::ClientIdentityProvider;
use crate::proxy::Proxies;
use crate::tls::TlsVersion;
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
    /// Certificates trusted as roots besides Mozilla's. A server that presents one of these as its
    /// own certificate is trusted too, for the names it covers (a self-signed certificate).
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
    /// Which requests go through an HTTP proxy (default: none).
    pub proxies: Arc<Proxies>,
    /// The oldest TLS version accepted.
    pub tls_minimum_version: TlsVersion,
    /// The newest TLS version accepted.
    pub tls_maximum_version: TlsVersion,
    /// How names become addresses: those given for a host and port instead of DNS's (curl's
    /// `--resolve`; the host is still the request's, in `Host`, TLS's server name and the
    /// certificate check), and one IP version only (curl's `-4`, `-6`).
    pub naming: Arc<Naming>,
    /// HTTPS offers HTTP/1.1 alone in its ALPN, never HTTP/2 (curl's `--http1.1`, reqwest's
    /// `http1_only`).
    pub http1_only: bool,
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
            proxies: Arc::new(Proxies::none()),
            tls_minimum_version: TlsVersion::default(),
            tls_maximum_version: TlsVersion::Tls13,
            naming: Arc::default(),
            http1_only: false,
        }
    }
}

/// The most connections switched to another protocol (WebSocket) open to one host at once.
const UPGRADED_CONNECTIONS_PER_HOST: usize = 1024;

/// The most header fields an HTTP/1.1 response head may have. Also hyper's default, and the size of
/// its parser's inline buffer: a larger cap would make hyper allocate two buffers per response.
pub const MAX_RESPONSE_HEADERS: usize = 100;
/// The most bytes a response head may take: an HTTP/2 header list, and an HTTP/1.1 head, which
/// must fit in one read buffer (curl allows 100 KiB per header line, 300 KiB in all).
///
/// It is also the most an HTTP/1.1 connection reads at once (hyper has one limit for both). A
/// download holds each read's bytes until its batch is written, so every read fills a new buffer:
/// at 128 KiB, a 1 GiB download took 1.49 s of CPU (median of 57 runs, `perf stat`), faulting
/// 13,200 pages in; at 256 KiB, 1.37 s and 2,700 faults, for 0.3 MiB more peak RSS. hyper's
/// default (about 400 KiB) let several 400 KiB buffers live at once (BENCHMARKS.md, issue 10).
pub const MAX_HEAD_BYTES: usize = 256 * 1024;

/// The HTTP/2 flow-control window of each stream (the connection's is twice this).
const H2_STREAM_WINDOW: u32 = 32 << 20;

/// A connection pool and the client that uses it. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct Transport {
    /// The client and its pool; replaced by [`Transport::renew`].
    client: Arc<RwLock<Client<Connector, RequestBody>>>,
    builder: hyper_util::client::legacy::Builder,
    pub(crate) connector: Connector,
    /// Requests that ask to switch protocols (a WebSocket handshake): HTTP/1.1 only, on
    /// connections of their own (ALPN offers `http/1.1` alone, and nothing goes back to a pool:
    /// the connection becomes the new protocol's).
    upgrades: Client<Connector, RequestBody>,
}

/// How HTTP/1.1 response heads are read, on every connection. Bounded: past the limits the
/// response is refused as unparsable instead of filling memory. Lenient where a user agent may be
/// (RFC 9112 5.2, 5.1) and curl and browsers are: a field folded over lines (`obs-fold`) is read
/// as one line, and spaces between a field's name and its colon are dropped; hyper refused both,
/// and the response failed with -1017.
fn read_http1_heads(
    builder: &mut hyper_util::client::legacy::Builder,
) -> &mut hyper_util::client::legacy::Builder {
    builder
        .http1_max_headers(MAX_RESPONSE_HEADERS)
        .http1_max_buf_size(MAX_HEAD_BYTES)
        .http1_allow_obsolete_multiline_headers_in_responses(true)
        .http1_allow_spaces_after_header_name_in_responses(true)
}

impl Transport {
    /// Builds a transport. It needs no runtime to be built; [`Transport::send`] must run on a Tokio
    /// runtime.
    ///
    /// # Errors
    /// An unusable extra root certificate.
    pub fn new(settings: &TransportSettings) -> Result<Transport, TransportError> {
        let tls = crate::tls::client_config(
            &settings.extra_roots,
            settings.trust.is_some(),
            settings.tls_minimum_version,
            settings.tls_maximum_version,
        )?;
        let trust = match (settings.trust.clone(), tls.deferred) {
            (Some(evaluator), Some(standard)) => Some((evaluator, standard)),
            _ => None,
        };
        let mut http1_only = (*tls.config).clone();
        http1_only.alpn_protocols = vec![b"http/1.1".to_vec()];
        let http1_only = Arc::new(http1_only);
        let connector_settings = ConnectorSettings {
            tls: if settings.http1_only {
                http1_only.clone()
            } else {
                tls.config
            },
            trust,
            identities: settings.identities.clone(),
            connect_timeout: settings.connect_timeout,
            max_connections_per_host: settings.max_connections_per_host,
            proxies: settings.proxies.clone(),
            tunnel_cleartext: false,
            naming: settings.naming.clone(),
        };
        let upgrade_connector = Connector::new(ConnectorSettings {
            tls: http1_only,
            // An upgraded connection is held for as long as its protocol runs (a WebSocket may stay
            // open for hours): it does not take one of the host's few slots for requests.
            max_connections_per_host: UPGRADED_CONNECTIONS_PER_HOST,
            tunnel_cleartext: true,
            ..connector_settings.clone()
        });
        let connector = Connector::new(connector_settings);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            // At least as many idle connections as the cap, or the pool closes and reopens them.
            .pool_max_idle_per_host(settings.max_connections_per_host.max(1))
            .pool_idle_timeout(settings.pool_idle_timeout)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .http2_max_header_list_size(MAX_HEAD_BYTES as u32)
            // HTTP/2 flow-control windows open wide from the first byte (curl's 32 MiB per
            // stream), with twice that for the connection so that one stream whose reader waits
            // (a suspended task, a slow delegate) cannot stall the others. A window bounds a
            // stream at one window per round trip: 128 MiB over 40 ms round trips took 0.37-0.39
            // s with these (curl 0.36-0.37 s), 1.07-1.14 s with hyper's adaptive windows (which
            // start at 64 KiB and grow for half a second) and 3.1 s with hyper's fixed 2 MiB /
            // 5 MiB (reqwest's). What a window lets in waits in memory only while a reader is
            // behind: a download holds its connection's reads while its file catches up
            // (`ReadPause`), so over loopback a 1 GiB download peaks at 11.6 MiB with these
            // windows (BENCHMARKS.md, 2026-12-04 evening). A reader that waits indefinitely lets
            // its stream's window fill the connection's buffers (two such, the connection's).
            .http2_initial_stream_window_size(H2_STREAM_WINDOW)
            .http2_initial_connection_window_size(2 * H2_STREAM_WINDOW);
        read_http1_heads(&mut builder);
        let client = builder.build(connector.clone());
        let mut upgrades = Client::builder(TokioExecutor::new());
        upgrades.pool_max_idle_per_host(0).timer(TokioTimer::new());
        let upgrades = read_http1_heads(&mut upgrades).build(upgrade_connector);
        Ok(Transport {
            client: Arc::new(RwLock::new(client)),
            builder,
            connector,
            upgrades,
        })
    }

    /// Starts a new pool: later requests use new connections (URLSession's `reset` and `flush`).
    /// Requests under way finish on theirs, which close once they are done. With `forget_identities`,
    /// the client certificates hosts were given are forgotten too, so the next connection asks again.
    pub fn renew(&self, forget_identities: bool) {
        if forget_identities {
            self.connector.forget_identities();
        }
        let fresh = self.builder.build(self.connector.clone());
        *self.client.write().unwrap_or_else(|p| p.into_inner()) = fresh;
    }

    /// True when a request to `uri` goes over HTTP/1.1 for sure (cleartext, or a TLS host seen to
    /// negotiate HTTP/1.1): where `Expect: 100-continue` and 1xx responses work.
    pub fn speaks_http1(&self, uri: &http::Uri) -> bool {
        self.connector.speaks_http1(uri)
    }

    /// [`Transport::speaks_http1`] for a host's key, when there is no URI at hand.
    pub fn host_speaks_http1(&self, host: &crate::host_key::HostKey) -> bool {
        self.connector.host_speaks_http1(host)
    }

    /// The HTTP proxy a request to `uri` goes through, if any: who a `407` answering it comes
    /// from.
    pub fn http_proxy(&self, uri: &http::Uri) -> Option<HttpProxy> {
        self.connector.http_proxy(uri)
    }

    /// Sends `request` and waits for the response head. The body streams from the returned
    /// response; it is read only as fast as the caller polls it.
    ///
    /// The request is prepared (proxy credentials, the pool to use) as this is called, not when
    /// the future is first polled: the future then holds only what the wait needs, not the
    /// request twice over (an `async fn` keeps its arguments as well as its locals). Every
    /// transfer's future was 296 bytes larger (3,728 against 3,432, `-Zprint-type-sizes`).
    ///
    /// # Errors
    /// The failure, classified by [`crate::TransportErrorKind`].
    #[allow(
        clippy::manual_async_fn,
        reason = "an `async fn` stores its arguments twice"
    )]
    pub fn send(
        &self,
        mut request: http::Request<RequestBody>,
    ) -> impl Future<Output = Result<http::Response<Incoming>, TransportError>> + Send + '_ {
        // Proxy credentials are for the proxy only: on a cleartext request to it, or on the
        // tunnel's CONNECT for https; never to the origin.
        let given = request
            .headers_mut()
            .remove(http::header::PROXY_AUTHORIZATION);
        let upgrade = request.headers().contains_key(http::header::UPGRADE);
        // A request that switches protocols goes through a tunnel even in cleartext: its proxy
        // credentials go on the `CONNECT` only.
        if !upgrade
            && let Some(auth) = self
                .connector
                .proxy_authorization(request.uri(), given.clone())
        {
            request
                .headers_mut()
                .insert(http::header::PROXY_AUTHORIZATION, auth);
        }
        // Read again only when the request fails (a cheap clone: the URI's parts are shared).
        let uri = request.uri().clone();
        // The future owns what it needs: the lock is not held while it runs.
        let sent = if upgrade {
            // The answer's `OnUpgrade` (in its extensions) hands over the connection.
            self.upgrades.request(request)
        } else {
            self.client
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .request(request)
        };
        async move {
            crate::connect::for_one_request(given, sent)
                .await
                .map(detach_head)
                .map_err(|e| {
                    let error = TransportError::from_client(e);
                    // A connection that died of a client-certificate alert read by its own task.
                    match (error.kind(), uri.scheme_str() == Some("https")) {
                        (
                            TransportErrorKind::ConnectionLost
                            | TransportErrorKind::ClosedBeforeResponse,
                            true,
                        ) => match self.connector.recent_alert(
                            true,
                            uri.host().unwrap_or(""),
                            uri.port_u16().unwrap_or(443),
                        ) {
                            Some(failure) => error.reclassified(TransportErrorKind::Tls(failure)),
                            None => error,
                        },
                        _ => error,
                    }
                })
        }
    }
}

/// The response with its header values copied out of the connection's read buffer, all into one
/// small buffer of their own.
///
/// hyper parses a head in place: each value is a slice of the buffer the connection read it into,
/// so a kept response (a task's, until the task is let go of) keeps that whole buffer (8 KiB and
/// more), and the connection must allocate a new one for its next read instead of reusing it.
fn detach_head(response: http::Response<Incoming>) -> http::Response<Incoming> {
    let (mut parts, body) = response.into_parts();
    detach(&mut parts.headers);
    http::Response::from_parts(parts, body)
}

/// Moves every value of `headers` (in place, its sensitivity kept) into one buffer of their own.
fn detach(headers: &mut http::HeaderMap) {
    let mut values = bytes::BytesMut::with_capacity(headers.values().map(|v| v.len()).sum());
    for value in headers.values() {
        values.extend_from_slice(value.as_bytes());
    }
    let mut values = values.freeze();
    // `values_mut` goes through the values in the order `values` did.
    for value in headers.values_mut() {
        let own = values.split_to(value.len());
        // The bytes were a valid value a moment ago, so this always succeeds.
        if let Ok(mut own) = http::HeaderValue::from_maybe_shared(own) {
            own.set_sensitive(value.is_sensitive());
            *value = own;
        }
    }
}

/// The HTTP proxy a request goes through ([`Transport::http_proxy`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpProxy {
    /// The proxy's host.
    pub host: String,
    /// The proxy's port.
    pub port: u16,
    /// The user and password in the proxy's URL (`http://user:pass@proxy:3128`).
    pub login: Option<(String, String)>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn a_detached_head_is_the_same_and_lets_the_read_buffer_go() {
        // A head parsed in place: every value a slice of the "read buffer".
        let buffer = Bytes::from(b"text/plainabcsecret1secret2".to_vec());
        let mut headers = http::HeaderMap::new();
        let slice =
            |a: usize, b: usize| http::HeaderValue::from_maybe_shared(buffer.slice(a..b)).unwrap();
        headers.insert(http::header::CONTENT_TYPE, slice(0, 10));
        headers.insert("x-custom", slice(10, 13));
        let mut secret = slice(13, 20);
        secret.set_sensitive(true);
        headers.append(http::header::SET_COOKIE, secret);
        headers.append(http::header::SET_COOKIE, slice(20, 27));
        headers.insert("x-empty", http::HeaderValue::from_static(""));
        let mut copy = headers.clone();
        detach(&mut copy);
        assert_eq!(copy, headers);
        let cookies: Vec<_> = copy.get_all(http::header::SET_COOKIE).iter().collect();
        assert_eq!(cookies, ["secret1", "secret2"]);
        assert!(cookies[0].is_sensitive() && !cookies[1].is_sensitive());
        drop(headers);
        assert!(
            buffer.is_unique(),
            "nothing of the copy points into the read buffer"
        );
    }

    /// A keep-alive HTTP/1.1 server that answers every request with `ok` after a short pause, and
    /// counts the connections it accepted.
    async fn keep_alive_server() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    loop {
                        let Ok(n) = socket.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if socket.write_all(answer).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connect_the_pool_outran_stops_waiting_once_its_request_is_served() {
        let (addr, accepted) = keep_alive_server().await;
        let transport = Transport::new(&TransportSettings {
            max_connections_per_host: 1,
            pool_idle_timeout: Duration::from_millis(150),
            ..TransportSettings::default()
        })
        .unwrap();
        let sends: Vec<_> = (0..10)
            .map(|_| {
                let (t, url) = (transport.clone(), format!("http://{addr}/"));
                tokio::spawn(async move {
                    let request = http::Request::get(url).body(empty_body()).unwrap();
                    let response = t.send(request).await.unwrap();
                    response.into_body().collect().await.unwrap().to_bytes()
                })
            })
            .collect();
        for send in sends {
            assert_eq!(&send.await.unwrap()[..], b"ok");
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "ten requests, one connection"
        );
        // The idle connection closes after 150 ms and frees the host's slot. A connect that was
        // still waiting for it (started for a request the pool served first) would open a
        // connection now, and again after each idle close.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "no connection is opened once every request is served"
        );
    }
}
