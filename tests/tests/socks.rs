//! SOCKS5 proxies, through a real SOCKS server (microsocks): the proxy carries the connection, so
//! cleartext and TLS requests go through it as if direct; `socks5h` hands it the host name,
//! `socks5` an address; its username and password go to it alone.

use courier_engine::{CleartextPolicy, Configuration, ErrorCode, Proxy, Session};
use courier_tests::server::pattern_bytes;
use courier_tests::{Microsocks, TestCa, TestServer};

fn through(proxy: &str) -> Configuration {
    let mut c = Configuration::ephemeral();
    c.cleartext = CleartextPolicy::AllowAll;
    c.proxy = Proxy::Socks5 {
        url: proxy.to_owned(),
        no_proxy: String::new(),
    };
    c
}

/// `url` with its host written as `localhost` (a name the proxy resolves, with `socks5h`).
fn by_name(url: &str) -> String {
    url.replace("127.0.0.1", "localhost")
}

fn port_of(url: &str) -> u16 {
    courier_engine::reexports::url::Url::parse(url)
        .unwrap()
        .port()
        .unwrap()
}

#[tokio::test]
async fn socks5h_carries_cleartext_and_tls_and_lets_the_proxy_resolve_the_name() {
    let Some(proxy) = Microsocks::start(None) else {
        return;
    };
    let ca = TestCa::new();
    let plain = TestServer::http().await;
    let tls = TestServer::https(&ca).await;
    let mut config = through(&proxy.url("socks5h", ""));
    config.extra_root_certificates.push(ca.ca_der.clone());
    let session = Session::new(config).unwrap();

    let url = by_name(&plain.url("/bytes/5000"));
    let (body, response) = session.data(url.as_str()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(body.as_ref(), pattern_bytes(0, 5000).as_slice());

    let url = by_name(&tls.url("/bytes/7000"));
    let (body, response) = session.data(url.as_str()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(body.len(), 7000);

    let log = proxy.log();
    for server in [&plain.url("/"), &tls.url("/")] {
        let line = format!("connected to localhost:{}", port_of(server));
        assert!(log.contains(&line), "the proxy resolved the name: {log}");
    }
}

#[tokio::test]
async fn socks5_hands_the_proxy_an_address_and_credentials_go_to_the_proxy_only() {
    let Some(proxy) = Microsocks::start(Some(("ann", "s3cret"))) else {
        return;
    };
    let plain = TestServer::http().await;
    let url = by_name(&plain.url("/headers"));

    let session = Session::new(through(&proxy.url("socks5", "ann:s3cret@"))).unwrap();
    let (body, _) = session.data(url.as_str()).await.unwrap();
    let seen = String::from_utf8_lossy(&body).to_lowercase();
    assert!(
        !seen.contains("s3cret") && !seen.contains("proxy-authorization"),
        "{seen}"
    );
    let line = format!("connected to 127.0.0.1:{}", port_of(&url));
    assert!(
        proxy.log().contains(&line),
        "resolved here: {}",
        proxy.log()
    );

    // Without the credentials the proxy refuses, and the request is never sent direct.
    let session = Session::new(through(&proxy.url("socks5h", ""))).unwrap();
    let error = session.data(url.as_str()).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::CannotConnectToHost, "{error}");
    assert!(error.to_string().contains("SOCKS5"), "{error}");
}

/// Through `socks5` (names resolved here), a host's given address (`given_addresses`, curl's
/// `--resolve`) is the one the proxy is handed: a name DNS does not know reaches its server. (It
/// was DNS's, and the name was not found.)
#[tokio::test]
async fn socks5_is_handed_the_given_address() {
    let Some(proxy) = Microsocks::start(None) else {
        return;
    };
    let plain = TestServer::http().await;
    let port = port_of(&plain.url("/"));
    let url = format!("http://files.test:{port}/bytes/9");
    let mut config = through(&proxy.url("socks5", ""));
    config.given_addresses.insert(
        ("files.test".into(), port),
        vec!["127.0.0.1".parse().unwrap()],
    );
    let session = Session::new(config).unwrap();
    let (body, _) = session.data(url.as_str()).await.unwrap();
    assert_eq!(body.as_ref(), pattern_bytes(0, 9).as_slice());
    assert!(
        proxy
            .log()
            .contains(&format!("connected to 127.0.0.1:{port}")),
        "{}",
        proxy.log()
    );
}
