//! Black-box tests of the `courier` binary: run it against loopback servers and parse its
//! `--events -` stream.

mod common;

use std::process::Command;

use common::*;
use courier_tests::server::pattern_bytes;
use courier_tests::{Fault, FaultServer, TestCa, TestServer};
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_to_a_directory_that_is_missing_fails_before_it_fetches() {
    // A download's file is moved into place only once complete: a mistyped `-o` must fail at
    // once, not after the whole transfer, and so must a resume-data path Ctrl-C could not write.
    let server = TestServer::http().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let cases = [
        ("-o", dir.path().join("missing/sub/out.bin"), "No such file"),
        ("-o", file.join("out.bin"), "is not a directory"),
        (
            "--save-resume-data",
            dir.path().join("missing/resume"),
            "No such file",
        ),
    ];
    for (option, path, why) in cases {
        let url = server.url("/resource/100000");
        let (path_arg, output) = (path.to_str().unwrap().to_owned(), dir.path().join("ok.bin"));
        let output = output.to_str().unwrap().to_owned();
        let out = tokio::task::spawn_blocking(move || {
            let mut args = vec!["download", &url, "--allow-http", "--events", "-"];
            if option == "-o" {
                args.extend(["-o", &path_arg]);
            } else {
                args.extend(["-o", &output, option, &path_arg]);
            }
            courier(&args)
        })
        .await
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{option} {path:?}: {stderr}");
        assert!(
            stderr.contains(&format!("cannot save {}", path.display())) && stderr.contains(why),
            "{option} {path:?}: {stderr}"
        );
        assert!(
            !stderr.lines().any(|l| l.starts_with('{')),
            "no session, no event: {stderr}"
        );
    }
    assert_eq!(server.connections(), 0, "nothing was fetched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_reach_the_stream_and_the_exit_status() {
    let server = TestServer::http().await;
    let dead = FaultServer::start(Fault::CloseMidBody {
        announced: 10_000,
        sent: 100,
    })
    .await;
    let (u1, u2) = (server.url("/"), dead.url("/"));
    let out = tokio::task::spawn_blocking(move || {
        (
            courier(&["get", &u1, "--events", "-"]),
            courier(&["get", &u2, "--allow-http", "--events", "-"]),
        )
    })
    .await
    .unwrap();

    let (cleartext, lost) = out;
    assert_ne!(cleartext.status.code(), Some(0));
    let ev = events(&cleartext);
    check_stream(&ev);
    let complete = ev.iter().find(|e| e["event"] == "did_complete").unwrap();
    assert_eq!(
        complete["error"]["code"],
        "app_transport_security_requires_secure_connection"
    );
    assert_eq!(complete["error"]["number"], -1022);
    assert_eq!(complete["error"]["resume_data"], false);
    assert!(String::from_utf8_lossy(&cleartext.stderr).contains("-1022"));

    let ev = events(&lost);
    check_stream(&ev);
    let complete = ev.iter().find(|e| e["event"] == "did_complete").unwrap();
    assert_eq!(complete["error"]["code"], "network_connection_lost");
    assert_eq!(complete["error"]["number"], -1005);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_flag_and_https_with_cacert() {
    let ca = TestCa::new();
    let server = TestServer::https(&ca).await;
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("ca.pem");
    std::fs::write(&pem, &ca.ca_pem).unwrap();
    let body = dir.path().join("body");
    let (u404, u200) = (server.url("/status/404"), server.url("/bytes/3000"));
    let (pem_s, body_s) = (
        pem.to_str().unwrap().to_owned(),
        body.to_str().unwrap().to_owned(),
    );
    let (not_found, plain, ok) = tokio::task::spawn_blocking(move || {
        (
            courier(&["get", &u404, "--cacert", &pem_s, "--fail"]),
            courier(&["get", &u404, "--cacert", &pem_s]),
            courier(&[
                "get",
                &u200,
                "--cacert",
                &pem_s,
                "-o",
                &body_s,
                "--timeout-request",
                "5",
            ]),
        )
    })
    .await
    .unwrap();
    assert_eq!(not_found.status.code(), Some(22));
    assert!(
        not_found.stdout.is_empty(),
        "like curl --fail, the error page is not written"
    );
    assert_eq!(
        plain.status.code(),
        Some(0),
        "a 404 is not an error without --fail"
    );
    assert!(
        !plain.stdout.is_empty(),
        "without --fail the 404 page is the body"
    );
    assert_success(&ok);
    assert_eq!(std::fs::read(&body).unwrap(), pattern_bytes(0, 3000));

    // --tlsv1.3 refuses a server that speaks TLS 1.2 only.
    let old = TestServer::https_tls12_only(&ca).await;
    let (url, pem_s) = (old.url("/bytes/10"), pem.to_str().unwrap().to_owned());
    let (accepted, refused) = tokio::task::spawn_blocking(move || {
        (
            courier(&["get", &url, "--cacert", &pem_s]),
            courier(&[
                "get",
                &url,
                "--cacert",
                &pem_s,
                "--tlsv1.3",
                "--events",
                "-",
            ]),
        )
    })
    .await
    .unwrap();
    assert_eq!(accepted.status.code(), Some(0));
    assert_ne!(refused.status.code(), Some(0));
    let done = events(&refused)
        .into_iter()
        .find(|e| e["event"] == "did_complete")
        .unwrap();
    assert_eq!(done["error"]["code"], "secure_connection_failed");

    // A download under --fail does not save the error page; without it the page is the file.
    let (cwd, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (c, d) = (cwd.path().to_path_buf(), data.path().to_path_buf());
    let pem_s = pem.to_str().unwrap().to_owned();
    let url = server.url("/status/404");
    let (failed, kept) = tokio::task::spawn_blocking(move || {
        let run = |extra: &[&str]| {
            let mut args = vec!["download", url.as_str(), "--cacert", &pem_s, "-q"];
            args.extend_from_slice(extra);
            courier_in(&c, &d, &args).output().unwrap()
        };
        let failed = run(&["--fail"]);
        let listing = std::fs::read_dir(&c).unwrap().count();
        (failed, (listing, run(&[])))
    })
    .await
    .unwrap();
    assert_eq!(failed.status.code(), Some(22));
    let (files_after_fail, kept) = kept;
    assert_eq!(files_after_fail, 0, "--fail saved no file for the 404");
    assert_eq!(kept.status.code(), Some(0));
    assert!(
        cwd.path().join("404").is_file(),
        "without --fail the 404 page is saved"
    );
    assert_eq!(
        courier_tests::session_files(&data.path().join("courier/sessions/default")),
        Vec::<String>::new(),
        "no partial file is left in the session directory"
    );
}

#[test]
fn demo_exits_zero() {
    let out = courier(&["demo"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("every step behaved as described"));
}

/// `courier demo | head -3`: a reader that stops reading loses the rest of the tour, not the exit
/// status (it was a panic's).
#[test]
fn demo_read_in_part_still_exits_zero() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_courier"))
        .arg("demo")
        .env("XDG_DATA_HOME", data_home())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run courier");
    drop(child.stdout.take());
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn bad_arguments_exit_2() {
    assert_eq!(courier(&["get"]).status.code(), Some(2));
    assert_eq!(
        courier(&["get", "https://x.invalid/", "-H", "no colon"])
            .status
            .code(),
        Some(2)
    );
    // The options every request takes are checked before any task starts, for downloads too.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    for bad in [["-H", "no colon"], ["-X", "BAD METHOD"]] {
        let args = ["download", "https://x.invalid/a", "-o", out, bad[0], bad[1]];
        assert_eq!(courier(&args).status.code(), Some(2), "{bad:?}");
    }
    // A file that is no certificate: said plainly, without the engine's error code.
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let out = courier(&[
        "get",
        "https://x.invalid/",
        "--cacert",
        not_pem.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.ends_with("not.pem: no certificate found in the PEM text\n"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_cancels_and_exits_130() {
    let server = TestServer::http().await;
    let url = server.url("/drip?chunks=1000&size=100&delay_ms=20");
    let dir = tempfile::tempdir().unwrap();
    let events_path = dir.path().join("events.jsonl");
    let ep = events_path.clone();
    let ev = tokio::task::spawn_blocking(move || {
        let child = Command::new(env!("CARGO_BIN_EXE_courier"))
            .env("XDG_DATA_HOME", data_home())
            .args([
                "get",
                &url,
                "--allow-http",
                "--events",
                ep.to_str().unwrap(),
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn courier");
        interrupt_once_logged(child, &ep, "did_receive_data")
    })
    .await
    .unwrap();
    assert!(
        names(&ev).contains(&"did_receive_data".to_owned()),
        "it was interrupted mid-body"
    );
}

/// `--cert` and `--key` answer a server's client-certificate challenge (nginx with
/// `ssl_verify_client`, which serves `/mtls/` to a verified client only): with them the file
/// comes, and the session-level challenge is in the stream, answered with the credential; without
/// them nginx refuses (403). A key that is not one is a usage error before anything is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_answers_a_mutual_tls_server() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("secret.txt"), "for verified clients").unwrap();
    let ca = TestCa::new();
    let Some(nginx) = nginx(root.path(), Some(&ca)) else {
        return;
    };
    let keys = tempfile::tempdir().unwrap();
    let path = |name: &str| keys.path().join(name).to_str().unwrap().to_owned();
    let (cert, key) = ca.client_identity_pem();
    std::fs::write(path("ca.pem"), &ca.ca_pem).unwrap();
    std::fs::write(path("client.pem"), &cert).unwrap();
    std::fs::write(path("client.key"), &key).unwrap();
    std::fs::write(path("both.pem"), format!("{cert}{key}")).unwrap();
    let url = nginx.tls_url("/mtls/secret.txt");
    let (ca_pem, client, client_key, both) = (
        path("ca.pem"),
        path("client.pem"),
        path("client.key"),
        path("both.pem"),
    );
    let runs = tokio::task::spawn_blocking(move || {
        let get = |extra: &[&str]| {
            let mut args = vec!["get", &url, "--cacert", &ca_pem, "--events", "-"];
            args.extend(extra);
            courier(&args)
        };
        [
            get(&["--cert", &client, "--key", &client_key]),
            get(&["-E", &both]),
            get(&[]),
            get(&["--cert", &client, "--key", &client]),
        ]
    })
    .await
    .unwrap();
    let [separate, together, without, no_key] = runs;
    for out in [&separate, &together] {
        assert_success(out);
        assert_eq!(out.stdout, b"for verified clients");
        let ev = stderr_events(out);
        let challenge = ev
            .iter()
            .find(|e| e["event"] == "did_receive_challenge" && e["method"] == "client_certificate")
            .expect("the client-certificate challenge");
        assert_eq!(challenge["scope"], "session");
        assert_eq!(challenge["disposition"], "use_credential");
    }
    assert_success(&without);
    let ev = stderr_events(&without);
    let complete = ev.iter().find(|e| e["event"] == "did_complete").unwrap();
    assert_eq!(
        complete["status"], 403,
        "nginx refuses a client without one"
    );
    assert_eq!(no_key.status.code(), Some(2));
    let said = String::from_utf8_lossy(&no_key.stderr);
    assert!(said.contains("no usable private key"), "{said}");
    assert!(events(&no_key).is_empty(), "nothing was sent");
}

/// Runs `courier ARGS` with a terminal for stdout and stderr (util-linux `script`), in `cwd`, and
/// returns what the terminal showed.
fn on_a_terminal(cwd: &std::path::Path, args: &[&str]) -> String {
    let mut line = String::from(env!("CARGO_BIN_EXE_courier"));
    for a in args {
        line.push_str(&format!(" '{a}'"));
    }
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .current_dir(cwd)
        .env("XDG_DATA_HOME", data_home())
        .output()
        .expect("util-linux script runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_bars_show_on_a_terminal_unless_quiet_or_over_a_body() {
    let server = TestServer::http().await;
    let url = server.url("/bytes/2000000");
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().to_path_buf();
    let (download, get_to_file, quiet, get_to_terminal) = tokio::task::spawn_blocking(move || {
        (
            on_a_terminal(&cwd, &["download", &url, "--allow-http"]),
            on_a_terminal(&cwd, &["get", &url, "--allow-http", "-o", "got.bin"]),
            on_a_terminal(
                &cwd,
                &["download", &url, "--allow-http", "-q", "-o", "q.bin"],
            ),
            on_a_terminal(&cwd, &["get", &url, "--allow-http"]),
        )
    })
    .await
    .unwrap();
    // The bar's template: label, bar, bytes of total, rate, time left.
    let bar = |screen: &str| screen.contains("1.91 MiB/1.91 MiB") && screen.contains("eta");
    assert!(bar(&download), "download shows a bar: {download:?}");
    assert!(bar(&get_to_file), "get -o shows a bar: {get_to_file:?}");
    assert!(!bar(&quiet), "-q hides it");
    assert!(
        !get_to_terminal.contains("eta"),
        "no bar over a body on the terminal"
    );
    assert_eq!(
        std::fs::read(dir.path().join("got.bin")).unwrap(),
        pattern_bytes(0, 2_000_000)
    );
}

/// A password in a URL is used, never shown: the event stream (response and metrics URLs), a
/// failure's message and the redirect's location show `***` in its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_in_a_url_is_never_shown() {
    let server = TestServer::http().await;
    let addr = server.addr();
    let secret = format!("http://ann:s3cret@{addr}/basic/ann/s3cret");
    let refused = "http://ann:s3cret@127.0.0.1:9/".to_owned();
    let (fetched, failed) = tokio::task::spawn_blocking(move || {
        (
            courier(&["get", "--allow-http", "--events", "-", &secret]),
            courier(&["get", "--allow-http", "--events", "-", &refused]),
        )
    })
    .await
    .unwrap();
    assert_success(&fetched);
    assert_eq!(fetched.stdout, b"welcome ann", "the password was sent");
    let ev = stderr_events(&fetched);
    let response = ev
        .iter()
        .find(|e| e["event"] == "did_receive_response")
        .unwrap();
    assert_eq!(
        response["url"],
        format!("http://ann:***@{addr}/basic/ann/s3cret")
    );
    for out in [&fetched, &failed] {
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!said.contains("s3cret@"), "{said}");
    }
    let said = String::from_utf8_lossy(&failed.stderr);
    assert!(said.contains("(http://ann:***@127.0.0.1:9/)"), "{said}");
}

/// Options out of range are usage errors (exit 2, a message naming the option), never a panic.
/// (A timeout of 0 is no limit, as curl reads it; one too small to count is refused.)
#[test]
fn out_of_range_options_are_usage_errors_not_panics() {
    let url = "http://127.0.0.1:9/";
    for args in [
        ["-j", "0"],
        ["-j", "5000"],
        ["--max-connections-per-host", "0"],
        ["--max-connections-per-host", "70000"],
        ["--max-connections-per-host", "99999999999999999999999"],
        ["--limit-rate", "0"],
        ["--limit-rate", "99999999999999999999999g"],
        ["--timeout-request", "nan"],
        ["--timeout-request", "1e400"],
        ["--timeout-resource", "1e300"],
        ["--timeout-request", "1e-12"],
        ["--max-redirects", "1e30"],
    ] {
        let out = courier(&["get", "--allow-http", args[0], args[1], url]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
