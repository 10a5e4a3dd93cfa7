//! Resumable uploads (the IETF draft URLSession follows since iOS 17): an upload task whose
//! connection is cut after the server offered an upload resource goes on from the server's
//! offset, and the server ends up with every byte once.

use courier_engine::reexports::http::Method;
use courier_engine::{CleartextPolicy, Configuration, ErrorCode, Request, Session, UploadBody};
use courier_tests::server::pattern_bytes;
use courier_tests::{ResumableUploadServer, sha256_hex};

const MIB: usize = 1 << 20;

fn session() -> Session {
    let mut c = Configuration::ephemeral();
    c.cleartext = CleartextPolicy::AllowAll;
    Session::new(c).unwrap()
}

fn whole(body: &[u8]) -> String {
    format!("{} {}", body.len(), sha256_hex(body))
}

#[tokio::test]
async fn a_cut_upload_goes_on_from_the_servers_offset_from_bytes_and_from_a_file() {
    let body = pattern_bytes(0, 4 * MIB);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body.bin");
    std::fs::write(&file, &body).unwrap();
    for source in [
        UploadBody::Bytes(body.clone().into()),
        UploadBody::File(file),
    ] {
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
