//! Proxies: cleartext requests in absolute form, `https` through a `CONNECT` tunnel, credentials
//! for the proxy only, exceptions, and a proxy that refuses.

use courier_engine::reexports::http::Version;
use courier_engine::{CleartextPolicy, Configuration, ErrorCode, Proxy, Session};
use courier_tests::server::pattern_bytes;
use courier_tests::{ProxyServer, TestCa, TestServer};

fn through(proxy: &str, no_proxy: &str) -> Configuration {
    let mut c = Configuration::ephemeral();
    c.cleartext = CleartextPolicy::AllowAll;
    c.proxy = Proxy::Http {
        url: proxy.to_owned(),
        no_proxy: no_proxy.to_owned(),
    };
    c
}

#[tokio::test]
async fn a_cleartext_request_goes_to_the_proxy_in_absolute_form() {
    let server = TestServer::http().await;
    let proxy = ProxyServer::start(None).await;
    let session = Session::new(through(&proxy.url(""), "")).unwrap();
    let url = server.url("/bytes/5000");
    let (body, response) = session.data(url.as_str()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(body.as_ref(), pattern_bytes(0, 5000).as_slice());
    let asked = proxy.asked();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].line, format!("GET {url} HTTP/1.1"));
    assert_eq!(asked[0].authorization, None);
}

#[tokio::test]
async fn https_goes_through_a_tunnel_and_the_credentials_only_to_the_proxy() {
    let ca = TestCa::new();
    let server = TestServer::https(&ca).await;
    let proxy = ProxyServer::start(Some("ann:pw")).await;
    let mut config = through(&proxy.url("ann:pw@"), "");
    config.extra_root_certificates.push(ca.ca_der.clone());
    let session = Session::new(config).unwrap();
    let (body, response) = session.data(server.url("/headers").as_str()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.version(),
        Version::HTTP_2,
        "ALPN inside the tunnel"
    );
    let seen = String::from_utf8_lossy(&body).to_lowercase();
    assert!(
        !seen.contains("proxy-authorization"),
        "the server never sees the proxy's credentials: {seen}"
    );
    let asked = proxy.asked();
    let target = url::Url::parse(&server.url("/")).unwrap();
    let (host, port) = (target.host_str().unwrap(), target.port().unwrap());
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].line, format!("CONNECT {host}:{port} HTTP/1.1"));
    assert_eq!(asked[0].authorization.as_deref(), Some("Basic YW5uOnB3"));
}

#[tokio::test]
async fn a_proxy_that_refuses_ends_the_task_or_answers_the_request() {
    let ca = TestCa::new();
    let tls = TestServer::https(&ca).await;
    let plain = TestServer::http().await;
    let proxy = ProxyServer::start(Some("ann:pw")).await;
    let mut config = through(&proxy.url(""), "");
    config.extra_root_certificates.push(ca.ca_der.clone());
    let session = Session::new(config).unwrap();
    // No tunnel without credentials: the task cannot reach its host.
    let err = session
        .data(tls.url("/bytes/10").as_str())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::CannotConnectToHost, "{err}");
    assert!(err.to_string().contains("407"), "{err}");
    // A cleartext request gets the proxy's 407 as its response.
    let (_, response) = session.data(plain.url("/bytes/10").as_str()).await.unwrap();
    assert_eq!(response.status(), 407);

    let unreachable = Session::new(through("http://127.0.0.1:1", "")).unwrap();
    let err = unreachable
        .data(plain.url("/bytes/10").as_str())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::CannotConnectToHost);
    let bad = Session::new(through("socks5://127.0.0.1:1080", "")).unwrap_err();
    assert_eq!(bad.code(), ErrorCode::BadUrl, "{bad}");
}

#[tokio::test]
async fn hosts_in_no_proxy_go_direct() {
    let server = TestServer::http().await;
    let proxy = ProxyServer::start(None).await;
    let session = Session::new(through(&proxy.url(""), "localhost, 127.0.0.1")).unwrap();
    let (body, _) = session
        .data(server.url("/bytes/10").as_str())
        .await
        .unwrap();
    assert_eq!(body.len(), 10);
    assert!(proxy.asked().is_empty(), "{:?}", proxy.asked());
}

/// The same through a real proxy program: tinyproxy forwards the cleartext request and tunnels
/// the `https` one (HTTP/2 inside), with and without the credentials it requires.
#[tokio::test]
async fn tinyproxy_forwards_cleartext_and_tunnels_https() {
    let Some(proxy) = courier_tests::Tinyproxy::start(Some("ann:pw")) else {
        return;
    };
    let ca = TestCa::new();
    let tls = TestServer::https(&ca).await;
    let plain = TestServer::http().await;
    let mut config = through(&proxy.url("ann:pw@"), "");
    config.extra_root_certificates.push(ca.ca_der.clone());
    let session = Session::new(config.clone()).unwrap();

    let (body, response) = session
        .data(plain.url("/bytes/70000").as_str())
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", proxy.log());
    assert_eq!(body.as_ref(), pattern_bytes(0, 70_000).as_slice());
    let (body, response) = session
        .data(tls.url("/bytes/70000").as_str())
        .await
        .unwrap();
    assert_eq!(response.version(), Version::HTTP_2);
    assert_eq!(body.as_ref(), pattern_bytes(0, 70_000).as_slice());
    let log = proxy.log();
    assert!(log.contains("CONNECT"), "tinyproxy saw the tunnel: {log}");

    config.proxy = Proxy::Http {
        url: proxy.url(""),
        no_proxy: String::new(),
    };
    let refused = Session::new(config).unwrap();
    let err = refused
        .data(tls.url("/bytes/10").as_str())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::CannotConnectToHost, "{err}");
    let (_, response) = refused.data(plain.url("/bytes/10").as_str()).await.unwrap();
    assert_eq!(response.status(), 407);
}

/// Proxy credentials go to the proxy only (curl CVE-2015-3153): a `Proxy-Authorization` header the
/// application sets goes on the tunnel's `CONNECT` for https, in the request to the proxy for
/// cleartext, and nowhere when there is no proxy; the origin never sees it.
#[tokio::test]
async fn curl_cve_2015_3153_a_proxy_authorization_header_goes_to_the_proxy_only() {
    use courier_engine::Request;
    use courier_engine::reexports::http::HeaderValue;
    let with_header = |url: String| {
        Request::get(url.as_str()).with_header(
            courier_engine::reexports::http::header::PROXY_AUTHORIZATION,
            HeaderValue::from_static("Basic YW5uOnB3"),
        )
    };
    let ca = TestCa::new();
    let tls = TestServer::https(&ca).await;
    let plain = TestServer::http().await;
    let proxy = ProxyServer::start(Some("ann:pw")).await;
    let mut config = through(&proxy.url(""), "");
    config.extra_root_certificates.push(ca.ca_der.clone());
    let session = Session::new(config).unwrap();

    let (body, response) = session
        .data(with_header(tls.url("/headers")))
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "the tunnel was opened with the header"
    );
    let seen = String::from_utf8_lossy(&body).to_lowercase();
    assert!(!seen.contains("proxy-authorization"), "{seen}");
    let asked = proxy.asked();
    assert!(asked[0].line.starts_with("CONNECT "), "{asked:?}");
    assert_eq!(asked[0].authorization.as_deref(), Some("Basic YW5uOnB3"));

    let (_, response) = session
        .data(with_header(plain.url("/headers")))
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "the proxy took it on the cleartext request"
    );

    // Without a proxy, the header has nowhere to go: the server never gets it.
    let mut direct = Configuration::ephemeral();
    direct.cleartext = CleartextPolicy::AllowAll;
    direct.proxy = Proxy::Direct;
    let session = Session::new(direct).unwrap();
    let (body, _) = session
        .data(with_header(plain.url("/headers")))
        .await
        .unwrap();
    let seen = String::from_utf8_lossy(&body).to_lowercase();
    assert!(!seen.contains("proxy-authorization"), "{seen}");
}
