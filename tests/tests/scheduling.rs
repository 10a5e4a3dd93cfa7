//! A task's earliest begin date in this process: the request waits until then, and the delegate
//! decides what goes out (`will_begin_delayed_request`: as it is, another request, or nothing).

use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use courier_engine::{
    CleartextPolicy, Configuration, DataDelegate, DelayedRequestDisposition, DownloadDelegate,
    Error, ErrorCode, Reply, Request, Session, SessionDelegate, TaskDelegate, TaskInfo,
};
use courier_tests::TestServer;

const WAIT: Duration = Duration::from_secs(20);

/// A task's identifier and how it ended.
type End = (u64, Option<ErrorCode>);
type Ends = mpsc::Receiver<End>;

/// Answers `will_begin_delayed_request` as told, and reports when it was asked and how tasks end.
struct Scheduler {
    answer: Mutex<Option<DelayedRequestDisposition>>,
    asked: Mutex<Option<(Instant, String)>>,
    done: Mutex<mpsc::Sender<End>>,
}

impl SessionDelegate for Scheduler {}
impl DataDelegate for Scheduler {}
impl DownloadDelegate for Scheduler {}
impl TaskDelegate for Scheduler {
    fn will_begin_delayed_request(
        &self,
        _task: &TaskInfo,
        request: &Request,
        reply: Reply<DelayedRequestDisposition>,
    ) {
        *self.asked.lock().unwrap() = Some((Instant::now(), request.url_str().to_owned()));
        if let Some(answer) = self.answer.lock().unwrap().take() {
            reply.send(answer);
        }
    }

    fn did_complete(&self, task: &TaskInfo, error: Option<&Error>) {
        let _ = self
            .done
            .lock()
            .unwrap()
            .send((task.id(), error.map(|e| e.code())));
    }
}

fn session(
    answer: Option<DelayedRequestDisposition>,
) -> (Session, std::sync::Arc<Scheduler>, Ends) {
    let (tx, rx) = mpsc::channel();
    let delegate = std::sync::Arc::new(Scheduler {
        answer: Mutex::new(answer),
        asked: Mutex::new(None),
        done: Mutex::new(tx),
    });
    let mut config = Configuration::ephemeral();
    config.cleartext = CleartextPolicy::AllowAll;
    (
        Session::with_delegate(config, delegate.clone()).unwrap(),
        delegate,
        rx,
    )
}

/// How the session's one task ended.
async fn ended(done: Ends) -> Option<ErrorCode> {
    let (_, error) = tokio::task::spawn_blocking(move || done.recv_timeout(WAIT).unwrap())
        .await
        .unwrap();
    error
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_task_waits_for_its_date_then_loads_what_the_delegate_says() {
    let server = TestServer::http().await;

    // As it is, once the date has come.
    let (s, delegate, done) = session(None);
    let task = s.data_task(server.url("/bytes/10").as_str()).unwrap();
    let resumed = Instant::now();
    task.info()
        .set_earliest_begin_date(Some(SystemTime::now() + Duration::from_millis(300)));
    task.resume();
    let error = ended(done).await;
    assert_eq!(error, None);
    let (asked_at, url) = delegate.asked.lock().unwrap().clone().expect("asked");
    assert!(asked_at.duration_since(resumed) >= Duration::from_millis(250));
    assert_eq!(url, server.url("/bytes/10"));
    assert_eq!(task.info().bytes_received(), 10);

    // Another request instead.
    let other = Request::get(&server.url("/bytes/20"));
    let (s, _, done) = session(Some(DelayedRequestDisposition::UseNewRequest(Box::new(
        other,
    ))));
    let task = s.data_task(server.url("/bytes/10").as_str()).unwrap();
    task.info()
        .set_earliest_begin_date(Some(SystemTime::now() + Duration::from_millis(50)));
    task.resume();
    let error = ended(done).await;
    assert_eq!(error, None);
    assert_eq!(task.info().bytes_received(), 20);
    assert_eq!(
        task.info().current_request().url_str(),
        server.url("/bytes/20")
    );

    // Nothing: cancelled, and no request went out.
    let before = server.ranges_asked().len();
    let (s, _, done) = session(Some(DelayedRequestDisposition::Cancel));
    let task = s.data_task(server.url("/resource/10").as_str()).unwrap();
    task.info()
        .set_earliest_begin_date(Some(SystemTime::now() + Duration::from_millis(50)));
    task.resume();
    let error = ended(done).await;
    assert_eq!(error, Some(ErrorCode::Cancelled));
    assert_eq!(server.ranges_asked().len(), before, "nothing was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_cancelled_while_it_waits_for_its_date_ends_at_once() {
    let server = TestServer::http().await;
    let (s, delegate, done) = session(None);
    let task = s.data_task(server.url("/bytes/10").as_str()).unwrap();
    task.info()
        .set_earliest_begin_date(Some(SystemTime::now() + Duration::from_secs(3600)));
    task.resume();
    tokio::time::sleep(Duration::from_millis(50)).await;
    task.cancel();
    let error = ended(done).await;
    assert_eq!(error, Some(ErrorCode::Cancelled));
    assert!(delegate.asked.lock().unwrap().is_none(), "never asked");
}
