//! `task.priority`: honoured in the per-host queue (a busy HTTP/1.1 host serves its waiting
//! tasks highest priority first) and sent as RFC 9218's `priority` field, which HTTP/2 servers
//! read as the stream's urgency.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use courier_engine::{
    CleartextPolicy, Configuration, DataDelegate, DownloadDelegate, Error, Session,
    SessionDelegate, TaskDelegate, TaskInfo, priority,
};
use courier_tests::{TestCa, TestServer};

/// The order tasks completed in, and how each ended (for the message of a failed check).
#[derive(Default)]
struct Order(Mutex<Vec<u64>>, Mutex<Vec<String>>);
impl SessionDelegate for Order {}
impl TaskDelegate for Order {
    fn did_complete(&self, task: &TaskInfo, error: Option<&Error>) {
        self.0.lock().unwrap().push(task.id());
        self.1.lock().unwrap().push(match error {
            None => format!("{}: ok", task.id()),
            Some(e) => format!("{}: {e}", task.id()),
        });
    }
}
impl DataDelegate for Order {}
impl DownloadDelegate for Order {}

/// A configuration with one connection per host.
fn one_connection_per_host() -> Configuration {
    let mut config = Configuration::ephemeral();
    config.cleartext = CleartextPolicy::AllowAll;
    config.http_maximum_connections_per_host = 1;
    config
}

/// Waits until `done` holds, for at most 10 s (the caller asserts what it needed).
async fn until(done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !done() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Lets the session's tasks finish and waits (at most 30 s) for it to become invalid: every
/// callback has been delivered then.
async fn finish(session: &Session) {
    session.finish_tasks_and_invalidate();
    tokio::time::timeout(Duration::from_secs(30), session.invalidated())
        .await
        .expect("invalidated");
}

/// Takes the host's one turn with a slow body (half a second), and returns its task once its
/// response has come.
async fn take_the_only_turn(session: &Session, server: &TestServer) -> courier_engine::DataTask {
    let busy = session
        .data_task(server.url("/drip?chunks=10&size=100&delay_ms=50").as_str())
        .unwrap();
    busy.resume();
    until(|| busy.info().response().is_some()).await;
    assert!(
        busy.info().response().is_some(),
        "the first task has its turn"
    );
    busy
}

#[tokio::test]
async fn a_busy_http1_host_serves_its_waiting_tasks_highest_priority_first() {
    let server = TestServer::http().await;
    let order = Arc::new(Order::default());
    let session = Session::with_delegate(one_connection_per_host(), order.clone()).unwrap();

    // One task first, so the session learns that this delegate leaves `will_cache_response` at
    // its default. Otherwise the busy task asks it, and the delegate's answer races the next task:
    // the host's turn passes on when the busy body ends, and a later task, not asked (the queue
    // has learned by then), could complete first (8 runs in 40 did, before this).
    // (Another URL than the waiting tasks', so the cache can never answer them.)
    let (_, _) = session
        .data(server.url("/bytes/11").as_str())
        .await
        .unwrap();
    order.0.lock().unwrap().clear();
    order.1.lock().unwrap().clear();

    let busy = take_the_only_turn(&session, &server).await;

    // Three more arrive, lowest priority first.
    let mut waiting = Vec::new();
    for p in [priority::LOW, priority::DEFAULT, priority::HIGH] {
        let task = session.data_task(server.url("/bytes/10").as_str()).unwrap();
        task.info().set_priority(p);
        task.resume();
        waiting.push(task.info().id());
    }
    finish(&session).await;

    let seen = order.0.lock().unwrap().clone();
    let (low, default, high) = (waiting[0], waiting[1], waiting[2]);
    assert_eq!(
        seen,
        [busy.info().id(), high, default, low],
        "{:?}",
        order.1.lock().unwrap()
    );
}

/// The `priority` line the server saw, from `/headers`.
fn priority_seen(body: &[u8]) -> Option<String> {
    String::from_utf8_lossy(body)
        .lines()
        .find_map(|l| l.strip_prefix("priority: ").map(str::to_owned))
}

#[tokio::test]
async fn a_priority_travels_as_its_rfc_9218_urgency_over_http1_and_http2() {
    let ca = TestCa::new();
    let (plain, tls) = (TestServer::http().await, TestServer::https(&ca).await);
    let mut config = Configuration::ephemeral();
    config.cleartext = CleartextPolicy::AllowAll;
    config.extra_root_certificates.push(ca.ca_der.clone());
    let session = Session::new(config).unwrap();

    for server in [&plain, &tls] {
        for (p, want) in [
            (priority::HIGH, Some("u=2")),
            (priority::DEFAULT, None),
            (priority::LOW, Some("u=5")),
            (1.0, Some("u=0")),
        ] {
            let mut future = session.data(server.url("/headers").as_str());
            future.task().unwrap().info().set_priority(p);
            let (body, response) = future.await.unwrap();
            assert_eq!(priority_seen(&body).as_deref(), want, "{p} {response:?}");
        }
    }
    // The application's own field is left alone.
    let mut request = courier_engine::Request::new(
        courier_engine::reexports::http::Method::GET,
        tls.url("/headers").as_str(),
    );
    request.headers_mut().insert(
        "priority",
        courier_engine::reexports::http::HeaderValue::from_static("u=1, i"),
    );
    let mut future = session.data(request);
    future.task().unwrap().info().set_priority(priority::LOW);
    let (body, response) = future.await.unwrap();
    assert_eq!(
        response.version(),
        courier_engine::reexports::http::Version::HTTP_2
    );
    assert_eq!(priority_seen(&body).as_deref(), Some("u=1, i"));
}

/// Downloads (which the URL cache never answers) wait in the host's line from their start, before
/// the rest of their transfer is made: the line still serves them highest priority first, and one
/// cancelled while it waits ends at once, as cancelled, and leaves its place to the others.
#[tokio::test]
async fn downloads_waiting_in_a_busy_host_line_go_by_priority_and_a_cancelled_one_leaves_it() {
    let server = TestServer::http().await;
    let order = Arc::new(Order::default());
    let session = Session::with_delegate(one_connection_per_host(), order.clone()).unwrap();

    let busy = take_the_only_turn(&session, &server).await;

    let mut waiting = Vec::new();
    for p in [priority::LOW, priority::DEFAULT, 1.0, priority::HIGH] {
        let task = session
            .download_task(server.url("/bytes/10").as_str())
            .unwrap();
        task.info().set_priority(p);
        task.resume();
        waiting.push(task);
    }
    // The first in line (the highest priority) gives up its place.
    let gives_up = waiting.remove(2);
    gives_up.cancel();
    finish(&session).await;

    let seen = order.0.lock().unwrap().clone();
    let ended = order.1.lock().unwrap().clone();
    let id = |t: &courier_engine::DownloadTask| t.info().id();
    let (low, default, high) = (id(&waiting[0]), id(&waiting[1]), id(&waiting[2]));
    assert_eq!(
        seen,
        [id(&gives_up), busy.info().id(), high, default, low],
        "{ended:?}"
    );
    assert_eq!(
        ended.iter().filter(|e| e.ends_with(": ok")).count(),
        4,
        "{ended:?}"
    );
    assert_eq!(
        gives_up.info().error().map(|e| e.code()),
        Some(courier_engine::ErrorCode::Cancelled),
        "{ended:?}"
    );
}

/// A task waiting in its host's line is still on the resource clock: it fails there with the
/// resource timeout, and never gets to send.
#[tokio::test]
async fn a_download_waiting_in_its_host_line_runs_out_of_its_resource_time_there() {
    let server = TestServer::http().await;
    let order = Arc::new(Order::default());
    let mut config = one_connection_per_host();
    config.timeout_for_resource = Duration::from_millis(300);
    let session = Session::with_delegate(config, order.clone()).unwrap();
    // The host's one turn stays taken: a suspended task keeps its place, and its clock stops.
    let busy = take_the_only_turn(&session, &server).await;
    busy.suspend();

    let waiting = session
        .download_task(server.url("/bytes/10").as_str())
        .unwrap();
    waiting.resume();
    until(|| waiting.info().error().is_some()).await;
    let error = waiting.info().error().expect("the waiting download ended");
    assert_eq!(
        error.code(),
        courier_engine::ErrorCode::TimedOut,
        "{:?}",
        order.1.lock().unwrap()
    );
    assert!(error.message().contains("resource"), "{error}");
    assert!(waiting.info().response().is_none(), "it never sent");

    busy.cancel();
    finish(&session).await;
}

/// Records which tasks had their metrics delivered, and how each ended.
#[derive(Default)]
struct Metered {
    ended: Mutex<Vec<(u64, Option<courier_engine::ErrorCode>)>>,
    metrics: Mutex<Vec<(u64, usize)>>,
}
impl SessionDelegate for Metered {}
impl TaskDelegate for Metered {
    fn did_complete(&self, task: &TaskInfo, error: Option<&Error>) {
        self.ended
            .lock()
            .unwrap()
            .push((task.id(), error.map(Error::code)));
    }
    fn did_finish_collecting_metrics(
        &self,
        task: &TaskInfo,
        metrics: &courier_engine::TaskMetrics,
    ) {
        self.metrics
            .lock()
            .unwrap()
            .push((task.id(), metrics.transactions.len()));
    }
}
impl DataDelegate for Metered {}
impl DownloadDelegate for Metered {}

/// Resumed tasks beyond a host's connections wait in its line as entries of their session: no
/// actor and no transfer each (a task's actor is spawned with its turn). They are running all the
/// same, and every control works on them. (The session's URL cache, in memory only, holds nothing
/// for their URL: a GET it may answer asks it first, in its transfer, before it takes a turn.)
#[tokio::test]
async fn tasks_waiting_in_a_busy_host_line_hold_no_actor_until_their_turn() {
    let server = TestServer::http().await;
    let delegate = Arc::new(Metered::default());
    let session = Session::with_delegate(one_connection_per_host(), delegate.clone()).unwrap();
    let busy = take_the_only_turn(&session, &server).await;
    assert_eq!(session.task_actors().await, 1, "the busy task's");

    let waiting: Vec<_> = (0..20)
        .map(|_| {
            let task = session.data_task(server.url("/bytes/10").as_str()).unwrap();
            task.resume();
            task
        })
        .collect();
    let running = session.all_tasks().await;
    assert_eq!(running.len(), 21, "the waiting tasks are under way too");
    for task in &waiting {
        assert_eq!(task.info().state(), courier_engine::TaskState::Running);
    }
    assert_eq!(
        session.task_actors().await,
        1,
        "no actor for a task waiting in line"
    );

    // One leaves the line suspended, one is cancelled there (at once: it has nothing to stop).
    let (paused, cancelled) = (&waiting[3], &waiting[7]);
    paused.suspend();
    cancelled.cancel();
    until(|| cancelled.info().error().is_some()).await;
    assert_eq!(
        cancelled.info().error().map(|e| e.code()),
        Some(courier_engine::ErrorCode::Cancelled)
    );
    until(|| paused.info().state() == courier_engine::TaskState::Suspended).await;
    assert_eq!(paused.info().state(), courier_engine::TaskState::Suspended);
    assert!(busy.info().error().is_none() && waiting[0].info().response().is_none());

    // Back in line, behind the others; every task but the cancelled one completes.
    paused.resume();
    finish(&session).await;
    let ended = delegate.ended.lock().unwrap().clone();
    assert_eq!(ended.len(), 21, "{ended:?}");
    let ok = ended.iter().filter(|(_, e)| e.is_none()).count();
    assert_eq!(ok, 20, "{ended:?}");
    let order: Vec<u64> = ended.iter().map(|(id, _)| *id).collect();
    let position = |id: u64| order.iter().position(|&x| x == id).unwrap();
    assert!(
        position(paused.info().id()) > position(waiting[19].info().id()),
        "the resumed task went to the back of the line: {order:?}"
    );
    // The cancelled one's metrics say it sent nothing; the others sent their one request.
    let metrics = delegate.metrics.lock().unwrap().clone();
    assert_eq!(metrics.len(), 21, "{metrics:?}");
    for (id, transactions) in metrics {
        let want = usize::from(id != cancelled.info().id());
        assert_eq!(transactions, want, "task {id}");
    }
    assert_eq!(session.task_actors().await, 0);
}

/// A GET the URL cache can answer does not wait for a busy host's line: the cache is asked first.
#[tokio::test]
async fn a_get_the_cache_answers_does_not_wait_for_a_busy_host() {
    let server = TestServer::http().await;
    let session = Session::new(one_connection_per_host()).unwrap();
    let fresh = server.url("/cache/max-age/60");
    let (first, _) = session.data(fresh.as_str()).await.unwrap();
    let busy = take_the_only_turn(&session, &server).await;
    let (again, _) = tokio::time::timeout(Duration::from_secs(5), session.data(fresh.as_str()))
        .await
        .expect("answered while the host's one connection is busy")
        .unwrap();
    assert_eq!(again, first, "from the cache");
    assert!(
        busy.info().error().is_none() && busy.info().state() == courier_engine::TaskState::Running,
        "the busy task still holds the turn"
    );
    busy.cancel();
    finish(&session).await;
}

/// In a default session the URL cache keeps its responses on disk. A GET it holds there is answered
/// while its host is busy, and GETs it does not hold wait in the host's line without an actor: the
/// disk's index tells them apart without a read.
#[tokio::test]
async fn a_default_sessions_disk_cache_tells_which_gets_wait_without_an_actor() {
    let server = TestServer::http().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = Configuration::default();
    config.cleartext = CleartextPolicy::AllowAll;
    config.http_maximum_connections_per_host = 1;
    config.session_directory = Some(dir.path().join("session"));
    config.url_cache_memory_capacity = 0; // the disk alone
    let session = Session::new(config).unwrap();
    let fresh = server.url("/cache/max-age/60");
    let (first, _) = session.data(fresh.as_str()).await.unwrap();
    session.flush().await; // on disk

    let busy = take_the_only_turn(&session, &server).await;
    let (again, _) = tokio::time::timeout(Duration::from_secs(5), session.data(fresh.as_str()))
        .await
        .expect("answered from the disk while the host's one connection is busy")
        .unwrap();
    assert_eq!(again, first, "from the disk cache");
    let waiting: Vec<_> = (0..5)
        .map(|i| {
            let task = session
                .data_task(server.url(&format!("/bytes/{}", 10 + i)).as_str())
                .unwrap();
            task.resume();
            task
        })
        .collect();
    assert_eq!(session.all_tasks().await.len(), 6);
    assert_eq!(
        session.task_actors().await,
        1,
        "GETs the disk does not hold wait without an actor"
    );
    busy.cancel();
    finish(&session).await;
    for task in &waiting {
        assert!(task.info().error().is_none(), "{:?}", task.info().error());
    }
}
