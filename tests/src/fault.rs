//! `FaultServer`: a raw TCP server that misbehaves in one precise way, for the error paths hyper's
//! well-behaved server cannot produce.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How the server misbehaves, for every connection.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Reads the request, then closes without a byte of response.
    CloseWithoutResponse,
    /// Sends a head announcing `announced` bytes, sends `sent` of them, then closes.
    CloseMidBody {
        /// The Content-Length it announces.
        announced: usize,
        /// How many body bytes it sends before closing.
        sent: usize,
    },
    /// Reads the request and never answers.
    Stall,
    /// Answers with bytes that are not HTTP.
    Garbage,
    /// Answers a chunked `200` whose first chunk is whole (`ok`) and whose next chunk-size line is
    /// not hexadecimal.
    BadChunk,
    /// Answers `103 Early Hints` (with a `Link` header), then `200` with the body `ok`.
    EarlyHints,
    /// Answers a connection's first request (`200`, `ok`, kept alive), then closes without a byte
    /// when the next request on it comes: a kept-alive connection the server gave up on as the
    /// request went out (its idle timeout, its request limit).
    DropsKeptAlive,
    /// Ignores `Expect: 100-continue`: never says `100 Continue`, reads the whole body its
    /// `Content-Length` announces, then answers `200` with how many body bytes it read.
    IgnoresExpect,
    /// Answers `200` with `ok` and a head past RFC 9112's letter that user agents read anyway: a
    /// field folded over two lines (`x-folded: one` / ` two`) and one with a space before its
    /// colon (`x-spaced : v`).
    LenientHead,
}

/// A running fault server; stops when dropped.
pub struct FaultServer {
    addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl FaultServer {
    /// Starts a server with `fault` on 127.0.0.1.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn start(fault: Fault) -> FaultServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let accept = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(serve(tcp, fault));
            }
        });
        FaultServer { addr, accept }
    }

    /// `http://127.0.0.1:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.addr.port(), path)
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Reads up to the end of the request head; returns what was read (the head, and any body bytes
/// that came with it).
pub(crate) async fn read_head(tcp: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    buf
}

/// Reads the body the head in `read` announces, counting the bytes that came with the head.
async fn read_body(tcp: &mut TcpStream, read: &[u8]) -> usize {
    let Some(end) = read.windows(4).position(|w| w == b"\r\n\r\n") else {
        return 0;
    };
    let head = String::from_utf8_lossy(&read[..end]).to_ascii_lowercase();
    let announced = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut got = read.len() - (end + 4);
    let mut chunk = vec![0u8; 64 * 1024];
    while got < announced {
        match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    got
}

async fn serve(mut tcp: TcpStream, fault: Fault) {
    let read = read_head(&mut tcp).await;
    match fault {
        Fault::CloseWithoutResponse => {}
        Fault::CloseMidBody { announced, sent } => {
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {announced}\r\n\r\n");
            let _ = tcp.write_all(head.as_bytes()).await;
            let _ = tcp.write_all(&crate::server::pattern_bytes(0, sent)).await;
            let _ = tcp.flush().await;
        }
        Fault::Stall => tokio::time::sleep(Duration::from_secs(3600)).await,
        Fault::Garbage => {
            let _ = tcp.write_all(b"this is not HTTP at all\r\n\r\n").await;
        }
        Fault::BadChunk => {
            let _ = tcp
                .write_all(
                    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
                      2\r\nok\r\nzz\r\nmore\r\n0\r\n\r\n",
                )
                .await;
            // Held open: the failure is the malformed line, not the connection's end.
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Fault::LenientHead => {
            let _ = tcp
                .write_all(
                    b"HTTP/1.1 200 OK\r\nx-folded: one\r\n two\r\nx-spaced : v\r\n\
                      content-length: 2\r\n\r\nok",
                )
                .await;
        }
        Fault::EarlyHints => {
            let _ = tcp
                .write_all(
                    b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n\
                      HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
                )
                .await;
        }
        Fault::DropsKeptAlive => {
            let _ = tcp
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await;
            // The next request on the connection is read, and not answered.
            let _ = read_head(&mut tcp).await;
        }
        Fault::IgnoresExpect => {
            let got = read_body(&mut tcp, &read).await.to_string();
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{got}",
                got.len()
            );
            let _ = tcp.write_all(answer.as_bytes()).await;
        }
    }
    let _ = tcp.shutdown().await;
}
