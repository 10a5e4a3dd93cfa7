//! `ProxyServer`: a loopback HTTP proxy for the demo and the tests, in the two ways clients use one: `CONNECT`
//! tunnels (for `https`) and absolute-form requests (for `http`), each relayed byte for byte to
//! the server named. It records what it was asked, and can require Basic credentials (407
//! without them).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the proxy was asked on one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Asked {
    /// The request line: `CONNECT host:port HTTP/1.1`, or `GET http://host:port/path HTTP/1.1`.
    pub line: String,
    /// The `Proxy-Authorization` header, if any.
    pub authorization: Option<String>,
}

/// A running proxy; stops when dropped.
pub struct ProxyServer {
    addr: SocketAddr,
    asked: Arc<Mutex<Vec<Asked>>>,
    accept: JoinHandle<()>,
}

impl ProxyServer {
    /// Starts a proxy on 127.0.0.1; with `credentials` (`user:pass`), it answers 407 to anyone
    /// who does not present them as Basic.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start(credentials: Option<&str>) -> ProxyServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let asked = Arc::new(Mutex::new(Vec::new()));
        let expected = credentials.map(|c| {
            use base64::Engine as _;
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(c)
            )
        });
        let log = asked.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (log, expected) = (log.clone(), expected.clone());
                tokio::spawn(async move {
                    let _ = relay(client, log, expected).await;
                });
            }
        });
        ProxyServer {
            addr,
            asked,
            accept,
        }
    }

    /// The proxy's URL, with `userinfo` (`user:pass@`) if given.
    pub fn url(&self, userinfo: &str) -> String {
        format!("http://{userinfo}{}", self.addr)
    }

    /// What it was asked, one entry per connection, in order.
    pub fn asked(&self) -> Vec<Asked> {
        self.asked.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for ProxyServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Serves one client connection: reads the first request head, checks credentials, then relays.
async fn relay(
    mut client: TcpStream,
    log: Arc<Mutex<Vec<Asked>>>,
    expected: Option<String>,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte).await? == 0 || head.len() > 64 * 1024 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let line = lines.next().unwrap_or("").to_owned();
    let authorization = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("proxy-authorization"))
        .map(|(_, v)| v.trim().to_owned());
    log.lock().unwrap_or_else(|p| p.into_inner()).push(Asked {
        line: line.clone(),
        authorization: authorization.clone(),
    });
    if expected.is_some() && authorization != expected {
        client
            .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"proxy\"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await?;
        return Ok(());
    }
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method == "CONNECT" {
        let mut server = TcpStream::connect(target).await?;
        client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await?;
        tokio::io::copy_bidirectional(&mut client, &mut server).await?;
    } else {
        // Absolute form: the server named in the URL gets the request as it came (HTTP/1.1 servers
        // accept the absolute form), and everything after it.
        let authority = target
            .strip_prefix("http://")
            .and_then(|rest| rest.split('/').next())
            .unwrap_or("");
        let mut server = TcpStream::connect(authority).await?;
        server.write_all(&head).await?;
        tokio::io::copy_bidirectional(&mut client, &mut server).await?;
    }
    Ok(())
}
