//! Black-box tests of `courier daemon` and `courier bg`: the background service as a process,
//! killed, stopped and restarted; tasks handed over from the command line and attached to later.

mod common;

use std::process::Command;

use common::daemon::*;
use common::*;
use courier_tests::TestServer;
use courier_tests::server::pattern_bytes;

/// Attaches to `identifier` at the daemon's `socket`, waiting (20 s at most) for it to listen.
async fn connect_to_daemon(
    socket: std::path::PathBuf,
    identifier: &str,
) -> courier_engine::background::wire::Connection<tokio::net::UnixStream> {
    use std::time::{Duration, Instant};
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(stream) = tokio::net::UnixStream::connect(&socket).await {
            let mut c = courier_engine::background::wire::Connection::new(stream);
            c.hello(identifier).await.unwrap();
            return c;
        }
        assert!(Instant::now() < deadline, "the daemon listens");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The next message from the daemon, within 20 s.
async fn next_from_daemon(
    c: &mut courier_engine::background::wire::Connection<tokio::net::UnixStream>,
) -> courier_engine::background::wire::ServiceMessage {
    tokio::time::timeout(std::time::Duration::from_secs(20), c.receive())
        .await
        .expect("the daemon answers")
        .unwrap()
}

/// `courier daemon`: the background service in its own process. A download handed to it over the
/// socket completes; the events the application never acknowledged are still there for it after
/// the service was stopped (SIGTERM, exit 0) and started again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_keeps_unacknowledged_events_across_its_restart() {
    use courier_engine::background::wire::{ClientMessage, SOCKET, ServiceMessage};
    use courier_storage::journal::{StoredEvent, TaskKind};
    use courier_storage::resume::RequestRecord;
    let server = TestServer::http().await;
    let root = tempfile::tempdir().unwrap();
    let (run, data) = (root.path().join("run"), root.path().join("data"));
    let socket = run.join("courier").join(SOCKET);
    let start = || start_daemon(&run, &data);
    let stop = |mut daemon: Daemon| stop_daemon(&mut daemon);
    let connect = |socket: std::path::PathBuf| connect_to_daemon(socket, "com.example.cli");

    let daemon = start();
    let mut app = connect(socket.clone()).await;
    assert_eq!(
        next_from_daemon(&mut app).await,
        ServiceMessage::FinishedEvents
    );
    app.send(&ClientMessage::CreateTask {
        kind: TaskKind::Download,
        request: RequestRecord {
            method: "GET".into(),
            url: server.url("/bytes/5000"),
            headers: Vec::new(),
        },
        description: "cli".into(),
        schedule: courier_engine::background::wire::schedule_for(
            &courier_engine::Configuration::default(),
        ),
        settings: courier_engine::background::wire::SessionSettings::default(),
    })
    .await
    .unwrap();
    assert!(matches!(
        next_from_daemon(&mut app).await,
        ServiceMessage::TaskCreated { task: 1 }
    ));
    app.send(&ClientMessage::Control {
        task: 1,
        control: courier_engine::background::wire::RemoteControl::RESUME,
    })
    .await
    .unwrap();
    let mut live = Vec::new();
    loop {
        match next_from_daemon(&mut app).await {
            ServiceMessage::Event { seq, record } => {
                let done = matches!(record.event, StoredEvent::Completed { error: None, .. });
                live.push(seq);
                if done {
                    break;
                }
            }
            other => panic!("{other:?}"),
        }
    }
    drop(app);
    stop(daemon);

    // Started again, the service has every event the application did not acknowledge.
    let daemon = start();
    let mut app = connect(socket.clone()).await;
    let mut replayed = Vec::new();
    loop {
        match next_from_daemon(&mut app).await {
            ServiceMessage::Event { seq, record } => {
                if let StoredEvent::FinishedDownloading { file } = &record.event {
                    assert_eq!(std::fs::read(file).unwrap(), pattern_bytes(0, 5000));
                }
                replayed.push(seq);
            }
            ServiceMessage::Task { task, record, .. } => {
                assert_eq!((task, record.description.as_str()), (1, "cli"));
            }
            ServiceMessage::FinishedEvents => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(replayed, live, "the same events, in the same order");
    drop(app);
    stop(daemon);
}

/// Crash safety: `kill -9` of the daemon in the middle of a download, then a restart: the download
/// continues from its partial file's last checkpoint with a range request, the file is the
/// resource byte for byte, and the task completes exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_survives_a_killed_daemon() {
    a_download_survives_a_stopped_daemon("KILL").await;
}

/// A clean stop (SIGTERM, exit 0) keeps a running download's resume data in the journal; the next
/// start continues from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_survives_a_daemon_stopped_with_sigterm() {
    a_download_survives_a_stopped_daemon("TERM").await;
}

/// Starts a download in a daemon, stops the daemon with `signal` once a checkpoint past 1 MiB is
/// stored, starts it again, and checks that the download continued exactly where it was.
async fn a_download_survives_a_stopped_daemon(signal: &str) {
    use courier_engine::background::wire::{ClientMessage, SOCKET, ServiceMessage};
    use courier_storage::journal::{StoredEvent, TaskKind};
    use courier_storage::resume::RequestRecord;
    use std::time::{Duration, Instant};
    let resource = courier_tests::ResourceServer::start(4 * 1024 * 1024).await;
    resource.script([courier_tests::Misbehaviour::Drip {
        chunk: 64 * 1024,
        delay_ms: 25,
    }]);
    let root = tempfile::tempdir().unwrap();
    let (run, data) = (root.path().join("run"), root.path().join("data"));
    let socket = run.join("courier").join(SOCKET);
    let start = || start_daemon(&run, &data);
    let connect = |socket: std::path::PathBuf| connect_to_daemon(socket, "com.example.crash");

    let mut daemon = start();
    let mut app = connect(socket.clone()).await;
    app.send(&ClientMessage::CreateTask {
        kind: TaskKind::Download,
        request: RequestRecord {
            method: "GET".into(),
            url: resource.url(),
            headers: Vec::new(),
        },
        description: String::new(),
        schedule: courier_engine::background::wire::schedule_for(
            &courier_engine::Configuration::default(),
        ),
        settings: courier_engine::background::wire::SessionSettings::default(),
    })
    .await
    .unwrap();
    app.send(&ClientMessage::Control {
        task: 1,
        control: courier_engine::background::wire::RemoteControl::RESUME,
    })
    .await
    .unwrap();
    // Wait until a checkpoint past 1 MiB is stored beside the partial file.
    let sessions = data.join("courier/background/sessions");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let checkpointed = std::fs::read_dir(sessions.join("com.example.crash"))
            .map(|d| {
                d.filter_map(|e| e.ok()).any(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.ends_with(".checkpoint")
                        && std::fs::read(e.path())
                            .ok()
                            .and_then(|b| courier_storage::ResumeRecord::decode(&b).ok())
                            .is_some_and(|r| r.bytes_on_disk >= 1024 * 1024)
                })
            })
            .unwrap_or(false);
        if checkpointed {
            break;
        }
        assert!(Instant::now() < deadline, "a checkpoint is stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(app);
    let status = daemon.signal(signal);
    if signal == "TERM" {
        assert_eq!(status.code(), Some(0), "a clean stop");
    }

    let daemon = start();
    let mut app = connect(socket.clone()).await;
    let (mut resumed_at, mut completions, mut file) = (None, 0, None);
    while completions == 0 {
        let message = tokio::time::timeout(Duration::from_secs(20), app.receive())
            .await
            .expect("the daemon answers")
            .unwrap();
        if let ServiceMessage::Event { record, .. } = message {
            match record.event {
                StoredEvent::ResumedAt { offset, .. } => resumed_at = Some(offset),
                StoredEvent::FinishedDownloading { file: f } => file = Some(f),
                StoredEvent::Completed { error, .. } => {
                    assert!(error.is_none(), "{error:?}");
                    completions += 1;
                }
                _ => {}
            }
        }
    }
    let offset = resumed_at.expect("the download continued") as usize;
    assert!(offset >= 1024 * 1024, "from the checkpoint: {offset}");
    assert_eq!(std::fs::read(file.unwrap()).unwrap(), resource.content());
    let last = resource.served().pop().unwrap();
    assert_eq!(last.range, Some(format!("bytes={offset}-")));
    assert_eq!(
        last.body_len,
        resource.content().len() - offset,
        "only the rest"
    );
    drop(app);
    let mut daemon = daemon;
    stop_daemon(&mut daemon);
}

/// `courier bg`: downloads handed to the daemon finish while no application is attached; `bg list`
/// shows them completed; `bg attach` gets their events (the contract's event names), moves the
/// files into -o DIR named from their URLs, and acknowledges everything, so a second attach gets
/// only the end of an empty replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bg_download_then_attach_hands_the_files_over() {
    use std::time::{Duration, Instant};
    let server = TestServer::http().await;
    let root = tempfile::tempdir().unwrap();
    let (run, data, out) = (
        root.path().join("run"),
        root.path().join("data"),
        root.path().join("out"),
    );
    let courier_env = {
        let (run, data) = (run.clone(), data.clone());
        move |args: &[&str]| courier_at(&run, &data, args)
    };
    let mut daemon = Daemon(
        courier_env(&["daemon", "--allow-http"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (a, b) = (
        server.url("/bytes/120000"),
        server.url("/drip?chunks=3&size=1000&delay_ms=5"),
    );
    let (a2, b2, out2) = (a.clone(), b.clone(), out.clone());
    let (submitted, listed, attached, again) = tokio::task::spawn_blocking(move || {
        // The daemon may take a moment to listen; bg download would start another otherwise.
        wait_for_socket(&run);
        let submitted = courier_env(&["bg", "download", "--id", "com.example.bg", &a2, &b2])
            .output()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let listed = loop {
            let listed = courier_env(&["bg", "list", "--id", "com.example.bg", "--json"])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&listed.stdout).into_owned();
            if text.matches("\"completed\"").count() == 2 {
                break text;
            }
            assert!(Instant::now() < deadline, "{text}");
            std::thread::sleep(Duration::from_millis(20));
        };
        let o = out2.to_str().unwrap();
        let attached = courier_env(&[
            "bg",
            "attach",
            "--id",
            "com.example.bg",
            "-o",
            o,
            "--events",
            "-",
        ])
        .output()
        .unwrap();
        let again = courier_env(&[
            "bg",
            "attach",
            "--id",
            "com.example.bg",
            "-o",
            o,
            "--events",
            "-",
        ])
        .output()
        .unwrap();
        (submitted, listed, attached, again)
    })
    .await
    .unwrap();
    assert_success(&submitted);
    assert_eq!(
        String::from_utf8_lossy(&submitted.stdout),
        format!("1 {a}\n2 {b}\n")
    );
    assert!(
        listed.contains("\"task\":1") && listed.contains("\"task\":2"),
        "{listed}"
    );
    assert_success(&attached);
    let ev = stderr_events(&attached);
    let names: Vec<&str> = ev.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        names.iter().filter(|n| **n == "did_complete").count(),
        2,
        "{names:?}"
    );
    assert!(
        ev.iter()
            .filter(|e| e["event"] == "did_complete")
            .all(|e| e["status"] == 200),
        "the final response's status comes with the completion: {ev:?}"
    );
    assert_eq!(
        names[names.len() - 2..],
        [
            "did_finish_events_for_background_session",
            "did_become_invalid"
        ],
        "{names:?}"
    );
    assert_eq!(
        std::fs::read(out.join("120000")).unwrap(),
        pattern_bytes(0, 120_000)
    );
    assert_eq!(std::fs::read(out.join("drip")).unwrap().len(), 3000);
    assert_success(&again);
    let names: Vec<String> = stderr_events(&again)
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "did_finish_events_for_background_session",
            "did_become_invalid"
        ],
        "all acknowledged: first {:?} again {:?}",
        stderr_events(&attached),
        stderr_events(&again)
    );
    stop_daemon(&mut daemon);
}

/// `courier bg invalidate`: the identifier's tasks are cancelled at once; the next attach gets
/// their `did_complete` (-999) and ends with `did_become_invalid`; nothing is left to list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bg_invalidate_cancels_every_task_of_the_identifier() {
    let server = TestServer::http().await;
    let root = tempfile::tempdir().unwrap();
    let (run, data) = (root.path().join("run"), root.path().join("data"));
    let mut daemon = start_daemon(&run, &data);
    // Both would take 20 s; a task of another identifier goes on.
    let slow = server.url("/drip?chunks=400&size=1000&delay_ms=50");
    let (r, d) = (run.clone(), data.clone());
    let (submitted, other, invalidated, attached, listed, other_listed) =
        tokio::task::spawn_blocking(move || {
            let courier = |args: &[&str]| courier_at(&r, &d, args).output().unwrap();
            wait_for_socket(&r);
            let submitted = courier(&["bg", "download", "--id", "gone", &slow, &slow]);
            let other = courier(&["bg", "download", "--id", "stays", &slow]);
            let invalidated = courier(&["bg", "invalidate", "--id", "gone"]);
            let attached = courier(&["bg", "attach", "--id", "gone", "--events", "-"]);
            let listed = courier(&["bg", "list", "--id", "gone"]);
            let other_listed = courier(&["bg", "list", "--id", "stays", "--json"]);
            (
                submitted,
                other,
                invalidated,
                attached,
                listed,
                other_listed,
            )
        })
        .await
        .unwrap();
    for out in [&submitted, &other, &invalidated, &listed] {
        assert_success(out);
    }
    assert_eq!(
        attached.status.code(),
        Some(1),
        "its tasks failed (cancelled)"
    );
    let ev = stderr_events(&attached);
    let cancelled: Vec<&serde_json::Value> =
        ev.iter().filter(|e| e["event"] == "did_complete").collect();
    assert_eq!(cancelled.len(), 2, "{ev:?}");
    for e in cancelled {
        assert_eq!(e["error"]["number"], -999, "{e}");
    }
    assert_eq!(
        names(&ev)[ev.len() - 2..],
        [
            "did_finish_events_for_background_session",
            "did_become_invalid"
        ]
    );
    assert!(listed.stdout.is_empty(), "nothing left to list");
    let other_listed = String::from_utf8_lossy(&other_listed.stdout).into_owned();
    assert!(
        other_listed.contains("\"running\""),
        "another identifier's task goes on: {other_listed}"
    );
    stop_daemon(&mut daemon);
}

/// The systemd user unit's way in: `systemd-socket-activate` (systemd's own tool for what
/// `courier.socket` does) holds the socket, and the first `courier bg` connection starts `courier
/// daemon` on it; the download is handed over and attached to as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_serves_a_socket_systemd_hands_it() {
    let Ok(activate) = which("systemd-socket-activate") else {
        eprintln!("systemd-socket-activate is not installed (tests/run.sh installs it): skipped");
        return;
    };
    let server = TestServer::http().await;
    let root = tempfile::tempdir().unwrap();
    let (run, data, out) = (
        root.path().join("run"),
        root.path().join("data"),
        root.path().join("out"),
    );
    let dir = run.join("courier");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let socket = dir.join("service.sock");
    let mut daemon = Daemon(
        Command::new(activate)
            .args(["-E", "XDG_RUNTIME_DIR", "-E", "XDG_DATA_HOME", "-l"])
            .arg(&socket)
            .args([env!("CARGO_BIN_EXE_courier"), "daemon", "--allow-http"])
            .env("XDG_RUNTIME_DIR", &run)
            .env("XDG_DATA_HOME", &data)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let url = server.url("/bytes/70000");
    let (r, d, o) = (run.clone(), data.clone(), out.clone());
    let (submitted, attached) = tokio::task::spawn_blocking(move || {
        use std::time::{Duration, Instant};
        let courier = |args: &[&str]| courier_at(&r, &d, args).output().unwrap();
        wait_for_socket(&r);
        let submitted = courier(&["bg", "download", "--id", "activated", &url]);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let listed = courier(&["bg", "list", "--id", "activated"]);
            if String::from_utf8_lossy(&listed.stdout).contains(" completed ") {
                break;
            }
            assert!(Instant::now() < deadline, "the download completes");
            std::thread::sleep(Duration::from_millis(20));
        }
        let o = o.to_str().unwrap().to_owned();
        let attached = courier(&["bg", "attach", "--id", "activated", "-o", &o]);
        (submitted, attached)
    })
    .await
    .unwrap();
    assert_success(&submitted);
    assert_success(&attached);
    assert_eq!(
        std::fs::read(out.join("70000")).unwrap(),
        pattern_bytes(0, 70_000)
    );
    // systemd-socket-activate execs the daemon: the same process, stopped cleanly.
    stop_daemon(&mut daemon);
    let mut log = String::new();
    std::io::Read::read_to_string(daemon.0.stderr.as_mut().unwrap(), &mut log).unwrap();
    assert!(
        log.contains("Execing") && log.contains(&format!("listening on {}", socket.display())),
        "started by the activation, on its socket: {log}"
    );
}

/// A background session with no service to answer starts one (`PROGRAM daemon`, the program the
/// configuration names), in a process group of its own so that a Ctrl-C to the application leaves
/// it running, and its task runs there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_background_session_starts_the_service_when_none_answers() {
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, Instant};
    let server = TestServer::http().await;
    let root = tempfile::tempdir().unwrap();
    let (run, data) = (root.path().join("run"), root.path().join("data"));
    let (program, pid_file) = (
        root.path().join("courier-here"),
        root.path().join("daemon.pid"),
    );
    std::fs::write(
        &program,
        format!(
            "#!/bin/sh\necho $$ > '{}'\nXDG_RUNTIME_DIR='{}' XDG_DATA_HOME='{}' exec '{}' \"$@\" --allow-http\n",
            pid_file.display(),
            run.display(),
            data.display(),
            env!("CARGO_BIN_EXE_courier")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut config = courier_engine::Configuration::background("autostart");
    config.background_service = Some(run.join("courier").join("service.sock"));
    config.background_daemon = Some(program);
    let rec = std::sync::Arc::new(courier_tests::Recorder::new());
    let session = courier_engine::Session::with_delegate(config, rec.clone()).unwrap();
    let task = session
        .download_task(server.url("/bytes/40000").as_str())
        .unwrap();
    task.resume();
    assert_eq!(
        rec.wait_complete(task.info().id(), Duration::from_secs(20))
            .await,
        Some(None)
    );
    drop((task, session));
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let stat = || std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // pid (comm) state ppid pgrp ...: the service leads a process group of its own.
    let fields: Vec<String> = stat()
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    assert_eq!(fields.get(2), Some(&pid.to_string()), "{fields:?}");
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    // Not this test's child to wait for: it has exited once it is a zombie or gone.
    let deadline = Instant::now() + Duration::from_secs(20);
    let state = || {
        stat()
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
    };
    while !matches!(state(), None | Some('Z')) {
        assert!(Instant::now() < deadline, "the service stops on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}
