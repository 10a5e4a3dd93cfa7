//! `ResourceServer`: one downloadable resource on a loopback HTTP/1.1 server, with byte ranges done
//! right and faults injected on demand, one per request, from a script.
//!
//! The resource is `size` bytes that depend on its version (so a changed resource really has other
//! bytes), served under any path with a strong `ETag` (`"v<version>"`), `Last-Modified` and
//! `Accept-Ranges: bytes`. `Range` with `If-Range` is honoured as RFC 9110 says, unless the script's
//! fault for that request says otherwise. Every request is logged ([`Served`]), so tests can check
//! what a resumed download asked for and how much it fetched.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use headers::HeaderMapExt;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What goes wrong with one response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Nothing: a correct answer.
    None,
    /// Announce the full length, send this many body bytes, then close the connection.
    CutAfter(usize),
    /// Send this many body bytes, then stall (never send more, never close).
    StallAfter(usize),
    /// Announce this many bytes more than the body has, send the body, then close.
    OverstateLength(usize),
    /// Ignore `Range`: answer 200 with the whole resource.
    IgnoreRange,
    /// Answer a range request with a 206 that starts this many bytes before the asked offset.
    WrongOffset(usize),
    /// Answer a range request with 416.
    NotSatisfiable,
    /// The resource changes (new bytes, new `ETag`) before this request is answered.
    Change,
    /// The resource changes and grows by this many bytes before this request is answered, but
    /// keeps its `ETag` and `Last-Modified`: a server whose validators missed the change.
    GrowKeepingValidators(usize),
    /// Answer 503 Service Unavailable with `Retry-After: <secs>` and a short body.
    Unavailable {
        /// The `Retry-After` in seconds.
        retry_after_secs: u64,
    },
    /// Send the body in chunks of this many bytes, `delay_ms` apart.
    Drip {
        /// Bytes per chunk.
        chunk: usize,
        /// Milliseconds between chunks.
        delay_ms: u64,
    },
}

/// One request, as the server answered it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    /// The request's path (any path serves the resource; tests tell their tasks apart by it).
    pub path: String,
    /// When the request arrived.
    pub at: std::time::Instant,
    /// The `Range` header, if any.
    pub range: Option<String>,
    /// The `If-Range` header, if any.
    pub if_range: Option<String>,
    /// The status answered.
    pub status: u16,
    /// The first byte of the resource the body started at.
    pub start: usize,
    /// Body bytes the answer was to carry (a fault may send fewer).
    pub body_len: usize,
}

struct Shared {
    size: AtomicUsize,
    version: AtomicU32,
    /// The version whose validators are sent (the current one, unless a change kept them).
    validators_of: AtomicU32,
    /// Whether every answer says `Content-Encoding: gzip` (`ResourceServer::label_as_gzip`).
    labelled_gzip: std::sync::atomic::AtomicBool,
    script: Mutex<VecDeque<Misbehaviour>>,
    log: Mutex<Vec<Served>>,
}

/// A running resource server.
pub struct ResourceServer {
    addr: SocketAddr,
    accept: JoinHandle<()>,
    shared: Arc<Shared>,
}

/// Byte `i` of version `v` of the resource.
fn byte(v: u32, i: usize) -> u8 {
    ((i as u64 * 31 + u64::from(v) * 17 + (i as u64 >> 12)) % 253) as u8
}

type Body = BoxBody<Bytes, std::io::Error>;

impl ResourceServer {
    /// Starts serving a resource of `size` bytes on 127.0.0.1.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn start(size: usize) -> ResourceServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            size: AtomicUsize::new(size),
            version: AtomicU32::new(1),
            validators_of: AtomicU32::new(1),
            labelled_gzip: std::sync::atomic::AtomicBool::new(false),
            script: Mutex::new(VecDeque::new()),
            log: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| serve(s.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        ResourceServer {
            addr,
            accept,
            shared,
        }
    }

    /// The resource's URL (any path serves it; this one names a file).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/files/resource.bin", self.addr.port())
    }

    /// Adds faults for the next requests, one per request, in order. Requests past the script are
    /// answered correctly.
    pub fn script(&self, faults: impl IntoIterator<Item = Misbehaviour>) {
        self.shared.script.lock().expect("script").extend(faults);
    }

    /// From now on every answer carries `Content-Encoding: gzip`, as a server that labels its
    /// `.gz` files with their own coding does (the bytes are not gzip: a client that decodes them
    /// fails).
    pub fn label_as_gzip(&self) {
        self.shared.labelled_gzip.store(true, Ordering::SeqCst);
    }

    /// The resource's current bytes.
    pub fn content(&self) -> Vec<u8> {
        let v = self.shared.version.load(Ordering::SeqCst);
        let size = self.shared.size.load(Ordering::SeqCst);
        (0..size).map(|i| byte(v, i)).collect()
    }

    /// Every request so far.
    pub fn served(&self) -> Vec<Served> {
        self.shared.log.lock().expect("log").clone()
    }
}

impl Drop for ResourceServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn serve(s: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let fault = s
        .script
        .lock()
        .expect("script")
        .pop_front()
        .unwrap_or(Misbehaviour::None);
    match fault {
        Misbehaviour::Change => {
            let v = s.version.fetch_add(1, Ordering::SeqCst) + 1;
            s.validators_of.store(v, Ordering::SeqCst);
        }
        Misbehaviour::GrowKeepingValidators(more) => {
            s.version.fetch_add(1, Ordering::SeqCst);
            s.size.fetch_add(more, Ordering::SeqCst);
        }
        _ => {}
    }
    let version = s.version.load(Ordering::SeqCst);
    let size = s.size.load(Ordering::SeqCst);
    let shown = s.validators_of.load(Ordering::SeqCst);
    let etag = format!("\"v{shown}\"");
    let last_modified = last_modified(shown);
    let header = |name: http::header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let range_text = header(http::header::RANGE);
    let if_range = header(http::header::IF_RANGE);
    // If-Range: the range applies only if the validator still matches (RFC 9110 13.1.5).
    let range_applies = range_text.is_some()
        && if_range
            .as_deref()
            .is_none_or(|v| v == etag || v == last_modified);
    let asked = req
        .headers()
        .typed_get::<headers::Range>()
        .and_then(|r| r.satisfiable_ranges(size as u64).next())
        .map(|(start, _)| match start {
            std::ops::Bound::Included(n) => n as usize,
            std::ops::Bound::Excluded(n) => n as usize + 1,
            std::ops::Bound::Unbounded => 0,
        })
        .filter(|start| *start < size);
    let (status, start) = match (range_applies, fault, asked) {
        (false, _, _) | (_, Misbehaviour::IgnoreRange, _) => (StatusCode::OK, 0),
        (true, Misbehaviour::NotSatisfiable, _) | (true, _, None) => {
            (StatusCode::RANGE_NOT_SATISFIABLE, size)
        }
        (true, Misbehaviour::WrongOffset(back), Some(at)) => {
            (StatusCode::PARTIAL_CONTENT, at.saturating_sub(back.max(1)))
        }
        (true, _, Some(at)) => (StatusCode::PARTIAL_CONTENT, at),
    };
    let path = req.uri().path().to_owned();
    if let Misbehaviour::Unavailable { retry_after_secs } = fault {
        s.log.lock().expect("log").push(Served {
            path,
            at: std::time::Instant::now(),
            range: range_text,
            if_range,
            status: 503,
            start: 0,
            body_len: 4,
        });
        let r = Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .header(http::header::RETRY_AFTER, retry_after_secs)
            .header(http::header::CONTENT_LENGTH, 4)
            .body(
                http_body_util::Full::new(Bytes::from_static(b"busy"))
                    .map_err(|e| match e {})
                    .boxed(),
            )
            .expect("response");
        return Ok(r);
    }
    let body_len = size - start;
    s.log.lock().expect("log").push(Served {
        path,
        at: std::time::Instant::now(),
        range: range_text,
        if_range,
        status: status.as_u16(),
        start,
        body_len,
    });

    let mut builder = Response::builder()
        .status(status)
        .header(
            http::header::ETAG,
            HeaderValue::from_str(&etag).expect("ascii"),
        )
        .header(http::header::LAST_MODIFIED, last_modified.as_str())
        .header(http::header::ACCEPT_RANGES, "bytes");
    if s.labelled_gzip.load(Ordering::SeqCst) {
        builder = builder.header(http::header::CONTENT_ENCODING, "gzip");
    }
    if status == StatusCode::RANGE_NOT_SATISFIABLE {
        let r = builder
            .header(http::header::CONTENT_RANGE, format!("bytes */{size}"))
            .header(http::header::CONTENT_LENGTH, 0)
            .body(http_body_util::Empty::new().map_err(|e| match e {}).boxed())
            .expect("response");
        return Ok(r);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        builder = builder.header(
            http::header::CONTENT_RANGE,
            format!("bytes {}-{}/{}", start, size - 1, size),
        );
    }
    let announced = match fault {
        Misbehaviour::OverstateLength(extra) => body_len + extra,
        _ => body_len,
    };
    builder = builder.header(http::header::CONTENT_LENGTH, announced);
    let (send_len, stall, chunk, delay) = match fault {
        Misbehaviour::CutAfter(n) => (n.min(body_len), false, 64 * 1024, 0),
        Misbehaviour::StallAfter(n) => (n.min(body_len), true, 64 * 1024, 0),
        Misbehaviour::Drip { chunk, delay_ms } => (body_len, false, chunk.max(1), delay_ms),
        _ => (body_len, false, 64 * 1024, 0),
    };
    let (mut tx, body) = http_body_util::channel::Channel::<Bytes, std::io::Error>::new(2);
    tokio::spawn(async move {
        let mut at = start;
        let end = start + send_len;
        while at < end {
            let n = chunk.min(end - at);
            let data: Vec<u8> = (at..at + n).map(|i| byte(version, i)).collect();
            if tx.send_data(Bytes::from(data)).await.is_err() {
                return;
            }
            at += n;
            if delay > 0 && at < end {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
        }
        if stall {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        // Ending early (cut, overstated length): the connection closes with the body short. The
        // pause lets what was sent reach the client first, so a cut lands exactly where asked.
        if send_len < announced {
            tokio::time::sleep(Duration::from_millis(100)).await;
            tx.abort(std::io::Error::other("cut"));
        }
    });
    Ok(builder.body(body.boxed()).expect("response"))
}

/// The `Last-Modified` of version `v`: a second later per version.
fn last_modified(v: u32) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_secs(784_111_777 + u64::from(v));
    httpdate::fmt_http_date(t)
}
