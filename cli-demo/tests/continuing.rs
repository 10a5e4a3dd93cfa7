//! Black-box tests of stopping and continuing `courier download`: Ctrl-C and SIGTERM save resume
//! data (an ephemeral session keeps none), `--resume-data` or the same command continues from it,
//! a download a killed run left is continued by the next, and one a live run is writing is never
//! taken.

mod common;

use common::*;
use serde_json::Value;

/// `--config ephemeral` keeps nothing on disk, Ctrl-C included: the download stops with resume
/// data as always (the stream says so), but no resume file is written, since the partial file and
/// the key that seals the data go with the session; the working, data and temporary directories
/// are left empty. Asking to save or use resume data in an ephemeral session is a usage error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ephemeral_download_stopped_by_ctrl_c_leaves_nothing_on_disk() {
    let server = dripping_resource(4).await;
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let [cwd, data, tmp, logs] = [0, 1, 2, 3].map(|i| dirs[i].path().to_path_buf());
    let url = server.url();
    let (refused, saving) = tokio::task::spawn_blocking(move || {
        let events = logs.join("events.jsonl");
        let ephemeral = ["download", "--config", "ephemeral", "--allow-http"];
        let child = courier_in(&cwd, &data, &ephemeral)
            .args([&url, "--events", events.to_str().unwrap()])
            .env("TMPDIR", &tmp)
            .spawn()
            .unwrap();
        let ev = interrupt_once_logged(child, &events, "did_write_data");
        let complete = ev.iter().find(|e| e["event"] == "did_complete").unwrap();
        assert_eq!(complete["error"]["resume_data"], true);
        for dir in [&cwd, &data, &tmp] {
            let left: Vec<_> = std::fs::read_dir(dir).unwrap().collect();
            assert!(left.is_empty(), "{}: {left:?}", dir.display());
        }
        let use_data = ["--resume-data", "events.jsonl"];
        let refused = courier_in(&logs, &data, &ephemeral)
            .args(use_data)
            .output()
            .unwrap();
        let save_data = ["--save-resume-data", "r", &url];
        let saving = courier_in(&logs, &data, &ephemeral)
            .args(save_data)
            .output()
            .unwrap();
        (refused, saving)
    })
    .await
    .unwrap();
    for out in [refused, saving] {
        assert_eq!(out.status.code(), Some(2));
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            said.contains("cannot outlive an ephemeral session"),
            "{said}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_saves_resume_data_and_resume_data_finishes_the_download() {
    stop_then_resume("INT").await;
}

/// SIGTERM (`kill`, `timeout`, a service manager) stops a download as Ctrl-C does: its resume data
/// is saved, the stream ends well, the exit status is 143, and the resume data finishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_saves_resume_data_as_ctrl_c_does() {
    stop_then_resume("TERM").await;
}

/// A download stopped by `signal` mid-body saves its resume data (the stream ends with the task
/// cancelled, nothing saved yet), and `--resume-data` then finishes it from where it stopped.
async fn stop_then_resume(signal: &'static str) {
    let (server, cwd, data) = dripping_scene(4).await;
    let (url, c, d) = (server.url(), cwd.path().to_owned(), data.path().to_owned());
    let ev = tokio::task::spawn_blocking(move || {
        let events = c.join("events.jsonl");
        let child = courier_in(
            &c,
            &d,
            &[
                "download",
                &url,
                "--allow-http",
                "--events",
                events.to_str().unwrap(),
            ],
        )
        .spawn()
        .unwrap();
        stop_once_logged(child, &events, "did_write_data", signal)
    })
    .await
    .unwrap();
    let complete = ev.iter().find(|e| e["event"] == "did_complete").unwrap();
    assert_eq!(complete["error"]["resume_data"], true);
    let resume_file = cwd.path().join("resource.bin.courier-resume");
    assert!(resume_file.exists());
    assert!(
        !cwd.path().join("resource.bin").exists(),
        "nothing saved yet"
    );

    let (c, d) = (cwd.path().to_path_buf(), data.path().to_path_buf());
    let out = tokio::task::spawn_blocking(move || {
        courier_in(
            &c,
            &d,
            &[
                "download",
                "--resume-data",
                "resource.bin.courier-resume",
                "--allow-http",
                "--events",
                "-",
            ],
        )
        .output()
        .unwrap()
    })
    .await
    .unwrap();
    assert_success(&out);
    let ev = stderr_events(&out);
    let offset = resumed_at(&ev);
    assert!(offset > 0);
    let saved = std::fs::read(cwd.path().join("resource.bin")).unwrap();
    assert!(
        saved == server.content(),
        "the resumed file is the resource"
    );
    assert!(!resume_file.exists(), "used resume data is removed");
    let last = server.served().pop().unwrap();
    assert_eq!(last.status, 206);
    assert_eq!(last.start as u64, offset);
}

/// After Ctrl-C, the same command run again (no `--resume-data`) continues from the resume data
/// saved beside the file, fetching only the rest, and removes it once the file is whole. Resume
/// data that can no longer continue is said so, and the download starts over: removed when its
/// partial file is gone, kept when it does not decode here (it may be another data directory's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_command_after_ctrl_c_continues_from_the_saved_resume_data() {
    let (server, cwd, data) = dripping_scene(4).await;
    let (url, c, d) = (server.url(), cwd.path().to_owned(), data.path().to_owned());
    let runs = tokio::task::spawn_blocking(move || {
        let args = ["download", &url, "--allow-http", "-q", "--events"];
        // Stops a run with Ctrl-C at its first bytes, then lets `spoil` act, then runs again.
        let round = |name: &str, spoil: &dyn Fn()| {
            let _ = std::fs::remove_file(c.join("resource.bin"));
            server.script([courier_tests::Misbehaviour::Drip {
                chunk: 64 * 1024,
                delay_ms: 25,
            }]);
            let events = c.join(format!("{name}.jsonl"));
            let child = courier_in(&c, &d, &args).arg(&events).spawn().unwrap();
            stop_once_logged(child, &events, "did_write_data", "INT");
            assert!(c.join("resource.bin.courier-resume").exists());
            spoil();
            let out = courier_in(&c, &d, &args).arg("-").output().unwrap();
            assert_success(&out);
            assert!(std::fs::read(c.join("resource.bin")).unwrap() == server.content());
            out
        };
        let resume_file = c.join("resource.bin.courier-resume");
        let again = round("again", &|| {});
        let again_left = resume_file.exists();
        let damaged = round("damaged", &|| {
            std::fs::write(&resume_file, b"not resume data").unwrap()
        });
        let damaged_left = std::fs::read(&resume_file).ok();
        let sessions = d.join("courier/sessions/default");
        let orphaned = round("orphaned", &|| {
            for name in courier_tests::session_files(&sessions) {
                std::fs::remove_file(sessions.join(name)).unwrap();
            }
        });
        let runs = [(again, again_left), (orphaned, resume_file.exists())];
        (runs, damaged, damaged_left)
    })
    .await
    .unwrap();
    let ([(again, again_left), (orphaned, orphaned_left)], damaged, damaged_left) = runs;
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("from the resume data in"), "{stderr}");
    assert!(resumed_at(&stderr_events(&again)) > 0);
    assert!(!again_left, "used resume data is removed");

    for out in [&damaged, &orphaned] {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("cannot continue the download") && stderr.contains("starting over"),
            "{stderr}"
        );
        assert!(
            !stderr_events(out)
                .iter()
                .any(|e| e["event"] == "did_resume_at_offset")
        );
    }
    assert_eq!(
        damaged_left.as_deref(),
        Some(b"not resume data".as_slice()),
        "data that does not decode here is kept"
    );
    assert!(
        !orphaned_left,
        "resume data whose partial file went is removed"
    );
}

/// Waits until the events file `events` reports at least `bytes` written.
fn wait_for_bytes_written(events: &std::path::Path, bytes: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(events).unwrap_or_default();
        let written = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|e| e["total_bytes_written"].as_u64())
            .max()
            .unwrap_or(0);
        if written >= bytes {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {written} bytes written"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A `courier download` killed outright (SIGKILL: no handler runs, nothing is saved on purpose)
/// leaves its partial file and checkpoint; the same command run again continues from them, with
/// a range request for the rest, and the file is whole. curl needs `-C -` and wget `-c` for this.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_download_is_continued_by_the_next_run_of_the_same_command() {
    let (server, cwd, data) = dripping_scene(8).await;
    let (url, c, d) = (server.url(), cwd.path().to_owned(), data.path().to_owned());
    let out = tokio::task::spawn_blocking(move || {
        let events = c.join("killed.jsonl");
        let args = ["download", &url, "--allow-http", "-q", "--events"];
        let mut child = courier_in(&c, &d, &args).arg(&events).spawn().unwrap();
        wait_for_bytes_written(&events, 6 * 1024 * 1024);
        child.kill().unwrap();
        assert_eq!(child.wait().unwrap().code(), None, "killed by a signal");
        assert!(!c.join("resource.bin").exists());
        courier_in(&c, &d, &args).arg("-").output().unwrap()
    })
    .await
    .unwrap();
    assert_success(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("continuing the interrupted download"),
        "{stderr}"
    );
    let ev = stderr_events(&out);
    let offset = resumed_at(&ev);
    assert!(offset >= 1024 * 1024, "continued from {offset}");
    let saved = std::fs::read(cwd.path().join("resource.bin")).unwrap();
    assert!(
        saved == server.content(),
        "the continued file is the resource"
    );
    let last = server.served().pop().unwrap();
    assert_eq!((last.status, last.start as u64), (206, offset));
    let metrics = ev
        .iter()
        .find(|e| e["event"] == "did_finish_collecting_metrics")
        .unwrap();
    assert_eq!(
        metrics["transactions"][0]["response_body_bytes_received"].as_u64(),
        Some(8 * 1024 * 1024 - offset),
        "only the rest was fetched"
    );
    let left = courier_tests::session_files(&data.path().join("courier/sessions/default"));
    assert!(left.is_empty(), "left in the session directory: {left:?}");
}

/// A download that another `courier` is still running is never taken over: the second run of the
/// same URL starts its own download, and both files come out whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_still_running_in_another_process_is_never_taken_over() {
    let (server, cwd, data) = dripping_scene(8).await;
    let (url, c, d) = (server.url(), cwd.path().to_owned(), data.path().to_owned());
    let (first, second) = tokio::task::spawn_blocking(move || {
        let events = c.join("first.jsonl");
        let first = courier_in(&c, &d, &["download", &url, "--allow-http", "-q", "-o"])
            .args(["first.bin", "--events"])
            .arg(&events)
            .spawn()
            .unwrap();
        wait_for_bytes_written(&events, 6 * 1024 * 1024);
        let second = courier_in(&c, &d, &["download", &url, "--allow-http", "-q", "-o"])
            .args(["second.bin", "--events", "-"])
            .output()
            .unwrap();
        let first = first.wait_with_output().unwrap();
        let first_events = std::fs::read_to_string(events).unwrap();
        ((first, first_events), second)
    })
    .await
    .unwrap();
    assert_success(&second);
    assert_success(&first.0);
    let ev = stderr_events(&second);
    assert!(
        !ev.iter().any(|e| e["event"] == "did_resume_at_offset"),
        "the second run took the first one's download"
    );
    assert!(!first.1.contains("did_resume_at_offset"));
    for name in ["first.bin", "second.bin"] {
        let saved = std::fs::read(cwd.path().join(name)).unwrap();
        assert!(saved == server.content(), "{name} is the resource");
    }
}

/// The offset `did_resume_at_offset` reports in `events`.
#[track_caller]
fn resumed_at(events: &[Value]) -> u64 {
    let resumed = events
        .iter()
        .find(|e| e["event"] == "did_resume_at_offset")
        .expect("did_resume_at_offset");
    resumed["offset"].as_u64().unwrap()
}

/// A dripping resource of `mib` MiB, and a `courier` run's two private directories: its working
/// directory and its data directory (`XDG_DATA_HOME`).
async fn dripping_scene(
    mib: usize,
) -> (
    courier_tests::ResourceServer,
    tempfile::TempDir,
    tempfile::TempDir,
) {
    let server = dripping_resource(mib).await;
    (
        server,
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    )
}

/// A resource of `mib` MiB sent in 64 KiB pieces 25 ms apart (0.4 s a MiB): a download still
/// running when a test interrupts it. Past 6 MiB of 8, at least 2.4 s in, a download has taken
/// its periodic checkpoints (one a second).
async fn dripping_resource(mib: usize) -> courier_tests::ResourceServer {
    let server = courier_tests::ResourceServer::start(mib * 1024 * 1024).await;
    server.script([courier_tests::Misbehaviour::Drip {
        chunk: 64 * 1024,
        delay_ms: 25,
    }]);
    server
}
