//! Black-box tests of `courier download --retry N`: a download that fails for a transient reason
//! is tried again, from its resume data where it has some, and the retries are counted.

mod common;

use common::*;
use courier_tests::{Misbehaviour, ResourceServer};
use serde_json::Value;

const SIZE: usize = 1024 * 1024;

/// Runs `courier download URL --allow-http --events - EXTRA...` in `cwd` with its data in `data`.
async fn download(
    cwd: &tempfile::TempDir,
    data: &tempfile::TempDir,
    url: String,
    extra: &[&'static str],
) -> std::process::Output {
    let (c, d) = (cwd.path().to_path_buf(), data.path().to_path_buf());
    let extra = extra.to_vec();
    tokio::task::spawn_blocking(move || {
        let mut args = vec!["download", url.as_str(), "--allow-http", "-q"];
        args.extend(extra);
        args.extend(["--events", "-"]);
        courier_in(&c, &d, &args).output().unwrap()
    })
    .await
    .unwrap()
}

/// The `did_complete` events of `events`, in order.
fn completions(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e["event"] == "did_complete")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_download_is_tried_again_from_where_it_stopped() {
    let server = ResourceServer::start(SIZE).await;
    server.script([Misbehaviour::CutAfter(300_000)]);
    let (cwd, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let out = download(
        &cwd,
        &data,
        server.url(),
        &["--retry", "2", "--retry-delay", "0.1"],
    )
    .await;
    assert_success(&out);
    assert!(std::fs::read(cwd.path().join("resource.bin")).unwrap() == server.content());

    // Two requests: the whole, cut; then the rest, from where the first stopped.
    let served = server.served();
    assert_eq!(served.len(), 2, "{served:?}");
    assert_eq!(served[1].range.as_deref(), Some("bytes=300000-"));
    assert_eq!(served[1].start, 300_000);
    assert!(
        served[1].if_range.is_some(),
        "the rest only if it is the same resource"
    );

    // Two tasks, the first failed with resume data, the second resumed at the cut and succeeded.
    let ev = stderr_events(&out);
    let done = completions(&ev);
    assert_eq!(done.len(), 2);
    assert_eq!(done[0]["error"]["code"], "network_connection_lost");
    assert_eq!(done[0]["error"]["resume_data"], true);
    assert_eq!(done[1]["error"], Value::Null);
    assert_ne!(done[0]["task"], done[1]["task"]);
    let resumed = ev
        .iter()
        .find(|e| e["event"] == "did_resume_at_offset")
        .expect("the second attempt resumes");
    assert_eq!(resumed["offset"], 300_000);
    assert_eq!(resumed["task"], done[1]["task"]);

    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("trying again in 0.1 s (1 more retry left)"),
        "{stderr}"
    );
    assert!(
        !cwd.path().join("resource.bin.courier-resume").exists(),
        "nothing left to continue"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_now_from_the_server_is_waited_out_and_never_saved_as_the_file() {
    let server = ResourceServer::start(SIZE).await;
    server.script([Misbehaviour::Unavailable {
        retry_after_secs: 1,
    }]);
    let (cwd, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // The server's Retry-After wins over --retry-delay. `-J` never replaces a file: had the 503's
    // body been saved, the good one would have had to go beside it.
    let out = download(
        &cwd,
        &data,
        server.url(),
        &[
            "--retry",
            "1",
            "--retry-delay",
            "0.1",
            "-J",
            "-w",
            "[%{http_code} %{filename_effective}]",
        ],
    )
    .await;
    assert_success(&out);
    // One `-w` line for the download and its retry, as curl writes: the last attempt's.
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[200 ./resource.bin]");
    assert!(std::fs::read(cwd.path().join("resource.bin")).unwrap() == server.content());
    let files: Vec<_> = std::fs::read_dir(cwd.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files, ["resource.bin"]);
    let served = server.served();
    assert_eq!(
        served.iter().map(|s| s.status).collect::<Vec<_>>(),
        [503, 200]
    );
    assert!(
        served[1].at - served[0].at >= std::time::Duration::from_millis(900),
        "Retry-After: 1 is waited out"
    );
    let ev = stderr_events(&out);
    let done = completions(&ev);
    assert_eq!(done.len(), 2);
    assert_eq!(
        (done[0]["status"].clone(), done[0]["error"].clone()),
        (503.into(), Value::Null)
    );
    assert_eq!(done[1]["status"], 200);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("HTTP status 503; trying again in 1.0 s"),
        "{stderr}"
    );

    // Without --retry, the 503 is the answer (URLSession's behaviour): its body is the file.
    server.script([Misbehaviour::Unavailable {
        retry_after_secs: 1,
    }]);
    let once = tempfile::tempdir().unwrap();
    let out = download(&once, &data, server.url(), &[]).await;
    assert_success(&out);
    assert_eq!(server.served().len(), 3);
    assert!(std::fs::read(once.path().join("resource.bin")).unwrap() != server.content());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spent_retries_leave_resume_data_that_the_next_run_continues_from() {
    let server = ResourceServer::start(SIZE).await;
    server.script([
        Misbehaviour::CutAfter(100_000),
        Misbehaviour::CutAfter(100_000),
    ]);
    let (cwd, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let out = download(
        &cwd,
        &data,
        server.url(),
        &["--retry", "1", "--retry-delay", "0.1"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "the download failed in the end");
    let served = server.served();
    assert_eq!(
        served.iter().map(|s| s.start).collect::<Vec<_>>(),
        [0, 100_000],
        "tried once more, from the first cut"
    );
    assert!(cwd.path().join("resource.bin.courier-resume").exists());
    let done = completions(&stderr_events(&out)).len();
    assert_eq!(done, 2);

    // The next run (no --retry) continues from where the last attempt stopped.
    let out = download(&cwd, &data, server.url(), &[]).await;
    assert_success(&out);
    assert_eq!(server.served()[2].start, 200_000);
    assert!(std::fs::read(cwd.path().join("resource.bin")).unwrap() == server.content());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_while_a_retry_waits_saves_the_resume_data() {
    let server = ResourceServer::start(SIZE).await;
    server.script([Misbehaviour::CutAfter(100_000)]);
    let (cwd, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (c, d, url) = (
        cwd.path().to_path_buf(),
        data.path().to_path_buf(),
        server.url(),
    );
    tokio::task::spawn_blocking(move || {
        let events = c.join("events.jsonl");
        let args = [
            "download",
            &url,
            "--allow-http",
            "-q",
            "--retry",
            "3",
            "--retry-delay",
            "60",
            "--events",
        ];
        let mut child = courier_in(&c, &d, &args).arg(&events).spawn().unwrap();
        let attempt_ended = || {
            std::fs::read_to_string(&events)
                .unwrap_or_default()
                .contains("did_complete")
        };
        signal_when(&child, attempt_ended, "INT");
        assert_eq!(child.wait().unwrap().code(), Some(130));
        let ev: Vec<Value> = std::fs::read_to_string(&events)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        check_stream(&ev);
    })
    .await
    .unwrap();
    assert!(cwd.path().join("resource.bin.courier-resume").exists());
    assert_eq!(server.served().len(), 1, "stopped while waiting");

    let out = download(&cwd, &data, server.url(), &[]).await;
    assert_success(&out);
    assert_eq!(server.served()[1].start, 100_000);
    assert!(std::fs::read(cwd.path().join("resource.bin")).unwrap() == server.content());
}

/// `get --retry`: a "not now" is waited out and its body never reaches the output; a body cut
/// off part-way is not tried again (what went out cannot be taken back); and `--retry` is for
/// fetches, one at a time for `get`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_tries_again_only_what_wrote_nothing() {
    let server = ResourceServer::start(SIZE).await;
    server.script([Misbehaviour::Unavailable {
        retry_after_secs: 0,
    }]);
    let (u, content) = (server.url(), server.content());
    let (busy, cut, parallel, upload) = tokio::task::spawn_blocking(move || {
        let get = |extra: &[&str]| {
            // Ephemeral: no disk cache answers the second run from the first.
            let mut args = vec![
                "get",
                "-s",
                "--config",
                "ephemeral",
                "--allow-http",
                "--retry",
                "2",
            ];
            args.extend(extra);
            args.push(&u);
            courier(&args)
        };
        let busy = get(&["-w", "[%{http_code}]"]);
        server.script([Misbehaviour::CutAfter(1000)]);
        let cut = get(&[]);
        (busy, cut, get(&["-j", "2"]), {
            courier(&["upload", "--data", "x", "--retry", "1", "--allow-http", &u])
        })
    })
    .await
    .unwrap();
    assert_success(&busy);
    assert!(
        busy.stdout == [&content[..], b"[200]"].concat(),
        "the body once, no 503 page, and one -w line"
    );
    let stderr = String::from_utf8_lossy(&busy.stderr);
    assert!(
        stderr.contains("HTTP status 503; trying again in 0.0 s"),
        "{stderr}"
    );

    assert_eq!(cut.status.code(), Some(1));
    assert_eq!(
        cut.stdout.len(),
        1000,
        "what went out stays; nothing is sent twice"
    );
    let stderr = String::from_utf8_lossy(&cut.stderr);
    assert!(
        stderr.contains("not tried again: part of its body was written already"),
        "{stderr}"
    );
    for refused in [&parallel, &upload] {
        assert_eq!(refused.status.code(), Some(2));
    }
}
