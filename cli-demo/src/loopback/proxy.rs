//! `ProxyServer`: a loopback HTTP proxy for the demo and the tests, in the two ways clients use one: `CONNECT`
//! tunnels (for `https`) and absolute-form requests (for `http`), each relayed byte for byte to
//! the server named. It records what it was asked, and can require credentials, Basic or Digest
//! (407 without them).

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

/// What the proxy requires before it relays.
#[derive(Clone)]
enum Required {
    Nothing,
    /// This `Proxy-Authorization` value exactly.
    Basic(String),
    /// A Digest answer (MD5, qop=auth) for this user and password, over the request line's target.
    Digest {
        user: String,
        pass: String,
    },
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
        let required = match credentials {
            Some(c) => {
                use base64::Engine as _;
                Required::Basic(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(c)
                ))
            }
            None => Required::Nothing,
        };
        ProxyServer::serving(required).await
    }

    /// Starts a proxy on 127.0.0.1 that answers 407 with a Digest challenge (MD5, `qop=auth`,
    /// realm `proxy-realm`) to anyone who does not answer it for `credentials` (`user:pass`).
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start_digest(credentials: &str) -> ProxyServer {
        let (user, pass) = credentials.split_once(':').unwrap_or((credentials, ""));
        ProxyServer::serving(Required::Digest {
            user: user.to_owned(),
            pass: pass.to_owned(),
        })
        .await
    }

    async fn serving(required: Required) -> ProxyServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let asked = Arc::new(Mutex::new(Vec::new()));
        let expected = required;
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
    expected: Required,
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
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let given = authorization.as_deref().unwrap_or("");
    let challenge = match &expected {
        Required::Nothing => None,
        Required::Basic(wanted) => (given != wanted).then_some("Basic realm=\"proxy\""),
        Required::Digest { user, pass } => {
            // The digest must be over this request line's target, not another one.
            let over_target = given
                .split(", ")
                .any(|kv| kv.trim_start_matches("Digest ") == format!("uri=\"{target}\""));
            let answered =
                over_target && super::server::digest_matches(given, user, pass, method, "MD5");
            (!answered).then_some(
                "Digest realm=\"proxy-realm\", qop=\"auth\", algorithm=MD5, nonce=\"p-n0nce\", opaque=\"opaque-1\"",
            )
        }
    };
    if let Some(challenge) = challenge {
        let answer = format!(
            "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: {challenge}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        );
        client.write_all(answer.as_bytes()).await?;
        return Ok(());
    }
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
        let Ok(mut server) = TcpStream::connect(authority).await else {
            // As tinyproxy and squid answer a server they cannot reach.
            let answer =
                "HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
            client.write_all(answer.as_bytes()).await?;
            return Ok(());
        };
        // The credentials were for this proxy: like any proxy, it does not pass them on.
        let forwarded: Vec<&str> = text
            .split("\r\n")
            .filter(|l| {
                !l.split_once(':')
                    .is_some_and(|(name, _)| name.eq_ignore_ascii_case("proxy-authorization"))
            })
            .collect();
        server.write_all(forwarded.join("\r\n").as_bytes()).await?;
        tokio::io::copy_bidirectional(&mut client, &mut server).await?;
    }
    Ok(())
}
