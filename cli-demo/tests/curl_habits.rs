//! Black-box tests of `courier` used with curl's habits: `-sSfL`, `-d`, `-o -`, `-A`,
//! `--compressed`, `-I` for a head, `-r`, `-e`, `-m`, `-v`, `-w`, `-D`, `--json`, `--data-binary`,
//! `--data-raw`, `--create-dirs`, `-C -`, `-T`, `-O`, `-H` in its empty forms, a URL typed
//! without its scheme, and `--cacert` naming a self-signed certificate. The bodies of `-F`, `-G`
//! and `--data-urlencode` are `curl_bodies.rs`'s; connections and cookies `curl_connections.rs`'s.

mod common;

use common::*;
use courier_tests::server::pattern_bytes;
use courier_tests::{TestCa, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_habits_work_the_same() {
    let server = TestServer::http().await;
    let (chain, missing, echo, headers) = (
        server.url("/chain/2"),
        server.url("/status/404"),
        server.url("/echo"),
        server.url("/headers"),
    );
    let cwd = tempfile::tempdir().unwrap();
    let c = cwd.path().to_path_buf();
    std::fs::write(cwd.path().join("body.json"), "{}").unwrap();
    let (followed, failed, posted, dashed, saved, at_file, agents) =
        tokio::task::spawn_blocking(move || {
            let in_cwd = |args: &[&str]| courier_in(&c, data_home(), args).output().unwrap();
            (
                courier(&["get", "-sSfL", "--compressed", "--allow-http", &chain]),
                courier(&["get", "-sf", "--allow-http", &missing]),
                courier(&["get", "-s", "-d", "name=value", "--allow-http", &echo]),
                in_cwd(&["get", "-s", "-o", "-", "--allow-http", &chain]),
                in_cwd(&["download", "-s", "-o", "-", "--allow-http", &chain]),
                in_cwd(&["get", "-s", "-d", "@body.json", "--allow-http", &echo]),
                [
                    courier(&["get", "-s", "-A", "agent/1", "--allow-http", &headers]),
                    courier(&[
                        "get",
                        "-s",
                        "-A",
                        "a/1",
                        "-H",
                        "User-Agent: b/2",
                        "--allow-http",
                        &headers,
                    ]),
                ],
            )
        })
        .await
        .unwrap();
    // `-d @FILE` sends its text, as the contract says; a note says how to send the file.
    assert_success(&at_file);
    assert_eq!(at_file.stdout, b"@body.json");
    assert!(
        String::from_utf8_lossy(&at_file.stderr).contains("upload --file body.json"),
        "{}",
        String::from_utf8_lossy(&at_file.stderr)
    );
    // `-o -` is standard output, never a file named `-`; download saves files, and says to use get.
    assert_success(&dashed);
    assert_eq!(dashed.stdout, b"end of chain", "-o -: standard output");
    assert_eq!(saved.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&saved.stderr).contains("use courier get"));
    assert!(!cwd.path().join("-").exists());
    assert_success(&followed);
    assert_eq!(
        followed.stdout, b"end of chain",
        "-sSfL --compressed: redirects followed"
    );
    // `-A`: the User-Agent, unless `-H` sets one (as with curl).
    for (out, agent) in agents
        .iter()
        .zip(["user-agent: agent/1", "user-agent: b/2"])
    {
        assert_success(out);
        let sent = String::from_utf8_lossy(&out.stdout);
        assert_eq!(sent.matches("user-agent:").count(), 1, "{sent}");
        assert!(sent.contains(agent), "{sent}");
    }
    assert_eq!(failed.status.code(), Some(22), "-f: like --fail");
    assert!(failed.stdout.is_empty());
    assert_success(&posted);
    assert_eq!(posted.stdout, b"name=value", "-d: the body, sent with POST");
}

/// `-I`, as curl's: a HEAD request, and the response's head where the body would go; under `-f`,
/// nothing for an error status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dash_capital_i_asks_for_the_head_and_writes_it() {
    let server = TestServer::http().await;
    let (echo, missing) = (server.url("/echo"), server.url("/status/404"));
    let cwd = tempfile::tempdir().unwrap();
    let c = cwd.path().to_path_buf();
    let (head, failed, download) = tokio::task::spawn_blocking(move || {
        (
            courier(&["get", "-I", "--allow-http", &echo]),
            courier(&["get", "-If", "--allow-http", &missing]),
            courier_in(&c, data_home(), &["download", "-I", "--allow-http", &echo])
                .output()
                .unwrap(),
        )
    })
    .await
    .unwrap();
    // A download of a head would be an empty file: refused as a usage error, nothing written.
    assert_eq!(download.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&download.stderr).contains("use it with courier get"));
    assert_eq!(std::fs::read_dir(cwd.path()).unwrap().count(), 0);
    assert_success(&head);
    let text = String::from_utf8(head.stdout).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text:?}");
    assert!(
        text.contains("\r\nx-method: HEAD\r\n"),
        "sent as HEAD: {text:?}"
    );
    assert!(text.ends_with("\r\n\r\n"), "{text:?}");
    assert_eq!(failed.status.code(), Some(22));
    assert!(failed.stdout.is_empty());
}

/// A URL typed without a scheme is `https://`, as curl and browsers complete one, and
/// `--allow-http` before it does not take it for a host; the usual self-signed certificate
/// (`openssl req -x509`, marked as a CA) is trusted once given with `--cacert`, as by curl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_without_a_scheme_is_https_and_a_self_signed_certificate_given_is_trusted() {
    let ca = TestCa::self_signed(courier_tests::Leaf::Valid);
    let server = TestServer::https(&ca).await;
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("cert.pem");
    std::fs::write(&pem, &ca.ca_pem).unwrap();
    let pem = pem.to_str().unwrap().to_owned();
    let bare = server.url("/bytes/5").replace("https://", "");
    let (typed, after_allow, untrusted) = tokio::task::spawn_blocking(move || {
        (
            courier(&["get", "--config", "ephemeral", "--cacert", &pem, &bare]),
            courier(&[
                "get",
                "--config",
                "ephemeral",
                "--cacert",
                &pem,
                "--allow-http",
                &bare,
            ]),
            courier(&["get", "--config", "ephemeral", &bare]),
        )
    })
    .await
    .unwrap();
    for out in [&typed, &after_allow] {
        assert_success(out);
        assert_eq!(out.stdout, pattern_bytes(0, 5));
    }
    assert_eq!(untrusted.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&untrusted.stderr).contains("-1202"),
        "{}",
        String::from_utf8_lossy(&untrusted.stderr)
    );
}

/// `-r` asks for part of a body, `-e` sends a Referer (`-H` wins over both), `-m`
/// (`--max-time`) bounds the whole task and `-m 0` does not, as with curl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dash_r_e_and_m_are_curls() {
    let resource = courier_tests::ResourceServer::start(1000).await;
    resource.script([courier_tests::Misbehaviour::StallAfter(10)]);
    let server = TestServer::http().await;
    let (url, headers) = (resource.url(), server.url("/headers"));
    let cwd = tempfile::tempdir().unwrap();
    let c = cwd.path().to_path_buf();
    let (stalled, backwards, download, sent) = tokio::task::spawn_blocking(move || {
        let get = |args: &[&str]| {
            let mut all = vec!["get", "-s", "--allow-http"];
            all.extend(args);
            all.push(&headers);
            courier(&all)
        };
        (
            courier(&["get", "-s", "--allow-http", "-m", "0.3", &url]),
            get(&["-r", "5-1"]),
            courier_in(
                &c,
                data_home(),
                &["download", "-r", "0-1", "--allow-http", &url],
            )
            .output()
            .unwrap(),
            [
                (get(&["-r", "2-5"]), "range: bytes=2-5"),
                (get(&["-r", "-3"]), "range: bytes=-3"),
                (get(&["-r", "0-1, 5-"]), "range: bytes=0-1,5-"),
                (
                    get(&["-r", "0-1", "-H", "Range: bytes=9-"]),
                    "range: bytes=9-",
                ),
                (
                    get(&["-e", "https://from.example/"]),
                    "referer: https://from.example/",
                ),
                (
                    get(&["--referer", "https://a/", "-H", "Referer: https://b/"]),
                    "referer: https://b/",
                ),
                // No limit, as curl reads `-m 0`: it was a usage error.
                (
                    get(&["-m", "0", "--timeout-request", "0"]),
                    "user-agent: courier/",
                ),
            ],
        )
    })
    .await
    .unwrap();
    for (out, field) in &sent {
        assert_success(out);
        let text = String::from_utf8_lossy(&out.stdout);
        let name = field.split(':').next().unwrap();
        assert_eq!(text.matches(&format!("{name}:")).count(), 1, "{text}");
        assert!(text.contains(field), "{field}: {text}");
    }
    // The whole task's time, not an idle time: the stall ends it.
    assert_eq!(stalled.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&stalled.stderr).contains("timed_out -1001"),
        "{}",
        String::from_utf8_lossy(&stalled.stderr)
    );
    assert_eq!(
        backwards.status.code(),
        Some(2),
        "a range that ends before it starts"
    );
    assert_eq!(
        download.status.code(),
        Some(2),
        "a download fetches the whole file"
    );
    assert_eq!(std::fs::read_dir(cwd.path()).unwrap().count(), 0);
}

/// `-v`, as curl's: each response head and what happened on the way, on stderr, with the body
/// still alone on stdout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dash_v_shows_the_heads_and_the_way() {
    let server = TestServer::http().await;
    let chain = server.url("/chain/1");
    let out = tokio::task::spawn_blocking(move || courier(&["get", "-sv", "--allow-http", &chain]))
        .await
        .unwrap();
    assert_success(&out);
    assert_eq!(out.stdout, b"end of chain");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let port = server.addr().port();
    for line in [
        "* task 1: 302 redirects to".to_owned(),
        "< 200 OK".to_owned(),
        "<".to_owned(),
        format!("http/1.1, new connection to 127.0.0.1:{port}, status 302"),
        format!("http/1.1, reused connection to 127.0.0.1:{port}, status 200"),
        "* task 1: done, status 200".to_owned(),
    ] {
        assert!(
            stderr.lines().any(|l| l.contains(&line)),
            "{line}: {stderr}"
        );
    }
    assert!(
        !stderr.contains('{'),
        "no event lines without --events: {stderr}"
    );
}

/// `-w`: a line after each task with curl's variables filled in: after the body on standard
/// output, in the order of the URLs under `-j`, apart from the bodies with `-o`, for a failure
/// too; and `%{json}`. An unknown variable is refused before anything is fetched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dash_w_writes_out_what_each_task_did() {
    let server = TestServer::http().await;
    let port = server.addr().port();
    let (chain, bytes, missing, closed) = (
        server.url("/chain/2"),
        server.url("/bytes/3000"),
        server.url("/status/404"),
        // A port nothing listens on: the listener is dropped before the command runs.
        {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!(
                "http://127.0.0.1:{}/",
                listener.local_addr().unwrap().port()
            )
        },
    );
    let created = server.url("/status/201");
    let (chain_, created_, missing_) = (chain.clone(), created.clone(), missing.clone());
    let cwd = tempfile::tempdir().unwrap();
    let c = cwd.path().to_path_buf();
    let format = "[%{http_code} %{num_redirects} %{size_download} %{url_effective} \
                  %{remote_ip}:%{remote_port} %{header{content-length}} %{exitcode}]\\n";
    let (after_body, parallel, to_file, failed, downloaded, json, unknown) =
        tokio::task::spawn_blocking(move || {
            let in_cwd = |args: &[&str]| courier_in(&c, data_home(), args).output().unwrap();
            (
                courier(&["get", "-s", "-w", format, "--allow-http", &chain]),
                courier(&[
                    "get",
                    "-s",
                    "-j",
                    "3",
                    "-w",
                    "<%{url}>",
                    "--allow-http",
                    &created,
                    &missing,
                    &chain,
                ]),
                in_cwd(&[
                    "get",
                    "-s",
                    "-o",
                    "out",
                    "-w",
                    // curl's `%header{...}`, and the file the body went to.
                    "%{http_code} %{filename_effective} %header{content-length}",
                    "--allow-http",
                    &chain,
                ]),
                courier(&[
                    "get",
                    "-s",
                    "-w",
                    "%{http_code} %{exitcode} %{errormsg}",
                    "--allow-http",
                    &closed,
                ]),
                in_cwd(&[
                    "download",
                    "-s",
                    "-w",
                    "%{filename_effective} %{size_download}",
                    "--allow-http",
                    &bytes,
                ]),
                courier(&["get", "-s", "-f", "-w", "%{json}", "--allow-http", &missing]),
                courier(&["get", "-s", "-w", "%{htp_code}", "--allow-http", &bytes]),
            )
        })
        .await
        .unwrap();
    assert_success(&after_body);
    assert_eq!(
        String::from_utf8_lossy(&after_body.stdout),
        format!(
            "end of chain[200 2 12 {} 127.0.0.1:{port} 12 0]\n",
            server.url("/chain/0")
        )
    );
    assert_success(&parallel);
    let out = String::from_utf8_lossy(&parallel.stdout);
    assert_eq!(
        out,
        format!("status 201<{created_}>status 404<{missing_}>end of chain<{chain_}>"),
        "each line after its own body, in the order of the URLs"
    );
    assert_success(&to_file);
    assert_eq!(
        String::from_utf8_lossy(&to_file.stdout),
        "200 out 12",
        "the bodies went to the file, the line to stdout"
    );
    assert_eq!(
        std::fs::read(cwd.path().join("out")).unwrap(),
        b"end of chain"
    );
    assert_eq!(failed.status.code(), Some(1));
    let line = String::from_utf8_lossy(&failed.stdout);
    assert!(line.starts_with("000 1 "), "no response: {line}");
    assert!(line.len() > "000 1 ".len(), "the error's message: {line}");
    assert_success(&downloaded);
    assert_eq!(downloaded.stdout, b"./3000 3000");
    assert_eq!(json.status.code(), Some(22));
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["http_code"], 404);
    assert_eq!(json["exitcode"], 22);
    assert_eq!(json["url"], missing_);
    assert!(json["time_total"].as_f64().unwrap() > 0.0);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(unknown.stdout.is_empty());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("http_code"));
}

/// `-H` as curl reads it: `Name;` is the field with an empty value; `Name:` leaves the field out,
/// whoever would add it (Courier's `User-Agent` and `Accept-Encoding`, `-A`'s, a form's
/// `Content-Type`, an earlier `-H`), and `Expect:` sends a large body without asking for
/// `100 Continue` first (which it does without it). The fields that frame a request cannot be
/// left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dash_h_takes_curls_empty_forms() {
    let server = TestServer::http().await;
    let headers = server.url("/headers");
    let body = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(body.path(), pattern_bytes(0, 2 << 20)).unwrap();
    let file = body.path().to_str().unwrap().to_owned();
    let (asked, not_asked, bad, left_out, framing) = tokio::task::spawn_blocking(move || {
        // `-T` is curl's name for `--file`.
        let upload = |file_flag: &str, extra: &[&str]| {
            let mut args = vec!["upload", "-s", "--allow-http", file_flag, &file];
            args.extend_from_slice(extra);
            args.push(&headers);
            courier(&args)
        };
        (
            upload("--file", &[]),
            upload("-T", &["-H", "Expect:", "-H", "X-Empty;"]),
            courier(&["get", "-s", "-H", "X-Nothing", "--allow-http", &headers]),
            courier(&[
                "get",
                "-s",
                "--allow-http",
                "-A",
                "agent/1",
                "-d",
                "a=1",
                "-H",
                "X-Mine: 1",
                "-H",
                "User-Agent:",
                "-H",
                "Accept-Encoding:",
                "-H",
                "Content-Type:",
                "-H",
                "X-Mine:",
                "-H",
                "X-Kept: 2",
                &headers,
            ]),
            courier(&["get", "-s", "--allow-http", "-H", "Host:", &headers]),
        )
    })
    .await
    .unwrap();
    assert_success(&asked);
    let sent = String::from_utf8_lossy(&asked.stdout).to_lowercase();
    assert!(sent.contains("expect: 100-continue"), "{sent}");
    assert_success(&not_asked);
    let sent = String::from_utf8_lossy(&not_asked.stdout).to_lowercase();
    assert!(!sent.contains("expect"), "{sent}");
    assert!(sent.lines().any(|l| l.trim_end() == "x-empty:"), "{sent}");
    assert_eq!(bad.status.code(), Some(2), "neither a value nor `;`");
    assert_success(&left_out);
    let sent = String::from_utf8_lossy(&left_out.stdout).to_lowercase();
    for gone in ["user-agent", "accept-encoding", "content-type", "x-mine"] {
        assert!(!sent.contains(gone), "{gone} sent: {sent}");
    }
    assert!(sent.contains("x-kept: 2"), "{sent}");
    assert_eq!(framing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&framing.stderr).contains("cannot be left out"));
}

/// `--json` posts JSON with its two fields (a field given with `-H` wins), from text or `@FILE`;
/// `-D` writes every response head, redirects' first, to a file, or to standard output before the
/// task's body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_posts_json_and_dash_capital_d_dumps_the_heads() {
    let server = TestServer::http().await;
    let (headers, echo, chain) = (
        server.url("/headers"),
        server.url("/echo"),
        server.url("/chain/1"),
    );
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(cwd.path().join("body.json"), r#"{"from":"file"}"#).unwrap();
    let c = cwd.path().to_path_buf();
    let (sent, posted, from_file, dumped, to_stdout, refused) =
        tokio::task::spawn_blocking(move || {
            let in_cwd = |args: &[&str]| courier_in(&c, data_home(), args).output().unwrap();
            (
                courier(&[
                    "get",
                    "-s",
                    "--json",
                    "{}",
                    "-H",
                    "Accept: text/plain",
                    "--allow-http",
                    &headers,
                ]),
                courier(&["get", "-s", "--json", r#"{"a":1}"#, "--allow-http", &echo]),
                in_cwd(&["get", "-s", "--json", "@body.json", "--allow-http", &echo]),
                in_cwd(&[
                    "get",
                    "-s",
                    "-D",
                    "heads.txt",
                    "-o",
                    "body",
                    "--allow-http",
                    &chain,
                ]),
                courier(&["get", "-s", "-D", "-", "--allow-http", &chain]),
                courier(&["download", "-s", "--json", "{}", "--allow-http", &echo]),
            )
        })
        .await
        .unwrap();
    assert_success(&sent);
    let sent = String::from_utf8_lossy(&sent.stdout);
    assert!(sent.contains("content-type: application/json"), "{sent}");
    assert!(sent.contains("accept: text/plain"), "-H wins: {sent}");
    assert!(!sent.contains("accept: application/json"), "{sent}");
    assert_success(&posted);
    assert_eq!(posted.stdout, br#"{"a":1}"#);
    assert_success(&from_file);
    assert_eq!(from_file.stdout, br#"{"from":"file"}"#);
    assert_eq!(refused.status.code(), Some(2));

    assert_success(&dumped);
    let heads = std::fs::read_to_string(cwd.path().join("heads.txt")).unwrap();
    let statuses: Vec<&str> = heads.lines().filter(|l| l.starts_with("HTTP/")).collect();
    assert_eq!(
        statuses,
        ["HTTP/1.1 302 Found", "HTTP/1.1 200 OK"],
        "{heads}"
    );
    assert!(heads.ends_with("\r\n\r\n"), "{heads:?}");
    assert_eq!(
        std::fs::read(cwd.path().join("body")).unwrap(),
        b"end of chain"
    );
    assert_success(&to_stdout);
    let out = String::from_utf8_lossy(&to_stdout.stdout);
    assert!(out.starts_with("HTTP/1.1 302 Found\r\n"), "{out}");
    assert!(
        out.ends_with("\r\n\r\nend of chain"),
        "the heads, then the body: {out}"
    );
}

/// `--data-binary @FILE` posts the file byte for byte, `--data-raw` is `-d`, `--create-dirs`
/// makes `-o`'s missing directories, and `download -C -` is accepted (a download continues by
/// itself) where an offset is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_binary_data_raw_create_dirs_and_continue_at() {
    let server = TestServer::http().await;
    let (echo, chain) = (server.url("/echo"), server.url("/chain/1"));
    let cwd = tempfile::tempdir().unwrap();
    let bytes: Vec<u8> = (0..=255u8).collect();
    std::fs::write(cwd.path().join("body.bin"), &bytes).unwrap();
    let c = cwd.path().to_path_buf();
    let (binary, raw, got, downloaded, continued, offset) =
        tokio::task::spawn_blocking(move || {
            let in_cwd = |args: &[&str]| courier_in(&c, data_home(), args).output().unwrap();
            (
                in_cwd(&[
                    "get",
                    "-s",
                    "--data-binary",
                    "@body.bin",
                    "--allow-http",
                    &echo,
                ]),
                in_cwd(&[
                    "get",
                    "-s",
                    "--data-raw",
                    "@body.bin",
                    "--allow-http",
                    &echo,
                ]),
                in_cwd(&[
                    "get",
                    "-s",
                    "--create-dirs",
                    "-o",
                    "a/b/got.txt",
                    "--allow-http",
                    &chain,
                ]),
                in_cwd(&[
                    "download",
                    "-s",
                    "--create-dirs",
                    "-o",
                    "c/d/down.txt",
                    "--allow-http",
                    &chain,
                ]),
                in_cwd(&[
                    "download",
                    "-s",
                    "-C",
                    "-",
                    "-o",
                    "again.txt",
                    "--allow-http",
                    &chain,
                ]),
                in_cwd(&["download", "-s", "-C", "100", "--allow-http", &chain]),
            )
        })
        .await
        .unwrap();
    assert_success(&binary);
    assert!(binary.stdout == bytes, "every byte of the file, as it is");
    assert_success(&raw);
    assert_eq!(raw.stdout, b"@body.bin", "--data-raw: the text");
    for (out, file) in [
        (&got, "a/b/got.txt"),
        (&downloaded, "c/d/down.txt"),
        (&continued, "again.txt"),
    ] {
        assert_success(out);
        assert_eq!(
            std::fs::read(cwd.path().join(file)).unwrap(),
            b"end of chain",
            "{file}"
        );
    }
    assert_eq!(offset.status.code(), Some(2));
}

/// `get -O` is curl's `-O`: each body saved in the current directory under its URL's name (a
/// download each), `-OJ` under the server's; `-J` alone and `-O` with `-o` are usage errors, as
/// in curl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_dash_capital_o_saves_each_body_under_its_urls_name() {
    let server = TestServer::http().await;
    let (five, seven, named) = (
        server.url("/bytes/5000"),
        server.url("/bytes/7000"),
        server.url("/disposition?value=attachment%3B%20filename%3D%22notes.txt%22"),
    );
    let cwd = tempfile::tempdir().unwrap();
    let c = cwd.path().to_path_buf();
    let (saved, by_server, j_alone, both) = tokio::task::spawn_blocking(move || {
        let in_cwd = |args: &[&str]| courier_in(&c, data_home(), args).output().unwrap();
        (
            in_cwd(&["get", "-s", "--allow-http", "-O", &five, &seven]),
            in_cwd(&["get", "-s", "--allow-http", "-OJ", &named]),
            in_cwd(&["get", "-s", "--allow-http", "-J", &named]),
            in_cwd(&["get", "-s", "--allow-http", "-O", "-o", "x", &named]),
        )
    })
    .await
    .unwrap();
    assert_success(&saved);
    assert!(saved.stdout.is_empty(), "no body on stdout");
    for n in [5000, 7000] {
        let file = std::fs::read(cwd.path().join(n.to_string())).unwrap();
        assert_eq!(file, pattern_bytes(0, n));
    }
    assert_success(&by_server);
    assert_eq!(
        std::fs::read_to_string(cwd.path().join("notes.txt")).unwrap(),
        "attached"
    );
    assert_eq!(j_alone.status.code(), Some(2));
    assert_eq!(both.status.code(), Some(2));
    assert!(!cwd.path().join("x").exists());
}
