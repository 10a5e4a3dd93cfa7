//! `StartTlsServer`: a line server that upgrades to TLS on request, as SMTP, IMAP and FTP servers
//! do (STARTTLS): it greets with `220 ready`, answers `STARTTLS` with `220 go ahead` and starts TLS
//! with a leaf signed by a [`LoopbackCa`]; every other line is answered `250 ` and the line, with
//! `(tls)` once TLS runs. `QUIT` ends the connection. For the demo's stream task step.

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::LoopbackCa;

/// A running STARTTLS line server on 127.0.0.1; stops when dropped.
pub struct StartTlsServer {
    port: u16,
    accept: JoinHandle<()>,
}

impl StartTlsServer {
    /// Starts the server with `ca`'s leaf certificate.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn start(ca: &LoopbackCa) -> StartTlsServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let port = listener.local_addr().expect("local addr").port();
        let acceptor = tokio_rustls::TlsAcceptor::from(ca.server_config());
        let accept = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let mut lines = BufReader::new(tcp);
                    if !converse(&mut lines, false).await {
                        return;
                    }
                    // Only what the client sent before its STARTTLS was read: TLS starts on the
                    // same connection.
                    let Ok(tls) = acceptor.accept(lines.into_inner()).await else {
                        return;
                    };
                    converse(&mut BufReader::new(tls), true).await;
                });
            }
        });
        StartTlsServer { port, accept }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for StartTlsServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Answers lines until `STARTTLS` (true: start TLS now) or the end (false).
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(io: &mut BufReader<S>, tls: bool) -> bool {
    if !tls && io.get_mut().write_all(b"220 ready\r\n").await.is_err() {
        return false;
    }
    let mut line = String::new();
    loop {
        line.clear();
        if io.read_line(&mut line).await.unwrap_or(0) == 0 {
            return false;
        }
        let said = line.trim_end();
        let answer = match said {
            "STARTTLS" if !tls => "220 go ahead\r\n".to_owned(),
            "QUIT" => "221 bye\r\n".to_owned(),
            other if tls => format!("250 {other} (tls)\r\n"),
            other => format!("250 {other}\r\n"),
        };
        if io.get_mut().write_all(answer.as_bytes()).await.is_err() {
            return false;
        }
        match said {
            "STARTTLS" if !tls => return true,
            "QUIT" => {
                let _ = io.get_mut().shutdown().await;
                return false;
            }
            _ => {}
        }
    }
}
