//! Black-box tests of `courier get`: bodies to stdout or a file, with their event stream; several
//! URLs in one session, at once (`-j`) and still in order; an output that refuses the body, or that
//! is a link.

mod common;

use common::*;
use courier_tests::TestServer;
use courier_tests::server::pattern_bytes;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_streams_body_and_events() {
    let server = TestServer::http().await;
    let url = server.url("/drip?chunks=3&size=5000&delay_ms=10");
    let u = url.clone();
    let out =
        tokio::task::spawn_blocking(move || courier(&["get", &u, "--allow-http", "--events", "-"]))
            .await
            .unwrap();
    assert_success(&out);
    assert_eq!(out.stdout, pattern_bytes(0, 15_000));
    let ev = events(&out);
    check_stream(&ev);
    let n = names(&ev);
    assert_eq!(&n[..2], ["state", "did_receive_response"]);
    assert_eq!(ev[0]["from"], "suspended");
    assert_eq!(ev[0]["to"], "running");
    assert_eq!(ev[0]["task"], 1);
    let resp = &ev[1];
    assert_eq!(resp["status"], 200);
    assert_eq!(resp["url"], url.as_str());
    assert_eq!(resp["expected_content_length"], 15_000);
    assert_eq!(resp["headers"]["content-length"], "15000");
    assert_eq!(resp["disposition"], "allow");
    let bytes: u64 = ev
        .iter()
        .filter(|e| e["event"] == "did_receive_data")
        .map(|e| e["bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(bytes, 15_000);
    let complete = ev.iter().find(|e| e["event"] == "did_complete").unwrap();
    assert_eq!(complete["error"], Value::Null);
    assert_eq!(complete["status"], 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_length_is_minus_one_in_the_stream() {
    // An encoded body's length on the wire is not the length delivered: unknown, as URLSession
    // says with -1, which the stream's contract writes as a number, never null.
    let server = TestServer::http().await;
    let url = server.url("/gzip/5000");
    let out = tokio::task::spawn_blocking(move || {
        courier(&["get", &url, "--allow-http", "--events", "-"])
    })
    .await
    .unwrap();
    assert_success(&out);
    assert_eq!(out.stdout, pattern_bytes(0, 5_000));
    let ev = events(&out);
    let resp = ev
        .iter()
        .find(|e| e["event"] == "did_receive_response")
        .unwrap();
    assert_eq!(resp["headers"]["content-encoding"], "gzip");
    assert_eq!(resp["expected_content_length"], -1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_urls_run_in_one_session_with_ids_1_2_3() {
    let server = TestServer::http().await;
    let urls: Vec<String> = (1..=3)
        .map(|n| server.url(&format!("/bytes/{n}00")))
        .collect();
    let out = get_all(
        &["--allow-http", "127.0.0.1", "--events", "-", "-j", "2"],
        urls,
    )
    .await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout.len(), 600);
    let ev = events(&out);
    check_stream(&ev);
    let mut tasks: Vec<u64> = ev
        .iter()
        .filter(|e| e["event"] == "did_complete")
        .map(|e| e["task"].as_u64().unwrap())
        .collect();
    tasks.sort();
    assert_eq!(tasks, [1, 2, 3]);
}

/// `get -j 3` writes each body whole, in the order of the URLs, however their bytes interleave:
/// a slow first body, then 40 MiB that come at once, then a small one. The big one waits for its
/// turn (32 MiB in memory, the rest in a spool file) while its task runs on to its end: no task is
/// ever suspended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_bodies_go_out_whole_and_in_order() {
    const BIG: usize = 40 << 20;
    let server = TestServer::http().await;
    let urls = [
        server.url("/drip?chunks=40&size=500&delay_ms=100"),
        server.url(&format!("/bytes/{BIG}")),
        server.url("/bytes/5000"),
    ];
    let out = get_all(
        &["--allow-http", "-q", "--events", "-", "-j", "3"],
        urls.to_vec(),
    )
    .await;
    assert_success(&out);
    let expected = [
        pattern_bytes(0, 20_000),
        pattern_bytes(0, BIG),
        pattern_bytes(0, 5000),
    ]
    .concat();
    assert!(out.stdout == expected, "bodies mixed or out of order");
    let ev = stderr_events(&out);
    let big_done = ev
        .iter()
        .position(|e| e["event"] == "did_complete" && e["task"] == 2)
        .unwrap();
    let first_done = ev
        .iter()
        .position(|e| e["event"] == "did_complete" && e["task"] == 1)
        .unwrap();
    assert!(
        big_done < first_done,
        "the big body came whole before its turn"
    );
    assert!(
        !ev.iter()
            .any(|e| e["event"] == "state" && e["to"] == "suspended"),
        "no task was suspended"
    );
}

/// The first task may need a connection while later ones hold every one there is: with one
/// connection to the host, the first URL's redirect waits behind the second task, whose 40 MiB
/// must then go on to its end (spooled) for the first to get its turn. A second task suspended
/// while holding the connection would leave the first waiting for it (until its resource
/// timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_body_never_holds_back_the_first_task() {
    const BIG: usize = 40 << 20;
    let server = TestServer::http().await;
    let urls = [server.url("/chain/1"), server.url(&format!("/bytes/{BIG}"))];
    let one_connection = [
        "--max-connections-per-host",
        "1",
        "--timeout-resource",
        "30",
    ];
    let out = get_all(
        &[&["--allow-http", "-q", "-j", "2"][..], &one_connection].concat(),
        urls.to_vec(),
    )
    .await;
    assert_success(&out);
    let expected = [b"end of chain".to_vec(), pattern_bytes(0, BIG)].concat();
    assert!(out.stdout == expected, "bodies mixed or out of order");
}

/// Ctrl-C under `-j`: the body going out ends where it stands, and the bodies that waited for
/// their turn (here a whole one, already complete) never follow it, where they were written after
/// the cut body as if they were the rest of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_under_dash_j_writes_nothing_after_the_cut_body() {
    let server = TestServer::http().await;
    // 200 chunks of 1,000 bytes, 20 ms apart: four seconds if nobody stops it.
    let slow = server.url("/drip?chunks=200&size=1000&delay_ms=20");
    let quick = server.url("/headers");
    let dir = tempfile::tempdir().unwrap();
    let (events, output) = (dir.path().join("events"), dir.path().join("out"));
    let written = tokio::task::spawn_blocking({
        let (events, output) = (events.clone(), output.clone());
        move || {
            let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_courier"))
                .args(["get", "-s", "-j", "2", "--allow-http", &slow, &quick])
                .arg("--events")
                .arg(&events)
                .arg("-o")
                .arg(&output)
                .env("XDG_DATA_HOME", data_home())
                .spawn()
                .unwrap();
            // The quick body is complete, and waits for the slow one's.
            let logged = || std::fs::read_to_string(&events).unwrap_or_default();
            signal_when(&child, || logged().contains("did_complete"), "INT");
            assert_eq!(child.wait().unwrap().code(), Some(130));
            let ev: Vec<Value> = logged()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            check_stream(&ev);
            std::fs::read(&output).unwrap()
        }
    })
    .await
    .unwrap();
    assert!(written.len() < 200_000, "the slow body was cut");
    assert!(
        written == pattern_bytes(0, written.len()),
        "only the slow body's first {} bytes, nothing after them",
        written.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_the_output_refuses_fails_the_command_and_stops_its_task() {
    // /dev/full refuses every write with ENOSPC, as a full disk does.
    let server = TestServer::http().await;
    let (small, long) = (
        server.url("/bytes/1024"),
        // 200 chunks of 64 KiB, 10 ms apart: two seconds if nobody stops it.
        server.url("/drip?chunks=200&size=65536&delay_ms=10"),
    );
    let (small_out, long_out) = tokio::task::spawn_blocking(move || {
        (
            courier(&["get", &small, "--allow-http", "-o", "/dev/full"]),
            courier(&[
                "get",
                &long,
                "--allow-http",
                "-o",
                "/dev/full",
                "--events",
                "-",
            ]),
        )
    })
    .await
    .unwrap();
    for out in [&small_out, &long_out] {
        assert_eq!(
            out.status.code(),
            Some(1),
            "like curl's write error, not success"
        );
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            said.contains("cannot write the body to /dev/full") && said.contains("os error 28"),
            "{said}"
        );
    }
    // The body that kept coming is not fetched to its end: the task is cancelled.
    let ev = events(&long_out);
    check_stream(&ev);
    let complete = ev.iter().find(|e| e["event"] == "did_complete").unwrap();
    assert_eq!(complete["error"]["number"], -999, "{complete}");
}

/// A stderr that is gone (`courier get URL 2>&1 | head -1` closes it once `head` has its line)
/// loses courier's lines, as curl's are lost, and the exit status still says how the tasks
/// ended: never the status of a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stderr_loses_the_lines_not_the_exit_status() {
    let server = TestServer::http().await;
    let (missing, fine) = (server.url("/status/404"), server.url("/bytes/10"));
    let statuses = tokio::task::spawn_blocking(move || {
        let run = |args: &[&str]| {
            let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_courier"))
                .args(args)
                .env("XDG_DATA_HOME", data_home())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("run courier");
            // The read end closes before courier has started: each line it writes meets EPIPE.
            drop(child.stderr.take());
            child.wait().expect("courier's status").code()
        };
        [
            run(&["get", "-f", "--allow-http", &missing]),
            run(&["get", "--allow-http", "http://127.0.0.1:1/"]),
            run(&["get", "-v", "--allow-http", "--events", "-", &fine]),
        ]
    })
    .await
    .unwrap();
    assert_eq!(statuses, [Some(22), Some(1), Some(0)]);
}

/// A symbolic link at `get -o FILE` or `--events FILE` is replaced by the file, never written
/// through (as `download` replaces one): the file it pointed to keeps what it had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_that_is_a_link_is_replaced_not_written_through() {
    let server = TestServer::http().await;
    let url = server.url("/bytes/1000");
    let dir = tempfile::tempdir().unwrap();
    let (victim, out, events) = (
        dir.path().join("victim"),
        dir.path().join("out"),
        dir.path().join("events"),
    );
    std::fs::write(&victim, "precious").unwrap();
    std::os::unix::fs::symlink(&victim, &out).unwrap();
    std::os::unix::fs::symlink(&victim, &events).unwrap();
    let (o, e) = (out.clone(), events.clone());
    let run = tokio::task::spawn_blocking(move || {
        let (o, e) = (o.to_str().unwrap(), e.to_str().unwrap());
        courier(&["get", "--allow-http", "-q", &url, "-o", o, "--events", e])
    })
    .await
    .unwrap();
    assert_success(&run);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    for file in [&out, &events] {
        let kind = std::fs::symlink_metadata(file).unwrap().file_type();
        assert!(
            kind.is_file(),
            "{} is a file of its own now",
            file.display()
        );
    }
    assert_eq!(std::fs::read(&out).unwrap(), pattern_bytes(0, 1000));
    assert!(
        std::fs::read_to_string(&events)
            .unwrap()
            .contains("did_complete")
    );
}

/// A name under `localhost` is this machine (RFC 6761, as curl and browsers take it), whatever
/// the system resolver knows: glibc without systemd-resolved finds no `app.localhost`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_under_localhost_reaches_this_machine() {
    let server = TestServer::http().await;
    let url = format!("http://App.Localhost:{}/bytes/7", server.addr().port());
    let out = tokio::task::spawn_blocking(move || courier(&["get", "--allow-http", &url]))
        .await
        .unwrap();
    assert_success(&out);
    assert_eq!(out.stdout, pattern_bytes(0, 7));
}

/// `courier get ARGS URLS`, off the test's runtime.
/// `--max-filesize` (curl's) bounds each body: one announced longer fails before it is read, one
/// whose length is unknown (gzipped here) once it grows past the limit, with -1103; one of the
/// limit exactly arrives.
/// `--max-redirs` is curl's name for `--max-redirects`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_filesize_bounds_each_body() {
    let server = TestServer::http().await;
    let limit = [
        "-s",
        "--allow-http",
        "--max-filesize",
        "1k",
        "-o",
        "/dev/null",
        "--events",
        "-",
    ];
    let exact = get_all(&limit, vec![server.url("/bytes/1024")]).await;
    assert_success(&exact);
    // Announced longer: refused at its head, which nobody is shown; of a length not known before:
    // refused once past the limit, after its head.
    for (path, heads) in [("/bytes/1025", 0), ("/gzip/1025", 1)] {
        let out = get_all(&limit, vec![server.url(path)]).await;
        assert_eq!(out.status.code(), Some(1), "{path}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("data_length_exceeds_maximum -1103")
                && err.contains("longer than the 1024 bytes"),
            "{path}: {err}"
        );
        let responses = events(&out)
            .iter()
            .filter(|e| e["event"] == "did_receive_response")
            .count();
        assert_eq!(responses, heads, "{path}");
    }
    let redirected = get_all(
        &["-s", "--allow-http", "--max-redirs", "1", "-o", "/dev/null"],
        vec![server.url("/chain/2")],
    )
    .await;
    assert_eq!(redirected.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&redirected.stderr).contains("-1007"));
}

async fn get_all(args: &[&str], urls: Vec<String>) -> std::process::Output {
    let mut all: Vec<String> = std::iter::once("get")
        .chain(args.iter().copied())
        .map(str::to_owned)
        .collect();
    all.extend(urls);
    tokio::task::spawn_blocking(move || {
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        courier(&all)
    })
    .await
    .unwrap()
}

/// `-i FILE` reads a line of at most 8,000,000 bytes (curl's limit for a URL): a longer one (a
/// file that is not a list of URLs) is a usage error, read no further than that, where it filled
/// the memory (1.2 GB for a line of 300 MB). A URL that long that fails is shown in part on the
/// failure's line, not whole.
#[test]
fn an_input_file_line_is_bounded_and_a_long_url_is_shown_in_part() {
    let dir = tempfile::tempdir().unwrap();
    let endless = dir.path().join("endless");
    std::fs::write(&endless, "a".repeat(8_000_001)).unwrap();
    let out = courier(&["get", "-i", endless.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("line 1 is longer than 8000000 bytes"),
        "{said}"
    );

    // 8,000,000 bytes and its newline are a line: the URL's task fails (no server takes a URL
    // that long), and the line saying so holds its first 2,000 bytes.
    let long = dir.path().join("long");
    let url = format!("https://127.0.0.1:1/{}", "b".repeat(8_000_000 - 20));
    std::fs::write(&long, format!("{url}\n")).unwrap();
    let out = courier(&["get", "-i", long.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.len() < 3_000, "{} bytes said", said.len());
    assert!(said.contains("... (7998000 bytes more)"), "{said}");
}
