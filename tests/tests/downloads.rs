//! Download tasks against loopback servers: files that arrive whole, whatever the network does.
//!
//! Every test checks the final file byte for byte (SHA-256 against the server's content) and that
//! the session directory holds nothing afterwards (no partial file, no checkpoint record leaks).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use courier_engine::{
    CleartextPolicy, Configuration, DownloadTask, Error, ErrorCode, ResumeData, Session, TaskState,
};
use courier_tests::{Event, Misbehaviour, Recorder, ResourceServer, check_invariants, sha256_hex};

const WAIT: Duration = Duration::from_secs(20);

fn config(dir: &Path) -> Configuration {
    let mut c = courier_tests::default_config_in(dir);
    c.timeout_for_request = Duration::from_secs(2);
    c
}

use courier_tests::session_files as files_in;

/// Asserts that `dir` holds no file: no partial download, no checkpoint, no leftover.
#[track_caller]
fn assert_empty(dir: &Path) {
    let left = files_in(dir);
    assert!(left.is_empty(), "left: {left:?}");
}

/// Invalidates `session`, waits for `did_become_invalid`, and asserts that `dir` was left empty.
async fn invalidate_leaving_nothing(session: &Session, rec: &Recorder, dir: &Path) {
    session.finish_tasks_and_invalidate();
    rec.wait_invalid(WAIT).await;
    assert_empty(dir);
}

/// The file a task handed to `did_finish_downloading_to`, as (size, sha256).
fn finished(events: &[Event], id: u64) -> Option<(u64, String)> {
    events.iter().find_map(|e| match e {
        Event::Finished { task, size, sha256 } if *task == id => Some((*size, sha256.clone())),
        _ => None,
    })
}

/// Downloads `url` in `session` until it completes, resuming from resume data whenever an attempt
/// fails with some, starting afresh when it fails without. Returns the final task's id and the
/// number of attempts.
async fn download_until_done(session: &Session, rec: &Recorder, url: &str) -> (u64, usize) {
    let mut resume: Option<ResumeData> = None;
    for attempt in 1..=12 {
        let task = match &resume {
            Some(data) => session.download_task_with_resume_data(data).unwrap(),
            None => session.download_task(url).unwrap(),
        };
        task.resume();
        let code = rec
            .wait_complete(task.info().id(), WAIT)
            .await
            .expect("every attempt completes");
        match code {
            None => return (task.info().id(), attempt),
            Some(_) => resume = rec.resume_data(task.info().id()),
        }
    }
    panic!("the download did not complete in 12 attempts");
}

/// [`download_until_done`], then the session invalidated and the file it handed over checked
/// against `server`'s content, byte for byte (`what` names the case). Returns the events and the
/// attempts.
async fn download_whole(
    session: &Session,
    rec: &Recorder,
    server: &ResourceServer,
    url: &str,
    what: &str,
) -> (Vec<Event>, usize) {
    let (id, attempts) = download_until_done(session, rec, url).await;
    session.finish_tasks_and_invalidate();
    let events = rec.wait_invalid(WAIT).await;
    check_invariants(&events).unwrap_or_else(|e| panic!("{what}: {e}"));
    let content = server.content();
    assert_eq!(
        finished(&events, id),
        Some((content.len() as u64, sha256_hex(&content))),
        "{what}"
    );
    (events, attempts)
}

#[tokio::test]
async fn a_download_reports_growing_totals_then_hands_over_the_whole_file() {
    let dir = tempfile::tempdir().unwrap();
    let server = ResourceServer::start(3 * 1024 * 1024 + 17).await;
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(config(dir.path()), rec.clone()).unwrap();
    let task = session.download_task(server.url()).unwrap();
    task.resume();
    assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
    session.finish_tasks_and_invalidate();
    let events = rec.wait_invalid(WAIT).await;
    check_invariants(&events).unwrap();

    let content = server.content();
    let (size, sha) = finished(&events, task.info().id()).expect("did_finish_downloading_to");
    assert_eq!(size, content.len() as u64);
    assert_eq!(sha, sha256_hex(&content));
    let wrote: Vec<(i64, i64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Wrote {
                total, expected, ..
            } => Some((*total, *expected)),
            _ => None,
        })
        .collect();
    assert!(!wrote.is_empty());
    assert_eq!(
        wrote.last().unwrap().0,
        content.len() as i64,
        "the last total is the file size"
    );
    assert!(wrote.iter().all(|(_, e)| *e == content.len() as i64));
    // Order: writes, then the file, then completion; no response or data callbacks.
    let names: Vec<&str> = events.iter().map(Event::name).collect();
    let finish_at = names.iter().position(|n| *n == "finished").unwrap();
    let complete_at = names.iter().position(|n| *n == "complete").unwrap();
    assert!(finish_at < complete_at);
    assert!(
        names[..finish_at]
            .iter()
            .rposition(|n| *n == "wrote")
            .is_some()
    );
    assert!(!names.contains(&"response") && !names.contains(&"data"));
    assert_eq!(task.info().state(), TaskState::Completed);
    assert_eq!(task.info().bytes_received(), content.len() as u64);
    assert_empty(dir.path());
}

#[tokio::test]
async fn the_completion_form_returns_a_file_that_goes_away_unless_persisted() {
    let dir = tempfile::tempdir().unwrap();
    let keep = tempfile::tempdir().unwrap();
    let server = ResourceServer::start(200_000).await;
    let session = Session::new(config(dir.path())).unwrap();

    let (file, response) = session.download(server.url()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(file.path().starts_with(dir.path()));
    assert_eq!(std::fs::read(file.path()).unwrap(), server.content());
    let path = file.path().to_path_buf();
    drop(file);
    assert!(!path.exists(), "dropping the guard removes the file");

    let (file, _) = session.download(server.url()).await.unwrap();
    let kept = file.persist(keep.path().join("kept.bin")).unwrap();
    assert_eq!(std::fs::read(&kept).unwrap(), server.content());
    assert_empty(dir.path());
}

/// A session that writes partial files holds an owner lock in its directory for as long as it
/// lives (what tells a later session that its downloads are not to be taken over), and removes it
/// when it ends: a session that ended leaves nothing. (A killed process's downloads are taken over
/// by the next one: `courier download`'s black-box tests kill one.)
#[tokio::test]
async fn a_sessions_owner_lock_lives_as_long_as_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let server = ResourceServer::start(200_000).await;
    let session = Session::new(config(dir.path())).unwrap();
    // A response stored in the URL cache, whose disk half the sessions on a directory share.
    let (body, _) = session.data(server.url()).await.unwrap();
    assert_eq!(body.len(), 200_000);
    let (file, _) = session.download(server.url()).await.unwrap();
    drop(file);
    let locks = || courier_tests::live_owner_locks(dir.path());
    let own = locks();
    assert_eq!(own.len(), 1);
    // Another session on the directory, which looks for interrupted downloads (and takes no lock
    // for looking), is offered nothing of the live one's.
    let other = Session::new(config(dir.path())).unwrap();
    assert!(other.interrupted_downloads().is_empty());
    assert_eq!(locks(), own);
    session.finish_tasks_and_invalidate();
    drop(session);
    let deadline = std::time::Instant::now() + WAIT;
    while !locks().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the lock outlived its session"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(other);
    assert_eq!(
        files_in(dir.path()),
        ["cache"],
        "the cached response stays, and nothing else"
    );
}

/// A download of `size` bytes that arrives slowly (64 KiB every 20 ms), started in a fresh session
/// whose directory is the returned temporary one.
async fn start_slow_download(
    size: usize,
) -> (
    tempfile::TempDir,
    ResourceServer,
    Arc<Recorder>,
    Session,
    courier_engine::DownloadTask,
) {
    let dir = tempfile::tempdir().unwrap();
    let server = ResourceServer::start(size).await;
    server.script([Misbehaviour::Drip {
        chunk: 64 * 1024,
        delay_ms: 20,
    }]);
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(config(dir.path()), rec.clone()).unwrap();
    let task = session.download_task(server.url()).unwrap();
    task.resume();
    (dir, server, rec, session, task)
}

#[tokio::test]
async fn cancel_by_producing_resume_data_then_resume_fetches_only_the_rest() {
    let (dir, server, rec, session, task) = start_slow_download(2 * 1024 * 1024).await;
    rec.wait_written(WAIT, 256 * 1024).await;
    let data = task
        .cancel_by_producing_resume_data()
        .await
        .expect("a GET with an ETag and ranges is resumable");
    assert_eq!(
        rec.wait_complete(task.info().id(), WAIT).await,
        Some(Some(ErrorCode::Cancelled))
    );
    assert!(
        rec.resume_data(task.info().id()).is_some(),
        "the -999 carries it too"
    );
    assert_eq!(rec.resume_data(task.info().id()), Some(data.clone()));
    assert_eq!(files_in(dir.path()).len(), 1, "only the partial file stays");
    // What the data continues, checked without changing anything (the resume below still works).
    assert_eq!(
        session.check_resume_data(&data).unwrap().url_str(),
        server.url()
    );
    let damaged = ResumeData::from_bytes(b"not resume data".to_vec());
    assert_eq!(
        session.check_resume_data(&damaged).unwrap_err().code(),
        ErrorCode::CannotDecodeRawData
    );

    let resumed = session.download_task_with_resume_data(&data).unwrap();
    assert_ne!(resumed.info().id(), task.info().id(), "a new task");
    assert_eq!(resumed.info().original_request().url_str(), server.url());
    resumed.resume();
    assert_eq!(
        rec.wait_complete(resumed.info().id(), WAIT).await,
        Some(None)
    );
    let events = rec.events();
    check_invariants(&events).unwrap();
    let content = server.content();
    assert_eq!(
        finished(&events, resumed.info().id()).unwrap(),
        (content.len() as u64, sha256_hex(&content))
    );
    let offset = events
        .iter()
        .find_map(|e| match e {
            Event::Resumed {
                task,
                offset,
                expected,
            } if *task == resumed.info().id() => {
                assert_eq!(*expected, content.len() as i64);
                Some(*offset)
            }
            _ => None,
        })
        .expect("did_resume_at_offset");
    assert!(offset >= 256 * 1024, "offset {offset}");
    let last = server.served().pop().unwrap();
    assert_eq!(
        last.range.as_deref(),
        Some(format!("bytes={offset}-").as_str())
    );
    assert_eq!(last.if_range.as_deref(), Some("\"v1\""));
    assert_eq!(last.status, 206);
    assert_eq!(last.body_len as i64, content.len() as i64 - offset);
    // Used up (its partial file became the download), the data can no longer continue.
    assert_eq!(
        session.check_resume_data(&data).unwrap_err().code(),
        ErrorCode::FileDoesNotExist
    );
    invalidate_leaving_nothing(&session, &rec, dir.path()).await;
}

/// A `.tar.gz` that its server labels `Content-Encoding: gzip` is the archive: written as sent,
/// never decoded (into the `.tar`, whose checksum is not the archive's), and resumable where a cut
/// left it, as any file is. (The served bytes are not gzip: decoding them would fail the task.)
#[tokio::test]
async fn a_gzip_file_labelled_with_its_own_coding_is_kept_as_sent_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let server = ResourceServer::start(700_000).await;
    server.label_as_gzip();
    server.script([Misbehaviour::CutAfter(300_000)]);
    let url = server.url().replace("resource.bin", "pkg-1.0.tar.gz");
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(config(dir.path()), rec.clone()).unwrap();
    let (_, attempts) = download_whole(&session, &rec, &server, &url, "labelled").await;
    assert_eq!(attempts, 2);
    let last = server.served().pop().unwrap();
    assert_eq!((last.status, last.start), (206, 300_000));
    assert_empty(dir.path());
}

/// Every fault of the resource server, alone: the download ends with the exact file, and nothing is
/// left behind.
#[tokio::test]
async fn every_fault_ends_with_the_exact_file_and_no_leftovers() {
    let size = 1024 * 1024 + 333;
    let cases: Vec<(&str, Vec<Misbehaviour>)> = vec![
        ("cut", vec![Misbehaviour::CutAfter(300_000)]),
        ("stall", vec![Misbehaviour::StallAfter(200_000)]),
        (
            "overstated length",
            vec![Misbehaviour::OverstateLength(1000)],
        ),
        (
            "cut then range ignored",
            vec![Misbehaviour::CutAfter(400_000), Misbehaviour::IgnoreRange],
        ),
        (
            "cut then 206 at a wrong offset",
            vec![
                Misbehaviour::CutAfter(400_000),
                Misbehaviour::WrongOffset(1000),
            ],
        ),
        (
            "cut then 416",
            vec![
                Misbehaviour::CutAfter(400_000),
                Misbehaviour::NotSatisfiable,
            ],
        ),
        (
            "cut then the resource changes",
            vec![Misbehaviour::CutAfter(400_000), Misbehaviour::Change],
        ),
        (
            "cut then the resource grows under the same validators",
            vec![
                Misbehaviour::CutAfter(400_000),
                Misbehaviour::GrowKeepingValidators(5),
            ],
        ),
        (
            "slow drip",
            vec![Misbehaviour::Drip {
                chunk: 100_000,
                delay_ms: 30,
            }],
        ),
        (
            "cut twice",
            vec![
                Misbehaviour::CutAfter(100_000),
                Misbehaviour::CutAfter(100_000),
            ],
        ),
    ];
    for (name, faults) in cases {
        let dir = tempfile::tempdir().unwrap();
        let server = ResourceServer::start(size).await;
        server.script(faults.clone());
        let rec = Arc::new(Recorder::new());
        let mut c = config(dir.path());
        c.timeout_for_request = Duration::from_millis(500);
        let session = Session::with_delegate(c, rec.clone()).unwrap();
        let (events, attempts) = download_whole(&session, &rec, &server, &server.url(), name).await;
        assert!(
            files_in(dir.path()).is_empty(),
            "{name}: left {:?}",
            files_in(dir.path())
        );
        let failures = faults
            .iter()
            .filter(|f| {
                matches!(
                    f,
                    Misbehaviour::CutAfter(_)
                        | Misbehaviour::StallAfter(_)
                        | Misbehaviour::OverstateLength(_)
                )
            })
            .count();
        assert_eq!(attempts, failures + 1, "{name}: attempts");
        // Every failed attempt carried resume data, and every resumed attempt started with
        // did_resume_at_offset: past the offset when continued, 0 when started over.
        let resumed: Vec<i64> = events
            .iter()
            .filter_map(|e| match e {
                Event::Resumed { offset, .. } => Some(*offset),
                _ => None,
            })
            .collect();
        assert_eq!(resumed.len(), failures, "{name}: {resumed:?}");
        let served = server.served();
        match faults.get(1) {
            Some(Misbehaviour::IgnoreRange | Misbehaviour::Change) => {
                assert_eq!(resumed, [0], "{name}");
                assert_eq!(served.last().unwrap().status, 200, "{name}");
            }
            Some(
                Misbehaviour::WrongOffset(_)
                | Misbehaviour::NotSatisfiable
                | Misbehaviour::GrowKeepingValidators(_),
            ) => {
                assert_eq!(resumed, [0], "{name}");
                // The unusable answer is followed by one plain request for the whole resource.
                let last = served.last().unwrap();
                assert_eq!((last.status, last.range.clone()), (200, None), "{name}");
            }
            // The whole body arrived before the connection closed short: asking for the bytes past
            // the end gets a 416, and the download starts over.
            _ if name == "overstated length" => {
                assert_eq!(resumed, [0], "{name}");
                let statuses: Vec<u16> = served.iter().map(|s| s.status).collect();
                assert_eq!(statuses, [200, 416, 200], "{name}: {served:?} {events:?}");
            }
            _ => assert!(resumed.iter().all(|o| *o > 0), "{name}: {resumed:?}"),
        }
    }
}

#[tokio::test]
async fn unusable_resume_data_fails_at_once_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = ResourceServer::start(1024 * 1024).await;
    server.script([Misbehaviour::CutAfter(300_000)]);
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(config(dir.path()), rec.clone()).unwrap();
    let task = session.download_task(server.url()).unwrap();
    task.resume();
    assert_eq!(
        rec.wait_complete(task.info().id(), WAIT).await,
        Some(Some(ErrorCode::NetworkConnectionLost))
    );
    let data = rec
        .resume_data(task.info().id())
        .expect("a cut download is resumable");
    let partial = dir
        .path()
        .join(files_in(dir.path()).into_iter().next().unwrap());
    let before = std::fs::read(&partial).unwrap();
    assert_eq!(before.len(), 300_000);
    let requests_before = server.served().len();

    let expect_failure = |data: ResumeData, code: ErrorCode| {
        let session = session.clone();
        let rec = rec.clone();
        async move {
            let t = session.download_task_with_resume_data(&data).unwrap();
            t.resume();
            assert_eq!(
                rec.wait_complete(t.info().id(), WAIT).await,
                Some(Some(code))
            );
            let e: Error = rec.error(t.info().id()).unwrap();
            assert!(!e.message().is_empty());
        }
    };
    // Damaged, truncated, another format version, not resume data at all.
    let mut damaged = data.as_bytes().to_vec();
    damaged[30] ^= 0x40;
    expect_failure(
        ResumeData::from_bytes(damaged),
        ErrorCode::CannotDecodeRawData,
    )
    .await;
    let cut = data.as_bytes()[..data.as_bytes().len() / 2].to_vec();
    expect_failure(ResumeData::from_bytes(cut), ErrorCode::CannotDecodeRawData).await;
    let mut newer = data.as_bytes().to_vec();
    newer[4] = 99;
    expect_failure(
        ResumeData::from_bytes(newer),
        ErrorCode::CannotDecodeRawData,
    )
    .await;
    expect_failure(
        ResumeData::from_bytes(&b"hello"[..]),
        ErrorCode::CannotDecodeRawData,
    )
    .await;

    // A well-formed record resealed without the key (its checksum is public): refused.
    let record = courier_storage_record(&data);
    let mut forged = record.clone();
    forged.bytes_on_disk = 1;
    let mut unsealed = forged.encode().unwrap();
    let bytes = data.as_bytes();
    unsealed.extend_from_slice(&bytes[bytes.len() - courier_storage::seal::SEAL_LEN..]);
    expect_failure(
        ResumeData::from_bytes(unsealed),
        ErrorCode::CannotDecodeRawData,
    )
    .await;

    // Well-formed records, sealed with the key, whose file is elsewhere, gone or changed.
    let mut outside = record.clone();
    outside.partial_file = "../download-escape.part".into();
    expect_failure(
        sealed_in(dir.path(), &outside),
        ErrorCode::FileOutsideSafeArea,
    )
    .await;
    let mut gone = record.clone();
    gone.partial_file = "download-nothere.part".into();
    expect_failure(sealed_in(dir.path(), &gone), ErrorCode::FileDoesNotExist).await;
    let mut changed = before.clone();
    changed[299_999] ^= 1;
    std::fs::write(&partial, &changed).unwrap();
    expect_failure(data.clone(), ErrorCode::CannotOpenFile).await;
    assert_eq!(
        std::fs::read(&partial).unwrap(),
        changed,
        "the partial file is untouched"
    );
    assert_eq!(
        server.served().len(),
        requests_before,
        "no request went out"
    );

    // Put the bytes back: the same resume data now continues and completes.
    std::fs::write(&partial, &before).unwrap();
    let t = session.download_task_with_resume_data(&data).unwrap();
    t.resume();
    assert_eq!(rec.wait_complete(t.info().id(), WAIT).await, Some(None));
    let content = server.content();
    assert_eq!(
        finished(&rec.events(), t.info().id()),
        Some((content.len() as u64, sha256_hex(&content)))
    );
    assert_empty(dir.path());
}

/// The record inside resume data (its envelope, before the seal).
fn courier_storage_record(data: &ResumeData) -> courier_storage::ResumeRecord {
    let bytes = data.as_bytes();
    let envelope = &bytes[..bytes.len() - courier_storage::seal::SEAL_LEN];
    courier_storage::ResumeRecord::decode(envelope).unwrap()
}

/// `r` as resume data sealed with the key of the session directory `dir`, as only Courier can.
fn sealed_in(dir: &Path, r: &courier_storage::ResumeRecord) -> ResumeData {
    let directory = courier_storage::SessionDirectory::persistent(Some(dir.to_path_buf()));
    ResumeData::from_bytes(r.seal(&directory).unwrap())
}

#[tokio::test]
async fn a_panicking_download_actor_completes_with_resume_data_from_its_last_checkpoint() {
    panic_mid_download_then_resume(|task| task.task().inject_actor_panic(), "panic").await;
}

#[tokio::test]
async fn a_panicking_transfer_completes_the_download_with_resume_data_from_its_last_checkpoint() {
    panic_mid_download_then_resume(
        |task| task.task().inject_transfer_panic(),
        "transfer panicked",
    )
    .await;
}

/// Stalls a download at 300,000 bytes, waits for the checkpoint that covers them, makes `crash`
/// panic something inside the task, and checks that the task completes with resume data from that
/// checkpoint (its message naming `why`), which then continues the download to the exact file.
async fn panic_mid_download_then_resume(crash: impl Fn(&DownloadTask), why: &str) {
    let dir = tempfile::tempdir().unwrap();
    let server = ResourceServer::start(1024 * 1024).await;
    // 300,000 bytes, then silence: the checkpoint after it is what storage holds.
    server.script([Misbehaviour::StallAfter(300_000)]);
    let rec = Arc::new(Recorder::new());
    let mut c = config(dir.path());
    c.timeout_for_request = Duration::from_secs(30);
    let session = Session::with_delegate(c, rec.clone()).unwrap();
    let task = session.download_task(server.url()).unwrap();
    task.resume();
    rec.wait_for(WAIT, |e| {
        e.iter()
            .any(|e| matches!(e, Event::Wrote { total: 300_000, .. }))
    })
    .await;
    // Wait until the checkpoint that covers those bytes is in storage.
    wait_for_checkpoint(dir.path(), |r, _| r.bytes_on_disk == 300_000).await;
    crash(&task);
    assert_eq!(
        rec.wait_complete(task.info().id(), WAIT).await,
        Some(Some(ErrorCode::Unknown))
    );
    let error = rec.error(task.info().id()).unwrap();
    assert!(error.message().contains(why), "{error}");
    let data = rec
        .resume_data(task.info().id())
        .expect("the session built resume data from storage");
    assert_eq!(courier_storage_record(&data).bytes_on_disk, 300_000);

    let resumed = session.download_task_with_resume_data(&data).unwrap();
    resumed.resume();
    assert_eq!(
        rec.wait_complete(resumed.info().id(), WAIT).await,
        Some(None)
    );
    let events = rec.events();
    check_invariants(&events).unwrap();
    let content = server.content();
    assert_eq!(
        finished(&events, resumed.info().id()),
        Some((content.len() as u64, sha256_hex(&content)))
    );
    let last = server.served().pop().unwrap();
    assert_eq!(last.range.as_deref(), Some("bytes=300000-"));
    assert_eq!(last.body_len, content.len() - 300_000);
    invalidate_leaving_nothing(&session, &rec, dir.path()).await;
}

#[tokio::test]
async fn a_plain_cancel_removes_the_partial_file_and_not_resumable_downloads_give_none() {
    let (dir, server, rec, session, task) = start_slow_download(4 * 1024 * 1024).await;
    rec.wait_for(WAIT, |e| e.iter().any(|e| matches!(e, Event::Wrote { .. })))
        .await;
    task.cancel();
    assert_eq!(
        rec.wait_complete(task.info().id(), WAIT).await,
        Some(Some(ErrorCode::Cancelled))
    );
    assert!(rec.resume_data(task.info().id()).is_none());

    // A POST is never resumable.
    let post = courier_engine::Request::new(http::Method::POST, server.url().as_str());
    let t = session.download_task(post).unwrap();
    server.script([Misbehaviour::Drip {
        chunk: 64 * 1024,
        delay_ms: 20,
    }]);
    t.resume();
    rec.wait_for(WAIT, |e| {
        e.iter()
            .any(|e| matches!(e, Event::Wrote { task, .. } if *task == t.info().id()))
    })
    .await;
    assert!(t.cancel_by_producing_resume_data().await.is_none());
    rec.wait_complete(t.info().id(), WAIT).await;
    // Once completed, there is nothing to produce.
    assert!(t.cancel_by_producing_resume_data().await.is_none());
    invalidate_leaving_nothing(&session, &rec, dir.path()).await;
}

/// The regular files under `dir` this process holds open (Linux: read from `/proc/self/fd`).
#[cfg(target_os = "linux")]
fn open_files_under(dir: &Path) -> usize {
    let dir = dir.canonicalize().unwrap();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.starts_with(&dir) && target.is_file())
        .count()
}

/// Among many downloads at once, each holds a descriptor for its partial file only while it
/// writes (a process runs twice as many before it runs out), and every file still arrives whole.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn many_downloads_at_once_close_their_files_between_writes() {
    const DOWNLOADS: usize = 100;
    const SIZE: usize = 64 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let server = ResourceServer::start(SIZE).await;
    server.script(std::iter::repeat_n(
        Misbehaviour::Drip {
            chunk: 4096,
            delay_ms: 50,
        },
        DOWNLOADS,
    ));
    let rec = Arc::new(Recorder::new());
    let mut c = config(dir.path());
    c.http_maximum_connections_per_host = DOWNLOADS;
    let session = Session::with_delegate(c, rec.clone()).unwrap();
    let tasks: Vec<DownloadTask> = (0..DOWNLOADS)
        .map(|_| session.download_task(server.url()).unwrap())
        .collect();
    tasks.iter().for_each(DownloadTask::resume);
    let ids: Vec<u64> = tasks.iter().map(|t| t.info().id()).collect();
    let written = |events: &[Event], id: u64| {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Wrote { task, total, .. } if *task == id => Some(*total),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    };
    let done = |events: &[Event], id: u64| finished(events, id).is_some();
    // Every download under way (so all of them are open at once), then each one's next write (so
    // each has written since): none is between writes with its file open.
    let seen = rec
        .wait_for(WAIT, |e| ids.iter().all(|&id| written(e, id) > 0))
        .await;
    let before: Vec<i64> = ids.iter().map(|&id| written(&seen, id)).collect();
    rec.wait_for(WAIT, |e| {
        ids.iter()
            .zip(&before)
            .all(|(&id, &b)| done(e, id) || written(e, id) > b)
    })
    .await;
    let open = open_files_under(dir.path());
    assert!(
        open < DOWNLOADS / 4,
        "{open} of {DOWNLOADS} running downloads hold their partial file open"
    );
    for &id in &ids {
        assert_eq!(rec.wait_complete(id, WAIT).await, Some(None));
    }
    let events = rec.events();
    check_invariants(&events).unwrap();
    let whole = (SIZE as u64, sha256_hex(&server.content()));
    for &id in &ids {
        assert_eq!(finished(&events, id), Some(whole.clone()));
    }
    invalidate_leaving_nothing(&session, &rec, dir.path()).await;
}

#[tokio::test]
async fn an_ephemeral_session_keeps_its_files_in_a_private_directory_removed_with_it() {
    let parent = tempfile::tempdir().unwrap();
    let server = ResourceServer::start(100_000).await;
    let mut c = Configuration::ephemeral();
    c.cleartext = CleartextPolicy::AllowAll;
    c.session_directory = Some(parent.path().to_path_buf());
    let session = Session::new(c).unwrap();
    let (file, _) = session.download(server.url()).await.unwrap();
    let private = session.directory().unwrap().to_path_buf();
    assert!(private.starts_with(parent.path()) && private != parent.path());
    assert!(file.path().starts_with(&private));
    session.finish_tasks_and_invalidate();
    session.invalidated().await;
    drop(session);
    assert!(file.path().exists(), "the guard keeps the file while held");
    drop(file);
    // The session's last holders are gone: its private directory goes with them.
    let deadline = std::time::Instant::now() + WAIT;
    while private.exists() {
        assert!(std::time::Instant::now() < deadline, "{private:?} stays");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(files_in(parent.path()).is_empty());
}

fn misbehaviour() -> impl proptest::strategy::Strategy<Value = Misbehaviour> {
    use proptest::prelude::*;
    const SIZE: usize = 4 * 1024 * 1024;
    prop_oneof![
        4 => (0..SIZE).prop_map(Misbehaviour::CutAfter),
        1 => (0..SIZE).prop_map(Misbehaviour::StallAfter),
        1 => (1..5000usize).prop_map(Misbehaviour::OverstateLength),
        1 => Just(Misbehaviour::IgnoreRange),
        1 => (1..200_000usize).prop_map(Misbehaviour::WrongOffset),
        1 => Just(Misbehaviour::NotSatisfiable),
        1 => Just(Misbehaviour::Change),
        1 => (1usize..10_000).prop_map(Misbehaviour::GrowKeepingValidators),
        1 => Just(Misbehaviour::None),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    /// Random interruption points and fault sequences over a 4 MiB body, resumed as often as needed:
    /// the final file is always the resource, byte for byte, and nothing is left behind.
    #[test]
    fn any_fault_sequence_ends_with_the_exact_file(
        faults in proptest::collection::vec(misbehaviour(), 0..5)
    ) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let server = ResourceServer::start(4 * 1024 * 1024).await;
            server.script(faults.clone());
            let rec = Arc::new(Recorder::new());
            let mut c = config(dir.path());
            c.timeout_for_request = Duration::from_millis(300);
            let session = Session::with_delegate(c, rec.clone()).unwrap();
            let what = format!("{faults:?}");
            download_whole(&session, &rec, &server, &server.url(), &what).await;
            assert!(files_in(dir.path()).is_empty(), "{faults:?}: left {:?}", files_in(dir.path()));
        });
    }
}

/// A small tmpfs, mounted for one test and unmounted after (needs root, as CI runs).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs { dir })
    }

    fn resize(&self, size: &str) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_fails_with_cannot_write_and_keeps_what_was_written_resumable() {
    let Some(fs) = Tmpfs::mount("2m") else {
        // CI runs as root and must run this test; elsewhere it needs root to mount.
        assert!(
            std::env::var_os("CI").is_none(),
            "cannot mount a tmpfs in CI: the disk-full test must run there"
        );
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let dir = fs.dir.path().join("session");
    let server = ResourceServer::start(3 * 1024 * 1024).await;
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(config(&dir), rec.clone()).unwrap();
    let task = session.download_task(server.url()).unwrap();
    task.resume();
    assert_eq!(
        rec.wait_complete(task.info().id(), WAIT).await,
        Some(Some(ErrorCode::CannotWriteToFile))
    );
    let data = rec.resume_data(task.info().id()).unwrap_or_else(|| {
        panic!(
            "what was written stays resumable: {:?}",
            rec.error(task.info().id())
        )
    });
    let record = courier_storage_record(&data);
    let partial = dir.join(&record.partial_file);
    let on_disk = std::fs::read(&partial).unwrap();
    assert_eq!(on_disk.len() as u64, record.bytes_on_disk);
    assert!(record.bytes_on_disk > 0 && record.bytes_on_disk < 3 * 1024 * 1024);
    assert!(
        on_disk[..] == server.content()[..on_disk.len()],
        "the partial file is an exact prefix"
    );

    // Room again: the same resume data continues and completes.
    fs.resize("8m");
    let resumed = session.download_task_with_resume_data(&data).unwrap();
    resumed.resume();
    assert_eq!(
        rec.wait_complete(resumed.info().id(), WAIT).await,
        Some(None)
    );
    let content = server.content();
    let events = rec.events();
    assert_eq!(
        finished(&events, resumed.info().id()),
        Some((content.len() as u64, sha256_hex(&content)))
    );
    let offset = events.iter().find_map(|e| match e {
        Event::Resumed { task, offset, .. } if *task == resumed.info().id() => Some(*offset),
        _ => None,
    });
    assert_eq!(offset, Some(record.bytes_on_disk as i64));
    invalidate_leaving_nothing(&session, &rec, &dir).await;
}

/// Waits until the checkpoint record stored beside the session's one partial file satisfies `ok`
/// (given the record and the file's length), and returns it.
async fn wait_for_checkpoint(
    dir: &Path,
    ok: impl Fn(&courier_storage::ResumeRecord, u64) -> bool,
) -> courier_storage::ResumeRecord {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let names = files_in(dir);
        let partial_len = names
            .iter()
            .find(|n| n.ends_with(".part"))
            .and_then(|p| std::fs::metadata(dir.join(p)).ok())
            .map(|m| m.len());
        let record = names
            .iter()
            .find(|n| n.ends_with(".checkpoint"))
            .and_then(|n| std::fs::read(dir.join(n)).ok())
            .and_then(|b| courier_storage::ResumeRecord::decode(&b).ok());
        if let (Some(len), Some(r)) = (partial_len, record)
            && ok(&r, len)
        {
            return r;
        }
        assert!(std::time::Instant::now() < deadline, "no such checkpoint");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_suspended_download_is_on_disk_and_checkpointed_then_continues() {
    let (dir, server, rec, session, task) = start_slow_download(2 * 1024 * 1024).await;
    rec.wait_for(WAIT, |e| e.iter().any(|e| matches!(e, Event::Wrote { .. })))
        .await;
    task.suspend();
    let record = wait_for_checkpoint(dir.path(), |r, len| r.bytes_on_disk == len && len > 0).await;
    assert!(record.bytes_on_disk < 2 * 1024 * 1024);
    let content = server.content();
    let partial = dir.path().join(&record.partial_file);
    let on_disk = std::fs::read(&partial).unwrap();
    assert!(on_disk[..] == content[..on_disk.len()], "an exact prefix");
    task.resume();
    assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
    assert_eq!(
        finished(&rec.events(), task.info().id()),
        Some((content.len() as u64, sha256_hex(&content)))
    );
    assert_eq!(server.served().len(), 1, "the same transfer continued");
    invalidate_leaving_nothing(&session, &rec, dir.path()).await;
}

/// Partial files of resume data that is never used do not stay forever: a session starting on the
/// directory removes those not written for `partial_download_lifetime`, and the stale resume data
/// then fails cleanly (-1100) while a recent one still resumes.
#[tokio::test]
async fn stale_partial_downloads_are_swept_when_a_session_starts() {
    let (dir, _server, rec, session, task) = start_slow_download(2 * 1024 * 1024).await;
    rec.wait_written(WAIT, 128 * 1024).await;
    let data = task.cancel_by_producing_resume_data().await.unwrap();
    rec.wait_complete(task.info().id(), WAIT).await;
    drop(session);
    let partial = files_in(dir.path())
        .into_iter()
        .find(|n| n.ends_with(".part"))
        .expect("the partial file is kept for the resume data");
    let path = dir.path().join(&partial);

    let day = Duration::from_secs(24 * 60 * 60);
    let age = |path: &Path, days: u32| {
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(std::time::SystemTime::now() - day * days)
            .unwrap();
    };
    let gone = |path: PathBuf| async move {
        tokio::time::timeout(WAIT, async {
            while path.exists() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .is_ok()
    };

    // Three days old, with the default lifetime of seven: it stays. A ten-day-old canary shows
    // that the sweep ran.
    age(&path, 3);
    let canary = dir.path().join("download-canary.part");
    std::fs::write(&canary, b"old").unwrap();
    age(&canary, 10);
    let keeps = Session::new(config(dir.path())).unwrap();
    assert!(gone(canary).await, "the sweep removed the stale canary");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        path.exists(),
        "a partial file younger than the lifetime stays"
    );
    drop(keeps);

    // Ten days untouched: the next session sweeps it, and the resume data is stale.
    age(&path, 10);
    let rec = Arc::new(Recorder::new());
    let sweeps = Session::with_delegate(config(dir.path()), rec.clone()).unwrap();
    assert!(
        gone(path.clone()).await,
        "the stale partial file is removed"
    );
    let stale = sweeps.download_task_with_resume_data(&data).unwrap();
    stale.resume();
    assert_eq!(
        rec.wait_complete(stale.info().id(), WAIT).await,
        Some(Some(ErrorCode::FileDoesNotExist))
    );
}

/// A download task in a session without a delegate has nobody to hand its file to: the file is
/// removed when the task completes, and nothing is left in the session directory.
#[tokio::test]
async fn a_download_nobody_listens_to_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let server = courier_tests::TestServer::http().await;
    let session = Session::new(config(dir.path())).unwrap();
    let task = session
        .download_task(server.url("/bytes/200000").as_str())
        .unwrap();
    task.resume();
    session.finish_tasks_and_invalidate();
    tokio::time::timeout(WAIT, session.invalidated())
        .await
        .expect("invalidated");
    assert_eq!(task.info().bytes_received(), 200_000);
    assert!(task.info().error().is_none());
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}

/// Downloads sharing one HTTP/2 connection each arrive whole while they hold its reads in turn
/// (each while its file catches up), and one suspended on the way holds nothing: the others
/// finish while it waits, then it continues on the same connection. (On a multi-thread runtime:
/// the connection's task and the downloads' run on either worker.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_sharing_an_http2_connection_all_arrive_whole() {
    use courier_tests::server::pattern_bytes;
    use courier_tests::{TestCa, TestServer};
    const SIZE: usize = 6 << 20;
    // Larger, so that it is still under way when suspended.
    const LARGE: usize = 48 << 20;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let server = TestServer::https(&ca).await;
    let mut config = config(dir.path());
    config.extra_root_certificates.push(ca.ca_der.clone());
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(config, rec.clone()).unwrap();
    let sizes = [LARGE, SIZE, SIZE, SIZE];
    let tasks: Vec<DownloadTask> = sizes
        .iter()
        .map(|n| {
            let url = server.url(&format!("/bytes/{n}"));
            session.download_task(url.as_str()).unwrap()
        })
        .collect();
    let paused = &tasks[0];
    paused.resume();
    rec.wait_for(WAIT, |e| {
        e.iter()
            .any(|e| matches!(e, Event::Wrote { task, .. } if *task == paused.info().id()))
    })
    .await;
    paused.suspend();
    for task in &tasks[1..] {
        task.resume();
    }
    for task in &tasks[1..] {
        assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
    }
    assert_eq!(paused.info().state(), TaskState::Suspended);
    paused.resume();
    assert_eq!(
        rec.wait_complete(paused.info().id(), WAIT).await,
        Some(None)
    );
    for (task, n) in tasks.iter().zip(sizes) {
        let content = pattern_bytes(0, n);
        assert_eq!(
            finished(&rec.events(), task.info().id()),
            Some((n as u64, sha256_hex(&content)))
        );
    }
    assert_eq!(server.connections(), 1, "one HTTP/2 connection carried all");
    invalidate_leaving_nothing(&session, &rec, dir.path()).await;
}
