//! Connections that are not HTTP through the session's proxy: `ftp:` (its control connection and
//! every data connection, FTPS inside) through a real SOCKS5 server (microsocks) and through a
//! real HTTP proxy's `CONNECT` tunnels (tinyproxy, with its credentials), a stream task through
//! SOCKS5, and a proxy that is down, which fails both rather than let them go direct.

use std::time::Duration;

use courier_engine::{CleartextPolicy, Configuration, ErrorCode, Proxy, Request, Session};
use courier_engine::{UploadBody, reexports::url::Url};
use courier_tests::{FtpServer, Microsocks, TestCa, Tinyproxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(30);

fn socks(url: &str) -> Configuration {
    let mut c = Configuration::ephemeral();
    c.cleartext = CleartextPolicy::AllowAll;
    c.proxy = Proxy::Socks5 {
        url: url.to_owned(),
        no_proxy: String::new(),
    };
    c
}

fn content(size: usize) -> Vec<u8> {
    (0..size as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

/// `url` with its host written as `localhost` (a name a `socks5h` proxy resolves).
fn by_name(url: &str) -> String {
    url.replace("127.0.0.1", "localhost")
}

fn port_of(url: &str) -> u16 {
    Url::parse(url).unwrap().port().unwrap()
}

/// The ports the proxy's log says it connected `localhost` to, in order, from lines written
/// `... {marker}localhost:PORT...`.
fn ports_reached(log: &str, marker: &str) -> Vec<u16> {
    log.lines()
        .filter_map(|line| line.split_once(&format!("{marker}localhost:")))
        .filter_map(|(_, rest)| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect()
}

/// The proxy made two control connections to `control`, and a data connection to each of two
/// other ports (the ones the server named).
fn assert_two_controls_and_two_data(log: &str, marker: &str, control: u16) {
    let ports = ports_reached(log, marker);
    let controls = ports.iter().filter(|p| **p == control).count();
    assert_eq!((controls, ports.len() - controls), (2, 2), "{log}");
}

#[tokio::test]
async fn ftp_goes_through_socks5h_control_and_data_with_ftps_inside() {
    let root = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (Some(proxy), Some(server)) = (
        Microsocks::start(None),
        FtpServer::start_tls(root.path(), &ca),
    ) else {
        return;
    };
    let payload = content(200_000);
    std::fs::write(root.path().join("model.bin"), &payload).unwrap();
    let mut config = socks(&proxy.url("socks5h", ""));
    config.ftp_explicit_tls = true;
    config.trust_pem_certificates(ca.ca_pem.as_bytes()).unwrap();
    let session = Session::new(config).unwrap();

    let url = by_name(&server.url("ann:pw@", "/model.bin"));
    let (body, _) = session.data(url.as_str()).await.unwrap();
    assert_eq!(body.as_ref(), &payload[..]);
    let up = by_name(&server.url("ann:pw@", "/up.bin"));
    session
        .upload(
            Request::new(http::Method::PUT, &up),
            UploadBody::Bytes(bytes::Bytes::from_static(b"through the proxy")),
        )
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(root.path().join("up.bin")).unwrap(),
        b"through the proxy"
    );

    // The proxy resolved the name and made every connection: two control connections, and a
    // data connection for each transfer, at the ports the server named.
    assert_two_controls_and_two_data(&proxy.log(), "connected to ", port_of(&url));
}

#[tokio::test]
async fn ftp_goes_through_an_http_proxys_connect_tunnels_with_its_credentials() {
    let root = tempfile::tempdir().unwrap();
    let (Some(proxy), Some(server)) = (
        Tinyproxy::start(Some("ann:secret")),
        FtpServer::start(root.path()),
    ) else {
        return;
    };
    let payload = content(150_000);
    std::fs::write(root.path().join("update.bin"), &payload).unwrap();
    let mut config = Configuration::ephemeral();
    config.cleartext = CleartextPolicy::AllowAll;
    config.proxy = Proxy::Http {
        url: proxy.url("ann:secret@"),
        no_proxy: String::new(),
    };
    let session = Session::new(config).unwrap();

    let url = by_name(&server.url("", "/update.bin"));
    let (body, _) = session.data(url.as_str()).await.unwrap();
    assert_eq!(body.as_ref(), &payload[..]);
    let (listing, _) = session
        .data(by_name(&server.url("", "/")).as_str())
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&listing).contains("update.bin"),
        "{listing:?}"
    );

    assert_two_controls_and_two_data(&proxy.log(), "opening connection to ", port_of(&url));
}

#[tokio::test]
async fn a_stream_task_goes_through_the_sessions_socks_proxy() {
    let Some(proxy) = Microsocks::start(None) else {
        return;
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        if let Ok((mut socket, _)) = listener.accept().await {
            let mut line = [0u8; 6];
            if socket.read_exact(&mut line).await.is_ok() {
                let _ = socket.write_all(&line).await;
            }
        }
    });
    let session = Session::new(socks(&proxy.url("socks5h", ""))).unwrap();
    let task = session.stream_task("localhost", port).unwrap();
    task.resume();
    task.write(&b"hello\n"[..], WAIT).await.unwrap();
    let (echo, _) = task.read(6, 100, WAIT).await.unwrap();
    assert_eq!(&echo[..], b"hello\n");
    let log = proxy.log();
    assert_eq!(ports_reached(&log, "connected to "), [port], "{log}");
}

#[tokio::test]
async fn a_proxy_that_is_down_fails_ftp_and_streams_rather_than_let_them_go_direct() {
    let root = tempfile::tempdir().unwrap();
    let Some(server) = FtpServer::start(root.path()) else {
        return;
    };
    std::fs::write(root.path().join("f.bin"), b"reachable directly").unwrap();
    // A port nothing listens on, as a proxy that is down.
    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("socks5h://127.0.0.1:{}", down.local_addr().unwrap().port());
    drop(down);
    let session = Session::new(socks(&dead)).unwrap();

    let err = session
        .data(server.url("", "/f.bin").as_str())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::CannotConnectToHost, "{err}");

    let task = session
        .stream_task("127.0.0.1", port_of(&server.url("", "/")))
        .unwrap();
    task.resume();
    let err = task.read(1, 100, WAIT).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::CannotConnectToHost, "{err:?}");
}
