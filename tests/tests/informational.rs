//! Informational responses and upload etiquette: 1xx responses reach the delegate
//! (`did_receive_informational_response`, 103 Early Hints among them), and a large upload asks
//! `Expect: 100-continue`, so a server that refuses it does not receive the body, while one that
//! ignores the header gets it after the timeout.

use std::sync::Arc;
use std::time::Duration;

use courier_engine::reexports::bytes::Bytes;
use courier_engine::{CleartextPolicy, Configuration, Request, Session, UploadBody};
use courier_tests::{Event, Fault, FaultServer, Recorder, TestServer, check_invariants};

const WAIT: Duration = Duration::from_secs(20);

fn config() -> Configuration {
    let mut c = Configuration::ephemeral();
    c.cleartext = CleartextPolicy::AllowAll;
    c
}

fn informational(events: &[Event]) -> Vec<(u16, Option<String>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Informational { status, link, .. } => Some((*status, link.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn early_hints_reach_the_delegate_before_the_response() {
    let server = FaultServer::start(Fault::EarlyHints).await;
    let rec = Arc::new(Recorder::new());
    let mut config = config();
    config.deliver_informational_responses = true;
    let session = Session::with_delegate(config, rec.clone()).unwrap();
    let task = session.data_task(server.url("/").as_str()).unwrap();
    task.resume();
    assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
    assert_eq!(rec.body(), b"ok");
    let events = rec.events();
    check_invariants(&events).unwrap();
    assert_eq!(
        informational(&events),
        [(103, Some("</style.css>; rel=preload".to_owned()))]
    );
    let hint = events
        .iter()
        .position(|e| matches!(e, Event::Informational { .. }));
    let response = events
        .iter()
        .position(|e| matches!(e, Event::Response { .. }));
    assert!(hint < response, "{events:?}");
}

/// 2 MiB: over the default threshold (1 MiB).
fn large() -> Bytes {
    Bytes::from(vec![7u8; 2 << 20])
}

#[tokio::test]
async fn a_refusing_server_never_receives_a_large_uploads_body() {
    let server = TestServer::http().await;
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(config(), rec.clone()).unwrap();
    // The route answers without reading the body: hyper's server then never says 100 Continue.
    let request = Request::new(
        courier_engine::reexports::http::Method::PUT,
        &server.url("/status/413"),
    );
    let task = session
        .upload_task(request, UploadBody::Bytes(large()))
        .unwrap();
    task.resume();
    assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
    assert_eq!(task.info().response().unwrap().status(), 413);
    assert_eq!(task.info().bytes_sent(), 0, "the body stayed here");
    let events = rec.events();
    check_invariants(&events).unwrap();
    assert!(
        !events.iter().any(|e| matches!(e, Event::Sent { .. })),
        "{events:?}"
    );
    assert!(informational(&events).is_empty());
}

#[tokio::test]
async fn a_willing_server_says_continue_and_gets_the_body() {
    let server = TestServer::http().await;
    let rec = Arc::new(Recorder::new());
    let mut config = config();
    config.deliver_informational_responses = true;
    let session = Session::with_delegate(config, rec.clone()).unwrap();
    let request = Request::new(
        courier_engine::reexports::http::Method::PUT,
        &server.url("/sink"),
    );
    let task = session
        .upload_task(request, UploadBody::Bytes(large()))
        .unwrap();
    task.resume();
    assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
    assert_eq!(rec.body(), format!("bytes={}", 2 << 20).as_bytes());
    assert_eq!(task.info().bytes_sent(), 2 << 20);
    assert_eq!(
        informational(&rec.events()),
        [(100, None)],
        "the server's 100 Continue"
    );

    // Below the threshold, nothing is asked: the body goes at once.
    let request = Request::new(
        courier_engine::reexports::http::Method::PUT,
        &server.url("/sink"),
    );
    let (body, _) = session
        .upload(request, UploadBody::Bytes(Bytes::from_static(b"small")))
        .await
        .unwrap();
    assert_eq!(&body[..], b"bytes=5");
}

#[tokio::test]
async fn a_server_that_ignores_expect_gets_the_body_after_the_timeout() {
    let server = FaultServer::start(Fault::IgnoresExpect).await;
    let mut config = config();
    config.expect_continue_timeout = Duration::from_millis(100);
    let session = Session::new(config).unwrap();
    let request = Request::new(
        courier_engine::reexports::http::Method::POST,
        &server.url("/"),
    );
    let (body, response) = upload_large(&session, request).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        body,
        format!("{}", 2 << 20).as_bytes(),
        "the whole body arrived"
    );

    // Turned off: no wait at all, and the server still gets it.
    let mut never = Configuration::ephemeral();
    never.cleartext = CleartextPolicy::AllowAll;
    never.expect_continue_threshold = None;
    never.expect_continue_timeout = Duration::from_secs(3600);
    let session = Session::new(never).unwrap();
    let request = Request::new(
        courier_engine::reexports::http::Method::POST,
        &server.url("/"),
    );
    let (body, _) = tokio::time::timeout(WAIT, session.upload(request, UploadBody::Bytes(large())))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(body, format!("{}", 2 << 20).as_bytes());
}

/// A server that answers Courier's own `Expect: 100-continue` with `417 Expectation Failed` gets
/// the upload again without it (RFC 9110 10.1.1, as curl sends it), once; the application's own
/// header is the application's: its 417 is the response.
#[tokio::test]
async fn a_417_to_our_own_expect_sends_the_upload_again_without_it() {
    let server = TestServer::http().await;
    let session = Session::new(config()).unwrap();
    let request = Request::new(
        courier_engine::reexports::http::Method::PUT,
        &server.url("/no-expect"),
    );
    let (body, response) = upload_large(&session, request).await;
    assert_eq!(response.status(), 200);
    assert_eq!(body, format!("bytes={}", 2 << 20).as_bytes());

    let mut asked = Request::new(
        courier_engine::reexports::http::Method::PUT,
        &server.url("/no-expect"),
    );
    asked.headers_mut().insert(
        courier_engine::reexports::http::header::EXPECT,
        courier_engine::reexports::http::HeaderValue::from_static("100-continue"),
    );
    let (_, response) = upload_large(&session, asked).await;
    assert_eq!(response.status(), 417, "the application's own expectation");
}

/// [`large`] uploaded with `request`, awaited (within [`WAIT`]).
async fn upload_large(session: &Session, request: Request) -> (Bytes, courier_engine::Response) {
    tokio::time::timeout(WAIT, session.upload(request, UploadBody::Bytes(large())))
        .await
        .expect("the upload ends")
        .unwrap()
}
