//! Resumable uploads (the IETF draft URLSession follows since iOS 17): an upload task whose
//! connection is cut after the server offered an upload resource goes on from the server's
//! offset, and the server ends up with every byte once. An upload that cannot go on now stops
//! with resume data (URLSession's `cancel(byProducingResumeData:)` and
//! `uploadTask(withResumeData:)` for uploads), by a cancel or a failure, and a task made from it
//! sends only the rest; resume data that cannot be used fails the task before anything is sent.

use std::time::Duration;

use courier_engine::reexports::http::Method;
use courier_engine::{
    CleartextPolicy, Configuration, ErrorCode, Request, ResumeData, Session, UploadBody,
};
use courier_tests::resumable_upload::whole;
use courier_tests::server::pattern_bytes;
use courier_tests::{Cut, ResumableUploadServer};

const MIB: usize = 1 << 20;

/// A body of `size` bytes, and the same as bytes and as a file (in the directory returned).
fn bytes_and_file(size: usize) -> (Vec<u8>, tempfile::TempDir, [UploadBody; 2]) {
    let body = pattern_bytes(0, size);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body.bin");
    std::fs::write(&file, &body).unwrap();
    let sources = [
        UploadBody::Bytes(body.clone().into()),
        UploadBody::File(file),
    ];
    (body, dir, sources)
}

fn session() -> Session {
    let mut c = Configuration::ephemeral();
    c.cleartext = CleartextPolicy::AllowAll;
    Session::new(c).unwrap()
}

#[tokio::test]
async fn a_cut_upload_goes_on_from_the_servers_offset_from_bytes_and_from_a_file() {
    let (body, _dir, sources) = bytes_and_file(4 * MIB);
    for source in sources {
        let server = ResumableUploadServer::start(Some(MIB), None).await;
        let (answer, response) = session()
            .upload(
                Request::new(Method::POST, &server.url("/files")),
                source.clone(),
            )
            .await
            .unwrap_or_else(|e| panic!("{source:?}: {e}"));
        assert_eq!(response.status(), 200);
        assert_eq!(String::from_utf8_lossy(&answer), whole(&body), "{source:?}");
        assert_eq!(server.received(), body, "every byte, once, in order");
        // Asked where to go on once, then sent exactly the rest.
        assert_eq!(server.heads(), 1);
        assert_eq!(server.appends(), [(MIB as u64, 3 * MIB)], "{source:?}");
        assert_eq!(
            server.lengths(),
            [(4 * MIB).to_string()],
            "offered with its length"
        );
    }
}

#[tokio::test]
async fn an_upload_resource_of_another_origin_is_never_used() {
    // The same server by another name: another origin, which the request's fields never reach.
    let server = ResumableUploadServer::start(Some(MIB), None).await;
    server.announce(&server.url("/uploads/1").replace("127.0.0.1", "localhost"));
    let err = session()
        .upload(
            Request::new(Method::POST, &server.url("/files")),
            UploadBody::Bytes(pattern_bytes(0, 4 * MIB).into()),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NetworkConnectionLost, "{err}");
    assert_eq!((server.heads(), server.appends()), (0, vec![]));
}

/// An upload that is not cut is one request; a small one is not offered for resumption at all
/// (sending it again costs less than an upload resource).
#[tokio::test]
async fn an_upload_without_a_cut_is_one_request_and_a_small_one_is_not_offered() {
    for (size, offered) in [(300_000, 1), (1000, 0)] {
        let server = ResumableUploadServer::start(None, None).await;
        let body = pattern_bytes(0, size);
        let (answer, _) = session()
            .upload(
                Request::new(Method::PUT, &server.url("/files")),
                UploadBody::Bytes(body.clone().into()),
            )
            .await
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&answer), whole(&body));
        assert_eq!((server.heads(), server.appends()), (0, vec![]));
        assert_eq!(server.lengths().len(), offered, "{size} bytes");
    }
}

/// The same for a delegate's upload task: one response, and its events in order.
#[tokio::test]
async fn a_delegates_upload_task_resumes_with_its_events_in_order() {
    use courier_tests::{Recorder, check_invariants};
    use std::sync::Arc;
    let wait = std::time::Duration::from_secs(20);
    let server = ResumableUploadServer::start(Some(MIB), None).await;
    let body = pattern_bytes(0, 2 * MIB);
    let rec = Arc::new(Recorder::new());
    let mut c = Configuration::ephemeral();
    c.cleartext = CleartextPolicy::AllowAll;
    let session = Session::with_delegate(c, rec.clone()).unwrap();
    let task = session
        .upload_task(
            Request::new(Method::POST, &server.url("/files")),
            UploadBody::Bytes(body.clone().into()),
        )
        .unwrap();
    task.resume();
    assert_eq!(rec.wait_complete(task.info().id(), wait).await, Some(None));
    assert_eq!(String::from_utf8(rec.body()).unwrap(), whole(&body));
    assert_eq!(server.appends(), [(MIB as u64, MIB)]);
    assert_eq!(task.info().response().unwrap().status(), 200);
    session.finish_tasks_and_invalidate();
    check_invariants(&rec.wait_invalid(wait).await).unwrap();
}

/// Waits (at most 20 s) until `server` holds at least `bytes` of the upload.
async fn holds(server: &ResumableUploadServer, bytes: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while server.received().len() < bytes {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the upload never got there"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Starts an upload of `body` that the server stops reading after 1 MiB, and cancels it by
/// producing resume data once the server holds that much: the resume data, and the error the
/// upload ended with.
async fn stopped_upload(
    session: &Session,
    server: &ResumableUploadServer,
    body: UploadBody,
) -> (Option<ResumeData>, courier_engine::Error) {
    server.cut(Some(Cut::StallAfter(MIB)));
    let mut upload = session.upload(Request::new(Method::POST, &server.url("/files")), body);
    let task = upload.task().cloned().expect("a task");
    let (data, ended) = tokio::join!(
        async {
            holds(server, MIB).await;
            task.cancel_by_producing_resume_data().await
        },
        &mut upload
    );
    (data, ended.expect_err("cancelled"))
}

#[tokio::test]
async fn a_cancelled_upload_goes_on_from_its_resume_data_with_only_the_rest() {
    let (body, _dir, sources) = bytes_and_file(4 * MIB);
    for source in sources {
        let session = session();
        let server = ResumableUploadServer::with_cuts([], None).await;
        let (data, ended) = stopped_upload(&session, &server, source.clone()).await;
        let data = data.unwrap_or_else(|| panic!("{source:?}: resume data"));
        assert_eq!(ended.code(), ErrorCode::Cancelled);
        assert_eq!(
            ended.resume_data().map(ResumeData::as_bytes),
            Some(data.as_bytes()),
            "the -999 error carries the same resume data"
        );
        // The check tells which upload the data goes on with: its request, and its body.
        let (request, checked) = session.check_upload_resume_data(&data).unwrap();
        assert_eq!(request.url_str(), server.url("/files"));
        assert_eq!(request.method(), Method::POST);
        match (&source, &checked) {
            (UploadBody::File(path), UploadBody::File(kept)) => {
                assert_eq!(kept, &std::path::absolute(path).unwrap());
            }
            (UploadBody::Bytes(bytes), UploadBody::Bytes(kept)) => assert_eq!(kept, bytes),
            other => panic!("another body: {other:?}"),
        }

        let (answer, response) = session
            .upload_with_resume_data(&data)
            .await
            .unwrap_or_else(|e| panic!("{source:?}: {e}"));
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.url().path(),
            "/files",
            "the task's response is its request's"
        );
        assert_eq!(String::from_utf8_lossy(&answer), whole(&body));
        assert_eq!(server.received(), body, "every byte, once, in order");
        assert_eq!(server.heads(), 1, "asked where to go on once");
        assert_eq!(
            server.appends(),
            [(MIB as u64, 3 * MIB)],
            "{source:?}: then sent exactly the rest"
        );
    }
}

#[tokio::test]
async fn an_upload_that_fails_past_its_resumptions_carries_resume_data() {
    let body = pattern_bytes(7, 3 * MIB);
    let session = session();
    // The upload and each of its three resumptions are cut a little further on; the first cut
    // comes before any of the body, or after half a MiB.
    for first in [MIB / 2, 0] {
        let server = ResumableUploadServer::with_cuts(
            [
                Cut::After(first),
                Cut::After(MIB / 4),
                Cut::After(MIB / 4),
                Cut::After(MIB / 4),
            ],
            None,
        )
        .await;
        let request = Request::new(Method::POST, &server.url("/files"));
        let failed = session
            .upload(request, UploadBody::Bytes(body.clone().into()))
            .await
            .expect_err("cut four times");
        assert_eq!(failed.code(), ErrorCode::NetworkConnectionLost);
        let data = failed.resume_data().expect("resume data").clone();
        let held = first + 3 * MIB / 4;
        assert_eq!(server.received().len(), held);

        // Later, the rest goes in one request.
        let (answer, _) = session.upload_with_resume_data(&data).await.unwrap();
        assert_eq!(String::from_utf8_lossy(&answer), whole(&body));
        assert_eq!(server.received(), body);
        assert_eq!(
            server.appends().last(),
            Some(&(held as u64, 3 * MIB - held)),
            "{first}"
        );
    }
}

#[tokio::test]
async fn an_expired_upload_resource_has_the_upload_start_over_and_a_complete_one_fails() {
    let body = pattern_bytes(3, 2 * MIB);
    let session = session();
    let server = ResumableUploadServer::with_cuts([], None).await;
    let (data, _) = stopped_upload(&session, &server, UploadBody::Bytes(body.clone().into())).await;
    let data = data.expect("resume data");

    // The server forgot the resource: the whole upload again, as a new one.
    server.forget();
    let (answer, _) = session.upload_with_resume_data(&data).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&answer), whole(&body));
    assert_eq!(
        server.appends(),
        [],
        "nothing appended to a resource that is gone"
    );
    assert_eq!(server.lengths().len(), 2, "offered again, as a new upload");

    // A server that got every byte before the connection dropped: the response is lost, and the
    // upload is not sent a second time, now or later (no resume data).
    let server = ResumableUploadServer::with_cuts([Cut::After(2 * MIB)], None).await;
    let failed = session
        .upload(
            Request::new(Method::POST, &server.url("/files")),
            UploadBody::Bytes(body.clone().into()),
        )
        .await
        .expect_err("no response");
    assert_eq!(failed.code(), ErrorCode::BadServerResponse, "{failed}");
    assert!(failed.message().contains("whole upload"), "{failed}");
    assert!(failed.resume_data().is_none());
    assert_eq!((server.heads(), server.appends().len()), (1, 0));
    assert_eq!(server.received(), body);

    // The same, found as a task made from resume data goes on.
    let server = ResumableUploadServer::with_cuts([], None).await;
    let (data, _) = stopped_upload(&session, &server, UploadBody::Bytes(body.clone().into())).await;
    server.set_received(body.clone());
    let lost = session
        .upload_with_resume_data(&data.expect("resume data"))
        .await
        .expect_err("complete");
    assert_eq!(lost.code(), ErrorCode::BadServerResponse);
    assert!(lost.message().contains("whole upload"), "{lost}");
    assert!(lost.resume_data().is_none());
    assert_eq!(server.appends(), [], "nothing sent again");
}

#[tokio::test]
async fn resume_data_that_cannot_be_used_fails_before_anything_is_sent() {
    let body = pattern_bytes(0, 2 * MIB);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body.bin");
    std::fs::write(&file, &body).unwrap();
    let session = session();
    let server = ResumableUploadServer::with_cuts([], None).await;
    let (data, _) = stopped_upload(&session, &server, UploadBody::File(file.clone())).await;
    let data = data.expect("resume data");
    let heads = server.heads();

    let fails_with = |data: ResumeData| {
        let session = session.clone();
        async move { session.upload_with_resume_data(&data).await.unwrap_err() }
    };
    // Another session's directory did not seal it.
    let elsewhere = self::session()
        .upload_with_resume_data(&data)
        .await
        .unwrap_err();
    assert_eq!(elsewhere.code(), ErrorCode::CannotDecodeRawData);
    // Edited, or not resume data at all.
    let mut edited = data.as_bytes().to_vec();
    let last = edited.len() - 1;
    edited[last] ^= 1;
    for bad in [edited, b"not resume data".to_vec(), Vec::new()] {
        let e = fails_with(ResumeData::from_bytes(bad)).await;
        assert_eq!(e.code(), ErrorCode::CannotDecodeRawData);
    }
    // A file changed since (same length, new bytes), then gone.
    let mut changed = body.clone();
    changed[0] ^= 1;
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&file, &changed).unwrap();
    let e = fails_with(data.clone()).await;
    assert_eq!(e.code(), ErrorCode::CannotOpenFile, "{e}");
    let checked = session
        .check_upload_resume_data(&data)
        .map(drop)
        .unwrap_err();
    assert_eq!(
        checked.code(),
        ErrorCode::CannotOpenFile,
        "the check says so too"
    );
    std::fs::remove_file(&file).unwrap();
    let e = fails_with(data.clone()).await;
    assert_eq!(e.code(), ErrorCode::FileDoesNotExist, "{e}");
    assert_eq!(server.heads(), heads, "nothing was asked of the server");
}

#[tokio::test]
async fn an_upload_the_server_did_not_offer_to_resume_has_no_resume_data() {
    // Too small to be offered (no 104), and offered but to another origin: nothing to go on
    // with later, and the cancel is a plain one.
    let session = session();
    let small = ResumableUploadServer::with_cuts([], None).await;
    let elsewhere = ResumableUploadServer::with_cuts([], None).await;
    elsewhere.announce(
        &elsewhere
            .url("/uploads/1")
            .replace("127.0.0.1", "localhost"),
    );
    for (server, size, held) in [(&small, 60_000, 30_000), (&elsewhere, 4 * MIB, MIB)] {
        server.cut(Some(Cut::StallAfter(held)));
        let mut upload = session.upload(
            Request::new(Method::POST, &server.url("/files")),
            UploadBody::Bytes(pattern_bytes(0, size).into()),
        );
        let task = upload.task().cloned().unwrap();
        let (data, ended) = tokio::join!(
            async {
                holds(server, held).await;
                task.cancel_by_producing_resume_data().await
            },
            &mut upload
        );
        assert!(data.is_none(), "{size}");
        let e = ended.expect_err("cancelled");
        assert_eq!(e.code(), ErrorCode::Cancelled);
        assert!(e.resume_data().is_none());
    }
    assert_eq!(small.lengths().len(), 0, "a small upload is not offered");
    assert_eq!(elsewhere.lengths().len(), 1);
}
