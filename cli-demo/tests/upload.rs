//! Black-box tests of `courier upload`: a file, stdin or text sent, the response printed; stdin
//! sent again after a redirect, or not when it was read; the informational response a large body
//! meets; an upload stopped or failed, gone on with from its saved resume data.

mod common;

use common::*;
use courier_tests::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_sends_a_file_or_text_and_prints_the_response() {
    let server = TestServer::http().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("payload.bin");
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
    std::fs::write(&file, &payload).unwrap();
    let url = server.url("/upload");
    let f = file.clone();
    let u = url.clone();
    let out = tokio::task::spawn_blocking(move || {
        courier(&[
            "upload",
            &u,
            "--file",
            f.to_str().unwrap(),
            "--allow-http",
            "--events",
            "-",
        ])
    })
    .await
    .unwrap();
    assert_success(&out);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "bytes=300000 sha256={}",
            courier_tests::sha256_hex(&payload)
        )
    );
    let ev = stderr_events(&out);
    let last_sent = ev
        .iter()
        .rfind(|e| e["event"] == "did_send_body_data")
        .expect("did_send_body_data");
    assert_eq!(last_sent["total_bytes_sent"], 300_000);
    assert_eq!(last_sent["total_bytes_expected_to_send"], 300_000);

    let u = server.url("/echo");
    let out = tokio::task::spawn_blocking(move || {
        courier(&["upload", &u, "--data", "hello", "--allow-http"])
    })
    .await
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello");
    let missing = dir.path().join("missing");
    let out = tokio::task::spawn_blocking(move || {
        courier(&[
            "upload",
            &url,
            "--file",
            missing.to_str().unwrap(),
            "--allow-http",
        ])
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("file_does_not_exist"));
}

/// An upload streamed from stdin that must be resent (a 307) after the server read its body cannot
/// be read again: it fails with -1021 (URLSession's `requestBodyStreamExhausted`) instead of
/// sending the redirect's target an empty body and reporting success. Redirected before the server
/// asked for the body (`Expect: 100-continue`, no `100 Continue`), nothing was read, and the same
/// stdin goes to the target whole, as curl sends it; so after a 401 that came first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdin_upload_goes_again_unless_it_was_read_and_then_fails_instead_of_sending_nothing() {
    let server = TestServer::http().await;
    let body = "the body, once\n".repeat(3_000);
    // `courier upload URL --file - --allow-http --events -` and these, stdin the body.
    let send = |path: &str, more: &[&str]| {
        let url = server.url(path);
        let body = body.clone();
        let more: Vec<String> = more.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            let mut args = vec![
                "upload",
                &url,
                "--file",
                "-",
                "--allow-http",
                "--events",
                "-",
            ];
            args.extend(more.iter().map(String::as_str));
            courier_with_stdin(&args, &body, std::time::Duration::ZERO)
        })
    };

    let out = send("/307/upload?after_body=1", &[]).await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "no response: nothing was resent");
    let ev = stderr_events(&out);
    let complete = ev.iter().find(|e| e["event"] == "did_complete").unwrap();
    assert_eq!(complete["error"]["code"], "request_body_stream_exhausted");
    assert_eq!(complete["error"]["number"], -1021);

    let out = send("/307/upload", &[]).await.unwrap();
    assert_success(&out);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "bytes={} sha256={}",
            body.len(),
            courier_tests::sha256_hex(body.as_bytes())
        ),
        "the target got the whole body"
    );
    let ev = stderr_events(&out);
    let asked = ev
        .iter()
        .filter(|e| e["event"] == "need_new_body_stream")
        .count();
    assert_eq!(asked, 2, "asked again for the resend, as URLSession asks");

    // The same for an authentication retry: the 401 comes before the body is asked for.
    let out = send("/digest/ann/pw", &["--user", "ann:pw"]).await.unwrap();
    assert_success(&out);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "welcome ann");
}

/// `courier upload -T - < FILE`: a stdin that is a file read from its start goes as that file, so
/// a 307 after its body was read sends it again (curl rewinds such a stdin) where a pipe fails with
/// -1021, as above. A file stdin already read into goes as the stream it is, from where it stands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_given_as_stdin_is_sent_again_as_that_file() {
    use std::io::{Seek, SeekFrom};
    let server = TestServer::http().await;
    let url = server.url("/307/upload?after_body=1");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("body.bin");
    let body = courier_tests::server::pattern_bytes(0, 200_000);
    std::fs::write(&path, &body).unwrap();
    let (whole, read_into) = tokio::task::spawn_blocking(move || {
        let upload = |offset: u64| {
            let mut stdin = std::fs::File::open(&path).unwrap();
            stdin.seek(SeekFrom::Start(offset)).unwrap();
            std::process::Command::new(env!("CARGO_BIN_EXE_courier"))
                .args(["upload", "-s", "-T", "-", "--allow-http", &url])
                .env("XDG_DATA_HOME", data_home())
                .current_dir(dir.path())
                .stdin(stdin)
                .output()
                .unwrap()
        };
        (upload(0), upload(100))
    })
    .await
    .unwrap();
    assert_success(&whole);
    assert_eq!(
        String::from_utf8_lossy(&whole.stdout),
        format!("bytes=200000 sha256={}", courier_tests::sha256_hex(&body)),
        "the target got the whole file"
    );
    assert_eq!(read_into.status.code(), Some(1));
    let said = String::from_utf8_lossy(&read_into.stderr);
    assert!(said.contains("-1021"), "{said}");
}

/// An upload past the `Expect: 100-continue` threshold (1 MiB) to nginx, which answers `100
/// Continue` before it takes the body: the stream shows the informational response, then the
/// final one, and nginx stored every byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_informational_response_reaches_the_stream() {
    let root = tempfile::tempdir().unwrap();
    let Some(nginx) = nginx(root.path(), None) else {
        return;
    };
    let file = root.path().join("payload.bin");
    courier_tests::write_random_file(&file, 2 << 20, 7).unwrap();
    let url = nginx.url("/upload/payload.bin");
    let f = file.clone();
    let out = tokio::task::spawn_blocking(move || {
        let f = f.to_str().unwrap();
        courier(&["upload", &url, "--file", f, "--allow-http", "--events", "-"])
    })
    .await
    .unwrap();
    assert_success(&out);
    let ev = stderr_events(&out);
    let n = names(&ev);
    let informational = n
        .iter()
        .position(|e| e == "did_receive_informational_response")
        .unwrap_or_else(|| panic!("{n:?}"));
    assert_eq!(ev[informational]["status"], 100);
    assert!(ev[informational]["headers"].is_object());
    let response = n.iter().position(|e| e == "did_receive_response").unwrap();
    assert!(informational < response, "{n:?}");
    assert_eq!(ev[response]["status"], 201);
    assert_eq!(
        std::fs::read(nginx.upload_dir().join("payload.bin")).unwrap(),
        std::fs::read(&file).unwrap()
    );
}

/// `-T FILE URL/`, as curl reads it: a URL ending in `/` names a directory, and the file goes
/// into it under its own name (percent-encoded on the way). It was sent to the directory's URL
/// itself, which a server refuses (nginx: 409; an FTP server: 550 "Is a directory").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_to_a_directory_url_goes_in_under_its_own_name() {
    let root = tempfile::tempdir().unwrap();
    let Some(nginx) = nginx(root.path(), None) else {
        return;
    };
    let file = root.path().join("a report.txt");
    std::fs::write(&file, "the report").unwrap();
    let url = nginx.url("/upload/");
    let out = tokio::task::spawn_blocking(move || {
        courier(&[
            "upload",
            "-s",
            "--allow-http",
            "-T",
            file.to_str().unwrap(),
            &url,
        ])
    })
    .await
    .unwrap();
    assert_success(&out);
    assert_eq!(
        std::fs::read_to_string(nginx.upload_dir().join("a report.txt")).unwrap(),
        "the report"
    );
}

const MIB: usize = 1 << 20;

/// A resumable-upload server that stalls the first upload at 1 MiB (`url`, its upload URL), and
/// `big.bin` (3 MiB of `payload`) in `cwd`, a current directory of its own (`data`: the session's
/// home), where `saved` is the upload's default resume-data file.
struct Stalled {
    server: courier_tests::ResumableUploadServer,
    payload: Vec<u8>,
    cwd: std::path::PathBuf,
    data: std::path::PathBuf,
    url: String,
    saved: std::path::PathBuf,
    /// The two directories, removed when dropped.
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Stalled {
    async fn start() -> Stalled {
        let server = courier_tests::ResumableUploadServer::with_cuts(
            [courier_tests::Cut::StallAfter(MIB)],
            None,
        )
        .await;
        let payload = courier_tests::server::pattern_bytes(0, 3 * MIB);
        let (cwd, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::write(cwd.path().join("big.bin"), &payload).unwrap();
        Stalled {
            url: server.url("/files"),
            server,
            payload,
            cwd: cwd.path().to_path_buf(),
            data: data.path().to_path_buf(),
            saved: cwd.path().join("big.bin.courier-upload-resume"),
            _dirs: (cwd, data),
        }
    }
}

/// An upload the server offered to resume: Ctrl-C saves its resume data (0600, in the current
/// directory, named after the file), `--resume-data` sends only the rest and removes it; one that
/// fails past its resumptions saves it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_stopped_or_failed_goes_on_from_its_saved_resume_data() {
    use courier_tests::Cut;
    use courier_tests::resumable_upload::whole;
    let Stalled {
        server,
        payload,
        cwd: c,
        data: d,
        url,
        saved,
        _dirs,
    } = Stalled::start().await;
    let (stopped, resumed, failed, again) = tokio::task::spawn_blocking(move || {
        let upload = [
            "upload",
            "--file",
            "big.bin",
            "-X",
            "POST",
            &url,
            "--allow-http",
            "-q",
        ];
        // Ctrl-C once the server holds 1 MiB (and reads no more).
        let mut child = courier_in(&c, &d, &upload)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        signal_when(&child, || server.received().len() >= MIB, "INT");
        let stopped = (child.wait().unwrap().code(), {
            use std::io::Read;
            let mut text = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut text)
                .unwrap();
            text
        });
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            let saved = c.join("big.bin.courier-upload-resume");
            std::fs::metadata(saved).map(|m| m.permissions().mode() & 0o777)
        };
        assert_eq!(mode.ok(), Some(0o600), "resume data is a secret");
        let resume = [
            "upload",
            "--resume-data",
            "big.bin.courier-upload-resume",
            "--allow-http",
        ];
        // From another directory: the resume data names the file it sends from, whole.
        let elsewhere = tempfile::tempdir().unwrap();
        let saved = c.join("big.bin.courier-upload-resume");
        let from_elsewhere = [
            "upload",
            "--resume-data",
            saved.to_str().unwrap(),
            "--allow-http",
            "--events",
            "-",
        ];
        let resumed = courier_in(elsewhere.path(), &d, &from_elsewhere)
            .output()
            .unwrap();
        let appends = server.appends();
        // Cut four times: past its three resumptions, the upload fails and keeps its data.
        for cut in [MIB, MIB / 4, MIB / 4, MIB / 4] {
            server.cut(Some(Cut::After(cut)));
        }
        let failed = courier_in(&c, &d, &upload).output().unwrap();
        let again = courier_in(&c, &d, &resume).output().unwrap();
        (stopped, (resumed, appends), failed, again)
    })
    .await
    .unwrap();

    let (code, stderr) = stopped;
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        stderr.contains("courier upload --resume-data big.bin.courier-upload-resume"),
        "{stderr}"
    );
    let (resumed, appends) = resumed;
    assert_success(&resumed);
    assert_eq!(String::from_utf8_lossy(&resumed.stdout), whole(&payload));
    assert_eq!(appends, [(MIB as u64, 2 * MIB)], "only the rest was sent");
    // Its progress goes on from what the server held: the last report is the whole body, and
    // the first is past it already.
    let sent: Vec<(u64, u64)> = stderr_events(&resumed)
        .iter()
        .filter(|e| e["event"] == "did_send_body_data")
        .map(|e| {
            let n = |k: &str| e[k].as_u64().unwrap();
            (n("total_bytes_sent"), n("total_bytes_expected_to_send"))
        })
        .collect();
    assert_eq!(
        sent.last(),
        Some(&(3 * MIB as u64, 3 * MIB as u64)),
        "{sent:?}"
    );
    assert!(sent[0].0 > MIB as u64, "{sent:?}");
    assert!(!saved.exists(), "used resume data is removed");

    assert_eq!(failed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("resume data saved to"), "{stderr}");
    assert_success(&again);
    assert_eq!(String::from_utf8_lossy(&again.stdout), whole(&payload));
    assert!(!saved.exists());
}

/// The same command run again goes on from the resume data the first run saved, with only the
/// rest; resume data of another upload is left alone, and data whose file changed is removed, the
/// upload starting over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_upload_command_run_again_goes_on_from_where_it_stopped() {
    use courier_tests::Cut;
    use courier_tests::resumable_upload::whole;
    let Stalled {
        server,
        payload,
        cwd: c,
        data: d,
        url,
        saved,
        _dirs,
    } = Stalled::start().await;
    let (saved_, changed) = (
        saved.clone(),
        courier_tests::server::pattern_bytes(1, 3 * MIB),
    );
    let changed_ = changed.clone();
    let runs = tokio::task::spawn_blocking(move || {
        let upload = |method: &'static str| {
            [
                "upload",
                "--file",
                "big.bin",
                "-X",
                method,
                &url,
                "--allow-http",
                "-q",
            ]
            .map(str::to_owned)
        };
        let stop_at_one_mib = |args: &[String]| {
            server.cut(Some(Cut::StallAfter(MIB)));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let child = courier_in(&c, &d, &args).spawn().unwrap();
            // A new upload, stalled: the last one held the whole body.
            signal_when(&child, || server.received().len() == MIB, "INT");
            let mut child = child;
            assert_eq!(child.wait().unwrap().code(), Some(130));
            assert!(saved_.exists());
        };
        let run = |args: &[String]| {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            courier_in(&c, &d, &args).output().unwrap()
        };
        // Stopped, then the same command: the rest.
        let first = {
            // The server's first cut (at creation) stalls this one.
            let args = upload("POST");
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let child = courier_in(&c, &d, &args).spawn().unwrap();
            signal_when(&child, || server.received().len() >= MIB, "INT");
            let mut child = child;
            child.wait().unwrap().code()
        };
        let again = (run(&upload("POST")), server.appends());
        // Stopped, then another upload (PUT, not POST) from the same file: not this data's.
        stop_at_one_mib(&upload("POST"));
        let other = run(&upload("PUT"));
        // Another file of the same name (its resume data would have the same name): not it.
        std::fs::create_dir(c.join("other")).unwrap();
        std::fs::write(c.join("other/big.bin"), &changed_).unwrap();
        let mut same_name = upload("POST");
        same_name[2] = "other/big.bin".to_owned();
        let same_name = (run(&same_name), server.received() == changed_);
        let kept = saved_.exists();
        // The file changed since: the data can never go on; removed, and the upload starts over.
        std::fs::write(c.join("big.bin"), &changed_).unwrap();
        let over = (run(&upload("POST")), server.received());
        (first, again, (other, same_name), kept, over)
    })
    .await
    .unwrap();
    let (first, (again, appends), (other, same_name), kept, (over, received)) = runs;
    assert_eq!(first, Some(130));
    assert_success(&again);
    assert!(
        String::from_utf8_lossy(&again.stderr)
            .contains("continuing the interrupted upload of big.bin"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&again.stdout), whole(&payload));
    assert_eq!(appends, [(MIB as u64, 2 * MIB)], "only the rest was sent");

    assert!(
        !String::from_utf8_lossy(&other.stderr).contains("continuing"),
        "{}",
        String::from_utf8_lossy(&other.stderr)
    );
    let (same_name, sent_whole) = same_name;
    assert_success(&same_name);
    assert!(
        !String::from_utf8_lossy(&same_name.stderr).contains("continuing"),
        "{}",
        String::from_utf8_lossy(&same_name.stderr)
    );
    assert!(sent_whole, "the other file went whole");
    assert!(kept, "another upload's resume data is left alone");

    assert_success(&over);
    let stderr = String::from_utf8_lossy(&over.stderr);
    assert!(stderr.contains("its file changed"), "{stderr}");
    assert!(!stderr.contains("continuing"), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&over.stdout), whole(&changed));
    assert!(received == changed, "sent whole, from its start");
    assert!(!saved.exists());
}
