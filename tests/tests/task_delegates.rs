//! A task's own delegate (URLSession's `task.delegate`, iOS 15): it hears the task's messages
//! first; what it leaves at its default goes on to the session's delegate, questions included;
//! session-level messages stay with the session's. Sessions without a delegate serve tasks'
//! delegates too, and drop them once invalidated.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use courier_engine::reexports::bytes::Bytes;
use courier_engine::{
    AuthChallengeDisposition, AuthenticationChallenge, CleartextPolicy, Configuration, Credential,
    CredentialPersistence, DataDelegate, DownloadDelegate, Error, Reply, Request, Response,
    Session, SessionDelegate, TaskDelegate, TaskDelegateError, TaskInfo, TaskState,
};
use courier_tests::TestServer;

/// One log both delegates write to, so the order across them shows.
type Log = Arc<Mutex<Vec<String>>>;

fn note(log: &Log, line: String) {
    log.lock().unwrap().push(line);
}

/// The session's delegate: implements nearly everything, follows redirects, answers Basic
/// challenges with ann/pw.
struct SessionSide(Log);

impl SessionDelegate for SessionSide {
    fn did_become_invalid(&self, _error: Option<&Error>) {
        note(&self.0, "session invalid".into());
    }
}
impl TaskDelegate for SessionSide {
    fn did_create_task(&self, task: &TaskInfo) {
        note(&self.0, format!("session created {}", task.id()));
    }
    fn did_change_state(&self, task: &TaskInfo, _from: TaskState, to: TaskState) {
        note(&self.0, format!("session state {} {to}", task.id()));
    }
    fn will_perform_http_redirection(
        &self,
        task: &TaskInfo,
        _response: &Response,
        new_request: &Request,
        reply: Reply<Option<Request>>,
    ) {
        note(&self.0, format!("session redirect {}", task.id()));
        reply.send(Some(new_request.clone()));
    }
    fn did_receive_challenge(
        &self,
        task: &TaskInfo,
        _challenge: &AuthenticationChallenge,
        reply: Reply<AuthChallengeDisposition>,
    ) {
        note(&self.0, format!("session challenge {}", task.id()));
        reply.send(ann_pw());
    }
    fn did_complete(&self, task: &TaskInfo, _error: Option<&Error>) {
        note(&self.0, format!("session complete {}", task.id()));
    }
}
impl DataDelegate for SessionSide {
    fn did_receive_data(&self, task: &TaskInfo, data: &Bytes) {
        note(
            &self.0,
            format!("session data {} {}", task.id(), data.len()),
        );
    }
}
impl DownloadDelegate for SessionSide {}

/// A task's own delegate: its data and completion, and (when `stops_redirects`) a redirect it
/// declines. Everything else is left at the default.
struct TaskSide {
    log: Log,
    stops_redirects: bool,
}

impl TaskDelegate for TaskSide {
    fn did_create_task(&self, task: &TaskInfo) {
        note(&self.log, format!("task created {}", task.id()));
    }
    fn will_perform_http_redirection(
        &self,
        task: &TaskInfo,
        _response: &Response,
        new_request: &Request,
        reply: Reply<Option<Request>>,
    ) {
        note(&self.log, format!("task redirect {}", task.id()));
        reply.send((!self.stops_redirects).then(|| new_request.clone()));
    }
    fn did_complete(&self, task: &TaskInfo, error: Option<&Error>) {
        let code = error.map_or(0, |e| e.code().number());
        note(&self.log, format!("task complete {} {code}", task.id()));
    }
}
impl DataDelegate for TaskSide {
    fn did_receive_data(&self, task: &TaskInfo, data: &Bytes) {
        note(&self.log, format!("task data {} {}", task.id(), data.len()));
    }
}
impl DownloadDelegate for TaskSide {}

/// Only what is needed to answer a Basic challenge (a delegate for a completion form).
struct Answers(Log);
impl TaskDelegate for Answers {
    fn did_create_task(&self, task: &TaskInfo) {
        note(&self.0, format!("task created {}", task.id()));
    }
    fn did_receive_challenge(
        &self,
        task: &TaskInfo,
        _challenge: &AuthenticationChallenge,
        reply: Reply<AuthChallengeDisposition>,
    ) {
        note(&self.0, format!("task challenge {}", task.id()));
        reply.send(ann_pw());
    }
}
impl DataDelegate for Answers {}
impl DownloadDelegate for Answers {}

/// The answer `/basic/ann/pw` wants.
fn ann_pw() -> AuthChallengeDisposition {
    AuthChallengeDisposition::UseCredential(Some(Credential::password(
        "ann",
        "pw",
        CredentialPersistence::None,
    )))
}

fn cleartext() -> Configuration {
    let mut config = Configuration::ephemeral();
    config.cleartext = CleartextPolicy::AllowAll;
    config
}

async fn invalidate(session: &Session) {
    session.finish_tasks_and_invalidate();
    tokio::time::timeout(Duration::from_secs(20), session.invalidated())
        .await
        .expect("the session invalidates");
}

/// The bytes the `what` lines (`what ID N`) report.
fn bytes_in(lines: &[&String], what: &str) -> u64 {
    lines
        .iter()
        .filter(|l| l.starts_with(what))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

fn lines(log: &Log, id: u64) -> Vec<String> {
    let suffix = format!(" {id}");
    log.lock()
        .unwrap()
        .iter()
        .filter(|l| l.ends_with(&suffix) || l.contains(&format!(" {id} ")))
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_tasks_delegate_hears_first_and_the_session_hears_what_it_leaves() {
    let server = TestServer::http().await;
    let log: Log = Arc::default();
    let session = Session::with_delegate(cleartext(), Arc::new(SessionSide(log.clone()))).unwrap();

    // Task 1 has its own delegate; it follows a redirect to a body sent in 10 chunks.
    let url = server.url("/redirect/302?to=/drip");
    let own = session.data_task(url.as_str()).unwrap();
    own.set_delegate(Arc::new(TaskSide {
        log: log.clone(),
        stops_redirects: false,
    }))
    .unwrap();
    // Task 2 has none: everything goes to the session's.
    let plain = session.data_task(url.as_str()).unwrap();
    own.resume();
    plain.resume();
    invalidate(&session).await;

    let (a, b) = (own.info().id(), plain.info().id());
    let first = lines(&log, a);
    // Created before the delegate was set: the session's delegate heard of it.
    assert_eq!(first[0], format!("session created {a}"), "{first:?}");
    // The task's delegate implements redirects, data and completion: the session hears none of
    // them for this task; the state changes it leaves alone go to the session's.
    assert!(first.contains(&format!("task redirect {a}")), "{first:?}");
    assert!(!first.iter().any(|l| l.starts_with("session redirect")));
    let data: Vec<_> = first.iter().filter(|l| l.contains("data")).collect();
    assert_eq!(bytes_in(&data, "task data"), 10 * 1024, "{first:?}");
    assert!(data.iter().all(|l| l.starts_with("task data")), "{first:?}");
    assert_eq!(
        first
            .iter()
            .filter(|l| l.starts_with("task complete") || l.starts_with("session complete"))
            .count(),
        1,
        "exactly one did_complete: {first:?}"
    );
    assert_eq!(first.last().unwrap(), &format!("task complete {a} 0"));
    // In order on one queue: running, the data, completed, then the completion.
    let running = first
        .iter()
        .position(|l| l == &format!("session state {a} running"));
    let completed = first
        .iter()
        .position(|l| l == &format!("session state {a} completed"));
    let (running, completed) = (running.expect("running"), completed.expect("completed"));
    let first_data = first.iter().position(|l| l.contains("data")).unwrap();
    assert!(running < first_data && first_data < completed, "{first:?}");

    let second = lines(&log, b);
    assert!(
        second.contains(&format!("session redirect {b}")),
        "{second:?}"
    );
    let data: Vec<_> = second.iter().filter(|l| l.contains("data")).collect();
    assert_eq!(bytes_in(&data, "session data"), 10 * 1024, "{second:?}");
    assert!(!second.iter().any(|l| l.starts_with("task ")), "{second:?}");
    assert_eq!(
        log.lock().unwrap().last().unwrap(),
        "session invalid",
        "did_become_invalid is last"
    );
}

#[tokio::test]
async fn questions_go_to_the_tasks_delegate_first_and_fall_back_when_it_has_no_answer() {
    let server = TestServer::http().await;
    let log: Log = Arc::default();
    let session = Session::with_delegate(cleartext(), Arc::new(SessionSide(log.clone()))).unwrap();

    // The task's delegate declines the redirect (the session's would follow): the 302 is final.
    let stops = session
        .data_task(server.url("/redirect/302?to=/bytes/10").as_str())
        .unwrap();
    stops
        .set_delegate(Arc::new(TaskSide {
            log: log.clone(),
            stops_redirects: true,
        }))
        .unwrap();
    // A challenge the task's delegate leaves at its default: the session's delegate answers it,
    // and the default answer the task delegate's default body gave is not taken.
    let challenged = session
        .data_task(server.url("/basic/ann/pw").as_str())
        .unwrap();
    challenged
        .set_delegate(Arc::new(TaskSide {
            log: log.clone(),
            stops_redirects: true,
        }))
        .unwrap();
    stops.resume();
    challenged.resume();
    invalidate(&session).await;

    let status = |t: &courier_engine::DataTask| t.info().response().map(|r| r.status().as_u16());
    assert_eq!(status(&stops), Some(302), "the task's delegate stopped it");
    let a = lines(&log, stops.info().id());
    assert!(a.contains(&format!("task redirect {}", stops.info().id())));
    assert!(
        !a.iter().any(|l| l.starts_with("session redirect")),
        "{a:?}"
    );

    assert_eq!(
        status(&challenged),
        Some(200),
        "the session's delegate answered"
    );
    let b = lines(&log, challenged.info().id());
    assert!(
        b.contains(&format!("session challenge {}", challenged.info().id())),
        "{b:?}"
    );
    assert_eq!(
        b.last().unwrap(),
        &format!("task complete {} 0", challenged.info().id())
    );
}

#[tokio::test]
async fn a_session_without_a_delegate_serves_its_tasks_delegates_and_lets_them_go() {
    let server = TestServer::http().await;
    let log: Log = Arc::default();
    let session = Session::new(cleartext()).unwrap();

    // A completion form with a delegate (URLSession's `data(for:delegate:)`): it answers the
    // challenge; the result goes to the caller.
    let answers = Arc::new(Answers(log.clone()));
    let (body, response) = session
        .data(server.url("/basic/ann/pw").as_str())
        .with_delegate(answers.clone())
        .await
        .expect("answered by the task's delegate");
    assert_eq!(response.status().as_u16(), 200);
    assert!(!body.is_empty());
    // Without it, the same request is a 401: nobody answers.
    let (_, refused) = session
        .data(server.url("/basic/ann/pw").as_str())
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);

    // A delegate-style task gets its data and completion, which a session without a delegate
    // would have dropped.
    let own = Arc::new(TaskSide {
        log: log.clone(),
        stops_redirects: false,
    });
    let task = session
        .data_task(server.url("/bytes/2000").as_str())
        .unwrap();
    task.set_delegate(own.clone()).unwrap();
    assert_eq!(
        task.set_delegate(own.clone()),
        Err(TaskDelegateError::AlreadySet)
    );
    task.resume();
    assert_eq!(
        task.set_delegate(own.clone()),
        Err(TaskDelegateError::AlreadyStarted),
        "URLSession wants the delegate before resume"
    );
    let id = task.info().id();
    drop(task);
    invalidate(&session).await;

    let seen = log.lock().unwrap().clone();
    assert!(seen.contains(&"task created 1".to_owned()), "{seen:?}");
    assert!(seen.contains(&"task challenge 1".to_owned()), "{seen:?}");
    assert!(seen.contains(&format!("task complete {id} 0")), "{seen:?}");
    let data: u64 = seen
        .iter()
        .filter_map(|l| l.strip_prefix(&format!("task data {id} ")))
        .map(|n| n.parse::<u64>().unwrap())
        .sum();
    assert_eq!(data, 2000, "{seen:?}");

    // Invalidated and handles gone: the queue dropped the tasks' delegates.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while (Arc::strong_count(&own) > 1 || Arc::strong_count(&answers) > 1)
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(Arc::strong_count(&own), 1, "the task's delegate was let go");
    assert_eq!(Arc::strong_count(&answers), 1);
}

#[tokio::test]
async fn a_cancelled_task_cannot_take_a_delegate() {
    let session = Session::new(cleartext()).unwrap();
    let task = session.data_task("http://127.0.0.1:9/").unwrap();
    task.cancel();
    let own = Arc::new(Answers(Log::default()));
    // The cancel is applied by the task's actor: give it a moment to be published.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while task.info().state() == TaskState::Suspended && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        task.set_delegate(own),
        Err(TaskDelegateError::AlreadyStarted)
    );
}

/// A download task's own delegate: the file while it is there, and the progress.
#[derive(Default)]
struct Downloads {
    file: Mutex<Option<(std::path::PathBuf, u64)>>,
    written: Mutex<u64>,
}
impl TaskDelegate for Downloads {}
impl DataDelegate for Downloads {}
impl DownloadDelegate for Downloads {
    fn did_write_data(&self, _task: &TaskInfo, _n: u64, total: u64, _expected: Option<u64>) {
        *self.written.lock().unwrap() = total;
    }
    fn did_finish_downloading_to(&self, _task: &TaskInfo, location: &std::path::Path) {
        let size = std::fs::metadata(location).map_or(0, |m| m.len());
        *self.file.lock().unwrap() = Some((location.to_owned(), size));
    }
}

#[tokio::test]
async fn a_download_tasks_delegate_gets_its_file_then_the_file_goes() {
    let server = TestServer::http().await;
    let session = Session::new(cleartext()).unwrap();
    let own = Arc::new(Downloads::default());
    let task = session
        .download_task(server.url("/bytes/300000").as_str())
        .unwrap();
    task.set_delegate(own.clone()).unwrap();
    task.resume();
    invalidate(&session).await;
    let (path, size) = own.file.lock().unwrap().clone().expect("handed the file");
    assert_eq!(
        size, 300_000,
        "the whole file was there during the callback"
    );
    assert_eq!(*own.written.lock().unwrap(), 300_000);
    assert!(!path.exists(), "removed once the callback returned");
    assert!(task.info().delegate().is_none(), "let go at completion");
}
