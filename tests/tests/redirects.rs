//! Redirects (spec 2.4): one test per row of the method table, the cases that are not followed, the
//! limit, the delegate's say, and what never crosses to another origin or down to cleartext.

use std::sync::Arc;
use std::time::Duration;

use courier_engine::reexports::http::{HeaderName, HeaderValue, Method};
use courier_engine::{CleartextPolicy, Configuration, ErrorCode, Request, Session};
use courier_tests::{Event, Recorder, RedirectAnswer, TestCa, TestServer, check_invariants};

const WAIT: Duration = Duration::from_secs(20);

fn config() -> Configuration {
    let mut c = Configuration::ephemeral();
    c.cleartext = CleartextPolicy::AllowAll;
    c
}

/// Sends `method` with a body to `/redirect/CODE?to=/echo` and returns (final status, method seen by
/// /echo, body seen by /echo, redirects the delegate heard).
async fn hop(code: u16, method: Method) -> (u16, String, String, Vec<Event>) {
    let server = TestServer::http().await;
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(config(), rec.clone()).unwrap();
    let url = server.url(&format!("/redirect/{code}?to=/echo"));
    let request = Request::new(method, &url).with_body("payload");
    let (body, response) = session.data(request).await.unwrap();
    let seen_method = response
        .headers()
        .get("x-method")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let redirects = rec
        .events()
        .into_iter()
        .filter(|e| matches!(e, Event::Redirect { .. }))
        .collect();
    (
        response.status().as_u16(),
        seen_method,
        String::from_utf8_lossy(&body).into_owned(),
        redirects,
    )
}

#[tokio::test]
async fn a_301_turns_a_post_into_a_get_without_its_body() {
    let (status, method, body, redirects) = hop(301, Method::POST).await;
    assert_eq!((status, method.as_str(), body.as_str()), (200, "GET", ""));
    assert!(
        matches!(&redirects[..], [Event::Redirect { status: 301, method, .. }] if method == "GET")
    );
}

#[tokio::test]
async fn a_302_turns_a_post_into_a_get_without_its_body() {
    let (status, method, body, _) = hop(302, Method::POST).await;
    assert_eq!((status, method.as_str(), body.as_str()), (200, "GET", ""));
}

#[tokio::test]
async fn a_302_keeps_other_methods() {
    let (status, method, body, _) = hop(302, Method::PUT).await;
    // The method stays, and so does its body (Fetch: only a request turned into a GET loses it).
    assert_eq!(
        (status, method.as_str(), body.as_str()),
        (200, "PUT", "payload")
    );
}

#[tokio::test]
async fn a_303_turns_anything_into_a_get() {
    let (status, method, body, _) = hop(303, Method::PUT).await;
    assert_eq!((status, method.as_str(), body.as_str()), (200, "GET", ""));
}

#[tokio::test]
async fn a_307_keeps_the_method_and_the_body() {
    let (status, method, body, _) = hop(307, Method::POST).await;
    assert_eq!(
        (status, method.as_str(), body.as_str()),
        (200, "POST", "payload")
    );
}

#[tokio::test]
async fn a_308_keeps_the_method_and_the_body() {
    let (status, method, body, _) = hop(308, Method::PUT).await;
    assert_eq!(
        (status, method.as_str(), body.as_str()),
        (200, "PUT", "payload")
    );
}

#[tokio::test]
async fn a_300_a_304_and_a_redirect_without_location_are_final_responses() {
    let server = TestServer::http().await;
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(config(), rec.clone()).unwrap();
    for url in [
        server.url("/redirect/300?to=/echo"),
        server.url("/redirect/304?to=/echo"),
        server.url("/redirect/302"),
    ] {
        let (body, response) = session.data(url.as_str()).await.unwrap();
        assert!(response.status().is_redirection(), "{url}");
        if response.status() != 304 {
            assert_eq!(&body[..], b"redirect body", "{url}: the body is delivered");
        }
    }
    assert!(
        !rec.events()
            .iter()
            .any(|e| matches!(e, Event::Redirect { .. })),
        "no redirect was proposed"
    );
}

#[tokio::test]
async fn a_chain_of_relative_redirects_is_followed_and_current_request_tracks_it() {
    let server = TestServer::http().await;
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(config(), rec.clone()).unwrap();
    let task = session.data_task(server.url("/chain/5").as_str()).unwrap();
    task.resume();
    assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
    assert_eq!(
        rec.body(),
        b"end of chain",
        "only the final body is delivered"
    );
    assert_eq!(
        task.info().current_request().url_str(),
        server.url("/chain/0")
    );
    assert_eq!(
        task.info().original_request().url_str(),
        server.url("/chain/5")
    );
    assert_eq!(
        task.info().response().unwrap().url().as_str(),
        server.url("/chain/0")
    );
    let events = rec.events();
    check_invariants(&events).unwrap();
    let hops: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::Redirect { location, .. } => Some(location.clone()),
            _ => None,
        })
        .collect();
    let expected: Vec<String> = (0..5)
        .rev()
        .map(|n| server.url(&format!("/chain/{n}")))
        .collect();
    assert_eq!(hops, expected);
    // Exactly one response reached the delegate: the final one.
    let responses = events
        .iter()
        .filter(|e| matches!(e, Event::Response { .. }))
        .count();
    assert_eq!(responses, 1);
}

#[tokio::test]
async fn more_redirects_than_the_limit_fail_with_1007() {
    let server = TestServer::http().await;
    let mut c = config();
    c.http_maximum_redirects = 3;
    let session = Session::new(c.clone()).unwrap();
    let ok = session.data(server.url("/chain/3").as_str()).await;
    assert_eq!(ok.unwrap().0.as_ref(), b"end of chain");
    let err = session
        .data(server.url("/chain/4").as_str())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::HttpTooManyRedirects);
    // The default limit is URLSession's 20.
    let session = Session::new(config()).unwrap();
    assert!(session.data(server.url("/chain/20").as_str()).await.is_ok());
    let err = session
        .data(server.url("/chain/21").as_str())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::HttpTooManyRedirects);
}

#[tokio::test]
async fn the_delegate_can_refuse_a_redirect_or_change_the_request() {
    let server = TestServer::http().await;
    let rec = Arc::new(Recorder::redirecting(RedirectAnswer::Refuse));
    let session = Session::with_delegate(config(), rec.clone()).unwrap();
    let task = session
        .data_task(server.url("/redirect/302?to=/echo").as_str())
        .unwrap();
    task.resume();
    assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
    assert_eq!(task.info().response().unwrap().status(), 302);
    assert_eq!(
        rec.body(),
        b"redirect body",
        "the refused redirect's body is delivered"
    );

    let rec = Arc::new(Recorder::redirecting(RedirectAnswer::AddHeader(
        "x-added",
        "by-delegate",
    )));
    let session = Session::with_delegate(config(), rec.clone()).unwrap();
    let (body, _) = session
        .data(server.url("/redirect/302?to=/headers").as_str())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("x-added: by-delegate"), "{text}");
}

#[tokio::test]
async fn credentials_and_cookies_never_reach_another_origin() {
    let a = TestServer::http().await;
    let b = TestServer::http().await; // another port: another origin
    let session = Session::new(config()).unwrap();
    let secret = |r: Request| {
        r.with_header(
            HeaderName::from_static("authorization"),
            HeaderValue::from_static("Basic c2VjcmV0OnNlY3JldA=="),
        )
        .with_header(
            HeaderName::from_static("cookie"),
            HeaderValue::from_static("session=secret"),
        )
        .with_header(
            HeaderName::from_static("x-kept"),
            HeaderValue::from_static("yes"),
        )
    };
    let away = format!("{}?to={}", a.url("/redirect/307"), b.url("/headers"));
    let (body, response) = session.data(secret(Request::get(&away))).await.unwrap();
    let seen = String::from_utf8_lossy(&body);
    assert_eq!(response.url().as_str(), b.url("/headers"));
    assert!(!seen.contains("authorization"), "{seen}");
    assert!(!seen.contains("cookie"), "{seen}");
    assert!(seen.contains("x-kept: yes"), "{seen}");
    // A chain that comes back to the first origin does not get them back either.
    let back = format!(
        "{}?to={}",
        a.url("/redirect/302"),
        format_args!("{}?to={}", b.url("/redirect/302"), a.url("/headers"))
    );
    let (body, _) = session.data(secret(Request::get(&back))).await.unwrap();
    let seen = String::from_utf8_lossy(&body);
    assert!(
        !seen.contains("authorization") && !seen.contains("cookie"),
        "{seen}"
    );
    // The same origin keeps them.
    let (body, _) = session
        .data(secret(Request::get(&a.url("/redirect/302?to=/headers"))))
        .await
        .unwrap();
    let seen = String::from_utf8_lossy(&body);
    assert!(
        seen.contains("authorization: Basic") && seen.contains("cookie: session"),
        "{seen}"
    );
}

#[tokio::test]
async fn a_redirect_from_https_to_http_is_refused_unless_allowed() {
    let ca = TestCa::new();
    let secure = TestServer::https(&ca).await;
    let plain = TestServer::http().await;
    let down = format!("{}?to={}", secure.url("/redirect/302"), plain.url("/"));
    let mut c = Configuration::ephemeral();
    c.extra_root_certificates.push(ca.ca_der.clone());
    let strict = Session::new(c.clone()).unwrap();
    let err = strict.data(down.as_str()).await.unwrap_err();
    assert_eq!(
        err.code(),
        ErrorCode::AppTransportSecurityRequiresSecureConnection
    );
    assert_eq!(err.failing_url(), Some(plain.url("/").as_str()));
    c.cleartext.allow_host("127.0.0.1");
    let allowed = Session::new(c).unwrap();
    let (body, _) = allowed.data(down.as_str()).await.unwrap();
    assert_eq!(&body[..], b"courier loopback server\n");
}
