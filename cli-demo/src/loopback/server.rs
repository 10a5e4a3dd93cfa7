//! `LoopbackServer`: an in-process hyper server on a loopback port, HTTP/1.1 and (over TLS, by
//! ALPN) HTTP/2, for `courier demo` and for Courier's tests, which add their own routes on top.
//!
//! The routes of [`demo_route`], all deterministic:
//! - `/bytes/N`: N bytes of [`pattern`], with Content-Length and an `ETag`.
//! - `/status/N`: status N, body `status N`.
//! - `/drip?chunks=C&size=S&delay_ms=D`: C chunks of S bytes of [`pattern`], D ms apart.
//! - `/hang`: never answers.
//! - `/upload`: reads the whole request body and answers `bytes=N sha256=HEX`.
//! - `/sink`: reads the whole request body and answers `bytes=N` (no digest: a bench's target).
//! - `/basic/USER/PASS`, `/digest/USER/PASS[?alg=SHA-256]`, `/basic-or-digest/USER/PASS`: protected;
//!   200 `welcome USER` with the right credential, 401 with challenges otherwise.
//! - `/cache/max-age/N`, `/cache/no-store`, `/cache/revalidate`: a body unique to each answer, with
//!   those caching rules; `revalidate` answers `If-None-Match: "r1"` with 304.
//! - `/chain/N`: N redirects (302, relative `Location`s), then 200 `end of chain`.
//! - `/resource/N[?chunk=C&delay_ms=D&name=NAME]`: N bytes of [`pattern`] as a resumable file
//!   (strong `ETag`, `Last-Modified`, `Range` with `If-Range`), sent C bytes at a time D ms apart,
//!   with NAME suggested as its file name (`Content-Disposition`); the `Range` headers asked are
//!   kept ([`LoopbackServer::ranges_asked`]).
//!
//! The server stops when the `LoopbackServer` is dropped. The routes are in `routes.rs`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use headers::HeaderMapExt;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use sha2::Digest;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::ca::LoopbackCa;

mod routes;

pub(crate) use routes::digest_matches;
pub use routes::{authenticate, demo_route, head_and_arg, query_text};

/// A response body.
pub type Body = BoxBody<Bytes, Infallible>;

/// Answers one request: [`demo_route`], or a test kit's routes in front of it.
pub type Router = fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>>;

/// Makes every `/cache` body unique.
static NEXT_TOKEN: AtomicUsize = AtomicUsize::new(0);

/// Byte `i` of every body the server makes: a pattern that catches reordered or shifted bytes.
pub fn pattern(i: usize) -> u8 {
    (i % PERIOD) as u8
}

/// The pattern's period: [`pattern`] repeats every this many bytes.
const PERIOD: usize = 251;

/// `n` bytes of [`pattern`] starting at offset `from`.
///
/// Copied a period at a time from one cycle of the pattern rather than computed byte by byte: a
/// remainder per byte cost the server 12 instructions a byte, 12,500 for every 1 KiB body, which
/// made this server, not the clients, the bound of the bench's small requests.
pub fn pattern_bytes(from: usize, n: usize) -> Vec<u8> {
    static CYCLE: std::sync::OnceLock<[u8; PERIOD]> = std::sync::OnceLock::new();
    let cycle = CYCLE.get_or_init(|| std::array::from_fn(pattern));
    let mut bytes = Vec::with_capacity(n);
    let mut at = from % PERIOD;
    while bytes.len() < n {
        let take = (PERIOD - at).min(n - bytes.len());
        bytes.extend_from_slice(&cycle[at..at + take]);
        at = 0;
    }
    bytes
}

/// SHA-256 of `bytes`, as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = sha2::Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A running loopback server.
pub struct LoopbackServer {
    addr: SocketAddr,
    tls: bool,
    accept: JoinHandle<()>,
    connections: Arc<Counters>,
    ranges: RangeLog,
}

/// The `Range` headers `/resource` was asked with, in order (requests carry it as an extension).
#[derive(Clone, Default)]
struct RangeLog(Arc<Mutex<Vec<Option<String>>>>);

/// Connection counts: accepted in all, open now, and the most open at once.
#[derive(Default)]
struct Counters {
    accepted: AtomicUsize,
    open: AtomicUsize,
    most: AtomicUsize,
}

impl Counters {
    /// Counts a new connection; the guard counts it closed when dropped.
    fn opened(self: &Arc<Self>) -> OpenConnection {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        let now = self.open.fetch_add(1, Ordering::AcqRel) + 1;
        self.most.fetch_max(now, Ordering::AcqRel);
        OpenConnection(self.clone())
    }
}

struct OpenConnection(Arc<Counters>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl LoopbackServer {
    /// Starts a cleartext HTTP/1.1 server on 127.0.0.1 answering with `router`.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn http(router: Router) -> LoopbackServer {
        LoopbackServer::start(None, router).await
    }

    /// Starts an HTTPS server (HTTP/2 and HTTP/1.1 by ALPN) presenting a leaf signed by `ca`.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn https(ca: &LoopbackCa, router: Router) -> LoopbackServer {
        let acceptor = tokio_rustls::TlsAcceptor::from(ca.server_config());
        LoopbackServer::start(Some(acceptor), router).await
    }

    /// Starts a server with `tls` (none: cleartext) answering with `router`.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn start(tls: Option<tokio_rustls::TlsAcceptor>, router: Router) -> LoopbackServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let connections = Arc::new(Counters::default());
        let ranges = RangeLog::default();
        let (counter, log) = (connections.clone(), ranges.clone());
        let is_tls = tls.is_some();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let open = counter.opened();
                let (tls, log) = (tls.clone(), log.clone());
                tokio::spawn(async move {
                    let _open = open;
                    let service = service_fn(move |mut req: Request<Incoming>| {
                        req.extensions_mut().insert(log.clone());
                        async move { Ok::<_, Infallible>(router(req).await) }
                    });
                    let builder = auto::Builder::new(TokioExecutor::new());
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                let _ = builder
                                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                        None => {
                            let _ = builder
                                .serve_connection_with_upgrades(TokioIo::new(tcp), service)
                                .await;
                        }
                    }
                });
            }
        });
        LoopbackServer {
            addr,
            tls: is_tls,
            accept,
            connections,
            ranges,
        }
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A URL for `path` on this server (`http://127.0.0.1:PORT/path`, or https; `localhost` for
    /// TLS so the certificate's name matches).
    pub fn url(&self, path: &str) -> String {
        if self.tls {
            format!("https://localhost:{}{}", self.addr.port(), path)
        } else {
            format!("http://127.0.0.1:{}{}", self.addr.port(), path)
        }
    }

    /// How many connections the server has accepted.
    pub fn connections(&self) -> usize {
        self.connections.accepted.load(Ordering::Relaxed)
    }

    /// The most connections that were open at the same time.
    pub fn most_concurrent_connections(&self) -> usize {
        self.connections.most.load(Ordering::Relaxed)
    }

    /// The `Range` header of every `/resource` request so far (none for a request without one).
    pub fn ranges_asked(&self) -> Vec<Option<String>> {
        self.ranges
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// A response with `status` and a whole body.
pub fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = status;
    r
}

/// Reads a request's whole body, handing each chunk to `each`; its length, or `None` when the
/// body broke off.
async fn read_body(req: Request<Incoming>, mut each: impl FnMut(&Bytes)) -> Option<usize> {
    let mut body = req.into_body();
    let mut n = 0usize;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.ok()?.into_data() {
            n += data.len();
            each(&data);
        }
    }
    Some(n)
}

/// A number from the query string (`key=N`), or `default`.
pub fn query(req: &Request<Incoming>, key: &str, default: u64) -> u64 {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_bytes_are_the_pattern_from_any_offset() {
        // Offsets across two periods, lengths from none to several periods and their edges.
        for from in 0..2 * PERIOD + 3 {
            for n in [0, 1, PERIOD - 1, PERIOD, PERIOD + 1, 1024, 3 * PERIOD + 7] {
                let expected: Vec<u8> = (from..from + n).map(pattern).collect();
                assert_eq!(pattern_bytes(from, n), expected, "from {from}, {n} bytes");
            }
        }
    }
}
