//! Protocol handlers (URLSession's `URLProtocol`): an application's own code answers the requests
//! it claims, and the answer takes the network's whole path: redirects, cookies, challenges, the
//! response disposition, downloads with resume data, cancellation, metrics.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use courier_engine::reexports::bytes::Bytes;
use courier_engine::task::protocol::handler_fn;
use courier_engine::{
    Answer, CleartextPolicy, Configuration, Error, ErrorCode, Request, Session, TaskState,
};
use courier_tests::mock::paced;
use courier_tests::{Event, Recorder, TestServer, check_invariants};

const WAIT: Duration = Duration::from_secs(20);

/// Every request a handler saw: method, URL and headers.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Request>>>);

impl Seen {
    fn push(&self, r: &Request) {
        self.0.lock().unwrap().push(r.clone());
    }
    fn all(&self) -> Vec<Request> {
        self.0.lock().unwrap().clone()
    }
}

fn path_of(r: &Request) -> String {
    r.url().map(|u| u.path().to_owned()).unwrap_or_default()
}

#[tokio::test]
async fn a_handled_https_api_never_touches_the_network_and_redirects_and_cookies_work_as_over_it() {
    let seen = Seen::default();
    let log = seen.clone();
    let mut config = Configuration::ephemeral();
    // The application's real URLs, mocked: cleartext stays forbidden, nothing listens anywhere.
    config.cleartext = CleartextPolicy::Deny;
    config.protocol_handlers.push(handler_fn(
        |r| r.url().and_then(|u| u.host_str()) == Some("api.example.com"),
        move |r| {
            log.push(&r);
            async move {
                Ok(match path_of(&r).as_str() {
                    "/login" => Answer::new(302)
                        .header("location", "/home")
                        .header("set-cookie", "session=s3cret; Path=/; Secure"),
                    "/home" => Answer::new(200).body("welcome"),
                    _ => Answer::new(404),
                })
            }
        },
    ));
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(config, rec.clone()).unwrap();
    let task = session.data_task("https://api.example.com/login").unwrap();
    task.resume();
    assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
    assert_eq!(rec.body(), b"welcome");
    assert_eq!(task.info().response().unwrap().status(), 200);
    assert_eq!(
        task.info().current_request().url_str(),
        "https://api.example.com/home",
        "the redirect was followed"
    );
    let events = rec.events();
    check_invariants(&events).unwrap();
    assert!(
        events.iter().any(|e| matches!(e, Event::Redirect { .. })),
        "the delegate was asked about the redirect: {events:?}"
    );
    let seen = seen.all();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[1].headers().get("cookie").map(|v| v.to_str().unwrap()),
        Some("session=s3cret"),
        "the redirect's cookie came from the jar"
    );
    assert!(
        seen[0].headers().contains_key("user-agent"),
        "the request as it would go on the wire"
    );
}

#[tokio::test]
async fn unclaimed_requests_go_to_the_network_and_a_handler_error_fails_the_task_with_it() {
    let server = TestServer::http().await;
    let mut config = Configuration::ephemeral();
    config.cleartext = CleartextPolicy::AllowAll;
    config.protocol_handlers.push(handler_fn(
        |r| r.url().is_some_and(|u| u.scheme() == "offline"),
        |_| async { Err(Error::new(ErrorCode::NotConnectedToInternet, "offline")) },
    ));
    let session = Session::new(config).unwrap();
    let (body, _) = session
        .data(server.url("/bytes/10").as_str())
        .await
        .unwrap();
    assert_eq!(body.len(), 10, "the loopback server answered");
    let error = session.data("offline://anything/").await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::NotConnectedToInternet);
    assert_eq!(error.failing_url(), Some("offline://anything/"));
    // Without a handler, the scheme is refused as before.
    let error = session.data("other://anything/").await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::UnsupportedUrl);
}

#[tokio::test]
async fn a_download_cut_by_a_handler_resumes_with_a_range_the_handler_answers() {
    let content: Bytes = (0..300_000u32)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<_>>()
        .into();
    let cut_once = Arc::new(AtomicBool::new(true));
    let seen = Seen::default();
    let (body, log) = (content.clone(), seen.clone());
    let dir = tempfile::tempdir().unwrap();
    let mut config = courier_tests::default_config_in(dir.path());
    config.protocol_handlers.push(handler_fn(
        |r| r.url().is_some_and(|u| u.scheme() == "mock"),
        move |r| {
            log.push(&r);
            let (content, cut) = (body.clone(), cut_once.swap(false, Ordering::SeqCst));
            async move {
                let from = r
                    .headers()
                    .get("range")
                    .and_then(|v| {
                        v.to_str()
                            .ok()?
                            .strip_prefix("bytes=")?
                            .strip_suffix('-')?
                            .parse()
                            .ok()
                    })
                    .unwrap_or(0usize);
                let answer = if from > 0 {
                    Answer::new(206).header(
                        "content-range",
                        &format!("bytes {from}-{}/{}", content.len() - 1, content.len()),
                    )
                } else {
                    Answer::new(200)
                };
                let answer = answer
                    .header("etag", "\"v1\"")
                    .header("accept-ranges", "bytes")
                    .header("content-length", &(content.len() - from).to_string());
                let rest = content.slice(from..);
                if cut {
                    // Half of it, then the connection "drops".
                    let half = rest.slice(..rest.len() / 2);
                    let pieces = paced(vec![half], Duration::ZERO);
                    let lost = futures_util::stream::once(async {
                        Err(Error::new(ErrorCode::NetworkConnectionLost, "cut"))
                    });
                    Ok(answer.stream(futures_util::StreamExt::chain(pieces, lost)))
                } else {
                    Ok(answer.body(rest))
                }
            }
        },
    ));
    let session = Session::new(config).unwrap();
    let error = session
        .download("mock://files/model.bin")
        .await
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::NetworkConnectionLost);
    let data = error
        .resume_data()
        .expect("an ETag and ranges: resumable")
        .clone();
    let (file, response) = session.download_with_resume_data(&data).await.unwrap();
    assert_eq!(response.status(), 206);
    assert_eq!(std::fs::read(file.path()).unwrap(), content);
    let seen = seen.all();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[1]
            .headers()
            .get("range")
            .map(|v| v.to_str().unwrap().to_owned()),
        Some(format!("bytes={}-", content.len() / 2)),
        "only the rest was asked for"
    );
    assert_eq!(
        seen[1]
            .headers()
            .get("if-range")
            .map(|v| v.to_str().unwrap()),
        Some("\"v1\"")
    );
}

#[tokio::test]
async fn cancelling_a_task_drops_the_handlers_unfinished_answer() {
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = dropped.clone();
    let mut config = Configuration::ephemeral();
    config.protocol_handlers.push(handler_fn(
        |r| r.url().is_some_and(|u| u.scheme() == "mock"),
        move |r| {
            let flag = flag.clone();
            async move {
                if path_of(&r) == "/never" {
                    // Set when the pending answer is dropped, as a stopped URLProtocol is.
                    struct OnDrop(Arc<AtomicBool>);
                    impl Drop for OnDrop {
                        fn drop(&mut self) {
                            self.0.store(true, Ordering::SeqCst);
                        }
                    }
                    let _guard = OnDrop(flag);
                    std::future::pending::<()>().await;
                }
                Ok(Answer::new(200).body("ok"))
            }
        },
    ));
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(config, rec.clone()).unwrap();
    let task = session.data_task("mock://x/never").unwrap();
    task.resume();
    tokio::time::timeout(WAIT, async {
        while task.info().state() != TaskState::Running {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    task.cancel();
    assert_eq!(
        rec.wait_complete(task.info().id(), WAIT).await,
        Some(Some(ErrorCode::Cancelled))
    );
    tokio::time::timeout(WAIT, async {
        while !dropped.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the handler's future was dropped");
    session.finish_tasks_and_invalidate();
    let events = rec.wait_invalid(WAIT).await;
    check_invariants(&events).unwrap();
}

/// The request (idle) timeout counts from the last bytes a download received, not from its own
/// wakes after them (the write of what it holds, its checkpoint a second later): on Tokio's paused
/// clock the task fails one timeout after the piece, and keeps its resume data. (Each wake started
/// the clock again: a 30 s timeout fired after 31 s.)
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_request_timeout_counts_from_the_last_bytes_a_download_received() {
    const IDLE: Duration = Duration::from_secs(30);
    let dir = tempfile::tempdir().unwrap();
    let mut config = courier_tests::default_config_in(dir.path());
    config.timeout_for_request = IDLE;
    let sent_at = Arc::new(Mutex::new(None));
    let at = sent_at.clone();
    config.protocol_handlers.push(handler_fn(
        |r| r.url().is_some_and(|u| u.scheme() == "mock"),
        move |_| {
            let at = at.clone();
            async move {
                let piece = futures_util::stream::once(async move {
                    *at.lock().unwrap() = Some(tokio::time::Instant::now());
                    Ok(Bytes::from(vec![7u8; 100_000]))
                });
                // Then nothing, ever: a server gone quiet.
                let quiet = futures_util::stream::pending();
                Ok(Answer::new(200)
                    .header("etag", "\"v1\"")
                    .header("accept-ranges", "bytes")
                    .header("content-length", "1000000")
                    .stream(futures_util::StreamExt::chain(piece, quiet)))
            }
        },
    ));
    let session = Session::new(config).unwrap();
    let error = session
        .download("mock://files/stalls.bin")
        .await
        .unwrap_err();
    let quiet_for = tokio::time::Instant::now() - sent_at.lock().unwrap().expect("the piece went");
    assert_eq!(error.code(), ErrorCode::TimedOut);
    assert!(error.resume_data().is_some(), "resumable: an ETag, ranges");
    assert!(
        quiet_for >= IDLE && quiet_for < IDLE + Duration::from_millis(100),
        "failed {quiet_for:?} after the last bytes"
    );
}
