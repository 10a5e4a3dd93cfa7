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
//! - `/resource/N[?chunk=C&delay_ms=D]`: N bytes of [`pattern`] as a resumable file (strong
//!   `ETag`, `Last-Modified`, `Range` with `If-Range`), sent C bytes at a time D ms apart; the
//!   `Range` headers asked are kept ([`LoopbackServer::ranges_asked`]).
//!
//! The server stops when the `LoopbackServer` is dropped.

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

/// A response body.
pub type Body = BoxBody<Bytes, Infallible>;

/// Answers one request: [`demo_route`], or a test kit's routes in front of it.
pub type Router = fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>>;

/// Makes every `/cache` body unique.
static NEXT_TOKEN: AtomicUsize = AtomicUsize::new(0);

/// Byte `i` of every body the server makes: a pattern that catches reordered or shifted bytes.
pub fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

/// `n` bytes of [`pattern`] starting at offset `from`.
pub fn pattern_bytes(from: usize, n: usize) -> Vec<u8> {
    (from..from + n).map(pattern).collect()
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

/// `/basic/USER/PASS`, `/digest/USER/PASS[?alg=SHA-256]`, `/basic-or-digest/USER/PASS`: 200
/// `welcome USER` with the right credential, else 401 with the challenges. Digest answers are checked
/// here with code of the test kit's own, not the engine's.
pub async fn authenticate(kind: &str, arg: &str, req: &Request<Incoming>) -> Response<Body> {
    let arg = percent_encoding::percent_decode_str(arg).decode_utf8_lossy();
    let (user, pass) = arg.split_once('/').unwrap_or((&arg, ""));
    let alg = query_text(req, "alg").unwrap_or("MD5").to_owned();
    let given = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let basic_ok = {
        use base64::Engine as _;
        let expected = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        given == format!("Basic {expected}")
    };
    let digest_ok = digest_matches(given, user, pass, req.method().as_str(), &alg);
    let ok = match kind {
        "basic" => basic_ok,
        "digest" => digest_ok,
        _ => basic_ok || digest_ok,
    };
    if ok {
        return full(StatusCode::OK, format!("welcome {user}"));
    }
    let mut r = full(StatusCode::UNAUTHORIZED, "who are you?");
    let digest = format!(
        "Digest realm=\"digest-realm\", qop=\"auth\", algorithm={alg}, nonce=\"{}\", opaque=\"opaque-1\"",
        sha256_hex(format!("{:?}", std::time::SystemTime::now()).as_bytes())
    );
    let headers = r.headers_mut();
    if kind != "digest" {
        headers.append(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Basic realm=\"basic-realm\""),
        );
    }
    if kind != "basic"
        && let Ok(v) = http::HeaderValue::from_str(&digest)
    {
        headers.append(http::header::WWW_AUTHENTICATE, v);
    }
    r
}

/// Checks a Digest `Authorization` (RFC 7616, qop=auth) against the user and password.
pub(crate) fn digest_matches(given: &str, user: &str, pass: &str, method: &str, alg: &str) -> bool {
    let Some(rest) = given.strip_prefix("Digest ") else {
        return false;
    };
    let field = |name: &str| -> Option<String> {
        rest.split(", ").find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k.trim() == name).then(|| v.trim_matches('"').to_owned())
        })
    };
    let h = |data: String| -> String {
        if alg == "SHA-256" {
            sha256_hex(data.as_bytes())
        } else {
            use md5::Digest as _;
            md5::Md5::digest(data.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        }
    };
    let (Some(realm), Some(nonce), Some(uri), Some(nc), Some(cnonce), Some(response)) = (
        field("realm"),
        field("nonce"),
        field("uri"),
        field("nc"),
        field("cnonce"),
        field("response"),
    ) else {
        return false;
    };
    if field("username").as_deref() != Some(user) || field("opaque").as_deref() != Some("opaque-1")
    {
        return false;
    }
    let ha1 = h(format!("{user}:{realm}:{pass}"));
    let ha2 = h(format!("{method}:{uri}"));
    response == h(format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"))
}

/// A value from the query string (`key=text`), as written.
pub fn query_text<'a>(req: &'a Request<Incoming>, key: &str) -> Option<&'a str> {
    req.uri()
        .query()?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// The demo's routes (see the module's documentation); 404 for any other path.
pub fn demo_route(req: Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> {
    Box::pin(answer(req))
}

/// `/ws-echo`: a WebSocket that echoes every message (RFC 6455's handshake answered here, the
/// framing tokio-tungstenite's). Anything but a WebSocket handshake gets a 400.
fn web_socket_echo(mut req: Request<Incoming>) -> Response<Body> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
    use tokio_tungstenite::tungstenite::protocol::Role;
    let key = req
        .headers()
        .get(http::header::SEC_WEBSOCKET_KEY)
        .map(|k| derive_accept_key(k.as_bytes()));
    let upgrade = req
        .headers()
        .get(http::header::UPGRADE)
        .is_some_and(|u| u.as_bytes().eq_ignore_ascii_case(b"websocket"));
    let (Some(accept), true) = (key, upgrade) else {
        return full(
            StatusCode::BAD_REQUEST,
            "a WebSocket handshake was expected",
        );
    };
    let upgrading = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrading.await else {
            return;
        };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            None,
        )
        .await;
        while let Some(Ok(message)) = ws.next().await {
            if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
                return;
            }
        }
    });
    let mut r = full(StatusCode::SWITCHING_PROTOCOLS, "");
    let h = r.headers_mut();
    h.insert(
        http::header::UPGRADE,
        http::HeaderValue::from_static("websocket"),
    );
    h.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("Upgrade"),
    );
    if let Ok(v) = http::HeaderValue::from_str(&accept) {
        h.insert(http::header::SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}

/// Splits a path into its first segment and the rest: `/digest/ann/pw` is (`digest`, `ann/pw`).
pub fn head_and_arg(req: &Request<Incoming>) -> (String, String) {
    let path = req.uri().path().trim_start_matches('/');
    let (head, arg) = path.split_once('/').unwrap_or((path, ""));
    (head.to_owned(), arg.to_owned())
}

async fn answer(req: Request<Incoming>) -> Response<Body> {
    let (head, arg) = head_and_arg(&req);
    let (head, arg) = (head.as_str(), arg.as_str());
    match head {
        "ws-echo" => web_socket_echo(req),
        "bytes" => match arg.parse::<usize>() {
            Ok(n) => {
                let mut r = full(StatusCode::OK, pattern_bytes(0, n));
                r.headers_mut()
                    .insert("etag", http::HeaderValue::from_static("\"v1\""));
                r
            }
            Err(_) => full(StatusCode::BAD_REQUEST, "bad length"),
        },
        "status" => match arg
            .parse::<u16>()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
        {
            Some(code) => full(code, format!("status {}", code.as_u16())),
            None => full(StatusCode::BAD_REQUEST, "bad status"),
        },
        "drip" => {
            let chunks = query(&req, "chunks", 10) as usize;
            let size = query(&req, "size", 1024) as usize;
            let delay = Duration::from_millis(query(&req, "delay_ms", 10));
            let (mut tx, body) = http_body_util::channel::Channel::<Bytes, Infallible>::new(1);
            tokio::spawn(async move {
                for i in 0..chunks {
                    if i > 0 {
                        tokio::time::sleep(delay).await;
                    }
                    if tx
                        .send_data(Bytes::from(pattern_bytes(i * size, size)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
            let mut r = Response::new(body.boxed());
            r.headers_mut()
                .insert(http::header::CONTENT_LENGTH, (chunks * size).into());
            r
        }
        "hang" => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            full(StatusCode::OK, "late")
        }
        "basic" | "digest" | "basic-or-digest" => authenticate(head, arg, &req).await,
        "cache" => {
            // `/cache/max-age/N`, `/cache/no-store`, `/cache/revalidate`: a body that differs on every
            // answer (so a test can tell a cached one), with those caching rules. `revalidate`
            // answers 304 (with `x-revalidated: yes`) to `If-None-Match: "r1"`.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let token = format!(
                "token {}-{nanos}",
                NEXT_TOKEN.fetch_add(1, Ordering::Relaxed)
            );
            let (control, etag) = match arg.split_once('/') {
                Some(("max-age", n)) => (format!("max-age={n}"), "\"m1\""),
                _ if arg == "no-store" => ("no-store".to_owned(), "\"n1\""),
                _ => ("no-cache".to_owned(), "\"r1\""),
            };
            let matched = req
                .headers()
                .get(http::header::IF_NONE_MATCH)
                .is_some_and(|v| v.as_bytes() == etag.as_bytes());
            let mut r = if matched && arg == "revalidate" {
                let mut r = full(StatusCode::NOT_MODIFIED, "");
                r.headers_mut()
                    .insert("x-revalidated", http::HeaderValue::from_static("yes"));
                r
            } else {
                full(StatusCode::OK, token)
            };
            let h = r.headers_mut();
            if let Ok(v) = http::HeaderValue::from_str(&control) {
                h.insert(http::header::CACHE_CONTROL, v);
            }
            h.insert(http::header::ETAG, http::HeaderValue::from_static(etag));
            r
        }
        // Both read every byte (a server that answers first would let a client skip the body);
        // `/sink` only counts them, the cheapest honest upload target (a bench's).
        "sink" => match read_body(req, |_| {}).await {
            Some(n) => full(StatusCode::OK, format!("bytes={n}")),
            None => full(StatusCode::BAD_REQUEST, "body broke"),
        },
        "upload" => {
            let mut hasher = sha2::Sha256::new();
            let Some(n) = read_body(req, |data| hasher.update(data)).await else {
                return full(StatusCode::BAD_REQUEST, "body broke");
            };
            let hex: String = hasher
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            full(StatusCode::OK, format!("bytes={n} sha256={hex}"))
        }
        "chain" => match arg.parse::<u32>() {
            // `/chain/N`: N redirects (302, relative Locations), then 200.
            Ok(0) => full(StatusCode::OK, "end of chain"),
            Ok(n) => {
                let mut r = full(StatusCode::FOUND, "hop");
                let next = format!("{}", n - 1);
                if let Ok(v) = http::HeaderValue::from_str(&next) {
                    r.headers_mut().insert(http::header::LOCATION, v);
                }
                r
            }
            Err(_) => full(StatusCode::BAD_REQUEST, "bad length"),
        },
        "" => full(StatusCode::OK, "courier loopback server\n"),
        "resource" => match arg.parse::<usize>() {
            Ok(size) => resource(&req, size),
            Err(_) => full(StatusCode::BAD_REQUEST, "bad length"),
        },
        _ => full(StatusCode::NOT_FOUND, "not found"),
    }
}

/// `/resource/N`: a resumable file of N bytes of [`pattern`], paced by `chunk` and `delay_ms`.
fn resource(req: &Request<Incoming>, size: usize) -> Response<Body> {
    const ETAG: &str = "\"r1\"";
    let last_modified =
        httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_secs(784_111_777));
    let text = |name| {
        req.headers()
            .get(name)
            .and_then(|v: &http::HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let range = text(http::header::RANGE);
    if let Some(log) = req.extensions().get::<RangeLog>() {
        log.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(range.clone());
    }
    // If-Range: the range applies only if the validator still matches (RFC 9110 13.1.5).
    let applies = range.is_some()
        && text(http::header::IF_RANGE)
            .as_deref()
            .is_none_or(|v| v == ETAG || v == last_modified);
    let start = req
        .headers()
        .typed_get::<headers::Range>()
        .and_then(|r| r.satisfiable_ranges(size as u64).next())
        .and_then(|(start, _)| match start {
            std::ops::Bound::Included(n) => Some(n as usize),
            _ => None,
        })
        .filter(|n| applies && *n < size);
    let mut builder = Response::builder()
        .header(http::header::ETAG, ETAG)
        .header(http::header::LAST_MODIFIED, last_modified.as_str())
        .header(http::header::ACCEPT_RANGES, "bytes");
    let from = match start {
        Some(n) => {
            builder = builder.status(StatusCode::PARTIAL_CONTENT).header(
                http::header::CONTENT_RANGE,
                format!("bytes {n}-{}/{size}", size - 1),
            );
            n
        }
        None => 0,
    };
    let chunk = (query(req, "chunk", 64 * 1024) as usize).max(1);
    let delay = Duration::from_millis(query(req, "delay_ms", 0));
    let (mut tx, body) = http_body_util::channel::Channel::<Bytes, Infallible>::new(2);
    tokio::spawn(async move {
        let mut at = from;
        while at < size {
            let n = chunk.min(size - at);
            if tx
                .send_data(Bytes::from(pattern_bytes(at, n)))
                .await
                .is_err()
            {
                return;
            }
            at += n;
            if at < size {
                tokio::time::sleep(delay).await;
            }
        }
    });
    builder
        .header(http::header::CONTENT_LENGTH, size - from)
        .body(body.boxed())
        .unwrap_or_else(|_| full(StatusCode::INTERNAL_SERVER_ERROR, "bad response"))
}
