//! How a data task fails, each with URLSession's code: certificates refused, the resource timeout,
//! errors made for real (a refused connection, a stalled server, a cut body, a closed connection),
//! a response head too large; the one failure sent again: a kept-alive connection the server
//! dropped; and a loose head that is no failure (a folded field, a space before a colon).

use std::sync::Arc;
use std::time::Duration;

use courier_engine::{CleartextPolicy, Configuration, ErrorCode, Request, Session};
use courier_tests::{Event, Fault, FaultServer, Recorder, TestCa, TestServer};

const WAIT: Duration = Duration::from_secs(20);

fn http_config() -> Configuration {
    let mut c = Configuration::ephemeral();
    c.cleartext = CleartextPolicy::AllowAll;
    c
}

#[tokio::test]
async fn untrusted_certificate_is_refused_by_default() {
    let ca = TestCa::new();
    let server = TestServer::https(&ca).await;
    let session = Session::new(Configuration::ephemeral()).unwrap();
    let err = session.data(server.url("/").as_str()).await.unwrap_err();
    assert_eq!(
        err.code(),
        ErrorCode::ServerCertificateHasUnknownRoot,
        "{err}"
    );
}

#[tokio::test]
async fn bad_certificates_are_refused_with_their_codes() {
    use courier_tests::Leaf;
    let cases = [
        (Leaf::Expired, ErrorCode::ServerCertificateHasBadDate),
        (Leaf::NotYetValid, ErrorCode::ServerCertificateNotYetValid),
        (Leaf::OtherHost, ErrorCode::ServerCertificateUntrusted),
    ];
    for (leaf, want) in cases {
        let ca = TestCa::with_leaf(leaf);
        let server = TestServer::https(&ca).await;
        let mut config = Configuration::ephemeral();
        config.extra_root_certificates.push(ca.ca_der.clone());
        let session = Session::new(config).unwrap();
        let err = session.data(server.url("/").as_str()).await.unwrap_err();
        assert_eq!(err.code(), want, "{leaf:?}: {err}");
    }
}

#[tokio::test]
async fn resource_timeout_ends_a_task_that_is_never_idle() {
    let server = TestServer::http().await;
    let mut config = http_config();
    config.timeout_for_request = Duration::from_secs(5);
    config.timeout_for_resource = Duration::from_millis(400);
    let session = Session::new(config).unwrap();
    // A chunk every 30 ms: the idle timer never fires, the resource budget runs out.
    let err = session
        .data(server.url("/drip?chunks=100&size=10&delay_ms=30").as_str())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::TimedOut);
    assert!(err.message().contains("resource"), "{err}");
}

/// The resource timeout is wall-clock time: a rate limit that would take 100 s, or a delegate that
/// never answers the response, cannot stretch it.
#[tokio::test]
async fn resource_timeout_counts_rate_limited_and_delegate_time() {
    let server = TestServer::http().await;
    let mut config = http_config();
    config.timeout_for_request = Duration::from_secs(30);
    config.timeout_for_resource = Duration::from_millis(500);
    config.maximum_receive_rate_per_task = Some(1000);
    let session = Session::new(config).unwrap();
    let err = tokio::time::timeout(WAIT, session.data(server.url("/bytes/100000").as_str()))
        .await
        .expect("the resource timeout ends the rate-limited task")
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::TimedOut);
    assert!(err.message().contains("resource"), "{err}");

    let mut config = http_config();
    config.timeout_for_request = Duration::from_secs(30);
    config.timeout_for_resource = Duration::from_millis(500);
    let rec = Arc::new(Recorder::holding_responses());
    let session = Session::with_delegate(config, rec.clone()).unwrap();
    let task = session.data_task(server.url("/bytes/10").as_str()).unwrap();
    task.resume();
    assert_eq!(
        rec.wait_complete(task.info().id(), WAIT).await,
        Some(Some(ErrorCode::TimedOut)),
        "a delegate that never answers does not stop the clock"
    );

    // Time suspended does not count: 1.5 s suspended within a 1 s budget, then the task finishes.
    let mut config = http_config();
    config.timeout_for_resource = Duration::from_secs(1);
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(config, rec.clone()).unwrap();
    let task = session
        .data_task(server.url("/drip?chunks=10&size=10&delay_ms=20").as_str())
        .unwrap();
    task.resume();
    rec.wait_for(WAIT, |e| {
        e.iter()
            .any(|e| matches!(e, Event::Data { task: t, .. } if *t == task.info().id()))
    })
    .await;
    task.suspend();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    task.resume();
    assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
}

async fn error_of(session: &Session, request: Request) -> ErrorCode {
    session.data(request).await.expect_err("should fail").code()
}

#[tokio::test]
async fn error_cases_are_produced_for_real() {
    let session = Session::new(http_config()).unwrap();

    // A refused port: bind one, then free it.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let refused = format!("http://127.0.0.1:{port}/");
    assert_eq!(
        error_of(&session, Request::get(&refused)).await,
        ErrorCode::CannotConnectToHost
    );
    assert_eq!(
        error_of(&session, Request::get("http://127.0.0.1:99999/")).await,
        ErrorCode::BadUrl
    );
    assert_eq!(
        error_of(&session, Request::get("gopher://127.0.0.1/")).await,
        ErrorCode::UnsupportedUrl
    );
    assert_eq!(
        error_of(
            &session,
            Request::get("http://courier-no-such-host.invalid/")
        )
        .await,
        ErrorCode::CannotFindHost
    );

    let server = TestServer::http().await;
    let get_with_body = Request::get(&server.url("/echo")).with_body("x");
    assert_eq!(
        error_of(&session, get_with_body).await,
        ErrorCode::DataLengthExceedsMaximum
    );

    let stall = FaultServer::start(Fault::Stall).await;
    let mut stalled = Request::get(&stall.url("/"));
    stalled.set_timeout(Duration::from_millis(300));
    assert_eq!(error_of(&session, stalled).await, ErrorCode::TimedOut);

    let mid = FaultServer::start(Fault::CloseMidBody {
        announced: 100_000,
        sent: 1000,
    })
    .await;
    assert_eq!(
        error_of(&session, Request::get(&mid.url("/"))).await,
        ErrorCode::NetworkConnectionLost
    );

    let none = FaultServer::start(Fault::CloseWithoutResponse).await;
    assert_eq!(
        error_of(&session, Request::get(&none.url("/"))).await,
        ErrorCode::BadServerResponse
    );

    // Malformed, not cut short: -1017 for a head that is not HTTP and for a chunk-size line that
    // is not a number (URLSession's cannotParseResponse), not -1005.
    for fault in [Fault::Garbage, Fault::BadChunk] {
        let bad = FaultServer::start(fault).await;
        assert_eq!(
            error_of(&session, Request::get(&bad.url("/"))).await,
            ErrorCode::CannotParseResponse,
            "{fault:?}"
        );
    }

    let strict = Session::new(Configuration::ephemeral()).unwrap();
    let err = strict.data(server.url("/").as_str()).await.unwrap_err();
    assert_eq!(
        err.code(),
        ErrorCode::AppTransportSecurityRequiresSecureConnection
    );
    assert_eq!(err.failing_url(), Some(server.url("/").as_str()));
}

/// A head past RFC 9112's letter that curl and browsers read is read too (a field folded over two
/// lines, a space before a colon): it failed with -1017.
#[tokio::test]
async fn a_folded_or_loosely_spaced_field_is_read_as_user_agents_read_it() {
    let server = FaultServer::start(Fault::LenientHead).await;
    let session = Session::new(http_config()).unwrap();
    let (body, response) = session.data(server.url("/").as_str()).await.unwrap();
    assert_eq!(&body[..], b"ok");
    let folded = response.headers()["x-folded"].to_str().unwrap();
    assert!(
        folded.starts_with("one") && folded.ends_with("two"),
        "{folded:?}"
    );
    assert_eq!(response.headers()["x-spaced"], "v");
}

#[tokio::test]
async fn a_response_head_with_too_many_fields_is_refused() {
    let server = TestServer::http().await;
    let session = Session::new(http_config()).unwrap();
    let (body, _) = session
        .data(server.url("/many-headers/90").as_str())
        .await
        .unwrap();
    assert_eq!(&body[..], b"many headers");
    let err = session
        .data(server.url("/many-headers/101").as_str())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::CannotParseResponse, "{err}");
    // Said as what it is: the head's size, not a malformed response.
    assert!(
        err.to_string()
            .contains("response head is too large (more than 100 fields"),
        "{err}"
    );
}

/// A kept-alive connection the server closes as the next request goes out (nginx's idle timeout
/// racing a request): a `GET` without a body is sent once more, on a new connection, and succeeds,
/// as with curl; a `POST` is not sent twice unasked. (The `GET` failed with -1011.)
#[tokio::test]
async fn a_get_on_a_connection_the_server_dropped_goes_again_once() {
    let server = FaultServer::start(Fault::DropsKeptAlive).await;
    let session = Session::new(http_config()).unwrap();
    for path in ["/first", "/second", "/third"] {
        let (body, response) = session.data(server.url(path).as_str()).await.unwrap();
        assert_eq!((response.status().as_u16(), &body[..]), (200, &b"ok"[..]));
    }
    let mut post = Request::new(http::Method::POST, &server.url("/post"));
    post.set_body(b"once".to_vec());
    let err = session.data(post).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::BadServerResponse, "{err}");
}
