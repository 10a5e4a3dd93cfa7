//! Content decoding: gzip, deflate and br bodies (and bodies encoded twice) arrive decoded, for data
//! and download tasks; bad bodies, decompression bombs and bodies longer than the session takes
//! fail with clear errors.

use std::sync::Arc;
use std::time::Duration;

use courier_engine::{CleartextPolicy, Configuration, ErrorCode, Session};
use courier_tests::server::pattern_bytes;
use courier_tests::{Event, Recorder, TestServer, sha256_hex};

const WAIT: Duration = Duration::from_secs(30);

fn config(dir: &std::path::Path) -> Configuration {
    let mut c = Configuration::ephemeral();
    c.cleartext = CleartextPolicy::AllowAll;
    c.session_directory = Some(dir.to_path_buf());
    c
}

#[tokio::test]
async fn gzip_deflate_and_br_bodies_arrive_decoded() {
    let server = TestServer::http().await;
    let dir = tempfile::tempdir().unwrap();
    let session = Session::new(config(dir.path())).unwrap();
    for encoding in ["gzip", "deflate", "br"] {
        let (body, response) = session
            .data(server.url(&format!("/{encoding}/300000")).as_str())
            .await
            .unwrap();
        assert!(body[..] == pattern_bytes(0, 300_000)[..], "{encoding}");
        assert_eq!(response.headers()["content-encoding"], encoding);
        assert_eq!(response.expected_content_length(), None, "{encoding}");
    }
    // Encoded twice, a header line for each coding: decoded the last first.
    let (body, _) = session
        .data(server.url("/gzip-then-br/300000").as_str())
        .await
        .unwrap();
    assert!(body[..] == pattern_bytes(0, 300_000)[..], "gzip, then br");
    let (headers, _) = session.data(server.url("/headers").as_str()).await.unwrap();
    let headers = String::from_utf8_lossy(&headers);
    assert!(
        headers.contains("accept-encoding: gzip, deflate, br"),
        "{headers}"
    );
}

#[tokio::test]
async fn a_gzipped_download_writes_and_counts_the_decoded_bytes() {
    let server = TestServer::http().await;
    let dir = tempfile::tempdir().unwrap();
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(config(dir.path()), rec.clone()).unwrap();
    let task = session
        .download_task(server.url("/gzip/1000000").as_str())
        .unwrap();
    task.resume();
    assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
    let events = rec.events();
    let last_total = events.iter().rev().find_map(|e| match e {
        Event::Wrote {
            total, expected, ..
        } => Some((*total, *expected)),
        _ => None,
    });
    assert_eq!(
        last_total,
        Some((1_000_000, -1)),
        "decoded length; encoded length unknown"
    );
    let finished = events.iter().find_map(|e| match e {
        Event::Finished { size, sha256, .. } => Some((*size, sha256.clone())),
        _ => None,
    });
    assert_eq!(
        finished,
        Some((1_000_000, sha256_hex(&pattern_bytes(0, 1_000_000))))
    );
}

#[tokio::test]
async fn a_body_that_does_not_decode_fails_with_1016_or_its_download_codes() {
    let server = TestServer::http().await;
    let dir = tempfile::tempdir().unwrap();
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(config(dir.path()), rec.clone()).unwrap();
    let err = session
        .data(server.url("/badgzip").as_str())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::CannotDecodeContentData);
    assert!(
        err.message().contains("does not decode"),
        "{}",
        err.message()
    );

    let task = session
        .download_task(server.url("/badgzip").as_str())
        .unwrap();
    task.resume();
    let code = rec.wait_complete(task.info().id(), WAIT).await.flatten();
    assert!(
        matches!(
            code,
            Some(
                ErrorCode::DownloadDecodingFailedMidStream
                    | ErrorCode::DownloadDecodingFailedToComplete
            )
        ),
        "{code:?}"
    );
    assert!(rec.resume_data(task.info().id()).is_none());
    session.finish_tasks_and_invalidate();
    rec.wait_invalid(WAIT).await;
    assert!(
        std::fs::read_dir(dir.path()).unwrap().all(|e| {
            let p = e.unwrap().path();
            std::fs::read_dir(&p)
                .map(|mut d| d.next().is_none())
                .unwrap_or(true)
        }),
        "no partial file left"
    );
}

#[tokio::test]
async fn a_decompression_bomb_is_stopped_with_a_clear_error() {
    let server = TestServer::http().await;
    let dir = tempfile::tempdir().unwrap();
    let session = Session::new(config(dir.path())).unwrap();
    let err = session
        .data(server.url("/bomb").as_str())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::DataLengthExceedsMaximum);
    assert!(
        err.message().contains("decompression bomb"),
        "{}",
        err.message()
    );
    // A configuration that allows the ratio gets the whole body.
    let mut c = config(dir.path());
    c.maximum_decompression_ratio = 2000;
    let lenient = Session::new(c).unwrap();
    let (body, _) = lenient.data(server.url("/bomb").as_str()).await.unwrap();
    assert_eq!(body.len(), 256 << 20);
}

/// `maximum_body_length` bounds a body as delivered: one announced longer (`Content-Length`) fails
/// before it is read, one whose length is not known before (encoded here) once it grows past the
/// limit, each with -1103; a download's file is held to it the same way. A body of the limit
/// exactly arrives whole.
#[tokio::test]
async fn a_body_longer_than_the_session_takes_fails_with_1103() {
    let server = TestServer::http().await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.maximum_body_length = Some(1000);
    let session = Session::new(c).unwrap();
    let too_long = Some(ErrorCode::DataLengthExceedsMaximum);
    let (body, _) = session
        .data(server.url("/bytes/1000").as_str())
        .await
        .unwrap();
    assert_eq!(body.len(), 1000);
    for path in ["/bytes/1001", "/gzip/1001"] {
        let failed = session.data(server.url(path).as_str()).await.unwrap_err();
        assert_eq!(Some(failed.code()), too_long, "{path}: {failed:?}");
        assert!(failed.message().contains("1000 bytes"), "{path}");
    }
    let refused = session
        .download(server.url("/bytes/1001").as_str())
        .await
        .unwrap_err();
    assert_eq!(Some(refused.code()), too_long);
    let (file, _) = session
        .download(server.url("/gzip/1000").as_str())
        .await
        .unwrap();
    assert_eq!(std::fs::metadata(file.path()).unwrap().len(), 1000);
}
