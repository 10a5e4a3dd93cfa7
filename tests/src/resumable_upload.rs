//! A server of the IETF resumable-upload draft (draft-ietf-httpbis-resumable-upload), as far as an
//! upload task meets it: it answers an upload that offers resumption (`Upload-Complete: ?1`) with
//! `104 (Upload Resumption Supported)` and the upload resource's `Location`, may cut the
//! connection after some of the body (or stop reading it), tells the resource's offset to `HEAD`
//! (and whether it holds the whole upload) and takes the rest by `PATCH`; an upload resource it
//! was told to forget answers `404`. Raw HTTP/1.1 over TCP, one request a connection: hyper's
//! server sends no `104`.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The upload resource's path.
pub const UPLOAD_RESOURCE: &str = "/uploads/1";

/// What goes wrong with one request that carries body bytes (an upload, a `PATCH`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Read this many of its body bytes, then reset the connection.
    After(usize),
    /// Read this many of its body bytes, then read no more (the connection stays open until the
    /// client closes it).
    StallAfter(usize),
}

/// What the server saw and holds.
#[derive(Default)]
struct State {
    /// The representation's bytes the upload resource holds.
    received: Vec<u8>,
    /// The representation's length, as the upload said (`Upload-Length`).
    length: Option<usize>,
    /// The upload resource was forgotten (expired): it answers `404`.
    gone: bool,
    /// What goes wrong with the next requests that carry body bytes, in order.
    cuts: VecDeque<Cut>,
    /// The `Location` the `104` names.
    location: String,
    /// Each `PATCH`: its `Upload-Offset` and how many bytes it carried.
    appends: Vec<(u64, usize)>,
    /// How many `HEAD` requests asked for the offset.
    heads: usize,
    /// The upload requests' `Upload-Length`, as sent.
    lengths: Vec<String>,
}

/// A running resumable-upload server; stops when dropped.
pub struct ResumableUploadServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    accept: JoinHandle<()>,
}

impl ResumableUploadServer {
    /// Starts a server on 127.0.0.1 whose `104` names `location` (`None`: [`UPLOAD_RESOURCE`] on
    /// this server) and that cuts the first upload after `cut_after` body bytes.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn start(cut_after: Option<usize>, location: Option<&str>) -> ResumableUploadServer {
        let server = ResumableUploadServer::with_cuts([], location).await;
        server.cut(cut_after.map(Cut::After));
        server
    }

    /// Starts a server whose `104` names `location` (`None`: [`UPLOAD_RESOURCE`] on this server),
    /// and whose requests with body bytes meet `cuts`, one each, in order.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn with_cuts(
        cuts: impl IntoIterator<Item = Cut>,
        location: Option<&str>,
    ) -> ResumableUploadServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State {
            cuts: cuts.into_iter().collect(),
            location: location.unwrap_or(UPLOAD_RESOURCE).to_owned(),
            ..State::default()
        }));
        let serving = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(serve(tcp, serving.clone()));
            }
        });
        ResumableUploadServer {
            addr,
            state,
            accept,
        }
    }

    /// `http://127.0.0.1:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.addr.port(), path)
    }

    /// Adds `cut`, when given, for the next request with body bytes that meets none.
    pub fn cut(&self, cut: Option<Cut>) {
        self.state().cuts.extend(cut);
    }

    /// Holds `bytes` as the upload resource's, as if an upload had sent them.
    pub fn set_received(&self, bytes: Vec<u8>) {
        self.state().received = bytes;
    }

    /// Forgets the upload resource (as one expires): it answers `404` from now on.
    pub fn forget(&self) {
        self.state().gone = true;
    }

    /// Names `location` in the `104`s from now on.
    pub fn announce(&self, location: &str) {
        self.state().location = location.to_owned();
    }

    /// The bytes the upload resource holds.
    pub fn received(&self) -> Vec<u8> {
        self.state().received.clone()
    }

    /// Each `PATCH`'s `Upload-Offset` and length.
    pub fn appends(&self) -> Vec<(u64, usize)> {
        self.state().appends.clone()
    }

    /// How many times the offset was asked for.
    pub fn heads(&self) -> usize {
        self.state().heads
    }

    /// The `Upload-Length` of each upload request that offered resumption.
    pub fn lengths(&self) -> Vec<String> {
        self.state().lengths.clone()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for ResumableUploadServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// A request's method, path and fields (names in lower case), and the body bytes read with them.
async fn read_head(
    tcp: &mut TcpStream,
) -> Option<(String, String, HashMap<String, String>, Vec<u8>)> {
    let buf = crate::fault::read_head(tcp).await;
    // A connection that closed before a whole head: nothing to answer.
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_owned(), first.next()?.to_owned());
    let fields = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Some((method, path, fields, buf[end + 4..].to_vec()))
}

/// Reads the body up to `want` bytes (those read with the head first).
async fn read_body(tcp: &mut TcpStream, mut body: Vec<u8>, want: usize) -> Vec<u8> {
    let mut chunk = vec![0u8; 64 * 1024];
    while body.len() < want {
        match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    body.truncate(want);
    body
}

/// `100 Continue`, when the request asked for it.
async fn continue_if_asked(tcp: &mut TcpStream, asked: bool) {
    if asked {
        let _ = tcp.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await;
    }
}

async fn answer(tcp: &mut TcpStream, status: &str, fields: &str, body: &str) {
    let text = format!(
        "HTTP/1.1 {status}\r\n{fields}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tcp.write_all(text.as_bytes()).await;
    let _ = tcp.flush().await;
}

/// What the server answers an upload that leaves it holding `received`: its length and SHA-256.
pub fn whole(received: &[u8]) -> String {
    format!("{} {}", received.len(), crate::sha256_hex(received))
}

/// How many of `length` body bytes a request that meets `cut` has read.
fn limit(cut: Option<Cut>, length: usize) -> usize {
    match cut {
        Some(Cut::After(n) | Cut::StallAfter(n)) => n.min(length),
        None => length,
    }
}

/// Ends a request that met `cut` without an answer: true when it did. A cut connection drops with
/// the rest of the body unread (a reset); a stalled one reads nothing more, and is held for a
/// while (longer than any test waits for it) before it drops.
async fn end_early(cut: Option<Cut>) -> bool {
    match cut {
        Some(Cut::After(_)) => true,
        Some(Cut::StallAfter(_)) => {
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            true
        }
        None => false,
    }
}

async fn serve(mut tcp: TcpStream, state: Arc<Mutex<State>>) {
    let Some((method, path, fields, read)) = read_head(&mut tcp).await else {
        return;
    };
    let lock = || state.lock().unwrap_or_else(|p| p.into_inner());
    let length = fields
        .get("content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let asked_to_continue = fields
        .get("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    match (method.as_str(), path.as_str()) {
        ("HEAD" | "PATCH", UPLOAD_RESOURCE) if lock().gone => {
            answer(&mut tcp, "404 Not Found", "", "").await;
        }
        ("HEAD", UPLOAD_RESOURCE) => {
            let (offset, complete) = {
                let mut s = lock();
                s.heads += 1;
                let held = s.received.len();
                (held, Some(held) == s.length)
            };
            let complete = if complete { "?1" } else { "?0" };
            answer(
                &mut tcp,
                "204 No Content",
                &format!(
                    "upload-offset: {offset}\r\nupload-complete: {complete}\r\ncache-control: no-store\r\n"
                ),
                "",
            )
            .await;
        }
        ("PATCH", UPLOAD_RESOURCE) => {
            let held = lock().received.len() as u64;
            let offset = fields
                .get("upload-offset")
                .and_then(|v| v.parse::<u64>().ok());
            let partial = fields
                .get("content-type")
                .is_some_and(|v| v == "application/partial-upload");
            if offset != Some(held) || !partial {
                answer(
                    &mut tcp,
                    "409 Conflict",
                    &format!("upload-offset: {held}\r\n"),
                    "",
                )
                .await;
                return;
            }
            continue_if_asked(&mut tcp, asked_to_continue).await;
            let cut = lock().cuts.pop_front();
            let body = read_body(&mut tcp, read, limit(cut, length)).await;
            let said = {
                let mut s = lock();
                s.appends.push((held, body.len()));
                s.received.extend_from_slice(&body);
                whole(&s.received)
            };
            if end_early(cut).await {
                return;
            }
            answer(&mut tcp, "200 OK", "upload-complete: ?1\r\n", &said).await;
        }
        _ => {
            let offered = fields.get("upload-complete").is_some_and(|v| v == "?1");
            let (location, cut) = {
                let mut s = lock();
                if offered {
                    let said = fields.get("upload-length").cloned().unwrap_or_default();
                    s.length = said.parse().ok();
                    s.lengths.push(said);
                }
                // A new upload: the resource starts empty.
                s.received.clear();
                s.gone = false;
                (s.location.clone(), s.cuts.pop_front())
            };
            if offered {
                let interim = format!(
                    "HTTP/1.1 104 Upload Resumption Supported\r\nlocation: {location}\r\n\r\n"
                );
                let _ = tcp.write_all(interim.as_bytes()).await;
            }
            continue_if_asked(&mut tcp, asked_to_continue).await;
            let body = read_body(&mut tcp, read, limit(cut, length)).await;
            let said = {
                let mut s = lock();
                s.received.extend_from_slice(&body);
                whole(&s.received)
            };
            if end_early(cut).await {
                return;
            }
            answer(&mut tcp, "200 OK", "", &said).await;
        }
    }
}
