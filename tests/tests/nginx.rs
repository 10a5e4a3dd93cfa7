//! Against a real server program: nginx (installed by tests/run.sh when missing), started on a free
//! loopback port with a generated configuration.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::Duration;

use courier_engine::reexports::http::Method;
use courier_engine::{Configuration, Request, Session, UploadBody};
use courier_tests::{Event, Nginx, Recorder, check_invariants, sha256_hex, write_random_file};

const WAIT: Duration = Duration::from_secs(60);
const SIZE: usize = 100 * 1024 * 1024;

fn config(dir: &std::path::Path) -> Configuration {
    courier_tests::default_config_in(dir)
}

/// nginx serving a directory that holds `hello.txt` ("hello from nginx"), over HTTPS too when
/// given a CA; `None` where nginx is not installed (never in CI).
fn nginx_serving_hello(ca: Option<&courier_tests::TestCa>) -> Option<(tempfile::TempDir, Nginx)> {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("hello.txt"), "hello from nginx\n").unwrap();
    let nginx = match ca {
        Some(ca) => Nginx::start_tls(root.path(), ca),
        None => Nginx::start(root.path()),
    }?;
    Some((root, nginx))
}

fn file_sha(path: &std::path::Path) -> String {
    sha256_hex(&std::fs::read(path).unwrap())
}

/// Cancels `task` for its resume data, resumes from it to the end, and invalidates the session:
/// the session's events (their invariants checked), the resumed task's number, and the size and
/// SHA-256 of the file it finished with.
async fn cancel_and_resume_to_the_end(
    session: &Session,
    rec: &Recorder,
    task: &courier_engine::DownloadTask,
    why: &str,
) -> (Vec<Event>, u64, Option<(u64, String)>) {
    let data = task.cancel_by_producing_resume_data().await.expect(why);
    rec.wait_complete(task.info().id(), WAIT).await;
    let resumed = session.download_task_with_resume_data(&data).unwrap();
    resumed.resume();
    assert_eq!(
        rec.wait_complete(resumed.info().id(), WAIT).await,
        Some(None)
    );
    session.finish_tasks_and_invalidate();
    let events = rec.wait_invalid(WAIT).await;
    check_invariants(&events).unwrap();
    let id = resumed.info().id();
    let finished = events.iter().find_map(|e| match e {
        Event::Finished { task, size, sha256 } if *task == id => Some((*size, sha256.clone())),
        _ => None,
    });
    (events, id, finished)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mib_download_interrupted_at_a_random_offset_resumes_with_only_the_rest() {
    let root = tempfile::tempdir().unwrap();
    let source = root.path().join("big.bin");
    let seed = RandomState::new().hash_one(0u8);
    write_random_file(&source, SIZE, seed).unwrap();
    let Some(nginx) = Nginx::start(root.path()) else {
        return;
    };
    let session_dir = tempfile::tempdir().unwrap();
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(config(session_dir.path()), rec.clone()).unwrap();

    // Interrupt somewhere between 10 and 90 MiB (nginx sends /slow/ at 40 MB/s).
    let target = 10 * 1024 * 1024 + (seed % (80 * 1024 * 1024)) as i64;
    let task = session.download_task(nginx.url("/slow/big.bin")).unwrap();
    task.resume();
    rec.wait_written(WAIT, target).await;
    let (events, resumed, finished) = cancel_and_resume_to_the_end(
        &session,
        &rec,
        &task,
        "nginx sends an ETag and Accept-Ranges: resumable",
    )
    .await;
    let offset = events
        .iter()
        .find_map(|e| match e {
            Event::Resumed { task, offset, .. } if *task == resumed => Some(*offset as u64),
            _ => None,
        })
        .expect("did_resume_at_offset");
    assert!(offset >= target as u64, "offset {offset}, target {target}");
    assert_eq!(finished, Some((SIZE as u64, file_sha(&source))));
    let log = nginx.access_log_of(2);
    let last = log
        .iter()
        .find(|l| l.range.is_some())
        .expect("the resumed request");
    assert_eq!(
        last.range.as_deref(),
        Some(format!("bytes={offset}-").as_str())
    );
    assert_eq!(last.status, 206);
    assert_eq!(
        last.body_bytes_sent,
        SIZE as u64 - offset,
        "only the rest was fetched"
    );
    assert!(
        courier_tests::session_files(session_dir.path()).is_empty(),
        "no partial file left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_nginx_would_compress_is_fetched_as_stored_and_resumes() {
    // nginx compresses on the fly for a client that accepts it; a compressed body has no length
    // and cannot be continued with a range. A download asks for the body as stored.
    let root = tempfile::tempdir().unwrap();
    let source = root.path().join("log.txt");
    let line = "2026-12-06 17:50:00 INFO courier a line of a text file that compresses well\n";
    std::fs::write(&source, line.repeat(8 * 1024 * 1024 / line.len())).unwrap();
    let size = std::fs::metadata(&source).unwrap().len();
    let Some(nginx) = Nginx::start(root.path()) else {
        return;
    };
    let session_dir = tempfile::tempdir().unwrap();
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(config(session_dir.path()), rec.clone()).unwrap();

    let task = session.download_task(nginx.url("/gzip/log.txt")).unwrap();
    task.resume();
    rec.wait_written(WAIT, 1024 * 1024).await;
    assert_eq!(
        task.info().bytes_expected_to_receive(),
        Some(size),
        "the length is known"
    );
    let (_, _, finished) =
        cancel_and_resume_to_the_end(&session, &rec, &task, "a body as stored is resumable").await;
    assert_eq!(finished, Some((size, file_sha(&source))));
    let log = nginx.access_log_of(2);
    assert_eq!(log[1].status, 206, "the rest, as a range");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mib_upload_reaches_nginx_whole() {
    let root = tempfile::tempdir().unwrap();
    let source = root.path().join("up.bin");
    write_random_file(&source, SIZE, 7).unwrap();
    let Some(nginx) = Nginx::start(root.path()) else {
        return;
    };
    let session_dir = tempfile::tempdir().unwrap();
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(config(session_dir.path()), rec.clone()).unwrap();
    let task = session
        .upload_task(
            Request::new(Method::PUT, &nginx.url("/upload/big.bin")),
            UploadBody::File(source.clone()),
        )
        .unwrap();
    task.resume();
    assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
    assert_eq!(task.info().response().unwrap().status(), 201);
    assert_eq!(task.info().bytes_sent(), SIZE as u64);
    assert_eq!(
        file_sha(&nginx.upload_dir().join("big.bin")),
        file_sha(&source)
    );
    let last_sent = rec.events().iter().rev().find_map(|e| match e {
        Event::Sent {
            total, expected, ..
        } => Some((*total, *expected)),
        _ => None,
    });
    assert_eq!(last_sent, Some((SIZE as i64, SIZE as i64)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_upload_is_asked_for_again_when_nginx_redirects_it_with_307() {
    let root = tempfile::tempdir().unwrap();
    let Some(nginx) = Nginx::start(root.path()) else {
        return;
    };
    let body = b"a streamed body that must be sent twice\n".repeat(50_000);
    let session_dir = tempfile::tempdir().unwrap();
    let rec = Arc::new(Recorder::streaming(body.clone()));
    let session = Session::with_delegate(config(session_dir.path()), rec.clone()).unwrap();
    let task = session
        .upload_task(
            Request::new(Method::PUT, &nginx.url("/307-upload")),
            UploadBody::Stream,
        )
        .unwrap();
    task.resume();
    assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
    let asked = rec
        .events()
        .iter()
        .filter(|e| matches!(e, Event::NeedBody { .. }))
        .count();
    assert_eq!(asked, 2, "once to start, once for the resend after the 307");
    assert_eq!(task.info().response().unwrap().status(), 201);
    assert!(
        task.info()
            .current_request()
            .url_str()
            .ends_with("/upload/redirected.bin")
    );
    let saved = std::fs::read(nginx.upload_dir().join("redirected.bin")).unwrap();
    assert!(saved == body, "nginx stored the whole body");
    let log = nginx.access_log_of(2);
    // nginx logs a request when it is done with it: the 307, answered before the body (the
    // upload asked `Expect: 100-continue`), is done when its connection closes, which may come
    // after the second request.
    let mut statuses: Vec<(String, u16)> = log.iter().map(|l| (l.uri.clone(), l.status)).collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [
            ("/307-upload".to_owned(), 307),
            ("/upload/redirected.bin".to_owned(), 201)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_redirects_301_302_307_are_followed_to_the_file() {
    let Some((_root, nginx)) = nginx_serving_hello(None) else {
        return;
    };
    let session_dir = tempfile::tempdir().unwrap();
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(config(session_dir.path()), rec.clone()).unwrap();
    let task = session.data_task(nginx.url("/r301")).unwrap();
    task.resume();
    assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
    assert_eq!(rec.body(), b"hello from nginx\n");
    assert_eq!(
        task.info().current_request().url_str(),
        nginx.url("/hello.txt")
    );
    let hops: Vec<u16> = rec
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::Redirect { status, .. } => Some(*status),
            _ => None,
        })
        .collect();
    assert_eq!(hops, [301, 302, 307]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_auth_basic_is_answered_with_the_delegates_credential() {
    let Some((_root, nginx)) = nginx_serving_hello(None) else {
        return;
    };
    let session_dir = tempfile::tempdir().unwrap();
    let rec = Arc::new(Recorder::challenged([
        courier_engine::AuthChallengeDisposition::UseCredential(Some(
            courier_engine::Credential::password(
                "nginx",
                "secret",
                courier_engine::CredentialPersistence::ForSession,
            ),
        )),
    ]));
    let session = Session::with_delegate(config(session_dir.path()), rec.clone()).unwrap();
    let (body, response) = session
        .data(nginx.url("/private/hello.txt").as_str())
        .await
        .unwrap();
    assert_eq!(
        (response.status().as_u16(), &body[..]),
        (200, &b"hello from nginx\n"[..])
    );
    let realms: Vec<Option<String>> = rec
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::Challenge { realm, .. } => Some(realm.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(realms, [Some("nginx-realm".to_owned())]);
    // Without a credential the 401 is the response.
    let bare = Session::new(config(session_dir.path())).unwrap();
    let (_, response) = bare
        .data(nginx.url("/private/hello.txt").as_str())
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_over_tls_with_http2_and_a_test_ca() {
    let root = tempfile::tempdir().unwrap();
    let source = root.path().join("ten.bin");
    write_random_file(&source, 10 * 1024 * 1024, 11).unwrap();
    let ca = courier_tests::TestCa::new();
    let Some(nginx) = Nginx::start_tls(root.path(), &ca) else {
        return;
    };
    let session_dir = tempfile::tempdir().unwrap();
    let mut c = config(session_dir.path());
    c.extra_root_certificates.push(ca.ca_der.clone());
    let session = Session::new(c).unwrap();
    let (body, response) = session
        .data(nginx.tls_url("/ten.bin").as_str())
        .await
        .unwrap();
    assert_eq!(
        response.version(),
        courier_engine::reexports::http::Version::HTTP_2
    );
    assert_eq!(sha256_hex(&body), file_sha(&source));
    // Without the test CA, the certificate is refused.
    let strict = Session::new(config(session_dir.path())).unwrap();
    let err = strict
        .data(nginx.tls_url("/ten.bin").as_str())
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        courier_engine::ErrorCode::ServerCertificateHasUnknownRoot
    );
}

/// nginx over HTTPS (HTTP/2) serving `hello.txt`, and an ephemeral session that trusts it.
fn over_http2_to_nginx() -> Option<(tempfile::TempDir, Nginx, Session)> {
    let ca = courier_tests::TestCa::new();
    let (root, nginx) = nginx_serving_hello(Some(&ca))?;
    let mut c = Configuration::ephemeral();
    c.extra_root_certificates.push(ca.ca_der.clone());
    Some((root, nginx, Session::new(c).unwrap()))
}

/// nginx closes an HTTP/2 connection after its `keepalive_requests` (100 here) with a `GOAWAY`:
/// the requests in flight past the last one it took were not acted on, and go again on a new
/// connection, whatever their method. 1,000 requests, 64 at once, every other one a POST with a
/// body: every one completes (with them failing -1005, about 60 of 3,000 GETs did against
/// nginx's default of 1,000, and POSTs did while only idempotent requests went again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_an_http2_goaway_are_sent_again() {
    let Some((_root, nginx, session)) = over_http2_to_nginx() else {
        return;
    };
    let mut running = tokio::task::JoinSet::new();
    let mut failed = Vec::new();
    for i in 0..1000 {
        if running.len() == 64
            && let Some(Err(e)) = running.join_next().await.map(|done| done.unwrap())
        {
            failed.push(e);
        }
        let session = session.clone();
        let (request, expected): (Request, &[u8]) = if i % 2 == 0 {
            let url = nginx.tls_url(&format!("/posted?{i}"));
            let post = Request::new(Method::POST, &url).with_body(format!("body {i}"));
            (post, b"posted\n")
        } else {
            let url = nginx.tls_url(&format!("/hello.txt?{i}"));
            (Request::get(&url), b"hello from nginx\n")
        };
        running.spawn(async move {
            let (body, response) = session.data(request).await?;
            assert_eq!(&body[..], expected);
            assert_eq!(
                response.version(),
                courier_engine::reexports::http::Version::HTTP_2
            );
            Ok::<_, courier_engine::Error>(())
        });
    }
    while let Some(done) = tokio::time::timeout(WAIT, running.join_next())
        .await
        .expect("every request ends")
    {
        if let Err(e) = done.unwrap() {
            failed.push(e);
        }
    }
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        failed.first()
    );
    let served = nginx.access_log().len();
    assert!(served >= 1000, "{served} requests logged");
}

/// 1,000 GETs at once against the same nginx: each connection takes 100 and drains with a
/// `GOAWAY`, so the last requests wait ten rounds of new connections. Every one completes: a
/// request a draining connection did not take is sent again for as long as each round serves
/// some (five rounds were the bound, and the last few hundred failed with -1005).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_wait_as_many_goaways_as_it_takes_to_serve_them() {
    let Some((_root, nginx, session)) = over_http2_to_nginx() else {
        return;
    };
    let mut running = tokio::task::JoinSet::new();
    for i in 0..1000 {
        let request = Request::get(nginx.tls_url(&format!("/hello.txt?{i}")).as_str());
        let session = session.clone();
        running.spawn(async move { session.data(request).await.map(|(body, _)| body) });
    }
    let mut failed = Vec::new();
    while let Some(done) = tokio::time::timeout(WAIT, running.join_next())
        .await
        .expect("every request ends")
    {
        match done.unwrap() {
            Ok(body) => assert_eq!(&body[..], b"hello from nginx\n"),
            Err(e) => failed.push(e),
        }
    }
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        failed.first()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_cache_control_and_etags_drive_the_url_cache() {
    let Some((_root, nginx)) = nginx_serving_hello(None) else {
        return;
    };
    let session_dir = tempfile::tempdir().unwrap();
    let session = Session::new(config(session_dir.path())).unwrap();
    for _ in 0..3 {
        let (body, _) = session
            .data(nginx.url("/cached/hello.txt").as_str())
            .await
            .unwrap();
        assert_eq!(&body[..], b"hello from nginx\n");
    }
    // Fresh for 60 s: one request reached nginx.
    let log = nginx.access_log_of(1);
    let fetched = log.iter().filter(|l| l.uri == "/cached/hello.txt").count();
    assert_eq!(fetched, 1, "{log:?}");
    // Without Cache-Control the file is only heuristically fresh (it was just written): the second
    // request revalidates with its ETag and nginx answers 304.
    for _ in 0..2 {
        let (body, response) = session
            .data(nginx.url("/hello.txt").as_str())
            .await
            .unwrap();
        assert_eq!(
            (response.status().as_u16(), &body[..]),
            (200, &b"hello from nginx\n"[..])
        );
    }
    let log = nginx.access_log_of(3);
    let statuses: Vec<u16> = log
        .iter()
        .filter(|l| l.uri == "/hello.txt")
        .map(|l| l.status)
        .collect();
    assert_eq!(statuses, [200, 304], "{log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_mtls_location_accepts_the_delegates_client_certificate() {
    let ca = courier_tests::TestCa::new();
    let Some((_root, nginx)) = nginx_serving_hello(Some(&ca)) else {
        return;
    };
    let session_dir = tempfile::tempdir().unwrap();
    let mut c = config(session_dir.path());
    c.extra_root_certificates.push(ca.ca_der.clone());
    // Without an identity: nginx asked (optionally), got none, and /mtls/ refuses.
    let bare = Session::new(c.clone()).unwrap();
    let (_, response) = bare
        .data(nginx.tls_url("/mtls/hello.txt").as_str())
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    // With the delegate's identity: presented on a new connection, verified by nginx.
    let rec = Arc::new(Recorder::with_identity(ca.client_identity()));
    let session = Session::with_delegate(c, rec.clone()).unwrap();
    let (body, response) = session
        .data(nginx.tls_url("/mtls/hello.txt").as_str())
        .await
        .unwrap();
    assert_eq!(
        (response.status().as_u16(), &body[..]),
        (200, &b"hello from nginx\n"[..])
    );
    assert!(rec.events().iter().any(|e| matches!(
        e,
        Event::SessionChallenge {
            method: "client_certificate",
            ..
        }
    )));
}
