//! The completion forms with their handles (`TaskFuture`): an awaited task can be suspended, resumed,
//! cancelled and (a download) turned into resume data while its caller awaits it, and
//! `download_with_resume_data` continues it for whoever awaits it, in a session without a delegate.

use std::path::Path;
use std::time::Duration;

use courier_engine::{
    CleartextPolicy, Configuration, CreateTaskError, ErrorCode, Session, TaskInfo, TaskState,
};
use courier_tests::{Misbehaviour, ResourceServer, TestServer};

const WAIT: Duration = Duration::from_secs(20);

fn config(dir: &Path) -> Configuration {
    let mut c = courier_tests::default_config_in(dir);
    c.timeout_for_request = Duration::from_secs(5);
    c
}

/// Waits (polling) until `cond` holds for the task, or fails the test after [`WAIT`].
async fn wait_for(info: &TaskInfo, what: &str, cond: impl Fn(&TaskInfo) -> bool) {
    tokio::time::timeout(WAIT, async {
        while !cond(info) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

/// A download of `size` bytes that arrives slowly (64 KiB every 20 ms).
async fn slow_server(size: usize) -> ResourceServer {
    let server = ResourceServer::start(size).await;
    server.script([Misbehaviour::Drip {
        chunk: 64 * 1024,
        delay_ms: 20,
    }]);
    server
}

#[tokio::test]
async fn an_awaited_download_becomes_resume_data_through_its_handle_and_continues_for_its_caller() {
    let dir = tempfile::tempdir().unwrap();
    let server = slow_server(2 * 1024 * 1024).await;
    // No delegate: every result goes to whoever awaits it.
    let session = Session::new(config(dir.path())).unwrap();

    let mut download = session.download(server.url());
    let task = download
        .task()
        .cloned()
        .expect("a valid session makes the task");
    assert_eq!(
        task.info().state(),
        TaskState::Suspended,
        "made, not started"
    );
    let waiting = tokio::spawn(download);
    wait_for(task.info(), "256 KiB", |i| i.bytes_received() >= 256 * 1024).await;

    let data = task
        .cancel_by_producing_resume_data()
        .await
        .expect("a GET with an ETag and ranges is resumable");
    let error = tokio::time::timeout(WAIT, waiting)
        .await
        .unwrap()
        .unwrap()
        .expect_err("cancelled");
    assert_eq!(error.code(), ErrorCode::Cancelled);
    assert_eq!(
        error.resume_data(),
        Some(&data),
        "the awaited -999 carries it too"
    );

    let (file, response) = tokio::time::timeout(WAIT, session.download_with_resume_data(&data))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 206);
    assert_eq!(std::fs::read(file.path()).unwrap(), server.content());
    let last = server.served().pop().unwrap();
    let offset = last
        .range
        .as_deref()
        .and_then(|r| {
            r.strip_prefix("bytes=")?
                .strip_suffix('-')?
                .parse::<usize>()
                .ok()
        })
        .expect("a range request for the rest");
    assert!(offset >= 256 * 1024, "offset {offset}");
    assert_eq!(
        last.body_len,
        server.content().len() - offset,
        "only the rest"
    );
    drop(file);
    session.finish_tasks_and_invalidate();
    tokio::time::timeout(WAIT, session.invalidated())
        .await
        .unwrap();
    assert!(courier_tests::session_files(dir.path()).is_empty());
}

/// Suspends an awaited task once 128 KiB of its body arrived, checks that its caller keeps waiting
/// while it is suspended, resumes it, and gives the caller's result.
async fn suspended_midway_then_resumed<T>(
    info: &TaskInfo,
    suspend: impl Fn(),
    resume: impl Fn(),
    waiting: tokio::task::JoinHandle<T>,
) -> T {
    wait_for(info, "128 KiB", |i| i.bytes_received() >= 128 * 1024).await;
    suspend();
    wait_for(info, "the suspension", |i| {
        i.state() == TaskState::Suspended
    })
    .await;
    assert!(!waiting.is_finished(), "the caller keeps waiting");
    resume();
    tokio::time::timeout(WAIT, waiting).await.unwrap().unwrap()
}

#[tokio::test]
async fn an_awaited_download_suspended_through_its_handle_waits_then_continues_whole() {
    let dir = tempfile::tempdir().unwrap();
    let server = slow_server(1024 * 1024).await;
    let session = Session::new(config(dir.path())).unwrap();

    let mut download = session.download(server.url());
    let task = download.task().cloned().unwrap();
    let waiting = tokio::spawn(download);
    let (file, response) =
        suspended_midway_then_resumed(task.info(), || task.suspend(), || task.resume(), waiting)
            .await
            .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(std::fs::read(file.path()).unwrap(), server.content());
    assert_eq!(server.served().len(), 1, "the same transfer went on");
    assert_eq!(task.info().state(), TaskState::Completed);
}

#[tokio::test]
async fn a_handle_asked_for_first_gives_a_suspended_task_that_awaiting_starts_or_a_drop_removes() {
    let server = TestServer::http().await;
    let mut config = Configuration::ephemeral();
    config.cleartext = CleartextPolicy::AllowAll;
    let session = Session::new(config).unwrap();

    // Asked for and dropped before any poll: cancelled, gone from the session, nothing sent.
    for _ in 0..20 {
        let mut data = session.data(server.url("/resource/10").as_str());
        let task = data.task().cloned().unwrap();
        assert_eq!(task.info().state(), TaskState::Suspended);
        drop(data);
        drop(task);
    }
    // Control messages are handled in order: after this task's, every cancel was seen.
    let mut data = session.data(server.url("/resource/10").as_str());
    let task = data.task().cloned().unwrap();
    let (body, response) = tokio::time::timeout(WAIT, data).await.unwrap().unwrap();
    assert_eq!((body.len(), response.status().as_u16()), (10, 200));
    assert_eq!(task.info().state(), TaskState::Completed);
    assert_eq!(session.registered_tasks().await, 0);
    assert_eq!(
        server.ranges_asked().len(),
        1,
        "only the awaited one went out"
    );

    // A handle cancelled before the first poll: the future resolves to -999.
    let mut data = session.data(server.url("/resource/10").as_str());
    data.task().unwrap().cancel();
    let error = tokio::time::timeout(WAIT, data).await.unwrap().unwrap_err();
    assert_eq!(error.code(), ErrorCode::Cancelled);

    // An invalidated session makes no task: no handle, and the future says why.
    session.invalidate_and_cancel();
    let url = server.url("/resource/10");
    let mut data = session.data(url.as_str());
    assert!(data.task().is_none());
    let error = data.await.unwrap_err();
    // It names the URL it was for, as any completion form's error does.
    assert_eq!(error.failing_url(), Some(url.as_str()));
    assert!(
        std::error::Error::source(&error)
            .and_then(|s| s.downcast_ref::<CreateTaskError>())
            .is_some(),
        "{error:?}"
    );
}

#[tokio::test]
async fn resume_data_that_cannot_be_used_fails_the_awaited_download_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let session = Session::new(config(dir.path())).unwrap();
    let junk = courier_engine::ResumeData::from_bytes(b"not resume data".to_vec());
    let error = tokio::time::timeout(WAIT, session.download_with_resume_data(&junk))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::CannotDecodeRawData);
    assert!(courier_tests::session_files(dir.path()).is_empty());
}

// A completion-form task's transfer runs in its actor's own Tokio task until the actor has a
// message to read (`task/actor/inline.rs`): the three tests below are what must still reach it
// while its transfer runs there. Each fails (by its wait, or the request timeout's error) when
// a control call or a message from the transfer does not interrupt that run.

#[tokio::test]
async fn an_awaited_data_task_cancelled_while_it_waits_for_the_response_ends_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::http().await;
    let session = Session::new(config(dir.path())).unwrap();

    // A request timeout past the wait below: only the cancel can end the task in time.
    let mut request = courier_engine::Request::get(server.url("/hang").as_str());
    request.set_timeout(2 * WAIT);
    let mut data = session.data(request);
    let task = data.task().cloned().unwrap();
    let waiting = tokio::spawn(data);
    // Connected: the transfer is under way, and its request on the wire or about to be.
    tokio::time::timeout(WAIT, async {
        while server.connections() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the task connects");
    task.cancel();
    let error = tokio::time::timeout(WAIT, waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::Cancelled);
    assert_eq!(task.info().state(), TaskState::Completed);
}

#[tokio::test]
async fn an_awaited_data_task_suspended_through_its_handle_waits_then_continues_whole() {
    let dir = tempfile::tempdir().unwrap();
    let server = slow_server(1024 * 1024).await;
    let session = Session::new(config(dir.path())).unwrap();

    let mut data = session.data(server.url().as_str());
    let task = data.task().cloned().unwrap();
    let waiting = tokio::spawn(data);
    let (body, response) =
        suspended_midway_then_resumed(task.info(), || task.suspend(), || task.resume(), waiting)
            .await
            .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(body.as_ref(), server.content().as_slice());
    assert_eq!(server.served().len(), 1, "the same transfer went on");
}

#[tokio::test]
async fn an_awaited_upload_counts_its_body_sent_before_the_response_comes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const SIZE: usize = 64 * 1024;
    // A server that reads the whole request, then answers only when told.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/upload", listener.local_addr().unwrap());
    let (answer, answer_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        let mut buf = vec![0; 16 * 1024];
        let body_at = loop {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "the request ended early");
            seen.extend_from_slice(&buf[..n]);
            if let Some(at) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
        };
        while seen.len() < body_at + SIZE {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "the body ended early");
            seen.extend_from_slice(&buf[..n]);
        }
        let _ = answer_rx.await;
        socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .await
            .unwrap();
        seen.len() - body_at
    });
    let dir = tempfile::tempdir().unwrap();
    let session = Session::new(config(dir.path())).unwrap();
    let mut request =
        courier_engine::Request::new(courier_engine::reexports::http::Method::PUT, url.as_str());
    request.set_timeout(WAIT);
    let mut upload = session.upload(
        request,
        courier_engine::UploadBody::Bytes(vec![7u8; SIZE].into()),
    );
    let task = upload.task().cloned().unwrap();
    let waiting = tokio::spawn(upload);
    // The transfer counts what it sent on the task's record itself (a completion form tells no
    // delegate), read while the response is still held back.
    wait_for(task.info(), "the body counted as sent", |i| {
        i.bytes_sent() == SIZE as u64
    })
    .await;
    assert!(!waiting.is_finished());
    answer.send(()).unwrap();
    let (body, response) = tokio::time::timeout(WAIT, waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(body.as_ref(), b"ok");
    assert_eq!(server.await.unwrap(), SIZE);
}
