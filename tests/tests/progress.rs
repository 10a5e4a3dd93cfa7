//! `Progress` per task and `SessionProgress` over a session's tasks, read from the counters while
//! transfers run; `did_create_task` for every task, before anything else about it.

use std::sync::Arc;
use std::time::Duration;

use courier_engine::{ErrorCode, Session, TaskState};
use courier_tests::{Event, Misbehaviour, Recorder, ResourceServer};

const WAIT: Duration = Duration::from_secs(20);
const SIZE: usize = 1 << 20;

/// A 1 MiB resource that arrives slowly (64 KiB every 20 ms), on its first request.
async fn slow() -> ResourceServer {
    let server = ResourceServer::start(SIZE).await;
    server.script([Misbehaviour::Drip {
        chunk: 64 * 1024,
        delay_ms: 20,
    }]);
    server
}

async fn until(what: &str, cond: impl Fn() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

#[tokio::test]
async fn a_downloads_progress_moves_measures_its_rate_and_ends_whole() {
    let dir = tempfile::tempdir().unwrap();
    let server = slow().await;
    let session = Session::new(courier_tests::default_config_in(dir.path())).unwrap();
    let mut download = session.download(server.url());
    let progress = download.task().unwrap().progress();
    assert_eq!(progress.completed_unit_count(), 0);
    assert_eq!(
        progress.fraction_completed(),
        None,
        "no total before the response"
    );
    let waiting = tokio::spawn(download);

    until("a quarter", || {
        progress.completed_unit_count() >= (SIZE / 4) as u64
    })
    .await;
    assert_eq!(progress.total_unit_count(), Some(SIZE as u64));
    let fraction = progress.fraction_completed().unwrap();
    assert!(fraction > 0.0 && fraction < 1.0, "{fraction}");
    assert!(progress.is_cancellable() && progress.is_pausable());
    // Two reads at least 100 ms apart while bytes arrive give a rate and a time left.
    let moving = progress.completed_unit_count() < SIZE as u64;
    assert_eq!(
        progress.throughput(),
        None,
        "the first read only starts the clock"
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    let rate = progress.throughput().expect("a rate");
    assert!(
        rate > 0.0 || !moving,
        "bytes moved between the reads: {rate}"
    );
    if progress.completed_unit_count() < SIZE as u64 {
        assert!(progress.estimated_time_remaining().is_some());
    }

    let (file, _) = tokio::time::timeout(WAIT, waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(std::fs::metadata(file.path()).unwrap().len(), SIZE as u64);
    assert_eq!(progress.fraction_completed(), Some(1.0));
    assert!(progress.is_finished() && !progress.is_cancellable());
}

#[tokio::test]
async fn a_sessions_progress_sums_its_tasks_and_a_progress_controls_its_task() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (slow().await, slow().await);
    let rec = Arc::new(Recorder::new());
    let session =
        Session::with_delegate(courier_tests::default_config_in(dir.path()), rec.clone()).unwrap();
    let overall = session.progress();
    let first = session.download_task(a.url()).unwrap();
    let second = session.download_task(b.url()).unwrap();
    first.resume();
    second.resume();
    until("both totals", || {
        overall.total_unit_count() == Some(2 * SIZE as u64)
    })
    .await;
    assert_eq!(overall.unfinished_tasks(), 2);

    // Pausing through the progress suspends the task; cancelling it cancels it.
    let second_progress = second.progress();
    second_progress.pause();
    until("the pause", || {
        second.info().state() == TaskState::Suspended
    })
    .await;
    second_progress.cancel();
    assert_eq!(
        rec.wait_complete(second.info().id(), WAIT).await,
        Some(Some(ErrorCode::Cancelled))
    );
    assert_eq!(rec.wait_complete(first.info().id(), WAIT).await, Some(None));
    assert_eq!(overall.unfinished_tasks(), 0);
    let done = overall.completed_unit_count();
    assert!(done >= SIZE as u64, "{done}");
    assert_eq!(
        overall.total_unit_count(),
        Some(SIZE as u64 + second.info().bytes_expected_to_receive().unwrap()),
        "the cancelled task keeps the total it had"
    );

    // did_create_task came first for each task.
    let events = rec.events();
    for id in [first.info().id(), second.info().id()] {
        let first_event = events.iter().find(|e| e.task() == Some(id));
        assert_eq!(
            first_event,
            Some(&Event::Created { task: id }),
            "{events:?}"
        );
    }
}

/// `count_of_bytes_client_expects_to_receive`: the application's guess is the total while the
/// server has not named one (an encoded body); the task's own total
/// (what it did) once it ends.
#[tokio::test]
async fn the_applications_byte_count_hint_stands_in_for_an_unknown_length() {
    let server = courier_tests::TestServer::http().await;
    let mut config = courier_engine::Configuration::ephemeral();
    config.cleartext = courier_engine::CleartextPolicy::AllowAll;
    let session = Session::new(config).unwrap();
    // `/gzip/N`: N bytes gzipped; the decoded length is nobody's to announce.
    let mut data = session.data(server.url("/gzip/10240").as_str());
    let task = data.task().unwrap().clone();
    let progress = task.progress();
    assert_eq!(progress.total_unit_count(), None);
    task.info()
        .set_count_of_bytes_client_expects_to_receive(Some(4096));
    assert_eq!(
        task.info().count_of_bytes_client_expects_to_receive(),
        Some(4096)
    );
    assert_eq!(
        progress.total_unit_count(),
        Some(4096),
        "the hint stands in"
    );
    let (body, response) = tokio::time::timeout(WAIT, data).await.unwrap().unwrap();
    assert!(response.expected_content_length().is_none(), "encoded");
    assert_eq!(body.len(), 10 * 1024);
    assert_eq!(progress.total_unit_count(), Some(10 * 1024), "what it did");
    assert_eq!(progress.fraction_completed(), Some(1.0));
    // The send hint is kept the same way.
    let low = session
        .data_task(server.url("/bytes/100").as_str())
        .unwrap();
    low.info()
        .set_count_of_bytes_client_expects_to_send(Some(7));
    assert_eq!(low.info().count_of_bytes_client_expects_to_send(), Some(7));
    low.info().set_count_of_bytes_client_expects_to_send(None);
    assert_eq!(low.info().count_of_bytes_client_expects_to_send(), None);
}
