//! Black-box tests of `courier upload`: a file, stdin or text sent, the response printed; a stream
//! that cannot be sent again; the informational response a large body meets.

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

/// An upload streamed from stdin cannot be read again: redirected by a 307, which must resend
/// the body, it fails with -1021 (URLSession's `requestBodyStreamExhausted`) instead of sending
/// the redirect's target an empty body and reporting success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdin_upload_that_must_be_resent_fails_instead_of_sending_nothing() {
    let server = TestServer::http().await;
    let url = server.url("/307/upload");
    let out = tokio::task::spawn_blocking(move || {
        let args = [
            "upload",
            &url,
            "--file",
            "-",
            "--allow-http",
            "--events",
            "-",
        ];
        courier_with_stdin(&args, "the body, once", std::time::Duration::ZERO)
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "no response: nothing was resent");
    let ev = stderr_events(&out);
    let complete = ev.iter().find(|e| e["event"] == "did_complete").unwrap();
    assert_eq!(complete["error"]["code"], "request_body_stream_exhausted");
    assert_eq!(complete["error"]["number"], -1021);
}

/// An upload past the `Expect: 100-continue` threshold (1 MiB) to nginx, which answers `100
/// Continue` before it takes the body: the stream shows the informational response, then the
/// final one, and nginx stored every byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_informational_response_reaches_the_stream() {
    let root = tempfile::tempdir().unwrap();
    let Some(nginx) = courier_tests::Nginx::start(root.path()) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "tests/run.sh installs nginx"
        );
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
