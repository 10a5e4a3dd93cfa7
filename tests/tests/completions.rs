//! Every task ends with exactly one `did_complete` (or, for a completion form, one answer), whatever
//! panics (in the transfer, a decoder, a delegate callback), whatever is dropped (handles, futures
//! never polled), and however creation, conversion and invalidation interleave.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use courier_engine::reexports::bytes::Bytes;
use courier_engine::{
    CleartextPolicy, Configuration, DataDelegate, DownloadDelegate, Error, ErrorCode, Reply,
    Response, ResponseDisposition, Session, SessionDelegate, TaskDelegate, TaskInfo,
};
use courier_tests::{Event, Recorder, TestServer, check_invariants};
use proptest::prelude::*;

const WAIT: Duration = Duration::from_secs(20);

fn http_config() -> Configuration {
    let mut c = Configuration::ephemeral();
    c.cleartext = CleartextPolicy::AllowAll;
    c
}

fn completions(events: &[Event], id: u64) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::Complete { task, .. } if *task == id))
        .count()
}

#[tokio::test]
async fn a_panicking_transfer_completes_its_data_task_and_spares_the_others() {
    let server = TestServer::http().await;
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(http_config(), rec.clone()).unwrap();
    let doomed = session
        .data_task(server.url("/drip?chunks=200&size=100&delay_ms=20").as_str())
        .unwrap();
    let healthy = session
        .data_task(server.url("/drip?chunks=10&size=100&delay_ms=20").as_str())
        .unwrap();
    doomed.resume();
    healthy.resume();
    rec.wait_for(WAIT, |e| {
        e.iter()
            .any(|e| matches!(e, Event::Data { task, .. } if *task == doomed.info().id()))
    })
    .await;
    doomed.task().inject_transfer_panic();
    assert_eq!(
        rec.wait_complete(doomed.info().id(), WAIT).await,
        Some(Some(ErrorCode::Unknown))
    );
    let error = doomed.info().error().unwrap();
    assert!(error.message().contains("transfer panicked"), "{error}");
    assert_eq!(
        rec.wait_complete(healthy.info().id(), WAIT).await,
        Some(None)
    );
    session.finish_tasks_and_invalidate();
    let events = rec.wait_invalid(WAIT).await;
    check_invariants(&events).unwrap();
    assert_eq!(completions(&events, doomed.info().id()), 1);
}

/// A decoder that panics (the test hook's `x-courier-test-panic` encoding) fails the task; the
/// completion form answers instead of waiting forever.
#[tokio::test]
async fn a_panicking_decoder_fails_the_task_instead_of_hanging_it() {
    let server = TestServer::http().await;
    let session = Session::new(http_config()).unwrap();
    let url = server.url("/encoded-as/x-courier-test-panic");
    let answer = tokio::time::timeout(WAIT, session.data(url.as_str()))
        .await
        .expect("the completion form answers");
    let error = answer.unwrap_err();
    assert_eq!(error.code(), ErrorCode::Unknown);
    assert!(error.message().contains("decoder panic"), "{error}");
    // And the session goes on.
    let (body, _) = session
        .data(server.url("/bytes/10").as_str())
        .await
        .unwrap();
    assert_eq!(body.len(), 10);
    assert_eq!(session.registered_tasks().await, 0);
}

/// A delegate whose callbacks panic: the response question is answered with its default (the
/// reply is dropped while unwinding), the data keeps coming, and `did_complete` arrives once.
#[derive(Default)]
struct Panicky {
    completed: AtomicUsize,
    data_bytes: AtomicUsize,
}
impl SessionDelegate for Panicky {}
impl DownloadDelegate for Panicky {}
impl TaskDelegate for Panicky {
    fn did_complete(&self, _task: &TaskInfo, error: Option<&Error>) {
        assert!(error.is_none(), "{error:?}");
        self.completed.fetch_add(1, Ordering::SeqCst);
    }
}
impl DataDelegate for Panicky {
    fn did_receive_response(
        &self,
        _task: &TaskInfo,
        _response: &Response,
        _reply: Reply<ResponseDisposition>,
    ) {
        panic!("delegate panics in did_receive_response");
    }
    fn did_receive_data(&self, _task: &TaskInfo, data: &Bytes) {
        self.data_bytes.fetch_add(data.len(), Ordering::SeqCst);
        panic!("delegate panics in did_receive_data");
    }
}

#[tokio::test]
async fn a_panicking_delegate_callback_loses_no_completion() {
    let server = TestServer::http().await;
    let delegate = Arc::new(Panicky::default());
    let session = Session::with_delegate(http_config(), delegate.clone()).unwrap();
    let task = session
        .data_task(server.url("/drip?chunks=5&size=100&delay_ms=5").as_str())
        .unwrap();
    task.resume();
    session.finish_tasks_and_invalidate();
    tokio::time::timeout(WAIT, session.invalidated())
        .await
        .expect("the session invalidates");
    // `invalidated` resolves once did_become_invalid is queued; the queue is serial, so wait for
    // the delegate to be dropped by it.
    let deadline = std::time::Instant::now() + WAIT;
    while Arc::strong_count(&delegate) > 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(Arc::strong_count(&delegate), 1, "the queue finished");
    assert_eq!(delegate.completed.load(Ordering::SeqCst), 1);
    assert_eq!(
        delegate.data_bytes.load(Ordering::SeqCst),
        500,
        "every byte delivered"
    );
}

#[tokio::test]
async fn a_never_resumed_task_whose_handles_are_all_dropped_is_cancelled_at_once() {
    let server = TestServer::http().await;
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(http_config(), rec.clone()).unwrap();
    let task = session.data_task(server.url("/bytes/10").as_str()).unwrap();
    let id = task.info().id();
    let clone = task.clone();
    drop(task);
    assert_eq!(
        session.registered_tasks().await,
        1,
        "a clone still holds it"
    );
    drop(clone);
    assert_eq!(
        rec.wait_complete(id, WAIT).await,
        Some(Some(ErrorCode::Cancelled)),
        "completed without waiting for invalidation"
    );
    assert_eq!(session.registered_tasks().await, 0);

    // A resumed task runs on without handles.
    let running = session.data_task(server.url("/bytes/10").as_str()).unwrap();
    let id = running.info().id();
    running.resume();
    drop(running);
    assert_eq!(rec.wait_complete(id, WAIT).await, Some(None));
}

#[tokio::test]
async fn completion_futures_dropped_unpolled_leave_nothing_registered() {
    let server = TestServer::http().await;
    let session = Session::new(http_config()).unwrap();
    for _ in 0..50 {
        drop(session.data(server.url("/resource/10").as_str()));
        drop(session.download(server.url("/resource/10").as_str()));
        drop(session.bytes(server.url("/resource/10").as_str()));
    }
    // Control messages are handled in order: after this one, every drop was seen.
    let (body, _) = session
        .data(server.url("/resource/10").as_str())
        .await
        .unwrap();
    assert_eq!(body.len(), 10);
    assert_eq!(session.registered_tasks().await, 0);
    // Futures are lazy, as Rust's are: only the one awaited sent a request.
    assert_eq!(server.ranges_asked().len(), 1);
}

/// A task created while its session stops ends with an answer, never a hang: either the session
/// refuses it, or it completes.
#[tokio::test]
async fn tasks_created_while_the_session_stops_are_answered() {
    let server = TestServer::http().await;
    for _ in 0..50 {
        let session = Session::new(http_config()).unwrap();
        let url = server.url("/bytes/10");
        let racing = {
            let session = session.clone();
            tokio::spawn(async move { session.data(url.as_str()).await })
        };
        session.invalidate_and_cancel();
        let answer = tokio::time::timeout(WAIT, racing)
            .await
            .expect("answered")
            .unwrap();
        if let Err(e) = answer {
            assert!(
                matches!(e.code(), ErrorCode::Unknown | ErrorCode::Cancelled),
                "{e}"
            );
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Op {
    /// A data task (the delegate turns every one into a download when its response comes).
    CreateData,
    /// A download task.
    CreateDownload,
    Resume(usize),
    Cancel(usize),
    /// Drop the test's handle to the task.
    Drop(usize),
    PanicActor(usize),
    PanicTransfer(usize),
    Sleep(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::CreateData),
        2 => Just(Op::CreateDownload),
        4 => (0usize..8).prop_map(Op::Resume),
        1 => (0usize..8).prop_map(Op::Cancel),
        1 => (0usize..8).prop_map(Op::Drop),
        1 => (0usize..8).prop_map(Op::PanicActor),
        1 => (0usize..8).prop_map(Op::PanicTransfer),
        2 => (0u64..10).prop_map(Op::Sleep),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Whatever happens to them, every task created ends with exactly one `did_complete` (a data
    /// task that became a download with none: its download carries it), and `did_become_invalid`
    /// comes last.
    #[test]
    fn every_task_completes_once_whatever_the_interleaving(
        ops in proptest::collection::vec(op(), 1..30),
        cancel_at_end in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let result: Result<(), String> = rt.block_on(async move {
            let server = TestServer::http().await;
            let rec = Arc::new(Recorder::answering(ResponseDisposition::BecomeDownload));
            let session = Session::with_delegate(http_config(), rec.clone()).unwrap();
            let url = server.url("/drip?chunks=4&size=500&delay_ms=3");
            let mut tasks: Vec<Option<courier_engine::Task>> = Vec::new();
            let mut ids = Vec::new();
            for op in &ops {
                let task = |i: usize| tasks.get(i).and_then(|t| t.as_ref());
                match *op {
                    Op::CreateData => {
                        let t = session.data_task(url.as_str()).unwrap();
                        ids.push(t.info().id());
                        tasks.push(Some(t.task().clone()));
                    }
                    Op::CreateDownload => {
                        let t = session.download_task(url.as_str()).unwrap();
                        ids.push(t.info().id());
                        tasks.push(Some(t.task().clone()));
                    }
                    Op::Resume(i) => if let Some(t) = task(i) { t.resume() },
                    Op::Cancel(i) => if let Some(t) = task(i) { t.cancel() },
                    Op::PanicActor(i) => if let Some(t) = task(i) { t.inject_actor_panic() },
                    Op::PanicTransfer(i) => if let Some(t) = task(i) { t.inject_transfer_panic() },
                    Op::Drop(i) => if let Some(slot) = tasks.get_mut(i) { *slot = None },
                    Op::Sleep(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                }
            }
            if cancel_at_end {
                session.invalidate_and_cancel();
            } else {
                session.finish_tasks_and_invalidate();
            }
            drop(tasks);
            let events = rec.wait_invalid(Duration::from_secs(30)).await;
            check_invariants(&events)?;
            if events.last() != Some(&Event::Invalid) {
                return Err(format!("did_become_invalid missing or not last: {events:?}"));
            }
            for id in ids {
                let became = events.iter().find_map(|e| match e {
                    Event::BecameDownload { task, download } if *task == id => Some(*download),
                    _ => None,
                });
                let (id, n) = match became {
                    Some(download) => (download, completions(&events, download) + completions(&events, id)),
                    None => (id, completions(&events, id)),
                };
                if n != 1 {
                    return Err(format!("task {id} completed {n} times: {events:?}"));
                }
            }
            Ok(())
        });
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    }
}

#[tokio::test]
async fn more_tasks_ending_at_once_than_the_session_keeps_actors_for_leave_nothing_behind() {
    // 100 tasks run together, more than the 64 free task actors a session keeps: as they end, the
    // first 64 actors join the session's free ones, the others are stopped. Either way their tasks
    // are forgotten, a second round runs on the free actors, and invalidation waits for them all.
    const TASKS: usize = 100;
    let server = TestServer::http().await;
    let rec = Arc::new(Recorder::new());
    let mut config = http_config();
    config.http_maximum_connections_per_host = TASKS;
    let session = Session::with_delegate(config, rec.clone()).unwrap();
    for _round in 0..2 {
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                session
                    .data_task(server.url("/drip?chunks=2&size=10&delay_ms=50").as_str())
                    .unwrap()
            })
            .collect();
        for t in &tasks {
            t.resume();
        }
        for t in &tasks {
            assert_eq!(rec.wait_complete(t.info().id(), WAIT).await, Some(None));
        }
        // The session forgets each ended task, and no actor runs one: polled, since the last
        // actors may join the free ones just after their delegates heard `did_complete`.
        let forgotten = async {
            while session.registered_tasks().await + session.task_actors().await > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(WAIT, forgotten)
            .await
            .expect("every ended task forgotten");
    }
    session.finish_tasks_and_invalidate();
    let events = rec.wait_invalid(WAIT).await;
    assert_eq!(events.last(), Some(&Event::Invalid));
    check_invariants(&events).unwrap();
}
