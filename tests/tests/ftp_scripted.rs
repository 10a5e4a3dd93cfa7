//! `ftp:` URLs against a scripted FTP server, for what a real one does not do: a hostile
//! `PASV` naming another host (not followed), an IPv6 server (`EPSV`), the path a URL names, and
//! a server that never answers `QUIT`.

use std::sync::Arc;
use std::time::Duration;

use courier_engine::{CleartextPolicy, Configuration, Session};

fn cleartext() -> Configuration {
    let mut c = Configuration::ephemeral();
    c.cleartext = CleartextPolicy::AllowAll;
    c
}

/// A scripted FTP server on `control` that serves any file as `the file`: its data connections
/// are the test's (listening where it says), and `script` answers a verb its own way (`PASV` and
/// `EPSV` always; `Some("")` is silence), or `None` for the usual answer. Returns the server's URL
/// (`ftp://ADDR`, no path) and the commands it was sent.
async fn scripted_ftp(
    control: tokio::net::TcpListener,
    script: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let addr = control.local_addr().unwrap();
    let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (log, script) = (sent.clone(), Arc::new(script));
    tokio::spawn(async move {
        while let Ok((socket, _)) = control.accept().await {
            let (log, script) = (log.clone(), script.clone());
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 ready\r\n").await;
                while let Ok(Some(line)) = lines.next_line().await {
                    log.lock().unwrap().push(line.clone());
                    let verb = line.split(' ').next().unwrap_or("").to_ascii_uppercase();
                    let answer = match script(&verb) {
                        Some(answer) => answer,
                        None => match verb.as_str() {
                            "USER" => "331 password\r\n".to_owned(),
                            "PASS" => "230 in\r\n".to_owned(),
                            "TYPE" => "200 binary\r\n".to_owned(),
                            "SIZE" => "213 8\r\n".to_owned(),
                            "RETR" => {
                                let _ = write.write_all(b"150 here\r\n").await;
                                tokio::time::sleep(Duration::from_millis(200)).await;
                                "226 sent\r\n".to_owned()
                            }
                            "QUIT" => "221 bye\r\n".to_owned(),
                            _ => "502 not here\r\n".to_owned(),
                        },
                    };
                    if write.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("ftp://{addr}"), sent)
}

/// Answers every data connection on `listener` with `bytes`; `touched` says whether one came.
fn serve_data(
    listener: tokio::net::TcpListener,
    bytes: &'static [u8],
) -> Arc<std::sync::atomic::AtomicBool> {
    use tokio::io::AsyncWriteExt;
    let touched = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let t = touched.clone();
    tokio::spawn(async move {
        while let Ok((mut data, _)) = listener.accept().await {
            t.store(true, std::sync::atomic::Ordering::SeqCst);
            let _ = data.write_all(bytes).await;
        }
    });
    touched
}

/// `session.data(url)` within 20 s: the body.
async fn fetched(url: &str) -> Vec<u8> {
    let session = Session::new(cleartext()).unwrap();
    let (body, _) = tokio::time::timeout(Duration::from_secs(20), session.data(url))
        .await
        .expect("within 20 s")
        .expect("the file");
    body.to_vec()
}

/// A `PASV` reply that names another address (here 127.0.0.2) is taken for its port only: the data
/// connection goes to the server the control connection reached, as curl's does, never where a
/// hostile server points it (the FTP bounce: any host and port the client can reach).
#[tokio::test]
async fn a_passive_reply_naming_another_host_is_taken_for_its_port_only() {
    use tokio::net::TcpListener;
    // The same port on two loopback addresses: the server's own, and the one the reply names.
    let mut tries = 0;
    let (own, elsewhere, port) = loop {
        let own = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = own.local_addr().unwrap().port();
        if let Ok(elsewhere) = TcpListener::bind(("127.0.0.2", port)).await {
            break (own, elsewhere, port);
        }
        tries += 1;
        assert!(tries < 20, "no port free on both 127.0.0.1 and 127.0.0.2");
    };
    let bounced = serve_data(elsewhere, b"elsewhere");
    serve_data(own, b"the file");
    let control = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (server, _) = scripted_ftp(control, move |verb| match verb {
        "PASV" => Some(format!(
            "227 Entering Passive Mode (127,0,0,2,{},{})\r\n",
            port >> 8,
            port & 0xff
        )),
        "EPSV" => Some("500 no\r\n".to_owned()),
        _ => None,
    })
    .await;
    assert_eq!(fetched(&format!("{server}/file")).await, b"the file");
    assert!(
        !bounced.load(std::sync::atomic::Ordering::SeqCst),
        "nothing connected to the address the reply named"
    );
}

/// Over IPv6 the data connection is asked for with `EPSV` (RFC 2428), which names a port only:
/// `PASV` has no form for an IPv6 address (pyftpdlib answers it with `(::1,208,47)`, which nothing
/// reads), so `ftp://[::1]/` failed with -1008.
#[tokio::test]
async fn an_ipv6_server_is_asked_for_extended_passive_mode() {
    use tokio::net::TcpListener;
    let data = TcpListener::bind("[::1]:0").await.expect("IPv6 loopback");
    let port = data.local_addr().unwrap().port();
    serve_data(data, b"the file");
    let control = TcpListener::bind("[::1]:0").await.unwrap();
    let (server, _) = scripted_ftp(control, move |verb| match verb {
        "EPSV" => Some(format!(
            "229 Entering Extended Passive Mode (|||{port}|)\r\n"
        )),
        "PASV" => Some("500 PASV is for IPv4\r\n".to_owned()),
        _ => None,
    })
    .await;
    assert!(server.starts_with("ftp://[::1]:"), "{server}");
    assert_eq!(fetched(&format!("{server}/file")).await, b"the file");
}

/// An `ftp:` URL's path is the login directory's (RFC 1738, and what curl sends): `/docs/a.txt`
/// asks for `docs/a.txt`, and a first segment of `%2F` makes it absolute. It was sent whole, so
/// a server that does not show each user their own tree as `/` was asked for `/docs/a.txt`.
#[tokio::test]
async fn an_ftp_path_is_the_login_directorys_unless_it_starts_with_2f() {
    use tokio::net::TcpListener;
    let data = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = data.local_addr().unwrap().port();
    serve_data(data, b"the file");
    let control = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (server, sent) = scripted_ftp(control, move |verb| {
        matches!(verb, "PASV" | "EPSV").then(|| {
            format!(
                "227 Entering Passive Mode (127,0,0,1,{},{})\r\n",
                port >> 8,
                port & 0xff
            )
        })
    })
    .await;
    fetched(&format!("{server}/docs/a%20b.txt")).await;
    fetched(&format!("{server}/%2Fetc/motd")).await;
    let retrieved: Vec<String> = sent
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("RETR"))
        .cloned()
        .collect();
    assert_eq!(retrieved, ["RETR docs/a b.txt", "RETR /etc/motd"]);
}

/// A server that never answers `QUIT` does not hold the task: the file is whole once the server
/// said so (`226`), and the goodbye is not waited for. The task waited for it without a limit.
#[tokio::test]
async fn a_server_that_never_answers_quit_does_not_hold_the_task() {
    use tokio::net::TcpListener;
    let data = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = data.local_addr().unwrap().port();
    serve_data(data, b"the file");
    let control = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (server, sent) = scripted_ftp(control, move |verb| match verb {
        "PASV" | "EPSV" => Some(format!(
            "227 Entering Passive Mode (127,0,0,1,{},{})\r\n",
            port >> 8,
            port & 0xff
        )),
        "QUIT" => Some(String::new()),
        _ => None,
    })
    .await;
    assert_eq!(fetched(&format!("{server}/file")).await, b"the file");
    assert!(sent.lock().unwrap().iter().any(|c| c.starts_with("RETR")));
}
