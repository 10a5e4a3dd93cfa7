//! Black-box tests of the bodies `courier` sends with curl's options: `-F` multipart forms (the
//! bytes curl posts, a large one streamed from its file), `-d` repeated, `--data-urlencode` and
//! `-G`, and `get -T`.

mod common;

use common::*;
use courier_tests::TestServer;
use courier_tests::server::pattern_bytes;

/// `get -F` posts the multipart form curl posts for the same fields, byte for byte but for the
/// boundary: text, a file part (its type guessed from its name as curl guesses it, or given), a
/// field holding a file's text, standard input, a file name with a quote. More than 16 MiB held in
/// memory (`<FILE`) is a usage error, and so is `-F` beside `-d`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dash_capital_f_posts_the_form_curl_posts() {
    let server = TestServer::http().await;
    let echo = server.url("/echo");
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(cwd.path().join("pic.png"), b"PNGDATA").unwrap();
    std::fs::write(cwd.path().join("notes.txt"), b"inner\r\ntext").unwrap();
    std::fs::write(cwd.path().join("model.bin"), pattern_bytes(0, 3000)).unwrap();
    std::fs::File::create(cwd.path().join("huge.bin"))
        .unwrap()
        .set_len(17 << 20)
        .unwrap();
    let c = cwd.path().to_path_buf();
    let fields = [
        "name=value with spaces",
        "img=@pic.png",
        "v=<notes.txt",
        "t=@notes.txt;type=text/x-mine;filename=other.txt",
        "q=@model.bin;filename=we\"ird.bin",
        "s=@-",
        "m=@model.bin",
    ];
    let (ours, curls, huge, mixed) = tokio::task::spawn_blocking(move || {
        let run = |program: &str, first: &[&str]| {
            use std::io::Write;
            let mut args: Vec<&str> = first.to_vec();
            for f in fields {
                args.extend(["-F", f]);
            }
            args.push(&echo);
            let mut child = std::process::Command::new(program)
                .args(&args)
                .current_dir(&c)
                .env("XDG_DATA_HOME", data_home())
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .ok()?;
            child.stdin.take()?.write_all(b"from stdin\n").unwrap();
            Some(child.wait_with_output().unwrap())
        };
        let in_cwd = |args: &[&str]| courier_in(&c, data_home(), args).output().unwrap();
        (
            run(
                env!("CARGO_BIN_EXE_courier"),
                &["get", "-s", "--allow-http"],
            )
            .unwrap(),
            run("curl", &["-s"]),
            in_cwd(&[
                "get",
                "-s",
                "--allow-http",
                "-F",
                "f=<huge.bin",
                "http://a.test/",
            ]),
            in_cwd(&[
                "get",
                "-s",
                "--allow-http",
                "-F",
                "a=b",
                "-d",
                "x",
                "http://a.test/",
            ]),
        )
    })
    .await
    .unwrap();
    assert_success(&ours);
    let body = String::from_utf8_lossy(&ours.stdout).into_owned();
    let boundary = |text: &str| text.lines().next().unwrap_or("").to_owned();
    for part in [
        "Content-Disposition: form-data; name=\"name\"\r\n\r\nvalue with spaces\r\n",
        "name=\"img\"; filename=\"pic.png\"\r\nContent-Type: image/png\r\n\r\nPNGDATA\r\n",
        "name=\"v\"\r\n\r\ninner\r\ntext\r\n",
        "name=\"q\"; filename=\"we%22ird.bin\"\r\nContent-Type: application/octet-stream\r\n",
        "name=\"s\"; filename=\"-\"\r\n\r\nfrom stdin\n\r\n",
    ] {
        assert!(body.contains(part), "{part:?} in {body}");
    }
    assert!(body.ends_with(&format!("{}--\r\n", boundary(&body))));
    // curl is the reference where it is installed (tests/run.sh installs it).
    if let Some(curls) = curls {
        let theirs = String::from_utf8_lossy(&curls.stdout).into_owned();
        assert_eq!(
            body.replace(&boundary(&body), "B"),
            theirs.replace(&boundary(&theirs), "B")
        );
    }
    assert_eq!(huge.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&huge.stderr).contains("more than 16 MiB"));
    assert_eq!(mixed.status.code(), Some(2));
}

/// `-d` repeats, joined with `&`; `--data-urlencode` encodes its parts as curl does (`NAME=TEXT`,
/// `=TEXT`, `NAME@FILE`); `-G` sends them all in a GET's query, after what the URL has there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dash_capital_g_and_data_urlencode_are_curls() {
    let server = TestServer::http().await;
    let (bytes, echo) = (server.url("/bytes/10?x=0"), server.url("/echo"));
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(cwd.path().join("q.txt"), "file content&x").unwrap();
    let c = cwd.path().to_path_buf();
    let (queried, posted, upload) = tokio::task::spawn_blocking(move || {
        let in_cwd = |args: &[&str]| courier_in(&c, data_home(), args).output().unwrap();
        let parts = [
            "-d",
            "a=1",
            "-d",
            "b=2",
            "--data-urlencode",
            "q=hello world/ü",
            "--data-urlencode",
            "f@q.txt",
            "--data-urlencode",
            "=lone&",
            // An `=` anywhere makes it a content's form, as curl reads it: the name is `a@b`.
            "--data-urlencode",
            "a@b=c d",
        ];
        let mut get = vec!["get", "-s", "--allow-http", "-G", "-o", "/dev/null"];
        get.extend(parts);
        get.extend(["-w", "%{url_effective} %{http_code}", &bytes]);
        let mut post = vec!["get", "-s", "--allow-http"];
        post.extend(parts);
        post.push(&echo);
        (
            in_cwd(&get),
            in_cwd(&post),
            in_cwd(&["upload", "--allow-http", "-G", "-d", "x", &echo]),
        )
    })
    .await
    .unwrap();
    assert_success(&queried);
    let line = String::from_utf8_lossy(&queried.stdout).into_owned();
    assert!(
        line.ends_with(
            "/bytes/10?x=0&a=1&b=2&q=hello+world%2f%c3%bc&f=file+content%26x&lone%26&a@b=c+d 200"
        ),
        "{line}"
    );
    assert_success(&posted);
    assert_eq!(
        String::from_utf8_lossy(&posted.stdout),
        "a=1&b=2&q=hello+world%2f%c3%bc&f=file+content%26x&lone%26&a@b=c+d"
    );
    assert_eq!(upload.status.code(), Some(2));
}

/// A `-F` form over 16 MiB is streamed from its file (an upload task's body stream, with its
/// `Content-Length` counted first): the bytes curl posts, again after a 307, which asks for the
/// stream anew. `-O`, which sends its body from memory, refuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_form_is_streamed_from_its_file() {
    let server = TestServer::http().await;
    let (echo, again) = (server.url("/echo"), server.url("/redirect/307?to=/echo"));
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(cwd.path().join("big.bin"), pattern_bytes(7, 17 << 20)).unwrap();
    let c = cwd.path().to_path_buf();
    let (direct, redirected, curls, saved) = tokio::task::spawn_blocking(move || {
        let in_cwd = |args: &[&str]| courier_in(&c, data_home(), args).output().unwrap();
        let form = |url: &str| {
            let mut args = vec!["get", "-s", "--allow-http", "-F", "a=1", "-F", "f=@big.bin"];
            args.extend(["--events", "events.jsonl", url]);
            in_cwd(&args)
        };
        let curls = std::process::Command::new("curl")
            .args(["-s", "-F", "a=1", "-F", "f=@big.bin", &echo])
            .current_dir(&c)
            .output()
            .ok();
        (
            form(&echo),
            form(&again),
            curls,
            in_cwd(&["get", "-s", "--allow-http", "-O", "-F", "f=@big.bin", &echo]),
        )
    })
    .await
    .unwrap();
    let normal = |out: &std::process::Output| {
        let body = String::from_utf8_lossy(&out.stdout).into_owned();
        let boundary = body.lines().next().unwrap_or("").to_owned();
        body.replace(&boundary, "B")
    };
    assert_success(&direct);
    assert_success(&redirected);
    let body = normal(&direct);
    assert!(body.len() > 17 << 20, "{}", body.len());
    assert!(
        body.contains("name=\"f\"; filename=\"big.bin\"\r\nContent-Type: application/octet-stream")
    );
    assert_eq!(normal(&redirected), body, "the same form after the 307");
    let events = std::fs::read_to_string(cwd.path().join("events.jsonl")).unwrap();
    assert_eq!(
        events.matches("need_new_body_stream").count(),
        2,
        "a stream for each send"
    );
    if let Some(curls) = curls {
        assert_eq!(normal(&curls), body);
    }
    assert_eq!(saved.status.code(), Some(2));
}

/// `get -T FILE URL` is curl's `-T`: the upload it means (a PUT of the file, or of stdin with
/// `-`); to more than one URL it is a usage error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_dash_capital_t_uploads_the_file() {
    let server = TestServer::http().await;
    let echo = server.url("/echo");
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(cwd.path().join("up.bin"), pattern_bytes(3, 5000)).unwrap();
    let c = cwd.path().to_path_buf();
    let (put, two) = tokio::task::spawn_blocking(move || {
        let in_cwd = |args: &[&str]| courier_in(&c, data_home(), args).output().unwrap();
        (
            in_cwd(&[
                "get",
                "-s",
                "--allow-http",
                "-T",
                "up.bin",
                "-D",
                "-",
                &echo,
            ]),
            in_cwd(&["get", "-s", "--allow-http", "-T", "up.bin", &echo, &echo]),
        )
    })
    .await
    .unwrap();
    assert_success(&put);
    let out = put.stdout;
    assert!(out.ends_with(&pattern_bytes(3, 5000)), "the file came back");
    let head = String::from_utf8_lossy(&out[..out.len() - 5000]).to_lowercase();
    assert!(head.contains("x-method: put"), "{head}");
    assert_eq!(two.status.code(), Some(2));
}
