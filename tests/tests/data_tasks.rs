//! Data tasks over loopback: HTTP/1.1, HTTP/2 over TLS, delegate ordering, cancel, suspend, the
//! session's life. How a task fails (certificates, timeouts, wire errors) is in
//! `data_task_failures.rs`; what its request sends (fields, body) in `requests.rs`.

use std::sync::Arc;
use std::time::Duration;

use courier_engine::reexports::http::Version;
use courier_engine::{
    CleartextPolicy, Configuration, ErrorCode, ResponseDisposition, Session, TaskState,
};
use courier_tests::server::pattern_bytes;
use courier_tests::{Event, Recorder, TestCa, TestServer, check_invariants};

const WAIT: Duration = Duration::from_secs(20);

fn http_config() -> Configuration {
    let mut c = Configuration::ephemeral();
    c.cleartext = CleartextPolicy::AllowAll;
    c
}

fn delegate_session(config: Configuration) -> (Session, Arc<Recorder>) {
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(config, rec.clone()).expect("session");
    (session, rec)
}

#[tokio::test]
async fn http1_body_arrives_whole() {
    let server = TestServer::http().await;
    let session = Session::new(http_config()).unwrap();
    let (body, response) = session
        .data(server.url("/bytes/100000").as_str())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), Version::HTTP_11);
    assert_eq!(response.expected_content_length(), Some(100_000));
    assert_eq!(body.as_ref(), pattern_bytes(0, 100_000).as_slice());
}

#[tokio::test]
async fn http2_over_tls_with_a_test_ca() {
    let ca = TestCa::new();
    let server = TestServer::https(&ca).await;
    let mut config = Configuration::ephemeral();
    config.extra_root_certificates.push(ca.ca_der.clone());
    let session = Session::new(config).unwrap();
    for _ in 0..3 {
        let (body, response) = session
            .data(server.url("/bytes/70000").as_str())
            .await
            .unwrap();
        assert_eq!(response.version(), Version::HTTP_2);
        assert_eq!(body.as_ref(), pattern_bytes(0, 70_000).as_slice());
    }
    assert_eq!(
        server.connections(),
        1,
        "HTTP/2 multiplexes on one connection"
    );
}

/// A download waiting for its disk holds its HTTP/2 connection's reads (`ReadPause`): while held,
/// nothing more is read from the connection, so what the server sends waits in the kernel rather
/// than in the process; once let go, the body goes on where it was. HTTP/1.1 connections, which
/// read only as their one body is read, offer no hold.
#[tokio::test]
async fn an_http2_connection_reads_nothing_while_held() {
    use courier_protocol_http::{ConnectionInfo, Transport, TransportSettings, empty_body};
    use http_body_util::BodyExt;

    let ca = TestCa::new();
    let server = TestServer::https(&ca).await;
    let transport = Transport::new(&TransportSettings {
        extra_roots: vec![ca.ca_der.clone()],
        ..TransportSettings::default()
    })
    .unwrap();
    // Two chunks of 1,000 bytes, the second 300 ms after the first.
    let url = server.url("/drip?chunks=2&size=1000&delay_ms=300");
    let request = http::Request::get(url.as_str()).body(empty_body()).unwrap();
    let response = tokio::time::timeout(WAIT, transport.send(request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.version(), Version::HTTP_2);
    let reads = response
        .extensions()
        .get::<ConnectionInfo>()
        .and_then(|c| c.reads().cloned())
        .expect("an HTTP/2 connection's reads can be held");
    let mut body = response.into_body();
    let mut first = Vec::new();
    while first.len() < 1000 {
        let frame = tokio::time::timeout(WAIT, body.frame()).await.unwrap();
        first.extend_from_slice(&frame.unwrap().unwrap().into_data().unwrap());
    }
    assert_eq!(first, pattern_bytes(0, 1000));
    let hold = reads.hold();
    // The second chunk is sent while the reads are held: it must not be read. (A wait proves an
    // absence; a broken hold fails this as soon as the chunk arrives, after 300 ms.)
    let held = tokio::time::timeout(Duration::from_millis(1500), body.frame()).await;
    assert!(held.is_err(), "read while held: {held:?}");
    drop(hold);
    let frame = tokio::time::timeout(WAIT, body.frame()).await.unwrap();
    let second = frame.unwrap().unwrap().into_data().unwrap();
    assert_eq!(second.as_ref(), pattern_bytes(1000, 1000).as_slice());

    let plain = TestServer::http().await;
    let request = http::Request::get(plain.url("/bytes/10").as_str())
        .body(empty_body())
        .unwrap();
    let response = transport.send(request).await.unwrap();
    let info = response.extensions().get::<ConnectionInfo>().unwrap();
    assert!(info.reads().is_none(), "HTTP/1.1 reads are the body's own");
}

/// A task actor runs the session's next task once its own ended: an answer the delegate gives
/// for the task that ended must not reach the next one. Here the first task is cancelled while
/// its `did_receive_response` is unanswered; the next task, on the actor the first one freed, also
/// waits for its answer; then the stale answer (cancel) comes first, the next task's (allow)
/// second. The next task completes whole.
#[tokio::test]
async fn a_late_answer_for_an_ended_task_does_not_reach_the_next() {
    let server = TestServer::http().await;
    let rec = Arc::new(Recorder::holding_responses());
    let session = Session::with_delegate(http_config(), rec.clone()).unwrap();
    let responded = |id: u64| {
        move |e: &[Event]| {
            e.iter()
                .any(|e| matches!(e, Event::Response { task, .. } if *task == id))
        }
    };
    let first = session.data_task(server.url("/bytes/10").as_str()).unwrap();
    first.resume();
    rec.wait_for(WAIT, responded(first.info().id())).await;
    first.cancel();
    assert_eq!(
        rec.wait_complete(first.info().id(), WAIT).await,
        Some(Some(ErrorCode::Cancelled))
    );
    let stale = rec.take_held_replies();
    assert_eq!(stale.len(), 1);

    let next = session
        .data_task(server.url("/bytes/100").as_str())
        .unwrap();
    next.resume();
    rec.wait_for(WAIT, responded(next.info().id())).await;
    let fresh = rec.take_held_replies();
    assert_eq!(fresh.len(), 1);
    for reply in stale {
        reply.send(ResponseDisposition::Cancel);
    }
    for reply in fresh {
        reply.send(ResponseDisposition::Allow);
    }
    assert_eq!(rec.wait_complete(next.info().id(), WAIT).await, Some(None));
    assert_eq!(next.info().bytes_received(), 100);
    check_invariants(&rec.events()).unwrap();
}

#[tokio::test]
async fn http_404_is_not_an_error() {
    let server = TestServer::http().await;
    let (session, rec) = delegate_session(http_config());
    let task = session
        .data_task(server.url("/status/404").as_str())
        .unwrap();
    task.resume();
    assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
    assert_eq!(task.info().response().unwrap().status(), 404);
    assert!(task.info().error().is_none());
    assert_eq!(task.info().state(), TaskState::Completed);
}

#[tokio::test]
async fn delegate_sees_urlsession_order() {
    let server = TestServer::http().await;
    let url = server.url("/drip?chunks=5&size=1000&delay_ms=5");
    delegate_sees_urlsession_order_from(http_config(), url.as_str()).await;
}

/// The same test with no server at all: a protocol handler answers the same route, and the delegate
/// sees the same callbacks in the same order.
#[tokio::test]
async fn delegate_sees_urlsession_order_from_a_protocol_handler() {
    let mut config = Configuration::ephemeral();
    config
        .protocol_handlers
        .push(courier_tests::mock::drip_handler());
    let url = "mock://loopback/drip?chunks=5&size=1000&delay_ms=5";
    delegate_sees_urlsession_order_from(config, url).await;
}

async fn delegate_sees_urlsession_order_from(config: Configuration, url: &str) {
    let (session, rec) = delegate_session(config);
    let task = session.data_task(url).unwrap();
    assert_eq!(task.info().id(), 1);
    assert_eq!(task.info().state(), TaskState::Suspended);
    task.resume();
    rec.wait_complete(1, WAIT).await;
    session.finish_tasks_and_invalidate();
    let events = rec.wait_invalid(WAIT).await;
    check_invariants(&events).unwrap();
    let kinds: Vec<&str> = events.iter().map(Event::name).collect();
    let mut dedup = kinds.clone();
    dedup.dedup();
    assert_eq!(
        dedup,
        [
            "created",
            "state",
            "response",
            "data",
            "will_cache",
            "metrics",
            "state",
            "complete",
            "invalid"
        ],
        "{events:?}"
    );
    assert_eq!(
        events[1],
        Event::State {
            task: 1,
            from: TaskState::Suspended,
            to: TaskState::Running
        }
    );
    assert_eq!(rec.body(), pattern_bytes(0, 5000));
    assert_eq!(task.info().bytes_received(), 5000);
    assert_eq!(task.info().bytes_expected_to_receive(), Some(5000));
}

/// `prefers_incremental_delivery` false: the delegate gets the whole body in one
/// `did_receive_data`, after the response and before the caching question, the metrics and the
/// completion. By default the body comes as it arrives.
#[tokio::test]
async fn a_task_that_does_not_prefer_incremental_delivery_gets_its_body_at_once() {
    let server = TestServer::http().await;
    let (session, rec) = delegate_session(http_config());
    let url = server.url("/bytes/300000");
    let whole = session.data_task(url.as_str()).unwrap();
    assert!(whole.info().prefers_incremental_delivery(), "the default");
    whole.info().set_prefers_incremental_delivery(false);
    let piecemeal = session.data_task(url.as_str()).unwrap();
    for task in [&whole, &piecemeal] {
        task.resume();
        assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
    }
    let events = rec.events();
    check_invariants(&events).unwrap();
    let data_of = |id: u64| -> Vec<usize> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Data { task, bytes } if *task == id => Some(*bytes),
                _ => None,
            })
            .collect()
    };
    assert_eq!(data_of(whole.info().id()), [300_000]);
    let pieces = data_of(piecemeal.info().id());
    assert!(pieces.len() > 1, "{pieces:?}");
    assert_eq!(pieces.iter().sum::<usize>(), 300_000);
    let names: Vec<&str> = events
        .iter()
        .filter(|e| e.task() == Some(whole.info().id()))
        .map(Event::name)
        .collect();
    let at = |name: &str| names.iter().position(|n| *n == name);
    let data = at("data").unwrap();
    assert!(at("response").unwrap() < data, "{names:?}");
    assert!(data < at("metrics").unwrap() && data < at("complete").unwrap());
    if let Some(cache) = at("will_cache") {
        assert!(data < cache, "{names:?}");
    }
}

#[tokio::test]
async fn cancel_gives_cancelled_with_the_failing_url() {
    let server = TestServer::http().await;
    let (session, rec) = delegate_session(http_config());
    let url = server.url("/drip?chunks=1000&size=100&delay_ms=20");
    let task = session.data_task(url.as_str()).unwrap();
    task.resume();
    rec.wait_for(WAIT, |e| e.iter().any(|e| matches!(e, Event::Data { .. })))
        .await;
    task.cancel();
    assert_eq!(
        rec.wait_complete(task.info().id(), WAIT).await,
        Some(Some(ErrorCode::Cancelled))
    );
    let events = rec.events();
    assert!(events.contains(&Event::Complete {
        task: 1,
        error: Some(ErrorCode::Cancelled),
        failing_url: Some(url.clone()),
    }));
    assert!(events.contains(&Event::State {
        task: 1,
        from: TaskState::Running,
        to: TaskState::Canceling
    }));
    assert_eq!(task.info().error().unwrap().message(), "cancelled");
    check_invariants(&events).unwrap();
}

#[tokio::test]
async fn cancel_before_resume_still_completes_once() {
    let (session, rec) = delegate_session(http_config());
    let task = session.data_task("http://127.0.0.1:9/never").unwrap();
    task.cancel();
    task.cancel();
    task.resume();
    assert_eq!(
        rec.wait_complete(1, WAIT).await,
        Some(Some(ErrorCode::Cancelled))
    );
    session.finish_tasks_and_invalidate();
    let events = rec.wait_invalid(WAIT).await;
    check_invariants(&events).unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::Complete { .. }))
            .count(),
        1
    );
    assert!(!events.iter().any(|e| matches!(e, Event::Response { .. })));
}

#[tokio::test]
async fn response_disposition_cancel_ends_with_cancelled() {
    let server = TestServer::http().await;
    let rec = Arc::new(Recorder::answering(ResponseDisposition::Cancel));
    let session = Session::with_delegate(http_config(), rec.clone()).unwrap();
    let task = session
        .data_task(server.url("/bytes/5000").as_str())
        .unwrap();
    task.resume();
    assert_eq!(
        rec.wait_complete(1, WAIT).await,
        Some(Some(ErrorCode::Cancelled))
    );
    assert!(
        !rec.events().iter().any(|e| matches!(e, Event::Data { .. })),
        "no body after cancel"
    );
}

#[tokio::test]
async fn response_disposition_become_download_hands_the_body_to_a_new_download_task() {
    let server = TestServer::http().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = http_config();
    config.session_directory = Some(dir.path().to_path_buf());
    let rec = Arc::new(Recorder::answering(ResponseDisposition::BecomeDownload));
    let session = Session::with_delegate(config, rec.clone()).unwrap();
    let task = session
        .data_task(server.url("/drip?chunks=5&size=100000&delay_ms=5").as_str())
        .unwrap();
    task.resume();
    assert_eq!(
        rec.wait_complete(2, WAIT).await,
        Some(None),
        "the download task completes"
    );
    session.finish_tasks_and_invalidate();
    let events = rec.wait_invalid(WAIT).await;
    check_invariants(&events).unwrap();
    assert!(events.contains(&Event::BecameDownload {
        task: 1,
        download: 2
    }));
    // The data task hears nothing after becoming a download: no data, no did_complete.
    let became = events
        .iter()
        .position(|e| matches!(e, Event::BecameDownload { .. }))
        .unwrap();
    assert!(
        events[became + 1..].iter().all(|e| e.task() != Some(1)),
        "{events:?}"
    );
    assert!(!events.iter().any(|e| matches!(e, Event::Data { .. })));
    let finished = events.iter().find_map(|e| match e {
        Event::Finished {
            task: 2,
            size,
            sha256,
        } => Some((*size, sha256.clone())),
        _ => None,
    });
    assert_eq!(
        finished,
        Some((
            500_000,
            courier_tests::sha256_hex(&pattern_bytes(0, 500_000))
        ))
    );
    assert_eq!(task.info().state(), courier_engine::TaskState::Completed);
    let files = std::fs::read_dir(session.directory().unwrap())
        .unwrap()
        .count();
    assert_eq!(files, 0, "the downloaded file was handed over and removed");
}

#[tokio::test]
async fn suspend_pauses_reading_and_timers() {
    let server = TestServer::http().await;
    let mut config = http_config();
    // An idle timeout far shorter than the suspension: it must not fire while suspended.
    config.timeout_for_request = Duration::from_millis(400);
    let (session, rec) = delegate_session(config);
    let task = session
        .data_task(server.url("/drip?chunks=40&size=1000&delay_ms=10").as_str())
        .unwrap();
    task.resume();
    rec.wait_for(WAIT, |e| e.iter().any(|e| matches!(e, Event::Data { .. })))
        .await;
    task.suspend();
    rec.wait_for(WAIT, |e| {
        e.contains(&Event::State {
            task: 1,
            from: TaskState::Running,
            to: TaskState::Suspended,
        })
    })
    .await;
    // Chunks already on their way may still land; then nothing moves.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let paused_at = task.info().bytes_received();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        task.info().bytes_received(),
        paused_at,
        "no bytes read while suspended"
    );
    assert!(paused_at < 40_000);
    task.resume();
    assert_eq!(
        rec.wait_complete(1, WAIT).await,
        Some(None),
        "the same transfer continues"
    );
    assert_eq!(rec.body(), pattern_bytes(0, 40_000));
}

#[tokio::test]
async fn all_tasks_lists_running_and_resumed_suspended_only() {
    let server = TestServer::http().await;
    let (session, rec) = delegate_session(http_config());
    let slow = server.url("/drip?chunks=500&size=10&delay_ms=20");
    let never = session.data_task(slow.as_str()).unwrap();
    let running = session.data_task(slow.as_str()).unwrap();
    let paused = session.data_task(slow.as_str()).unwrap();
    running.resume();
    paused.resume();
    paused.suspend();
    rec.wait_for(WAIT, |e| {
        e.contains(&Event::State {
            task: 3,
            from: TaskState::Running,
            to: TaskState::Suspended,
        })
    })
    .await;
    let mut ids: Vec<u64> = session
        .all_tasks()
        .await
        .iter()
        .map(|t| t.info().id())
        .collect();
    ids.sort();
    assert_eq!(ids, [2, 3]);
    assert_eq!(never.info().state(), TaskState::Suspended);
    session.invalidate_and_cancel();
    rec.wait_invalid(WAIT).await;
    assert!(session.all_tasks().await.is_empty());
}

#[tokio::test]
async fn invalidate_and_cancel_cancels_everything_then_invalidates() {
    let server = TestServer::http().await;
    let (session, rec) = delegate_session(http_config());
    let slow = server.url("/drip?chunks=500&size=10&delay_ms=20");
    let a = session.data_task(slow.as_str()).unwrap();
    let _never = session.data_task(slow.as_str()).unwrap();
    a.resume();
    rec.wait_for(WAIT, |e| {
        e.iter().any(|e| matches!(e, Event::Response { .. }))
    })
    .await;
    session.invalidate_and_cancel();
    assert!(
        session.data_task(slow.as_str()).is_err(),
        "no tasks after invalidation"
    );
    let events = rec.wait_invalid(WAIT).await;
    check_invariants(&events).unwrap();
    assert_eq!(events.last(), Some(&Event::Invalid));
    for id in [1, 2] {
        assert!(
            events.iter().any(|e| matches!(e, Event::Complete { task, error: Some(ErrorCode::Cancelled), .. } if *task == id)),
            "task {id} cancelled: {events:?}"
        );
    }
    let err = session.data(slow.as_str()).await.unwrap_err();
    assert!(err.to_string().contains("invalidated"));
}

#[tokio::test]
async fn finish_tasks_and_invalidate_waits_for_running_tasks() {
    let server = TestServer::http().await;
    let (session, rec) = delegate_session(http_config());
    let task = session
        .data_task(server.url("/drip?chunks=20&size=100&delay_ms=20").as_str())
        .unwrap();
    task.resume();
    session.finish_tasks_and_invalidate();
    let events = rec.wait_invalid(WAIT).await;
    check_invariants(&events).unwrap();
    let n = events.len();
    assert_eq!(events[n - 1], Event::Invalid);
    assert_eq!(
        events[n - 2],
        Event::Complete {
            task: 1,
            error: None,
            failing_url: None
        }
    );
    assert_eq!(rec.body().len(), 2000);
}

#[tokio::test]
async fn session_drops_its_delegate_after_did_become_invalid() {
    let (session, rec) = delegate_session(http_config());
    assert!(Arc::strong_count(&rec) >= 2);
    session.finish_tasks_and_invalidate();
    rec.wait_invalid(WAIT).await;
    session.invalidated().await;
    let deadline = std::time::Instant::now() + WAIT;
    while Arc::strong_count(&rec) > 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        Arc::strong_count(&rec),
        1,
        "the session let go of its delegate"
    );
    assert_eq!(
        rec.events(),
        [Event::Invalid],
        "with no tasks the callback comes at once"
    );
}

#[tokio::test]
async fn a_panicking_task_actor_completes_its_task_and_spares_the_others() {
    let server = TestServer::http().await;
    let (session, rec) = delegate_session(http_config());
    let doomed = session
        .data_task(server.url("/drip?chunks=200&size=100&delay_ms=20").as_str())
        .unwrap();
    let healthy = session
        .data_task(server.url("/drip?chunks=10&size=100&delay_ms=20").as_str())
        .unwrap();
    doomed.resume();
    healthy.resume();
    rec.wait_for(WAIT, |e| {
        e.iter().any(|e| matches!(e, Event::Data { task: 1, .. }))
    })
    .await;
    doomed.task().inject_actor_panic();
    assert_eq!(
        rec.wait_complete(doomed.info().id(), WAIT).await,
        Some(Some(ErrorCode::Unknown))
    );
    assert_eq!(doomed.info().state(), TaskState::Completed);
    assert!(
        doomed.info().error().unwrap().message().contains("panic"),
        "{:?}",
        doomed.info().error()
    );
    assert_eq!(
        rec.wait_complete(healthy.info().id(), WAIT).await,
        Some(None)
    );
    // The session still takes and runs new tasks.
    let third = session.data_task(server.url("/bytes/10").as_str()).unwrap();
    third.resume();
    assert_eq!(rec.wait_complete(third.info().id(), WAIT).await, Some(None));
    session.finish_tasks_and_invalidate();
    let events = rec.wait_invalid(WAIT).await;
    check_invariants(&events).unwrap();
}

#[test]
fn sessions_work_without_a_runtime_and_shared_has_no_invalidation() {
    let shared = Session::shared();
    shared.invalidate_and_cancel();
    shared.finish_tasks_and_invalidate();
    assert!(
        shared.data_task("https://example.invalid/").is_ok(),
        "the shared session is never invalidated"
    );
    let session = Session::new(http_config()).unwrap();
    let task = session.data_task("http://127.0.0.1:99999/").unwrap();
    assert_eq!(task.info().id(), 1);
}

#[tokio::test]
async fn task_handles_keep_a_dropped_session_usable() {
    let server = TestServer::http().await;
    // The future outlives the only Session handle, and is first polled after it is gone.
    let fut = {
        let session = Session::new(http_config()).unwrap();
        session.data(server.url("/bytes/10").as_str())
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(fut.await.unwrap().0.len(), 10);

    // A delegate task created, then resumed after its session handle was dropped.
    let rec = Arc::new(Recorder::new());
    let task = {
        let session = Session::with_delegate(http_config(), rec.clone()).unwrap();
        session.data_task(server.url("/bytes/10").as_str()).unwrap()
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    task.resume();
    assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
    drop(task);
    let events = rec.wait_invalid(WAIT).await;
    check_invariants(&events).unwrap();
    assert_eq!(
        events.last(),
        Some(&Event::Invalid),
        "invalidated once the last handle went"
    );
}

#[tokio::test]
async fn the_per_host_cap_holds_for_http1_and_http2_shares_one_connection() {
    let server = TestServer::http().await;
    let mut config = Configuration::ephemeral();
    config.cleartext = courier_engine::CleartextPolicy::AllowAll;
    config.http_maximum_connections_per_host = 2;
    let session = Session::new(config).unwrap();
    let url = server.url("/drip?chunks=3&size=1000&delay_ms=10");
    let all: Vec<_> = (0..20).map(|_| session.data(url.as_str())).collect();
    for result in futures_join_all(all).await {
        assert_eq!(result.unwrap().0.len(), 3000);
    }
    assert!(
        server.most_concurrent_connections() <= 2,
        "{} connections at once",
        server.most_concurrent_connections()
    );
    assert_eq!(
        server.connections(),
        2,
        "20 tasks over 2 kept-alive connections"
    );

    let ca = TestCa::new();
    let tls = TestServer::https(&ca).await;
    let mut config = Configuration::ephemeral();
    config.extra_root_certificates.push(ca.ca_der.clone());
    config.http_maximum_connections_per_host = 2;
    let session = Session::new(config).unwrap();
    let url = tls.url("/drip?chunks=3&size=1000&delay_ms=10");
    let all: Vec<_> = (0..20).map(|_| session.data(url.as_str())).collect();
    for result in futures_join_all(all).await {
        let (body, response) = result.unwrap();
        assert_eq!((body.len(), response.version()), (3000, Version::HTTP_2));
    }
    assert_eq!(
        tls.connections(),
        1,
        "HTTP/2 multiplexes the 20 on one connection"
    );
}

/// Awaits every future, concurrently (spawned on the test's runtime).
async fn futures_join_all<F>(futures: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn each_part_of_a_mixed_replace_body_is_a_response_of_its_own() {
    let server = TestServer::http().await;
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(http_config(), rec.clone()).unwrap();
    let task = session.data_task(server.url("/parts/3").as_str()).unwrap();
    task.resume();
    assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
    let events = rec.events();
    check_invariants(&events).unwrap();
    let sequence: Vec<&str> = events
        .iter()
        .filter(|e| matches!(e, Event::Response { .. } | Event::Data { .. }))
        .map(Event::name)
        .collect::<Vec<_>>()
        .into_iter()
        .fold(Vec::new(), |mut v, n| {
            if v.last() != Some(&n) {
                v.push(n);
            }
            v
        });
    assert_eq!(
        sequence,
        ["response", "data", "response", "data", "response", "data"]
    );
    assert_eq!(rec.body(), b"part 0part 1part 2");
    let last = task.info().response().unwrap();
    assert_eq!(last.headers()["x-part"], "2", "the latest part's response");
}

/// A delegate that implements `did_complete` only, as many applications' delegates do.
#[derive(Default)]
struct CompletionsOnly {
    done: std::sync::Mutex<Vec<(u64, Option<ErrorCode>)>>,
    notify: tokio::sync::Notify,
}
impl courier_engine::SessionDelegate for CompletionsOnly {}
impl courier_engine::DataDelegate for CompletionsOnly {}
impl courier_engine::DownloadDelegate for CompletionsOnly {}
impl courier_engine::TaskDelegate for CompletionsOnly {
    fn did_complete(&self, task: &courier_engine::TaskInfo, error: Option<&courier_engine::Error>) {
        self.done
            .lock()
            .unwrap()
            .push((task.id(), error.map(|e| e.code())));
        self.notify.notify_one();
    }
}

impl CompletionsOnly {
    async fn wait_for(&self, n: usize) -> Vec<(u64, Option<ErrorCode>)> {
        tokio::time::timeout(WAIT, async {
            loop {
                let notified = self.notify.notified();
                if self.done.lock().unwrap().len() >= n {
                    return self.done.lock().unwrap().clone();
                }
                notified.await;
            }
        })
        .await
        .expect("the tasks complete")
    }
}

/// The methods a delegate leaves at their default are skipped once the session has seen so (its
/// `respondsToSelector:`); what the tasks do must not change: redirects followed, challenges
/// answered by default handling, downloaded files removed, responses cached.
#[tokio::test]
async fn a_delegate_that_implements_only_did_complete_gets_the_default_behaviour_every_time() {
    let server = TestServer::http().await;
    let dir = tempfile::tempdir().unwrap();
    let config = courier_tests::default_config_in(dir.path());
    let delegate = Arc::new(CompletionsOnly::default());
    let session = Session::with_delegate(config, delegate.clone()).unwrap();
    let auth = server
        .url("/basic/ann/pw")
        .replace("http://", "http://ann:pw@");
    let mut n = 0;
    for round in 0..3 {
        // The first round teaches the session; the later ones take the skipping path.
        let chain = session.data_task(server.url("/chain/3").as_str()).unwrap();
        let challenged = session.data_task(auth.as_str()).unwrap();
        let download = session
            .download_task(server.url("/bytes/300000").as_str())
            .unwrap();
        for t in [chain.task(), challenged.task(), download.task()] {
            t.resume();
        }
        n += 3;
        let done = delegate.wait_for(n).await;
        assert!(
            done.iter().all(|(_, e)| e.is_none()),
            "round {round}: {done:?}"
        );
        let chain_end = chain.info().current_request().url_str().to_owned();
        assert!(chain_end.ends_with("/chain/0"), "followed to {chain_end}");
        assert_eq!(chain.info().response().unwrap().status(), 200);
        assert_eq!(
            challenged.info().response().unwrap().status(),
            200,
            "round {round}"
        );
        assert_eq!(download.info().bytes_received(), 300_000);
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
            .collect();
        assert!(left.is_empty(), "downloaded files are removed: {left:?}");
        // A cacheable response is stored by default (`will_cache_response` left alone): asked
        // again, it comes from the cache (the server's body differs on every answer).
        let fresh = server.url(&format!("/cache/max-age/60?round={round}"));
        let (first, _) = session.data(fresh.as_str()).await.unwrap();
        let (again, _) = session.data(fresh.as_str()).await.unwrap();
        assert_eq!(first, again, "round {round}: served from the cache");
    }
    session.finish_tasks_and_invalidate();
    session.invalidated().await;
}

/// Settings at the ends of their ranges never panic: the largest values work, and a connection cap
/// out of range is refused when the session is made.
#[tokio::test]
async fn extreme_settings_work_or_are_refused_never_panic() {
    let server = TestServer::http().await;
    let mut config = http_config();
    config.timeout_for_request = Duration::MAX;
    config.timeout_for_resource = Duration::MAX;
    config.maximum_receive_rate_per_task = Some(u64::MAX);
    config.http_maximum_redirects = usize::MAX;
    config.maximum_decompression_ratio = u64::MAX;
    config.partial_download_lifetime = Duration::MAX;
    config.http_maximum_connections_per_host = Configuration::MAX_CONNECTIONS_PER_HOST;
    let session = Session::new(config.clone()).unwrap();
    let (body, _) = session.data(server.url("/chain/3").as_str()).await.unwrap();
    assert_eq!(body.as_ref(), b"end of chain");
    let (body, _) = session
        .data(server.url("/gzip/1000").as_str())
        .await
        .unwrap();
    assert_eq!(body.len(), 1000);

    for bad in [0, Configuration::MAX_CONNECTIONS_PER_HOST + 1, usize::MAX] {
        config.http_maximum_connections_per_host = bad;
        let err = Session::new(config.clone()).unwrap_err();
        assert!(err.message().contains("connections per host"), "{err}");
    }
}

/// A delegate that implements `did_complete` only: the queue learns, as the first tasks run, that
/// it leaves `did_receive_response` (and the rest) at their defaults.
struct CountsCompletions {
    done: std::sync::atomic::AtomicUsize,
    all: tokio::sync::Notify,
    target: usize,
}

impl courier_engine::SessionDelegate for CountsCompletions {}
impl courier_engine::DataDelegate for CountsCompletions {}
impl courier_engine::DownloadDelegate for CountsCompletions {}
impl courier_engine::TaskDelegate for CountsCompletions {
    fn did_complete(
        &self,
        _task: &courier_engine::TaskInfo,
        error: Option<&courier_engine::Error>,
    ) {
        assert!(error.is_none(), "{error:?}");
        let done = self.done.fetch_add(1, std::sync::atomic::Ordering::AcqRel) + 1;
        if done == self.target {
            self.all.notify_one();
        }
    }
}

/// A transfer decides whether to wait for the delegate's answer about the response before its
/// actor decides whether to ask; in between, the queue may learn that the delegate leaves the
/// method alone. Such a transfer must still be released: with many tasks at once that window is
/// met (a bench hung on it), and every task completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_complete_while_the_queue_learns_what_the_delegate_leaves_alone() {
    let server = TestServer::http().await;
    let url = server.url("/bytes/1024");
    for _ in 0..3 {
        let tasks = 2_000;
        let delegate = Arc::new(CountsCompletions {
            done: Default::default(),
            all: tokio::sync::Notify::new(),
            target: tasks,
        });
        let session = Session::with_delegate(http_config(), delegate.clone()).unwrap();
        let all = delegate.all.notified();
        for _ in 0..tasks {
            session.data_task(url.as_str()).unwrap().resume();
        }
        tokio::time::timeout(Duration::from_secs(60), all)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{} of {tasks} tasks completed",
                    delegate.done.load(std::sync::atomic::Ordering::Acquire)
                )
            });
        session.finish_tasks_and_invalidate();
        session.invalidated().await;
    }
}
