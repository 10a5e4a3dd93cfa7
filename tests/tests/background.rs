//! The background service at the wire (issue 9, in progress): tasks handed to it outlive the
//! application's connection; an application that comes back gets every event it has not
//! acknowledged, in order, then `FinishedEvents`; acknowledged events and handed-over files go;
//! identifiers see only their own tasks.

use std::time::Duration;

use courier_engine::background::Service;
use courier_engine::background::wire::{
    ClientMessage, Connection, SOCKET, ServiceMessage, WireError,
};
use courier_engine::{CleartextPolicy, Configuration};
use courier_storage::journal::{EventRecord, StoredEvent, TaskKind};
use courier_storage::resume::RequestRecord;
use courier_tests::TestServer;
use courier_tests::server::pattern_bytes;
use tokio::net::UnixStream;

const WAIT: Duration = Duration::from_secs(20);

fn template() -> Configuration {
    let mut c = Configuration::default();
    c.cleartext = CleartextPolicy::AllowAll;
    c
}

/// A service keeping its state in `root/data`, listening in `root/run`.
async fn start_service(root: &std::path::Path) -> Service {
    Service::start(
        &root.join("data"),
        &root.join("run"),
        template(),
        courier_engine::background::Policy::default(),
    )
    .await
    .unwrap()
}

/// Attaches to `identifier`: the events replayed before `FinishedEvents`.
async fn attach(
    socket: &std::path::Path,
    identifier: &str,
) -> (Connection<UnixStream>, Vec<(u64, EventRecord)>) {
    let mut c = Connection::new(UnixStream::connect(socket).await.unwrap());
    c.hello(identifier).await.unwrap();
    let mut replay = Vec::new();
    loop {
        match tokio::time::timeout(WAIT, c.receive::<ServiceMessage>())
            .await
            .expect("the service answers")
            .unwrap()
        {
            ServiceMessage::Event { seq, record } => replay.push((seq, record)),
            // The tasks come first: every one the journal holds for this identifier.
            ServiceMessage::Task { .. } => {}
            ServiceMessage::FinishedEvents => return (c, replay),
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// The next message from the service, within [`WAIT`].
async fn receive_within(app: &mut Connection<UnixStream>) -> ServiceMessage {
    tokio::time::timeout(WAIT, app.receive::<ServiceMessage>())
        .await
        .expect("the service answers")
        .unwrap()
}

/// A download of `url`, handed to the service as an application hands one over.
fn create_download(url: String) -> ClientMessage {
    ClientMessage::CreateTask {
        kind: TaskKind::Download,
        request: RequestRecord {
            method: "GET".into(),
            url,
            headers: Vec::new(),
        },
        description: String::new(),
        schedule: courier_engine::background::wire::schedule_for(
            &courier_engine::Configuration::default(),
        ),
        settings: courier_engine::background::wire::SessionSettings::default(),
    }
}

fn completed(replay: &[(u64, EventRecord)]) -> usize {
    replay
        .iter()
        .filter(|(_, r)| matches!(r.event, StoredEvent::Completed { .. }))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_wait_for_the_application_and_are_replayed_in_order() {
    let server = TestServer::http().await;
    let root = tempfile::tempdir().unwrap();
    let service = start_service(root.path()).await;
    let socket = root.path().join("run").join(SOCKET);
    assert_eq!(service.socket(), socket);

    // The application hands over two downloads, then goes away at once.
    let sizes = [300_000usize, 70_000];
    {
        let (mut app, replay) = attach(&socket, "com.example.a").await;
        assert!(replay.is_empty());
        for size in sizes {
            app.send(&create_download(server.url(&format!("/bytes/{size}"))))
                .await
                .unwrap();
            match app.receive::<ServiceMessage>().await.unwrap() {
                // Created suspended, as every task: the application resumes it.
                ServiceMessage::TaskCreated { task } => app
                    .send(&ClientMessage::Control {
                        task,
                        control: courier_engine::background::wire::RemoteControl::RESUME,
                    })
                    .await
                    .unwrap(),
                other => panic!("{other:?}"),
            }
        }
    }

    // It comes back (as often as needed) until both have completed while it was away.
    let deadline = std::time::Instant::now() + WAIT;
    let (mut app, replay) = loop {
        let (app, replay) = attach(&socket, "com.example.a").await;
        if completed(&replay) == 2 {
            break (app, replay);
        }
        assert!(std::time::Instant::now() < deadline, "{replay:?}");
        drop(app);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let seqs: Vec<u64> = replay.iter().map(|(s, _)| *s).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    let mut files = Vec::new();
    for (task, size) in [(1u64, sizes[0]), (2, sizes[1])] {
        let mine: Vec<&StoredEvent> = replay
            .iter()
            .filter(|(_, r)| r.task == task)
            .map(|(_, r)| &r.event)
            .collect();
        let totals: Vec<i64> = mine
            .iter()
            .filter_map(|e| match e {
                StoredEvent::WroteData { total, .. } => Some(*total),
                _ => None,
            })
            .collect();
        assert!(totals.windows(2).all(|w| w[0] < w[1]), "{totals:?}");
        assert_eq!(totals.last().copied(), Some(size as i64));
        let n = mine.len();
        let file = match (&mine[n - 2], &mine[n - 1]) {
            (
                StoredEvent::FinishedDownloading { file },
                StoredEvent::Completed { error: None, .. },
            ) => file.clone(),
            other => panic!("the file, then the completion: {other:?}"),
        };
        assert_eq!(std::fs::read(&file).unwrap(), pattern_bytes(0, size));
        files.push(file);
    }

    // Another identifier sees none of it.
    let (_other, theirs) = attach(&socket, "com.example.b").await;
    assert!(theirs.is_empty());

    // Acknowledged, the events are gone for good, and so are the files nobody moved.
    for (seq, _) in &replay {
        app.send(&ClientMessage::Acknowledge { seq: *seq })
            .await
            .unwrap();
    }
    // Gone at once, as a killed application goes, with the acknowledgements still in its socket:
    // the next attach gets none of those events again.
    drop(app);
    let (_app, replay) = attach(&socket, "com.example.a").await;
    assert!(replay.is_empty(), "acknowledged, yet replayed: {replay:?}");
    for file in files {
        assert!(
            !file.exists(),
            "{} was removed after its hand-over",
            file.display()
        );
    }
    service.shutdown().await;
}

/// An application that stays attached and acknowledges every event it gets, its task's
/// completion among them, leaves nothing for its next attach. Progress reports that come in a
/// burst go live only, and the newest is journaled at the end, in place of the last journaled
/// one, under a sequence number no application was sent: it was replayed at the next attach, about
/// a task the service had forgotten, after its completion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_completion_leaves_nothing_to_replay() {
    let server = TestServer::http().await;
    let root = tempfile::tempdir().unwrap();
    let service = start_service(root.path()).await;
    let socket = service.socket().to_path_buf();
    let (mut app, replay) = attach(&socket, "com.example.stays").await;
    assert!(replay.is_empty());
    // Large enough for a burst of progress reports within the service's half second.
    app.send(&create_download(server.url("/bytes/4000000")))
        .await
        .unwrap();
    let task = match receive_within(&mut app).await {
        ServiceMessage::TaskCreated { task } => task,
        other => panic!("{other:?}"),
    };
    app.send(&ClientMessage::Control {
        task,
        control: courier_engine::background::wire::RemoteControl::RESUME,
    })
    .await
    .unwrap();
    let mut live_only = 0;
    loop {
        if let ServiceMessage::Event { seq, record } = receive_within(&mut app).await {
            if seq == 0 {
                live_only += 1;
            } else {
                app.send(&ClientMessage::Acknowledge { seq }).await.unwrap();
            }
            if let StoredEvent::Completed { error, .. } = record.event {
                assert!(error.is_none(), "{error:?}");
                break;
            }
        }
    }
    assert!(live_only > 0, "some progress went live only");
    // A round trip: the acknowledgements are carried out once its answer is in.
    app.send(&ClientMessage::ListTasks).await.unwrap();
    while !matches!(receive_within(&mut app).await, ServiceMessage::EndOfTasks) {}
    drop(app);
    let (_app, replay) = attach(&socket, "com.example.stays").await;
    assert!(
        replay.is_empty(),
        "replayed after the completion: {replay:?}"
    );
    service.shutdown().await;
}

/// Control calls reach the service's tasks, and the journal knows each task's phase: a suspended
/// task is listed as suspended and finishes once resumed; a cancelled one completes with -999.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_are_suspended_resumed_cancelled_and_listed() {
    use courier_engine::background::wire::RemoteControl;
    use courier_storage::journal::TaskPhase;
    let server = TestServer::http().await;
    let root = tempfile::tempdir().unwrap();
    let service = start_service(root.path()).await;
    let (mut app, _) = attach(service.socket(), "com.example.c").await;
    let slow = server.url("/drip?chunks=40&size=1000&delay_ms=25");
    for _ in 0..2 {
        app.send(&create_download(slow.clone())).await.unwrap();
    }
    let mut created = Vec::new();
    while created.len() < 2 {
        if let ServiceMessage::TaskCreated { task } = receive_within(&mut app).await {
            app.send(&ClientMessage::Control {
                task,
                control: RemoteControl::RESUME,
            })
            .await
            .unwrap();
            created.push(task);
        }
    }
    let (paused, cancelled) = (created[0], created[1]);
    for (task, control) in [
        (paused, RemoteControl::Suspend),
        (cancelled, RemoteControl::Cancel),
    ] {
        app.send(&ClientMessage::Control { task, control })
            .await
            .unwrap();
    }
    app.send(&ClientMessage::ListTasks).await.unwrap();
    let mut phases = std::collections::HashMap::new();
    let mut completions = std::collections::HashMap::new();
    loop {
        match receive_within(&mut app).await {
            ServiceMessage::Task { task, record, .. } => {
                phases.insert(task, record.phase);
            }
            ServiceMessage::EndOfTasks => break,
            ServiceMessage::Event { record, .. } => {
                if let StoredEvent::Completed { error, .. } = record.event {
                    completions.insert(record.task, error.map(|e| e.code));
                }
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(phases.get(&paused), Some(&TaskPhase::Suspended));
    app.send(&ClientMessage::Control {
        task: paused,
        control: RemoteControl::RESUME,
    })
    .await
    .unwrap();
    while completions.len() < 2 {
        if let ServiceMessage::Event { record, .. } = receive_within(&mut app).await
            && let StoredEvent::Completed { error, .. } = record.event
        {
            completions.insert(record.task, error.map(|e| e.code));
        }
    }
    assert_eq!(completions[&cancelled], Some(-999));
    assert_eq!(completions[&paused], None, "resumed, it finished");
    service.shutdown().await;
}

fn background(identifier: &str, service: &Service) -> Configuration {
    let mut c = Configuration::background(identifier);
    c.background_service = Some(service.socket().to_path_buf());
    c
}

/// The seeds' first two cases through `Session` and the delegate traits, as an application writes
/// them: a background session whose application stays gets its events live; one whose
/// application went away gets them all at its next session with the same identifier, replayed in
/// order, then `did_finish_events_for_background_session`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_background_session_gets_its_events_live_or_replayed_through_its_delegate() {
    use courier_engine::Session;
    use courier_tests::{Event, Recorder};
    use std::sync::Arc;
    let server = TestServer::http().await;
    let root = tempfile::tempdir().unwrap();
    let service = start_service(root.path()).await;

    // 1. The application stays: live events, the file during `did_finish_downloading_to`.
    let rec = Arc::new(Recorder::new());
    let session =
        Session::with_delegate(background("com.example.app", &service), rec.clone()).unwrap();
    let task = session
        .download_task(server.url("/bytes/200000").as_str())
        .unwrap();
    task.resume();
    assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
    let events = rec.events();
    assert!(events.contains(&Event::BackgroundEventsDelivered));
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Finished { task: t, size: 200_000, .. } if *t == task.info().id()
    )));
    drop((task, session));

    // 2. The application goes away as soon as its tasks are handed over...
    let seen_before = rec.events().len();
    let first =
        Session::with_delegate(background("com.example.app", &service), rec.clone()).unwrap();
    let ids: Vec<u64> = [100_000, 50_000]
        .iter()
        .map(|n| {
            let t = first
                .download_task(server.url(&format!("/bytes/{n}")).as_str())
                .unwrap();
            t.resume();
            t.info().id()
        })
        .collect();
    drop(first);
    // ...they finish without it (watched at the wire, acknowledging nothing)...
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (_peek, replay) = attach(service.socket(), "com.example.app").await;
        let done = replay.iter().filter(|(_, r)| {
            ids.contains(&r.task) && matches!(r.event, StoredEvent::Completed { .. })
        });
        if done.count() == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{replay:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ...and the next session with the identifier gets every event the first one did not handle
    // (it may have handled a few live before it went), then the end of the replay: across the
    // two, each task's file and completion arrive exactly once, in that order.
    let later = Arc::new(Recorder::new());
    let _session =
        Session::with_delegate(background("com.example.app", &service), later.clone()).unwrap();
    let events = later
        .wait_for(WAIT, |e| e.contains(&Event::BackgroundEventsDelivered))
        .await;
    let done = events
        .iter()
        .position(|e| *e == Event::BackgroundEventsDelivered)
        .unwrap();
    let mut both: Vec<Event> = rec.events()[seen_before..].to_vec();
    both.extend(events[..done].iter().cloned());
    for id in &ids {
        let finished: Vec<usize> = (0..both.len())
            .filter(|i| matches!(&both[*i], Event::Finished { task, .. } if task == id))
            .collect();
        let complete: Vec<usize> = (0..both.len())
            .filter(
                |i| matches!(&both[*i], Event::Complete { task, error: None, .. } if task == id),
            )
            .collect();
        assert_eq!(finished.len(), 1, "task {id}: {both:?}");
        assert_eq!(complete.len(), 1, "task {id}: {both:?}");
        assert!(
            finished[0] < complete[0],
            "task {id}: the file first: {both:?}"
        );
    }
    assert!(
        events[..done]
            .iter()
            .any(|e| matches!(e, Event::Complete { task, .. } if ids.contains(task))),
        "the next session got what happened while no application was there: {events:?}"
    );
    service.shutdown().await;
}

/// Two applications attached to one identifier at once: the second is turned away with
/// [`ServiceMessage::InUse`] (URLSession's -996, `backgroundSessionInUseByAnotherProcess`) after
/// the short wait an attach gives the previous application's connection to end, not held forever
/// behind the first. Both were let in and handed each finished download, and the second to move
/// the file found it gone. Once the first is gone, the next attach gets what it left
/// unacknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_application_on_one_identifier_is_turned_away() {
    let server = TestServer::http().await;
    let root = tempfile::tempdir().unwrap();
    let service = start_service(root.path()).await;
    let socket = root.path().join("run").join(SOCKET);
    let (mut first, replay) = attach(&socket, "com.example.twice").await;
    assert!(replay.is_empty());
    first
        .send(&create_download(server.url("/bytes/1000")))
        .await
        .unwrap();
    let task = match receive_within(&mut first).await {
        ServiceMessage::TaskCreated { task } => task,
        other => panic!("unexpected {other:?}"),
    };
    first
        .send(&ClientMessage::Control {
            task,
            control: courier_engine::background::wire::RemoteControl::RESUME,
        })
        .await
        .unwrap();
    // The first one sees the completion live, and keeps its connection without acknowledging.
    loop {
        if let ServiceMessage::Event {
            record:
                EventRecord {
                    event: StoredEvent::Completed { .. },
                    ..
                },
            ..
        } = receive_within(&mut first).await
        {
            break;
        }
    }
    // The second one attaches while the first is still there: turned away, within `WAIT`.
    let mut second = Connection::new(UnixStream::connect(&socket).await.unwrap());
    let refused = tokio::time::timeout(WAIT, second.hello("com.example.twice"))
        .await
        .expect("the service answers");
    assert!(
        matches!(&refused, Err(WireError::InUse { identifier }) if identifier == "com.example.twice"),
        "{refused:?}"
    );
    // The first goes away: the next attach gets the completion it left unacknowledged.
    drop(first);
    let (_third, replay) = attach(&socket, "com.example.twice").await;
    assert_eq!(completed(&replay), 1, "{replay:?}");
    service.shutdown().await;
}

/// Through `Session`, as an application meets it: a second session on an identifier another
/// one holds fails to be made, with -996, and the identifier is free again once the first is
/// dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_session_on_a_held_identifier_fails_with_in_use() {
    use courier_engine::{ErrorCode, Session};
    use courier_tests::Recorder;
    let open = |config: Configuration| {
        tokio::task::spawn_blocking(move || {
            Session::with_delegate(config, std::sync::Arc::new(Recorder::new()))
        })
    };
    let root = tempfile::tempdir().unwrap();
    let service = start_service(root.path()).await;
    let config = background("com.example.held", &service);
    let first = open(config.clone()).await.unwrap().unwrap();
    let err = open(config.clone())
        .await
        .unwrap()
        .expect_err("the identifier is held");
    assert_eq!(
        err.code(),
        ErrorCode::BackgroundSessionInUseByAnotherProcess,
        "{err}"
    );
    first.invalidate_and_cancel();
    drop(first);
    let again = open(config).await.unwrap();
    assert!(again.is_ok(), "{:?}", again.err());
    service.shutdown().await;
}

/// URLSession's rules for background sessions, each a clear error when the task is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_background_session_refuses_what_it_cannot_do() {
    use courier_engine::{CreateTaskError, Request, Session, UploadBody};
    use courier_tests::Recorder;
    use std::sync::Arc;
    let root = tempfile::tempdir().unwrap();
    let service = start_service(root.path()).await;
    let config = background("com.example.rules", &service);
    assert!(
        Session::new(config.clone()).is_err(),
        "a delegate is required"
    );
    let session = Session::with_delegate(config, Arc::new(Recorder::new())).unwrap();
    let url = "https://example.invalid/file";
    let refused = |r: Result<courier_engine::Task, CreateTaskError>| match r {
        Err(CreateTaskError::NotInBackground(what)) => what,
        other => panic!("{other:?}"),
    };
    refused(session.data_task(url).map(|t| t.task().clone()));
    refused(
        session
            .upload_task(
                Request::new(courier_engine::reexports::http::Method::PUT, url),
                UploadBody::Bytes("x".into()),
            )
            .map(|t| t.task().clone()),
    );
    refused(
        session
            .download_task("ftp://example.invalid/file")
            .map(|t| t.task().clone()),
    );
    let err = session.data(url).await.unwrap_err();
    assert!(
        err.message().contains("background sessions do not take"),
        "{err}"
    );
}

/// A task record the journal holds damaged (a bad disk, a bad write) is reported as that task's
/// failure (-1015) at the next start and removed; the other tasks go on. Redirects are followed
/// without asking anyone, as URLSession does for background sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_task_record_fails_that_task_only_and_redirects_are_followed() {
    use courier_engine::Session;
    use courier_tests::{Event, Recorder};
    use std::sync::Arc;
    let server = TestServer::http().await;
    let root = tempfile::tempdir().unwrap();
    let service = start_service(root.path()).await;
    let rec = Arc::new(Recorder::new());
    let session =
        Session::with_delegate(background("com.example.damaged", &service), rec.clone()).unwrap();
    let damaged = session
        .download_task(server.url("/bytes/1000").as_str())
        .unwrap();
    let redirected = session
        .download_task(server.url("/redirect/302?to=/bytes/5000").as_str())
        .unwrap();
    drop(session);
    service.shutdown().await;
    // The disk damages the first record while no service runs.
    {
        let journal = courier_storage::journal::Journal::open(&root.path().join("data")).unwrap();
        journal
            .put_raw_task("com.example.damaged", damaged.info().id(), b"not a record")
            .unwrap();
    }
    let service = start_service(root.path()).await;
    let rec = Arc::new(Recorder::new());
    let session =
        Session::with_delegate(background("com.example.damaged", &service), rec.clone()).unwrap();
    assert_eq!(
        rec.wait_complete(damaged.info().id(), WAIT).await,
        Some(Some(courier_engine::ErrorCode::CannotDecodeRawData))
    );
    // The other task was never resumed: the relaunched application finds it among its tasks,
    // whole, and it runs when resumed (through a redirect nobody is asked about).
    let tasks = session.all_tasks().await;
    assert_eq!(
        tasks.iter().map(|t| t.info().id()).collect::<Vec<_>>(),
        [redirected.info().id()],
        "the damaged one is gone, the other is there"
    );
    let other = &tasks[0];
    assert_eq!(
        other.info().original_request().url_str(),
        redirected.info().original_request().url_str()
    );
    assert_eq!(other.info().state(), courier_engine::TaskState::Suspended);
    other.resume();
    assert_eq!(rec.wait_complete(other.info().id(), WAIT).await, Some(None));
    assert!(rec.events().iter().any(|e| matches!(
        e,
        Event::Finished { task, size: 5000, .. } if *task == other.info().id()
    )));
    service.shutdown().await;
}
