//! A background session against a scripted service (issue 9): the session's side of the wire, in
//! an order the real service leaves to timing. `all_tasks` is what the service holds when asked;
//! a replayed event about a task the service has forgotten is acknowledged, not delivered. The
//! service's own side is `background.rs`.

use std::time::Duration;

use courier_engine::Configuration;
use courier_engine::background::wire::{ClientMessage, Connection, SOCKET, ServiceMessage};
use courier_storage::journal::{EventRecord, StoredEvent, TaskKind};
use courier_storage::resume::RequestRecord;

const WAIT: Duration = Duration::from_secs(20);

/// A task as a service describes it to an application (its `Task` message): a download, running.
fn described(task: u64) -> ServiceMessage {
    use courier_storage::journal::{TaskPhase, TaskRecord};
    ServiceMessage::Task {
        task,
        record: TaskRecord {
            kind: TaskKind::Download,
            request: RequestRecord {
                method: "GET".into(),
                url: format!("https://example.com/{task}"),
                headers: Vec::new(),
            },
            phase: TaskPhase::Running,
            partial_file: None,
            checkpoint: None,
            description: String::new(),
            schedule: courier_engine::background::wire::schedule_for(&Configuration::default()),
        },
        written: 0,
        expected: -1,
    }
}

/// A scripted service on `socket` for one application: after the welcome it sends `at_hello`
/// (the tasks, the replay), then `FinishedEvents`, answers each `ListTasks` with `listed` and
/// `EndOfTasks`, and returns every message the application sent after its hello. To fix an order
/// the real service leaves to timing.
fn scripted_service(
    socket: &std::path::Path,
    at_hello: Vec<ServiceMessage>,
    listed: Vec<ServiceMessage>,
) -> tokio::task::JoinHandle<Vec<ClientMessage>> {
    use courier_engine::background::wire::PROTOCOL_VERSION;
    let listener = tokio::net::UnixListener::bind(socket).unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut app = Connection::new(stream);
        let hello = app.receive::<ClientMessage>().await.unwrap();
        assert!(matches!(hello, ClientMessage::Hello { .. }), "{hello:?}");
        let welcome = ServiceMessage::Welcome {
            version: PROTOCOL_VERSION,
        };
        app.send(&welcome).await.unwrap();
        for message in at_hello.iter().chain([&ServiceMessage::FinishedEvents]) {
            app.send(message).await.unwrap();
        }
        let mut heard = Vec::new();
        while let Ok(message) = app.receive::<ClientMessage>().await {
            if let ClientMessage::ListTasks = message {
                for message in listed.iter().chain([&ServiceMessage::EndOfTasks]) {
                    app.send(message).await.unwrap();
                }
            }
            heard.push(message);
        }
        heard
    })
}

/// A background session on the scripted service at `socket`, its delegate `rec`.
fn scripted_session(
    socket: &std::path::Path,
    rec: std::sync::Arc<courier_tests::Recorder>,
) -> courier_engine::Session {
    let mut config = Configuration::background("com.example.scripted");
    config.background_service = Some(socket.to_path_buf());
    courier_engine::Session::with_delegate(config, rec).unwrap()
}

/// `all_tasks` in a background session hands out the tasks the service holds when asked, not
/// every task the session has heard of: one the service described at the hello and has forgotten
/// since is left out (`courier bg attach --follow` waited forever for such a task).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_tasks_are_the_ones_the_service_holds_when_asked() {
    let root = tempfile::tempdir().unwrap();
    let socket = root.path().join(SOCKET);
    // Tasks 1 and 2 at the hello; by the time the application asks, only 2.
    let service = scripted_service(
        &socket,
        vec![described(1), described(2)],
        vec![described(2)],
    );
    let session = scripted_session(&socket, std::sync::Arc::new(courier_tests::Recorder::new()));
    let held: Vec<u64> = session
        .all_tasks()
        .await
        .iter()
        .map(|t| t.info().id())
        .collect();
    assert_eq!(held, [2]);
    drop(session);
    let heard = tokio::time::timeout(WAIT, service).await.unwrap().unwrap();
    assert!(heard.iter().any(|m| matches!(m, ClientMessage::ListTasks)));
}

/// A replayed event about a task the service no longer describes is stale unless it is the task's
/// completion (a damaged record's failure): a progress report left in the journal behind a
/// completion an earlier life of the application acknowledged (as an older service left one:
/// `an_acknowledged_completion_leaves_nothing_to_replay`) is acknowledged and not delivered.
/// Delivered, it made a task the session took for running (`all_tasks`), which never completed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_event_about_a_forgotten_task_is_acknowledged_not_delivered() {
    use courier_tests::Event;
    let root = tempfile::tempdir().unwrap();
    let socket = root.path().join(SOCKET);
    let event = |seq, task, event| ServiceMessage::Event {
        seq,
        record: EventRecord { task, event },
    };
    let replay = vec![
        event(
            1,
            7,
            StoredEvent::WroteData {
                written: 1000,
                total: 3000,
                expected: 3000,
            },
        ),
        event(
            2,
            9,
            StoredEvent::Completed {
                error: None,
                response: None,
            },
        ),
    ];
    let service = scripted_service(&socket, replay, Vec::new());
    let rec = std::sync::Arc::new(courier_tests::Recorder::new());
    let session = scripted_session(&socket, rec.clone());
    assert_eq!(rec.wait_complete(9, WAIT).await, Some(None));
    assert!(session.all_tasks().await.is_empty());
    drop(session);
    let heard = tokio::time::timeout(WAIT, service).await.unwrap().unwrap();
    let acknowledged: Vec<u64> = heard
        .iter()
        .filter_map(|m| match m {
            ClientMessage::Acknowledge { seq } => Some(*seq),
            _ => None,
        })
        .collect();
    assert_eq!(acknowledged, [1, 2]);
    let about_7: Vec<Event> = rec
        .events()
        .into_iter()
        .filter(|e| e.task() == Some(7))
        .collect();
    assert!(about_7.is_empty(), "{about_7:?}");
}
