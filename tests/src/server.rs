//! `TestServer`: an in-process hyper server on a loopback port, HTTP/1.1 and (over TLS) HTTP/2.
//!
//! Routes, all deterministic:
//! - `/bytes/N`: N bytes of [`pattern`], with Content-Length.
//! - `/status/N`: status N, body `status N`.
//! - `/drip?chunks=C&size=S&delay_ms=D`: C chunks of S bytes of [`pattern`], D ms apart.
//! - `/hang`: never answers.
//! - `/headers`: the request headers as `name: value` lines, sorted.
//! - `/echo`: the request body back; the method in `x-method`.
//! - `/upload`: reads the whole request body and answers `bytes=N sha256=HEX`.
//! - `/307/PATH`, `/308/PATH`: a redirect to `/PATH` that keeps the method and body.
//! - `/redirect/CODE?to=LOCATION`: status CODE with that `Location` (none without `to`).
//! - `/gzip/N`, `/deflate/N`, `/br/N`: N bytes of [`pattern`], content-encoded; `/badgzip`: a body
//!   that claims gzip and is not; `/bomb`: 256 MiB of zeros as about 256 KiB of gzip.
//! - `/basic/USER/PASS`, `/digest/USER/PASS[?alg=SHA-256]`, `/basic-or-digest/USER/PASS`: protected;
//!   200 `welcome USER` with the right credential, 401 with challenges otherwise.
//! - `/cookie/NAME/VALUE[?to=LOCATION][&max_age=SECS]`: sets a cookie (persistent with `max_age`);
//!   with `to`, in a 302 to LOCATION.
//! - `/parts/N[?delay_ms=D]`: `multipart/x-mixed-replace` with N parts `part I`.
//! - `/cache/max-age/N`, `/cache/no-store`, `/cache/revalidate`: a body unique to each answer, with
//!   those caching rules; `revalidate` answers `If-None-Match: "r1"` with 304.
//! - `/chain/N`: N redirects (302, relative `Location`s), then 200 `end of chain`.
//!
//! Used by the tests and by `courier demo`. The server stops when the `TestServer` is dropped.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
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

use crate::tls::TestCa;

type Body = BoxBody<Bytes, Infallible>;

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

/// A running loopback server.
pub struct TestServer {
    addr: SocketAddr,
    tls: bool,
    accept: JoinHandle<()>,
    connections: Arc<Counters>,
}

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

impl TestServer {
    /// Starts a cleartext HTTP/1.1 server on 127.0.0.1.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn http() -> TestServer {
        TestServer::start(None).await
    }

    /// Starts an HTTPS server like [`TestServer::https`] that requires a client certificate issued
    /// by `ca`.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn https_requiring_client_cert(ca: &TestCa) -> TestServer {
        let acceptor = tokio_rustls::TlsAcceptor::from(ca.server_config_requiring_client_cert());
        TestServer::start(Some(acceptor)).await
    }

    /// Starts an HTTPS server (HTTP/2 and HTTP/1.1 by ALPN) presenting a leaf signed by `ca`.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn https(ca: &TestCa) -> TestServer {
        TestServer::start(Some(tokio_rustls::TlsAcceptor::from(ca.server_config()))).await
    }

    /// As [`TestServer::https`], speaking TLS 1.2 only.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn https_tls12_only(ca: &TestCa) -> TestServer {
        let config = ca.server_config_with_versions(&[&rustls::version::TLS12]);
        TestServer::start(Some(tokio_rustls::TlsAcceptor::from(config))).await
    }

    async fn start(tls: Option<tokio_rustls::TlsAcceptor>) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let connections = Arc::new(Counters::default());
        let counter = connections.clone();
        let is_tls = tls.is_some();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let open = counter.opened();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let _open = open;
                    let service = service_fn(route);
                    let builder = auto::Builder::new(TokioExecutor::new());
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                let _ = builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                        }
                    }
                });
            }
        });
        TestServer {
            addr,
            tls: is_tls,
            accept,
            connections,
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
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = status;
    r
}

fn query(req: &Request<Incoming>, key: &str, default: u64) -> u64 {
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
async fn authenticate(kind: &str, arg: &str, req: &Request<Incoming>) -> Response<Body> {
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
        crate::sha256_hex(format!("{:?}", std::time::SystemTime::now()).as_bytes())
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
fn digest_matches(given: &str, user: &str, pass: &str, method: &str, alg: &str) -> bool {
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
            crate::sha256_hex(data.as_bytes())
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

/// `data` compressed with `encoding` (`gzip`, `deflate` as zlib, or `br`).
pub fn compress(encoding: &str, data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    match encoding {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).expect("in memory");
            e.finish().expect("in memory")
        }
        "deflate" => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).expect("in memory");
            e.finish().expect("in memory")
        }
        _ => {
            let mut out = Vec::new();
            let mut e = brotli::CompressorWriter::new(&mut out, 64 * 1024, 5, 22);
            e.write_all(data).expect("in memory");
            drop(e);
            out
        }
    }
}

/// `mib` MiB of zeros compressed with `encoding`, made once per size and encoding.
fn bomb(encoding: &str, mib: usize) -> Bytes {
    use std::io::Write;
    static MADE: std::sync::Mutex<Vec<(String, usize, Bytes)>> = std::sync::Mutex::new(Vec::new());
    let mut made = MADE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, _, b)) = made.iter().find(|(e, m, _)| e == encoding && *m == mib) {
        return b.clone();
    }
    let zeros = vec![0u8; 1 << 20];
    let mut out = Vec::new();
    match encoding {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(&mut out, flate2::Compression::best());
            (0..mib).for_each(|_| e.write_all(&zeros).expect("in memory"));
            e.finish().expect("in memory");
        }
        "deflate" => {
            let mut e = flate2::write::ZlibEncoder::new(&mut out, flate2::Compression::best());
            (0..mib).for_each(|_| e.write_all(&zeros).expect("in memory"));
            e.finish().expect("in memory");
        }
        _ => {
            let mut e = brotli::CompressorWriter::new(&mut out, 1 << 20, 9, 24);
            (0..mib).for_each(|_| e.write_all(&zeros).expect("in memory"));
            drop(e);
        }
    }
    let body = Bytes::from(out);
    made.push((encoding.to_owned(), mib, body.clone()));
    body
}

fn encoded(encoding: &str, data: &[u8]) -> Response<Body> {
    let mut r = full(StatusCode::OK, compress(encoding, data));
    if let Ok(v) = http::HeaderValue::from_str(encoding) {
        r.headers_mut().insert(http::header::CONTENT_ENCODING, v);
    }
    r
}

fn query_text<'a>(req: &'a Request<Incoming>, key: &str) -> Option<&'a str> {
    req.uri()
        .query()?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

async fn route(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let head = parts.next().unwrap_or("");
    let arg = parts.next().unwrap_or("");
    let response = match head {
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
        "headers" => {
            let mut lines: Vec<String> = req
                .headers()
                .iter()
                .map(|(k, v)| format!("{}: {}", k, v.to_str().unwrap_or("?")))
                .collect();
            lines.sort();
            full(StatusCode::OK, lines.join("\n"))
        }
        "echo" => {
            let method = req.method().to_string();
            let body = req
                .into_body()
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let mut r = full(StatusCode::OK, body);
            if let Ok(v) = http::HeaderValue::from_str(&method) {
                r.headers_mut().insert("x-method", v);
            }
            r
        }
        "basic" | "digest" | "basic-or-digest" => authenticate(head, arg, &req).await,
        "gzip" | "deflate" | "br" => match arg.parse::<usize>() {
            // `/gzip/N`, `/deflate/N`, `/br/N`: N bytes of [`pattern`], encoded.
            Ok(n) => encoded(head, &pattern_bytes(0, n)),
            Err(_) => full(StatusCode::BAD_REQUEST, "bad length"),
        },
        "cookie" => {
            // `/cookie/NAME/VALUE[?to=LOCATION]`: sets the cookie (Path=/); with `to`, as a 302.
            let (name, value) = arg.split_once('/').unwrap_or((arg, ""));
            let mut r = match query_text(&req, "to") {
                Some(to) => {
                    let mut r = full(StatusCode::FOUND, "cookie and redirect");
                    if let Ok(v) = http::HeaderValue::from_str(to) {
                        r.headers_mut().insert(http::header::LOCATION, v);
                    }
                    r
                }
                None => full(StatusCode::OK, "cookie set"),
            };
            let max_age = query_text(&req, "max_age")
                .map(|a| format!("; Max-Age={a}"))
                .unwrap_or_default();
            if let Ok(v) = http::HeaderValue::from_str(&format!("{name}={value}; Path=/{max_age}"))
            {
                r.headers_mut().append(http::header::SET_COOKIE, v);
            }
            r
        }
        "parts" => {
            // `/parts/N?delay_ms=D`: multipart/x-mixed-replace with N parts `part I`, D ms apart.
            let n = arg.parse::<usize>().unwrap_or(1);
            let delay = Duration::from_millis(query(&req, "delay_ms", 5));
            let (mut tx, body) = http_body_util::channel::Channel::<Bytes, Infallible>::new(1);
            tokio::spawn(async move {
                for i in 0..n {
                    let part = format!(
                        "--frame\r\nContent-Type: text/plain\r\nX-Part: {i}\r\n\r\npart {i}\r\n"
                    );
                    if tx.send_data(Bytes::from(part)).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(delay).await;
                }
                let _ = tx.send_data(Bytes::from_static(b"--frame--\r\n")).await;
            });
            let mut r = Response::new(body.boxed());
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("multipart/x-mixed-replace; boundary=frame"),
            );
            r
        }
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
        "disposition" => {
            // `/disposition?value=TEXT`: a small attachment whose Content-Disposition is TEXT
            // (percent-decoded), as a server would suggest a file name.
            let value = query_text(&req, "value").unwrap_or("attachment");
            let value = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
            let mut r = full(StatusCode::OK, "attached");
            if let Ok(v) = http::HeaderValue::from_str(&value) {
                r.headers_mut().insert(http::header::CONTENT_DISPOSITION, v);
            }
            r
        }
        "many-headers" => {
            // `/many-headers/N`: a 200 with N extra header fields.
            let n = arg.parse::<usize>().unwrap_or(0);
            let mut r = full(StatusCode::OK, "many headers");
            for i in 0..n {
                if let Ok(name) = http::HeaderName::from_bytes(format!("x-h{i}").as_bytes()) {
                    r.headers_mut()
                        .insert(name, http::HeaderValue::from_static("v"));
                }
            }
            r
        }
        "encoded-as" => {
            // A short body labelled with any Content-Encoding (a decoder's test hook, say).
            let mut r = full(StatusCode::OK, "not really encoded");
            if let Ok(v) = http::HeaderValue::from_str(arg) {
                r.headers_mut().insert(http::header::CONTENT_ENCODING, v);
            }
            r
        }
        "badgzip" => {
            let mut r = full(StatusCode::OK, "this is not gzip at all, not even close");
            r.headers_mut().insert(
                http::header::CONTENT_ENCODING,
                http::HeaderValue::from_static("gzip"),
            );
            r
        }
        "bomb" => {
            // 256 MiB of zeros, gzip-compressed once (about 256 KiB): a decompression bomb.
            static BOMB: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
            let body = BOMB.get_or_init(|| compress("gzip", &vec![0u8; 256 << 20]));
            let mut r = full(StatusCode::OK, body.clone());
            r.headers_mut().insert(
                http::header::CONTENT_ENCODING,
                http::HeaderValue::from_static("gzip"),
            );
            r
        }
        "bomb-of" => {
            // `/bomb-of/ENCODING/MIB`: MIB MiB of zeros in that encoding, compressed once (in 1 MiB
            // steps) and kept: the bench's decompression-bomb part.
            let (encoding, mib) = arg.split_once('/').unwrap_or((arg, "1"));
            let mib: usize = mib.parse().unwrap_or(1).min(4096);
            let body = bomb(encoding, mib);
            let mut r = full(StatusCode::OK, body);
            if let Ok(v) = http::HeaderValue::from_str(encoding) {
                r.headers_mut().insert(http::header::CONTENT_ENCODING, v);
            }
            r
        }
        "upload" => {
            // Reads every byte (a server that answers first would let a client skip the body).
            let mut body = req.into_body();
            let mut hasher = sha2::Sha256::new();
            let mut n = 0usize;
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else {
                    return Ok(full(StatusCode::BAD_REQUEST, "body broke"));
                };
                if let Ok(data) = frame.into_data() {
                    n += data.len();
                    hasher.update(&data);
                }
            }
            let hex: String = hasher
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            full(StatusCode::OK, format!("bytes={n} sha256={hex}"))
        }
        "redirect" => {
            // `/redirect/CODE?to=LOCATION`: that status, that Location (none without `to`), a body.
            let code = arg
                .parse::<u16>()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok());
            let Some(code) = code else {
                return Ok(full(StatusCode::BAD_REQUEST, "bad status"));
            };
            let mut r = full(code, "redirect body");
            if let Some(to) = query_text(&req, "to")
                && let Ok(v) = http::HeaderValue::from_str(to)
            {
                r.headers_mut().insert(http::header::LOCATION, v);
            }
            r
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
        "307" | "308" => {
            let code = if head == "307" {
                StatusCode::TEMPORARY_REDIRECT
            } else {
                StatusCode::PERMANENT_REDIRECT
            };
            let mut r = full(code, "moved");
            if let Ok(v) = http::HeaderValue::from_str(&format!("/{arg}")) {
                r.headers_mut().insert(http::header::LOCATION, v);
            }
            r
        }
        "" => full(StatusCode::OK, "courier test server\n"),
        _ => full(StatusCode::NOT_FOUND, "not found"),
    };
    Ok(response)
}
