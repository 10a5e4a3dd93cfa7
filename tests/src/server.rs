//! `TestServer`: the loopback server of `courier_cli::loopback` with the tests' own routes in front
//! of the demo's (see [`courier_cli::loopback::server`] for those), and the TLS variants tests need.
//!
//! The tests' routes, all deterministic:
//! - `/headers`: the request headers as `name: value` lines, sorted (a body is read and dropped).
//! - `/echo`: the request body back; the method in `x-method`.
//! - `/307/PATH`, `/308/PATH`: a redirect to `/PATH` that keeps the method and body; with
//!   `?after_body=1`, answered once the body was read (without it, before).
//! - `/redirect/CODE?to=LOCATION`: status CODE with that `Location` (none without `to`).
//! - `/gzip/N`, `/deflate/N`, `/br/N`: N bytes of [`pattern`], content-encoded; `/badgzip`: a body
//!   that claims gzip and is not; `/bomb`: 256 MiB of zeros as about 256 KiB of gzip;
//!   `/bomb-of/ENCODING/MIB`: MIB MiB of zeros in any encoding; `/encoded-as/ENCODING`: a short
//!   body labelled with that encoding; `/gzip-then-br/N`: N bytes gzipped, then brotli-encoded,
//!   with a `Content-Encoding` line for each.
//! - `/cookie/NAME/VALUE[?to=LOCATION][&max_age=SECS]`: sets a cookie (persistent with `max_age`);
//!   with `to`, in a 302 to LOCATION.
//! - `/parts/N[?delay_ms=D]`: `multipart/x-mixed-replace` with N parts `part I`.
//! - `/disposition?value=TEXT`: an attachment with that `Content-Disposition`.
//! - `/many-headers/N`: a response with N header fields.
//! - `/no-expect`: `417 Expectation Failed` to a request with `Expect: 100-continue` (its body
//!   unread), as some servers answer it; otherwise the body's length, as `bytes=N`.
//!
//! The server stops when the `TestServer` is dropped.

use std::convert::Infallible;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use courier_cli::loopback::server::{
    Body, LoopbackServer, demo_route, full, head_and_arg, query, query_text,
};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

pub use courier_cli::loopback::server::{pattern, pattern_bytes};

use crate::TestCa;

/// A running loopback server with the tests' routes.
pub struct TestServer(LoopbackServer);

impl Deref for TestServer {
    type Target = LoopbackServer;

    fn deref(&self) -> &LoopbackServer {
        &self.0
    }
}

impl TestServer {
    /// Starts a cleartext HTTP/1.1 server on 127.0.0.1.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn http() -> TestServer {
        TestServer(LoopbackServer::http(route).await)
    }

    /// Starts an HTTPS server (HTTP/2 and HTTP/1.1 by ALPN) presenting a leaf signed by `ca`.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn https(ca: &TestCa) -> TestServer {
        TestServer(LoopbackServer::https(ca, route).await)
    }

    /// Starts an HTTPS server like [`TestServer::https`] that requires a client certificate issued
    /// by `ca`.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn https_requiring_client_cert(ca: &TestCa) -> TestServer {
        let acceptor = tokio_rustls::TlsAcceptor::from(ca.server_config_requiring_client_cert());
        TestServer(LoopbackServer::start(Some(acceptor), route).await)
    }

    /// As [`TestServer::https`], speaking TLS 1.2 only.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn https_tls12_only(ca: &TestCa) -> TestServer {
        let config = ca.server_config_with_versions(&[&rustls::version::TLS12]);
        TestServer(
            LoopbackServer::start(Some(tokio_rustls::TlsAcceptor::from(config)), route).await,
        )
    }
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

/// The request's body, read to its end (empty when it fails). Not an `async fn`: that would keep
/// the whole request in the future of every answer (it is the bench's server too), where this
/// keeps only the body being read.
fn whole_body(req: Request<Incoming>) -> impl Future<Output = Bytes> {
    let reading = req.into_body().collect();
    async move { reading.await.map(|c| c.to_bytes()).unwrap_or_default() }
}

fn route(req: Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> {
    Box::pin(answer(req))
}

async fn answer(req: Request<Incoming>) -> Response<Body> {
    let (head, arg) = head_and_arg(&req);
    let (head, arg) = (head.as_str(), arg.as_str());
    match head {
        "headers" => {
            let mut lines: Vec<String> = req
                .headers()
                .iter()
                .map(|(k, v)| format!("{}: {}", k, v.to_str().unwrap_or("?")))
                .collect();
            lines.sort();
            // The body is read (and dropped): an upload's connection is not reset under it.
            whole_body(req).await;
            full(StatusCode::OK, lines.join("\n"))
        }
        "no-expect" => {
            let expects = req.headers().contains_key(http::header::EXPECT);
            if expects {
                return full(StatusCode::EXPECTATION_FAILED, "");
            }
            let body = whole_body(req).await;
            full(StatusCode::OK, format!("bytes={}", body.len()))
        }
        "echo" => {
            let method = req.method().to_string();
            let body = whole_body(req).await;
            let mut r = full(StatusCode::OK, body);
            if let Ok(v) = http::HeaderValue::from_str(&method) {
                r.headers_mut().insert("x-method", v);
            }
            r
        }
        "gzip" | "deflate" | "br" => match arg.parse::<usize>() {
            // `/gzip/N`, `/deflate/N`, `/br/N`: N bytes of [`pattern`], encoded.
            Ok(n) => encoded(head, &pattern_bytes(0, n)),
            Err(_) => full(StatusCode::BAD_REQUEST, "bad length"),
        },
        "gzip-then-br" => match arg.parse::<usize>() {
            Ok(n) => {
                let body = compress("br", &compress("gzip", &pattern_bytes(0, n)));
                let mut r = full(StatusCode::OK, body);
                for coding in ["gzip", "br"] {
                    r.headers_mut().append(
                        http::header::CONTENT_ENCODING,
                        http::HeaderValue::from_static(coding),
                    );
                }
                r
            }
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
        "redirect" => {
            // `/redirect/CODE?to=LOCATION`: that status, that Location (none without `to`), a body.
            let code = arg
                .parse::<u16>()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok());
            let Some(code) = code else {
                return full(StatusCode::BAD_REQUEST, "bad status");
            };
            let mut r = full(code, "redirect body");
            if let Some(to) = query_text(&req, "to")
                && let Ok(v) = http::HeaderValue::from_str(to)
            {
                r.headers_mut().insert(http::header::LOCATION, v);
            }
            r
        }
        "307" | "308" => {
            let code = if head == "307" {
                StatusCode::TEMPORARY_REDIRECT
            } else {
                StatusCode::PERMANENT_REDIRECT
            };
            if query_text(&req, "after_body").is_some() {
                // The body taken first: a resend must send it anew.
                let _ = req.into_body().collect().await;
            }
            let mut r = full(code, "moved");
            if let Ok(v) = http::HeaderValue::from_str(&format!("/{arg}")) {
                r.headers_mut().insert(http::header::LOCATION, v);
            }
            r
        }
        _ => demo_route(req).await,
    }
}
