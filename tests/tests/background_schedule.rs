//! The background service's scheduling (issue 9, point 7) and retries (point 1), through
//! application sessions: transient failures are retried from the partial file (after the server's
//! `Retry-After` when it gives one) until the resource timeout; the queue caps transfers and orders
//! them by priority, with discretionary tasks last and earliest begin dates honoured; a transfer
//! under the throughput floor is stopped and continued later; an upload its server offered to
//! resume is retried from the server's offset; `cancel_by_producing_resume_data`
//! and `download_task_with_resume_data` work as in a default session.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use courier_engine::background::{Limits, Policy, Service, Throughput};
use courier_engine::{CleartextPolicy, Configuration, ErrorCode, Session};
use courier_tests::{Event, Misbehaviour, Recorder, ResourceServer, check_invariants, sha256_hex};

const WAIT: Duration = Duration::from_secs(30);

/// A service in `root` under `policy`, over cleartext loopback.
async fn start_service(root: &std::path::Path, policy: Policy) -> Service {
    let mut template = Configuration::default();
    template.cleartext = CleartextPolicy::AllowAll;
    Service::start(&root.join("data"), &root.join("run"), template, policy)
        .await
        .unwrap()
}

fn policy(change: impl FnOnce(&mut Policy)) -> Policy {
    let mut p = Policy::default();
    p.retry_base = Duration::from_millis(100);
    p.minimum_throughput = None;
    change(&mut p);
    p
}

fn background(identifier: &str, service: &Service) -> Configuration {
    let mut c = Configuration::background(identifier);
    c.background_service = Some(service.socket().to_path_buf());
    c
}

/// The task's `did_finish_downloading_to` files and completions.
fn outcome(events: &[Event], id: u64) -> (Vec<String>, Vec<Option<ErrorCode>>) {
    let files = events
        .iter()
        .filter_map(|e| match e {
            Event::Finished { task, sha256, .. } if *task == id => Some(sha256.clone()),
            _ => None,
        })
        .collect();
    let completions = events
        .iter()
        .filter_map(|e| match e {
            Event::Complete { task, error, .. } if *task == id => Some(*error),
            _ => None,
        })
        .collect();
    (files, completions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_is_retried_from_the_partial_file() {
    let server = ResourceServer::start(400_000).await;
    server.script([Misbehaviour::CutAfter(150_000)]);
    let root = tempfile::tempdir().unwrap();
    let service = start_service(root.path(), policy(|_| {})).await;
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(background("retry.cut", &service), rec.clone()).unwrap();
    let task = session.download_task(server.url().as_str()).unwrap();
    task.resume();
    assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
    let events = rec.events();
    let (files, completions) = outcome(&events, task.info().id());
    assert_eq!(files, [sha256_hex(&server.content())], "{events:?}");
    assert_eq!(completions, [None], "one completion, after the retry");
    let served = server.served();
    assert_eq!(served.len(), 2, "{served:?}");
    assert!(
        served[1].start > 0 && served[1].if_range.is_some(),
        "the retry continues the partial file: {served:?}"
    );
    check_invariants(&events).unwrap();
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_is_retried_after_its_retry_after_and_its_body_is_not_the_file() {
    let server = ResourceServer::start(100_000).await;
    server.script([Misbehaviour::Unavailable {
        retry_after_secs: 1,
    }]);
    let root = tempfile::tempdir().unwrap();
    // The backoff alone would retry after 100 ms.
    let service = start_service(root.path(), policy(|_| {})).await;
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(background("retry.503", &service), rec.clone()).unwrap();
    let task = session.download_task(server.url().as_str()).unwrap();
    task.resume();
    assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
    let (files, completions) = outcome(&rec.events(), task.info().id());
    assert_eq!(files, [sha256_hex(&server.content())]);
    assert_eq!(completions, [None]);
    let served = server.served();
    assert_eq!(
        served.iter().map(|s| s.status).collect::<Vec<_>>(),
        [503, 200]
    );
    let waited = served[1].at - served[0].at;
    assert!(
        waited >= Duration::from_millis(950),
        "Retry-After: 1 was honoured ({waited:?})"
    );
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_past_its_resumptions_is_retried_from_the_servers_offset() {
    use courier_engine::reexports::http::Method;
    use courier_tests::{Cut, ResumableUploadServer};
    const MIB: usize = 1 << 20;
    // The upload and each of the three resumptions its task makes on its own are cut: the
    // service retries it from its resume data, which sends only the rest.
    let server = ResumableUploadServer::with_cuts(
        [
            Cut::After(MIB),
            Cut::After(MIB / 4),
            Cut::After(MIB / 4),
            Cut::After(MIB / 4),
        ],
        None,
    )
    .await;
    let body = courier_tests::server::pattern_bytes(0, 3 * MIB);
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("body.bin");
    std::fs::write(&file, &body).unwrap();
    let service = start_service(root.path(), policy(|_| {})).await;
    let rec = Arc::new(Recorder::new());
    let session =
        Session::with_delegate(background("retry.upload", &service), rec.clone()).unwrap();
    let request = courier_engine::Request::new(Method::POST, &server.url("/files"));
    let task = session
        .upload_task(request, courier_engine::UploadBody::File(file))
        .unwrap();
    task.resume();
    assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
    assert_eq!(server.received(), body, "every byte, once, in order");
    assert_eq!(server.lengths().len(), 1, "never started over");
    let held = MIB + 3 * MIB / 4;
    assert_eq!(
        server.appends().last(),
        Some(&(held as u64, 3 * MIB - held)),
        "the retry sent only the rest"
    );
    let (_, completions) = outcome(&rec.events(), task.info().id());
    assert_eq!(completions, [None], "one completion, after the retry");
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_stop_at_the_resource_timeout() {
    // A server that cuts every response short: each attempt fails with -1005.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let attempts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = attempts.clone();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut tcp, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut head = [0u8; 4096];
            let _ = tcp.read(&mut head).await;
            let _ = tcp
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nshort")
                .await;
            drop(tcp);
        }
    });
    let root = tempfile::tempdir().unwrap();
    let service = start_service(root.path(), policy(|_| {})).await;
    let rec = Arc::new(Recorder::new());
    let mut config = background("retry.deadline", &service);
    config.timeout_for_resource = Duration::from_millis(1500);
    let session = Session::with_delegate(config, rec.clone()).unwrap();
    let task = session
        .download_task(format!("http://127.0.0.1:{port}/never").as_str())
        .unwrap();
    task.resume();
    assert_eq!(
        rec.wait_complete(task.info().id(), WAIT).await,
        Some(Some(ErrorCode::NetworkConnectionLost)),
        "tried while its time lasted, then reported"
    );
    let (_, completions) = outcome(&rec.events(), task.info().id());
    assert_eq!(completions.len(), 1);
    // 100, 200, 400 ms waits fit in 1.5 s (an 800 ms one does not): four attempts, give or take
    // the engine's own retry of a request on a fresh connection.
    let n = attempts.load(std::sync::atomic::Ordering::SeqCst);
    assert!(n >= 3, "{n} attempts");
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_runs_one_at_a_time_by_priority_with_discretionary_tasks_last() {
    let server = ResourceServer::start(60_000).await;
    // The first transfer holds the only slot for 2 s, while the others are resumed.
    server.script([Misbehaviour::Drip {
        chunk: 3_000,
        delay_ms: 100,
    }]);
    let root = tempfile::tempdir().unwrap();
    let service = start_service(
        root.path(),
        policy(|p| {
            p.limits = Limits {
                max_total: 1,
                max_per_host: 1,
            }
        }),
    )
    .await;
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(background("queue.app", &service), rec.clone()).unwrap();
    let mut quiet = background("queue.quiet", &service);
    quiet.is_discretionary = true;
    let quiet_rec = Arc::new(Recorder::new());
    let quiet_session = Session::with_delegate(quiet, quiet_rec.clone()).unwrap();
    let url = |name: &str| server.url().replace("resource.bin", name);

    let blocker = session.download_task(url("blocker").as_str()).unwrap();
    blocker.resume();
    let deadline = Instant::now() + WAIT;
    while server.served().is_empty() {
        assert!(Instant::now() < deadline, "the first transfer starts");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Resumed while the slot is taken, in this order.
    let discretionary = quiet_session
        .download_task(url("discretionary").as_str())
        .unwrap();
    discretionary.info().set_priority(1.0);
    discretionary.resume();
    let mut ids = Vec::new();
    for (name, priority) in [("low", 0.1), ("high", 0.9), ("default", 0.5)] {
        let t = session.download_task(url(name).as_str()).unwrap();
        t.info().set_priority(priority);
        t.resume();
        ids.push(t.info().id());
    }
    for id in ids.iter().chain([&blocker.info().id()]) {
        assert_eq!(rec.wait_complete(*id, WAIT).await, Some(None));
    }
    assert_eq!(
        quiet_rec
            .wait_complete(discretionary.info().id(), WAIT)
            .await,
        Some(None)
    );
    let order: Vec<String> = server
        .served()
        .iter()
        .map(|s| s.path.trim_start_matches("/files/").to_owned())
        .collect();
    assert_eq!(
        order,
        ["blocker", "high", "default", "low", "discretionary"]
    );
    // One at a time: no transfer wrote while another was between its first write and its end.
    let events = rec.events();
    let mut running: Option<u64> = None;
    for e in &events {
        match e {
            Event::Wrote { task, .. } => {
                assert!(
                    running.is_none_or(|r| r == *task),
                    "two transfers at once: {events:?}"
                );
                running = Some(*task);
            }
            Event::Complete { task, .. } if running == Some(*task) => running = None,
            _ => {}
        }
    }
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_earliest_begin_date_holds_a_task_back() {
    let server = ResourceServer::start(10_000).await;
    let root = tempfile::tempdir().unwrap();
    let service = start_service(root.path(), policy(|_| {})).await;
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(background("begin.later", &service), rec.clone()).unwrap();
    let task = session.download_task(server.url().as_str()).unwrap();
    let resumed = Instant::now();
    task.info()
        .set_earliest_begin_date(Some(SystemTime::now() + Duration::from_millis(1200)));
    task.resume();
    assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
    let served = server.served();
    assert_eq!(served.len(), 1);
    assert!(
        served[0].at - resumed >= Duration::from_millis(1100),
        "not before its date ({:?})",
        served[0].at - resumed
    );
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_under_the_throughput_floor_is_stopped_and_continued_later() {
    let server = ResourceServer::start(300_000).await;
    // 10 KB/s the first time; correct answers after.
    server.script([Misbehaviour::Drip {
        chunk: 1_000,
        delay_ms: 100,
    }]);
    let root = tempfile::tempdir().unwrap();
    let service = start_service(
        root.path(),
        policy(|p| {
            p.minimum_throughput = Some(Throughput {
                bytes_per_second: 100_000,
                window: Duration::from_millis(500),
            })
        }),
    )
    .await;
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(background("slow.floor", &service), rec.clone()).unwrap();
    let task = session.download_task(server.url().as_str()).unwrap();
    task.resume();
    assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
    let events = rec.events();
    let (files, completions) = outcome(&events, task.info().id());
    assert_eq!(files, [sha256_hex(&server.content())]);
    assert_eq!(
        completions,
        [None],
        "the stop is not a completion: {events:?}"
    );
    let served = server.served();
    assert_eq!(served.len(), 2, "{served:?}");
    assert!(
        served[1].start > 0 && served[1].range.is_some(),
        "continued from the partial file: {served:?}"
    );
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_data_from_a_background_download_continues_it_there() {
    let server = ResourceServer::start(400_000).await;
    server.script([Misbehaviour::Drip {
        chunk: 10_000,
        delay_ms: 50,
    }]);
    let root = tempfile::tempdir().unwrap();
    let service = start_service(root.path(), policy(|_| {})).await;
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(background("resume.data", &service), rec.clone()).unwrap();
    let task = session.download_task(server.url().as_str()).unwrap();
    task.resume();
    rec.wait_written(WAIT, 50_000).await;
    let data = task
        .cancel_by_producing_resume_data()
        .await
        .expect("resume data for the partial file");
    assert_eq!(
        rec.wait_complete(task.info().id(), WAIT).await,
        Some(Some(ErrorCode::Cancelled))
    );
    let again = session.download_task_with_resume_data(&data).unwrap();
    assert_eq!(again.info().original_request().url_str(), server.url());
    again.resume();
    assert_eq!(rec.wait_complete(again.info().id(), WAIT).await, Some(None));
    let (files, _) = outcome(&rec.events(), again.info().id());
    assert_eq!(files, [sha256_hex(&server.content())]);
    let served = server.served();
    assert_eq!(served.len(), 2, "{served:?}");
    assert!(served[1].start >= 50_000, "{served:?}");
    service.shutdown().await;
}
