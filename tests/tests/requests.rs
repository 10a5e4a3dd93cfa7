//! What a data task's request sends: the configuration's fields under its own, the fields it
//! leaves out (`Request::omit_header`), its body, and the cleartext policy it passes first.

use courier_engine::reexports::http::Method;
use courier_engine::{CleartextPolicy, Configuration, ErrorCode, Request, Session};
use courier_tests::TestServer;

fn http_config() -> Configuration {
    let mut c = Configuration::ephemeral();
    c.cleartext = CleartextPolicy::AllowAll;
    c
}

#[tokio::test]
async fn cleartext_can_be_allowed_for_one_host() {
    let server = TestServer::http().await;
    let mut config = Configuration::ephemeral();
    config.cleartext.allow_host("127.0.0.1");
    let session = Session::new(config).unwrap();
    assert!(session.data(server.url("/").as_str()).await.is_ok());
    let other = session
        .data(format!("http://localhost:{}/", server.addr().port()).as_str())
        .await;
    assert_eq!(
        other.unwrap_err().code(),
        ErrorCode::AppTransportSecurityRequiresSecureConnection
    );
}

#[tokio::test]
async fn request_headers_win_over_configuration_headers() {
    let server = TestServer::http().await;
    let mut config = http_config();
    config
        .http_additional_headers
        .insert("x-one", "config".parse().unwrap());
    config
        .http_additional_headers
        .insert("x-two", "config".parse().unwrap());
    let session = Session::new(config).unwrap();
    let request = Request::get(&server.url("/headers"))
        .with_header("X-One".parse().unwrap(), "request".parse().unwrap());
    let (body, _) = session.data(request).await.unwrap();
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.contains("x-one: request"), "{text}");
    assert!(!text.contains("x-one: config"), "{text}");
    assert!(text.contains("x-two: config"), "{text}");
    assert!(text.contains("user-agent: courier/"), "{text}");
}

/// `Request::omit_header` (curl's `-H 'Name:'`): the field is not sent, whether the request, the
/// configuration, the session's defaults, a form or the cookie jar would add it, also after a
/// redirect; a value the request sets after leaving the field out is sent.
#[tokio::test]
async fn an_omitted_field_is_not_sent_whoever_would_add_it() {
    use courier_engine::reexports::http::header::{
        ACCEPT_ENCODING, CONTENT_TYPE, COOKIE, USER_AGENT,
    };
    let server = TestServer::http().await;
    let mut config = http_config();
    config
        .http_additional_headers
        .insert("x-two", "config".parse().unwrap());
    let session = Session::new(config).unwrap();
    session
        .data(server.url("/cookie/a/1").as_str())
        .await
        .unwrap();
    let leave_out = |mut request: Request| {
        for name in [USER_AGENT, ACCEPT_ENCODING, COOKIE, CONTENT_TYPE] {
            request.omit_header(name);
        }
        request.omit_header("x-two".parse().unwrap());
        request.omit_header("x-late".parse().unwrap());
        request.with_header("X-Late".parse().unwrap(), "set after".parse().unwrap())
    };
    let seen = |body: bytes::Bytes| String::from_utf8(body.to_vec()).unwrap();
    let plain = seen(
        session
            .data(Request::get(&server.url("/headers")))
            .await
            .unwrap()
            .0,
    );
    for field in [
        "user-agent",
        "accept-encoding",
        "cookie: a=1",
        "x-two: config",
    ] {
        assert!(plain.contains(field), "without omissions, {field}: {plain}");
    }
    for url in [
        server.url("/headers"),
        server.url("/redirect/302?to=/headers"),
    ] {
        let text = seen(session.data(leave_out(Request::get(&url))).await.unwrap().0);
        for gone in ["user-agent", "accept-encoding", "cookie", "x-two"] {
            assert!(!text.contains(gone), "{url}: {gone} sent: {text}");
        }
        assert!(text.contains("x-late: set after"), "{text}");
    }
    let form = Request::new(Method::POST, &server.url("/headers")).with_body("a=1");
    let text = seen(session.data(form.clone()).await.unwrap().0);
    assert!(
        text.contains("content-type: application/x-www-form-urlencoded"),
        "{text}"
    );
    let text = seen(session.data(leave_out(form)).await.unwrap().0);
    assert!(!text.contains("content-type"), "{text}");
}

#[tokio::test]
async fn post_sends_its_body() {
    let server = TestServer::http().await;
    let session = Session::new(http_config()).unwrap();
    let request = Request::new(Method::POST, &server.url("/echo")).with_body("hello courier");
    let (body, response) = session.data(request).await.unwrap();
    assert_eq!(body.as_ref(), b"hello courier");
    assert_eq!(response.headers()["x-method"], "POST");
}
