//! `data:` and `file:` URLs as data and download tasks, with no network; a `file:` download
//! suspended for longer than its file reader waits, then resumed.

use std::sync::Arc;
use std::time::Duration;

use courier_engine::{Configuration, ErrorCode, Session, UploadBody};
use courier_tests::{Event, Recorder, sha256_hex};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn data_urls_decode_into_a_body_with_their_media_type() {
    let session = Session::new(Configuration::ephemeral()).unwrap();
    let (body, response) = session
        .data("data:text/plain;charset=utf-8;base64,SGVsbG8gV29ybGQh")
        .await
        .unwrap();
    assert_eq!(&body[..], b"Hello World!");
    assert_eq!(response.status(), 200);
    assert_eq!(response.mime_type(), Some("text/plain"));
    assert_eq!(response.expected_content_length(), Some(12));
    let (body, _) = session.data("data:,a%20b").await.unwrap();
    assert_eq!(&body[..], b"a b");
    let err = session.data("data:;base64,!!!!").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::CannotDecodeRawData);
}

#[tokio::test]
async fn file_urls_serve_files_to_data_and_download_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("local.bin");
    let content: Vec<u8> = (0..1_000_000u32).map(|i| (i % 247) as u8).collect();
    std::fs::write(&path, &content).unwrap();
    let url = url::Url::from_file_path(&path).unwrap().to_string();

    let mut config = Configuration::ephemeral();
    config.session_directory = Some(dir.path().join("session"));
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(config, rec.clone()).unwrap();
    let (body, response) = session.data(url.as_str()).await.unwrap();
    assert!(body[..] == content[..]);
    assert_eq!(response.expected_content_length(), Some(1_000_000));

    let task = session.download_task(url.as_str()).unwrap();
    task.resume();
    assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
    let finished = rec.events().iter().find_map(|e| match e {
        Event::Finished { size, sha256, .. } => Some((*size, sha256.clone())),
        _ => None,
    });
    assert_eq!(finished, Some((1_000_000, sha256_hex(&content))));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        content,
        "the source is untouched"
    );

    let missing = url::Url::from_file_path(dir.path().join("nope")).unwrap();
    let err = session.data(missing.as_str()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::FileDoesNotExist);
    let folder = url::Url::from_file_path(dir.path()).unwrap();
    let err = session.data(folder.as_str()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::FileIsDirectory);
    let err = session
        .upload(
            courier_engine::Request::new(courier_engine::reexports::http::Method::PUT, &url),
            UploadBody::Bytes("x".into()),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::UnsupportedUrl);
    let err = session.data("gopher://example.test/").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::UnsupportedUrl);
}

/// A `file:` download suspended for longer than its file reader waits (2 s) with chunks untaken:
/// the reader hands the file back and frees its thread, and the task, resumed, reads on from where
/// it was with a new one. The file arrives whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_download_suspended_past_its_readers_idle_wait_resumes_whole() {
    const SIZE: usize = 32 << 20;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    courier_tests::write_random_file(&path, SIZE, 3).unwrap();
    let url = url::Url::from_file_path(&path).unwrap().to_string();
    let mut config = Configuration::ephemeral();
    config.session_directory = Some(dir.path().join("session"));
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(config, rec.clone()).unwrap();

    let task = session.download_task(url.as_str()).unwrap();
    task.resume();
    rec.wait_written(WAIT, 1).await;
    task.suspend();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let written = task.info().bytes_received();
    assert!(written < SIZE as u64, "suspended after the end: {written}");
    task.resume();
    assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
    let finished = rec.events().iter().find_map(|e| match e {
        Event::Finished { size, sha256, .. } => Some((*size, sha256.clone())),
        _ => None,
    });
    let content = std::fs::read(&path).unwrap();
    assert_eq!(finished, Some((SIZE as u64, sha256_hex(&content))));
}
