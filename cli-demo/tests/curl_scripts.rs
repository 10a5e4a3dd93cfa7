//! Black-box tests of curl's options that scripts lean on: `--fail-with-body`,
//! `--retry-all-errors`, `--output-dir`, `--oauth2-bearer` and `--netrc-file`.

mod common;

use common::*;
use courier_tests::TestServer;

/// `--fail-with-body` exits 22 on an error status and keeps its body, where `--fail` drops it;
/// `--retry-all-errors` tries again after errors `--retry` alone takes as final (an HTTP 404 under
/// `--fail`, a body over `--max-filesize`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_with_body_and_retry_all_errors_are_curls() {
    let server = TestServer::http().await;
    let (missing, long) = (server.url("/status/404"), server.url("/bytes/2000"));
    let (with_body, all_errors, only_transient, too_long) =
        tokio::task::spawn_blocking(move || {
            let retry = ["--retry", "2", "--retry-delay", "0", "--retry-all-errors"];
            let mut all = vec!["get", "-s", "--allow-http", "-f"];
            all.extend(retry);
            all.push(&missing);
            let mut long_args = vec!["get", "-s", "--allow-http", "--max-filesize", "1000"];
            long_args.extend(retry);
            long_args.push(&long);
            (
                courier(&["get", "-s", "--allow-http", "--fail-with-body", &missing]),
                courier(&all),
                courier(&["get", "-s", "--allow-http", "-f", "--retry", "2", &missing]),
                courier(&long_args),
            )
        })
        .await
        .unwrap();
    assert_eq!(with_body.status.code(), Some(22));
    assert_eq!(String::from_utf8_lossy(&with_body.stdout), "status 404");
    let retries = |out: &std::process::Output| {
        String::from_utf8_lossy(&out.stderr)
            .matches("trying again in")
            .count()
    };
    assert_eq!(all_errors.status.code(), Some(22));
    assert!(all_errors.stdout.is_empty());
    assert_eq!(retries(&all_errors), 2);
    assert_eq!(retries(&only_transient), 0);
    assert_eq!(too_long.status.code(), Some(1));
    assert_eq!(retries(&too_long), 2);
}

/// `--output-dir DIR` puts `-o FILE` and the files `download` names in DIR (made with
/// `--create-dirs`); `--oauth2-bearer` sends its token to the URL's origin, and not to another a
/// redirect leads to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_dir_and_oauth2_bearer_are_curls() {
    let server = TestServer::http().await;
    let (cwd, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (c, d) = (cwd.path().to_path_buf(), data.path().to_path_buf());
    let (bytes, headers) = (server.url("/bytes/10"), server.url("/headers"));
    // The same server under another name: another origin.
    let elsewhere = headers.replace("127.0.0.1", "localhost");
    let away = server.url(&format!("/redirect/302?to={elsewhere}"));
    let (got, downloaded, missing, own, redirected) = tokio::task::spawn_blocking(move || {
        let run = |args: &[&str]| courier_in(&c, &d, args).output().unwrap();
        let bearer = [
            "get",
            "-s",
            "--allow-http",
            "-L",
            "--oauth2-bearer",
            "t0k3n",
        ];
        (
            run(&[
                "get",
                "-s",
                "--allow-http",
                "--output-dir",
                "out/a",
                "--create-dirs",
                "-o",
                "ten.bin",
                &bytes,
            ]),
            run(&[
                "download",
                "-s",
                "--allow-http",
                "--output-dir",
                "out/b",
                &bytes,
            ]),
            run(&[
                "get",
                "-s",
                "--allow-http",
                "--output-dir",
                "none",
                "-o",
                "x",
                &bytes,
            ]),
            run(&[&bearer[..], &[headers.as_str()]].concat()),
            run(&[&bearer[..], &[away.as_str()]].concat()),
        )
    })
    .await
    .unwrap();
    assert_success(&got);
    assert_eq!(
        std::fs::read(cwd.path().join("out/a/ten.bin"))
            .unwrap()
            .len(),
        10
    );
    assert_success(&downloaded);
    assert_eq!(
        std::fs::read(cwd.path().join("out/b/10")).unwrap().len(),
        10
    );
    // A directory that is not there, without --create-dirs: refused before anything is fetched.
    assert_eq!(missing.status.code(), Some(2));
    assert_success(&own);
    assert!(String::from_utf8_lossy(&own.stdout).contains("authorization: Bearer t0k3n"));
    assert_success(&redirected);
    let seen = String::from_utf8_lossy(&redirected.stdout);
    assert!(
        seen.contains("host: localhost") && !seen.contains("authorization"),
        "{seen}"
    );
}

/// `--netrc-file FILE` (curl's `-n` with a file) answers a host's challenge with that host's login
/// only: a redirect to another host (here `localhost`, which the file does not name) gets none.
/// A file that is not there is a usage error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netrc_logins_go_to_their_own_host() {
    let server = TestServer::http().await;
    let dir = tempfile::tempdir().unwrap();
    let netrc = dir.path().join("netrc");
    std::fs::write(
        &netrc,
        "machine 127.0.0.1\n  login ann\n  password s3cret\n\
         machine other.test login x password y\n",
    )
    .unwrap();
    let netrc = netrc.to_string_lossy().into_owned();
    let own = server.url("/basic/ann/s3cret");
    let elsewhere = own.replace("127.0.0.1", "localhost");
    let away = server.url(&format!("/redirect/302?to={elsewhere}"));
    let (answered, redirected, missing) = tokio::task::spawn_blocking(move || {
        let get = |file: &str, url: &str| {
            let args = ["get", "-s", "--allow-http", "-L", "-w", " %{http_code}"];
            courier(&[&args[..], &["--netrc-file", file, url]].concat())
        };
        (
            get(&netrc, &own),
            get(&netrc, &away),
            get("/nonexistent/netrc", &own),
        )
    })
    .await
    .unwrap();
    assert_success(&answered);
    assert_eq!(String::from_utf8_lossy(&answered.stdout), "welcome ann 200");
    assert_success(&redirected);
    assert!(String::from_utf8_lossy(&redirected.stdout).ends_with(" 401"));
    assert_eq!(missing.status.code(), Some(2));
}
