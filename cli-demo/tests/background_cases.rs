//! The seed document's cases against real processes: an application (`courier bg attach`) and
//! the service (`courier daemon`) killed at random moments, an application that comes back to
//! some tasks done and some running, an upload across a killed service.

mod common;

use common::daemon::*;
use common::*;
use courier_tests::TestServer;
use courier_tests::server::pattern_bytes;

/// The seed's fourth case: 20 downloads from nginx in one background session; the application
/// (`courier bg attach --follow`) and the service (`courier daemon`) are each killed with SIGKILL
/// at random moments, several times, and restarted. In the end every file is byte-identical to its
/// source, and each task's `did_complete` reached the application once: a second delivery is
/// allowed only to a life that was cut short while (or just after) it handled the first, which is
/// the one event URLSession's contract gives again. The seed is printed for reproduction
/// (`COURIER_CHAOS_SEED`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_downloads_survive_killed_applications_and_services() {
    use std::time::{Duration, Instant};
    if courier_tests::Nginx::binary().is_none() {
        eprintln!("nginx is not installed (tests/run.sh installs it): skipped");
        return;
    }
    const FILES: usize = 20;
    const SIZE: usize = 3 << 20;
    let root = tempfile::tempdir().unwrap();
    let files = root.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    for i in 0..FILES {
        courier_tests::write_random_file(&files.join(format!("file{i}")), SIZE, i as u64 + 1)
            .unwrap();
    }
    let nginx = courier_tests::Nginx::start(&files).expect("nginx starts");
    let urls: Vec<String> = (0..FILES)
        .map(|i| nginx.url(&format!("/trickle/file{i}")))
        .collect();
    let seed = std::env::var("COURIER_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("chaos seed: {seed}");
    let (run, data, out) = (
        root.path().join("run"),
        root.path().join("data"),
        root.path().join("out"),
    );
    let logs = root.path().to_path_buf();
    let lives = tokio::task::spawn_blocking(move || {
        let mut rng = seed;
        let mut next = move |below: u64| {
            // xorshift64: reproducible from the seed.
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % below
        };
        let courier = |args: &[&str]| {
            let mut c = courier_at(&run, &data, args);
            c.stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            c
        };
        let daemon = || {
            let d = Daemon(
                courier(&["daemon", "--allow-http", "--max-connections-per-host", "20"])
                    .spawn()
                    .unwrap(),
            );
            wait_for_socket(&run);
            d
        };
        let mut service = daemon();
        let mut args = vec!["bg", "download", "--id", "chaos"];
        args.extend(urls.iter().map(String::as_str));
        assert!(courier(&args).status().unwrap().success());
        let out = out.to_str().unwrap().to_owned();
        // (events file, how it was cut short) for every life of the application.
        let mut lives: Vec<(std::path::PathBuf, Cut)> = Vec::new();
        for life in 0..5 {
            let events = logs.join(format!("life{life}.jsonl"));
            let e = events.to_str().unwrap().to_owned();
            let attach = ["bg", "attach", "--id", "chaos", "--follow", "-o", &out];
            let mut app = courier(&attach).args(["--events", &e]).spawn().unwrap();
            std::thread::sleep(Duration::from_millis(300 + next(1500)));
            let what = next(3);
            let killed_app = what != 1 && matches!(app.try_wait(), Ok(None));
            if killed_app {
                let _ = app.kill(); // SIGKILL
            }
            if what != 0 {
                service.signal("KILL");
                // A lost service ends the application's session (-997): it exits by itself.
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            let status = loop {
                if let Some(status) = app.try_wait().unwrap() {
                    break status;
                }
                assert!(
                    Instant::now() < deadline,
                    "life {life} ends when its service dies"
                );
                std::thread::sleep(Duration::from_millis(20));
            };
            eprintln!(
                "life {life}: {} -> {status}",
                ["app killed", "service killed", "both killed"][what as usize]
            );
            let cut = match (killed_app, what != 0) {
                (_, true) => Cut::Service,
                (true, false) => Cut::App,
                (false, false) => Cut::No,
            };
            if std::env::var_os("COURIER_CHAOS_DEBUG").is_some() {
                eprintln!("{}", std::fs::read_to_string(&events).unwrap_or_default());
            }
            lives.push((events, cut));
            if what != 0 {
                drop(service);
                service = daemon();
            }
        }
        // The last life stays until every task has completed.
        let events = logs.join("last.jsonl");
        let e = events.to_str().unwrap().to_owned();
        let mut app = courier(&["bg", "attach", "--id", "chaos", "--follow", "-o", &out])
            .args(["--events", &e])
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(status) = app.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "every task completes");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "the last life: {status}");
        lives.push((events, Cut::No));
        stop_daemon(&mut service);
        lives
    })
    .await
    .unwrap();

    for i in 0..FILES {
        let name = format!("file{i}");
        let got = std::fs::read(root.path().join("out").join(&name)).unwrap_or_default();
        let want = std::fs::read(files.join(&name)).unwrap();
        assert!(got == want, "{name}: {} bytes, not the source's", got.len());
    }
    // Each task's did_complete, across lives.
    let mut completions: std::collections::HashMap<u64, Vec<usize>> = Default::default();
    let mut last_lines: Vec<Option<serde_json::Value>> = Vec::new();
    for (life, (events, _)) in lives.iter().enumerate() {
        let text = std::fs::read_to_string(events).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        for e in lines.iter().filter(|e| e["event"] == "did_complete") {
            assert!(e["error"].is_null(), "life {life}: {e}");
            completions
                .entry(e["task"].as_u64().unwrap())
                .or_default()
                .push(life);
        }
        last_lines.push(
            lines
                .iter()
                .rev()
                .find(|e| e["event"] != "did_become_invalid")
                .cloned(),
        );
    }
    assert_eq!(
        completions.len(),
        FILES,
        "every task completed: {completions:?}"
    );
    for (task, seen) in &completions {
        for pair in seen.windows(2) {
            let first = pair[0];
            match lives[first].1 {
                // Its acknowledgement may have been lost with the service.
                Cut::Service => {}
                // Killed inside the callback: that one event comes again, no other.
                Cut::App => assert_eq!(
                    last_lines[first]
                        .as_ref()
                        .map(|e| (e["event"].clone(), e["task"].clone())),
                    Some((serde_json::json!("did_complete"), serde_json::json!(task))),
                    "task {task}'s did_complete came again after life {first}: {seen:?}"
                ),
                Cut::No => panic!(
                    "task {task}'s did_complete came again after life {first} ended normally: {seen:?}"
                ),
            }
        }
    }
    drop(nginx);
}

/// The seed's third case: the application goes, one task finishes, the other does not; the
/// application comes back (`bg attach --follow`): the finished one is reported in the replay,
/// before `did_finish_events_for_background_session`, and the other goes on and reports live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_application_gets_the_finished_tasks_first_then_the_rest_live() {
    use std::time::{Duration, Instant};
    let server = TestServer::http().await;
    let root = tempfile::tempdir().unwrap();
    let (run, data, out) = (
        root.path().join("run"),
        root.path().join("data"),
        root.path().join("out"),
    );
    let mut daemon = start_daemon(&run, &data);
    let quick = server.url("/bytes/30000");
    // About 5 s.
    let slow = server.url("/drip?chunks=100&size=1000&delay_ms=50");
    let (r, d, o) = (run.clone(), data.clone(), out.clone());
    let attached = tokio::task::spawn_blocking(move || {
        let courier = |args: &[&str]| courier_at(&r, &d, args).output().unwrap();
        wait_for_socket(&r);
        assert_success(&courier(&[
            "bg", "download", "--id", "partly", &quick, &slow,
        ]));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let listed = courier(&["bg", "list", "--id", "partly"]);
            let text = String::from_utf8_lossy(&listed.stdout).into_owned();
            if text.contains("1 completed") {
                assert!(
                    text.contains("2 running"),
                    "the slow one still runs: {text}"
                );
                break;
            }
            assert!(Instant::now() < deadline, "{text}");
            std::thread::sleep(Duration::from_millis(20));
        }
        let o = o.to_str().unwrap().to_owned();
        courier(&[
            "bg", "attach", "--id", "partly", "--follow", "-o", &o, "--events", "-",
        ])
    })
    .await
    .unwrap();
    assert_success(&attached);
    let ev = stderr_events(&attached);
    let position = |event: &str, task: Option<u64>| {
        ev.iter()
            .position(|e| e["event"] == event && task.is_none_or(|t| e["task"] == t))
            .unwrap_or_else(|| panic!("no {event} for {task:?}: {ev:?}"))
    };
    let replayed = position("did_finish_events_for_background_session", None);
    assert!(position("did_complete", Some(1)) < replayed, "{ev:?}");
    assert!(position("did_complete", Some(2)) > replayed, "live: {ev:?}");
    assert!(
        ev[replayed..]
            .iter()
            .any(|e| e["event"] == "did_write_data" && e["task"] == 2),
        "its progress arrives live: {ev:?}"
    );
    assert_eq!(
        std::fs::read(out.join("30000")).unwrap(),
        pattern_bytes(0, 30_000)
    );
    assert_eq!(std::fs::read(out.join("drip")).unwrap().len(), 100_000);
    stop_daemon(&mut daemon);
}

/// An upload from a file survives a killed service: after the restart it starts over (HTTP has
/// no standard resumable upload yet) and the server reads the whole file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_starts_over_after_the_service_is_killed() {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A sink that reads 64 KiB every 20 ms (about 3 MB/s) and notes each whole body it read.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (started, received) = (
        Arc::new(Mutex::new(0usize)),
        Arc::new(Mutex::new(Vec::<String>::new())),
    );
    let (s, r) = (started.clone(), received.clone());
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let (s, r) = (s.clone(), r.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if tcp.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                *s.lock().unwrap() += 1;
                let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                let mut body = Vec::with_capacity(length);
                let mut chunk = vec![0u8; 64 * 1024];
                while body.len() < length {
                    let want = chunk.len().min(length - body.len());
                    match tcp.read(&mut chunk[..want]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => body.extend_from_slice(&chunk[..n]),
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                r.lock().unwrap().push(courier_tests::sha256_hex(&body));
                let _ = tcp
                    .write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
                    .await;
            });
        }
    });
    let root = tempfile::tempdir().unwrap();
    let (run, data) = (root.path().join("run"), root.path().join("data"));
    let file = root.path().join("payload.bin");
    let payload: Vec<u8> = (0..12_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &payload).unwrap();
    let url = format!("http://127.0.0.1:{port}/put/payload.bin");
    let (r, d, f, st) = (run.clone(), data.clone(), file.clone(), started.clone());
    let attached = tokio::task::spawn_blocking(move || {
        let courier = |args: &[&str]| courier_at(&r, &d, args).output().unwrap();
        let mut daemon = start_daemon(&r, &d);
        wait_for_socket(&r);
        let f = f.to_str().unwrap().to_owned();
        assert_success(&courier(&[
            "bg", "upload", "--id", "up", "--file", &f, &url,
        ]));
        let deadline = Instant::now() + Duration::from_secs(20);
        while *st.lock().unwrap() == 0 {
            assert!(Instant::now() < deadline, "the upload starts");
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(500));
        daemon.signal("KILL");
        let mut daemon = start_daemon(&r, &d);
        wait_for_socket(&r);
        let attached = courier(&["bg", "attach", "--id", "up", "--follow", "--events", "-"]);
        stop_daemon(&mut daemon);
        attached
    })
    .await
    .unwrap();
    assert_success(&attached);
    let ev = stderr_events(&attached);
    let done: Vec<&serde_json::Value> =
        ev.iter().filter(|e| e["event"] == "did_complete").collect();
    assert_eq!(done.len(), 1, "{ev:?}");
    assert!(done[0]["error"].is_null(), "{ev:?}");
    assert_eq!(
        *started.lock().unwrap(),
        2,
        "cut by the kill, then sent again"
    );
    assert_eq!(
        *received.lock().unwrap(),
        [courier_tests::sha256_hex(&payload)],
        "the server read the whole file once, on the second attempt"
    );
}

/// How a life of the application in the chaos test ended.
#[derive(Clone, Copy, Debug)]
enum Cut {
    /// It ended by itself.
    No,
    /// It was killed; the service lived.
    App,
    /// The service was killed under it (the application too, or not).
    Service,
}
