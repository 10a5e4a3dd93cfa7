//! Black-box tests of how `courier` connects and keeps state with curl's options:
//! `--connect-timeout`, `--resolve`, `--http1.1`, `-b` and `-c` cookie files, `--url` and `-Z`,
//! and URL globbing (`{a,b}`, `[1-3]`, `-g`).

mod common;

use common::*;
use courier_tests::server::pattern_bytes;
use courier_tests::{TestCa, TestServer};

/// `--connect-timeout` (curl's) bounds opening a connection alone: a server that takes the TCP
/// connection and never answers the TLS handshake fails the task with -1001 "connecting timed
/// out" after it, though the idle timeout is ten minutes. Background tasks do not take it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_timeout_bounds_opening_a_connection_alone() {
    // The kernel completes the TCP handshakes; nothing ever answers on them.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://127.0.0.1:{}/", silent.local_addr().unwrap().port());
    let (timed_out, bg) = tokio::task::spawn_blocking(move || {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_courier"))
            .args([
                "get",
                "-s",
                "--timeout-request",
                "600",
                "--connect-timeout",
                "0.3",
                &url,
            ])
            .env("XDG_DATA_HOME", data_home())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Bounded: without the option the task would wait out its ten-minute idle timeout.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = child.kill();
        let bg = courier(&[
            "bg",
            "download",
            "--id",
            "c",
            "--connect-timeout",
            "1",
            &url,
        ]);
        (child.wait_with_output().unwrap(), bg)
    })
    .await
    .unwrap();
    let err = String::from_utf8_lossy(&timed_out.stderr);
    assert!(
        err.contains("timed_out -1001") && err.contains("connecting timed out"),
        "{err}"
    );
    assert_eq!(bg.status.code(), Some(2));
    drop(silent);
}

/// `--url` adds URLs to fetch and `-Z` runs them at once (`--parallel-max N` is `-j N`), as in
/// curl; `--url` means nothing to `upload`, which says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dash_capital_z_and_url_are_curls() {
    let server = TestServer::http().await;
    let (a, b) = (server.url("/bytes/3"), server.url("/bytes/4"));
    let (both, limited, upload) = tokio::task::spawn_blocking(move || {
        let fetch = |extra: &[&str]| {
            let mut args = vec!["get", "-s", "--allow-http", "-o", "/dev/null", "-w"];
            args.extend(["%{url_effective}\n", "--url", &a, "--url", &b]);
            args.extend(extra);
            courier(&args)
        };
        (
            fetch(&["-Z"]),
            fetch(&["--parallel-max", "2"]),
            courier(&["upload", "--url", &a, "--data", "x", &b]),
        )
    })
    .await
    .unwrap();
    for out in [&both, &limited] {
        assert_success(out);
        let mut seen: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.rsplit('/').next().unwrap_or("").to_owned())
            .collect();
        seen.sort();
        assert_eq!(seen, ["3", "4"]);
    }
    assert_eq!(upload.status.code(), Some(2));
}

/// A URL with curl's patterns stands for one URL per value (`{a,b}` sets, `[1-3]` ranges), and
/// `#N` in `-o` names each URL's file after its values, as in curl; `-g` takes the brackets as
/// they are, and a pattern that does not parse is a usage error naming where.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urls_are_globbed_as_curl_globs_them() {
    let server = TestServer::http().await;
    let base = server.url("/bytes/");
    let (cwd, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (c, d) = (cwd.path().to_path_buf(), data.path().to_path_buf());
    let (listed, named, off, bad) = tokio::task::spawn_blocking(move || {
        let run = |args: &[&str]| courier_in(&c, &d, args).output().unwrap();
        let get = |extra: &[&str], url: String| {
            let mut args = vec![
                "get",
                "-s",
                "--allow-http",
                "-w",
                "%{url_effective} %{http_code}\n",
            ];
            args.extend(extra);
            args.push(&url);
            run(&args)
        };
        (
            get(&["-o", "/dev/null"], format!("{base}{{1,2}}[08-10]")),
            get(&["-o", "b_#1.bin"], format!("{base}[1-3]")),
            get(&["-g", "-o", "/dev/null"], format!("{base}[1-3]")),
            get(&[], format!("{base}{{1,2")),
        )
    })
    .await
    .unwrap();
    assert_success(&listed);
    let lines: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(|l| l.rsplit('/').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        lines,
        [
            "108 200", "109 200", "110 200", "208 200", "209 200", "210 200"
        ]
    );
    // Each URL's body in the file its value names, whole.
    assert_success(&named);
    for n in 1..=3 {
        let file = cwd.path().join(format!("b_{n}.bin"));
        assert_eq!(
            std::fs::read(&file).unwrap(),
            pattern_bytes(0, n),
            "{file:?}"
        );
    }
    assert_success(&off);
    let off = String::from_utf8_lossy(&off.stdout);
    // Sent as it is: the server has no such number.
    assert!(off.ends_with("/bytes/[1-3] 400\n"), "{off}");
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("'{' without its '}' at position"), "{err}");
}

/// `-c FILE` writes the command's cookies in the Netscape format curl writes (0600, curl reads it
/// back), `-b FILE` sends them, and neither touches the default session's own jar; `-b
/// 'NAME=VALUE'` is sent as it is. Background tasks refuse both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dash_b_and_c_are_curls_cookie_files() {
    let server = TestServer::http().await;
    let (set, headers) = (server.url("/cookie/a/1"), server.url("/headers"));
    let (cwd, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (c, d) = (cwd.path().to_path_buf(), data.path().to_path_buf());
    // A link to the command's own standard output, as `/dev/stdout` is: written into, kept.
    std::os::unix::fs::symlink("/proc/self/fd/1", cwd.path().join("out")).unwrap();
    let (wrote, sent, own_jar, text, by_curl, bg, dash, linked) =
        tokio::task::spawn_blocking(move || {
            let run = |args: &[&str]| courier_in(&c, &d, args).output().unwrap();
            let get = |extra: &[&str], url: &str| {
                let mut args = vec!["get", "-s", "--allow-http"];
                args.extend(extra);
                args.push(url);
                run(&args)
            };
            let by_curl = || {
                std::process::Command::new("curl")
                    .args(["-s", "-b", "jar.txt", &headers])
                    .current_dir(&c)
                    .output()
                    .ok()
            };
            (
                get(&["-c", "jar.txt"], &set),
                get(&["-b", "jar.txt"], &headers),
                get(&[], &headers),
                get(&["-b", "x=9; y=8"], &headers),
                by_curl(),
                run(&["bg", "download", "--id", "k", "-b", "jar.txt", &set]),
                get(&["-c", "-"], &set),
                get(&["-c", "out"], &set),
            )
        })
        .await
        .unwrap();
    for out in [&dash, &linked] {
        assert_success(out);
        let printed = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(printed.contains("# Netscape HTTP Cookie File"), "{printed}");
        assert!(printed.lines().any(|l| l.ends_with("\ta\t1")), "{printed}");
    }
    let link = std::fs::symlink_metadata(cwd.path().join("out")).unwrap();
    assert!(
        link.file_type().is_symlink(),
        "the link is written into, not replaced"
    );
    assert_success(&wrote);
    let jar = std::fs::read_to_string(cwd.path().join("jar.txt")).unwrap();
    assert!(jar.starts_with("# Netscape HTTP Cookie File"), "{jar}");
    assert!(jar.lines().any(|l| l.ends_with("\ta\t1")), "{jar}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(cwd.path().join("jar.txt"))
        .unwrap()
        .permissions();
    assert_eq!(mode.mode() & 0o777, 0o600);
    let seen = |out: &std::process::Output| String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(seen(&sent).contains("cookie: a=1"), "{}", seen(&sent));
    assert!(!seen(&own_jar).contains("cookie"), "{}", seen(&own_jar));
    assert!(seen(&text).contains("cookie: x=9; y=8"), "{}", seen(&text));
    if let Some(by_curl) = by_curl {
        assert!(
            seen(&by_curl).contains("a=1"),
            "curl reads the jar: {}",
            seen(&by_curl)
        );
    }
    assert_eq!(bg.status.code(), Some(2));
}

/// `-4` and `-6` (curl's) connect over one IP version: addresses of the other, given with
/// `--resolve` or resolved, are left out, and a host with none of that version is not found
/// (-1003). The server listens on 127.0.0.1 only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dash_4_and_6_keep_to_one_ip_version() {
    let server = TestServer::http().await;
    let port = server
        .url("/")
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    let named = format!("http://other.test:{port}/bytes/3");
    let both = format!("other.test:{port}:::1,127.0.0.1");
    let numeric = server.url("/bytes/3");
    let (v4, v6, v6_numeric) = tokio::task::spawn_blocking(move || {
        let get = |version: &str, url: &str| {
            courier(&[
                "get",
                "-s",
                "--allow-http",
                "--resolve",
                &both,
                version,
                url,
            ])
        };
        (get("-4", &named), get("-6", &named), get("-6", &numeric))
    })
    .await
    .unwrap();
    assert_success(&v4);
    assert_eq!(v4.stdout, pattern_bytes(0, 3));
    // Only ::1 is left, where nothing listens.
    assert_eq!(v6.status.code(), Some(1));
    assert!(v6.stdout.is_empty());
    assert_eq!(v6_numeric.status.code(), Some(1));
    let err = String::from_utf8_lossy(&v6_numeric.stderr);
    assert!(
        err.contains("cannot_find_host -1003")
            && err.contains("cannot find an IPv6 address for host 127.0.0.1"),
        "{err}"
    );
}

/// `--resolve HOST:PORT:ADDR` (curl's) connects to ADDR for a name DNS does not know, and the
/// request keeps the name: `Host` says it, and TLS checks the server's certificate against it (a
/// certificate for `other.test` is trusted under that name and refused under `localhost`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_gives_an_address_and_keeps_the_name() {
    let plain = TestServer::http().await;
    let ca = TestCa::with_leaf(courier_tests::Leaf::OtherHost);
    let tls = TestServer::https(&ca).await;
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("ca.pem");
    std::fs::write(&pem, &ca.ca_pem).unwrap();
    let pem = pem.to_str().unwrap().to_owned();
    let (p, t) = (plain.addr().port(), tls.addr().port());
    let (host, trusted, refused, bad) = tokio::task::spawn_blocking(move || {
        let given = |name: &str, port: u16| format!("{name}:{port}:127.0.0.1");
        let secure = |extra: &[&str], url: &str| {
            let mut args = vec!["get", "-s", "--config", "ephemeral", "--cacert", &pem];
            args.extend(extra);
            args.push(url);
            courier(&args)
        };
        (
            courier(&[
                "get",
                "-s",
                "--allow-http",
                "--resolve",
                &given("files.test", p),
                &format!("http://files.test:{p}/headers"),
            ]),
            secure(
                &["--resolve", &given("other.test", t)],
                &format!("https://other.test:{t}/bytes/5"),
            ),
            secure(&[], &format!("https://localhost:{t}/bytes/5")),
            courier(&["get", "--resolve", "files.test:80", "http://files.test/"]),
        )
    })
    .await
    .unwrap();
    assert_success(&host);
    let seen = String::from_utf8_lossy(&host.stdout).into_owned();
    assert!(seen.contains(&format!("host: files.test:{p}")), "{seen}");
    assert_success(&trusted);
    assert_eq!(trusted.stdout, pattern_bytes(0, 5));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("-1202"));
    assert_eq!(bad.status.code(), Some(2));
}

/// `--http1.1` (curl's) keeps an HTTPS request on HTTP/1.1 with a server that offers HTTP/2,
/// which it otherwise takes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_1_keeps_https_on_http_1_1() {
    let ca = TestCa::new();
    let server = TestServer::https(&ca).await;
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("ca.pem");
    std::fs::write(&pem, &ca.ca_pem).unwrap();
    let pem = pem.to_str().unwrap().to_owned();
    let url = server.url("/bytes/5");
    let (offered, kept, bg) = tokio::task::spawn_blocking(move || {
        let get = |extra: &[&str]| {
            let mut args = vec!["get", "-s", "--config", "ephemeral", "--cacert", &pem];
            args.extend(["-o", "/dev/null", "-w", "%{http_version}"]);
            args.extend(extra);
            args.push(&url);
            courier(&args)
        };
        (
            get(&[]),
            get(&["--http1.1"]),
            courier(&[
                "bg",
                "download",
                "--id",
                "h",
                "--http1.1",
                "https://a.test/",
            ]),
        )
    })
    .await
    .unwrap();
    assert_success(&offered);
    assert_eq!(offered.stdout, b"2");
    assert_success(&kept);
    assert_eq!(kept.stdout, b"1.1");
    assert_eq!(bg.status.code(), Some(2));
}
