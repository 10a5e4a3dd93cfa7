//! `ftp:` URLs against a real FTP server (pyftpdlib): data and download tasks, a 100 MiB download
//! cut into resume data and continued with `REST` byte-identical, uploads (`STOR`) from a file and
//! from the delegate's stream, upload files that cannot be read (nothing stored), a missing
//! file, bad credentials, the cleartext policy, explicit FTPS with the session's trust, the
//! methods an `ftp:` URL takes, and byte ranges. What a scripted server shows is
//! `ftp_scripted.rs`.

use std::sync::Arc;
use std::time::Duration;

use courier_engine::{CleartextPolicy, Configuration, ErrorCode, Request, Session, UploadBody};
use courier_tests::{Event, FtpServer, Recorder, TestCa, check_invariants, sha256_hex};

const WAIT: Duration = Duration::from_secs(60);

fn cleartext() -> Configuration {
    let mut c = Configuration::ephemeral();
    c.cleartext = CleartextPolicy::AllowAll;
    c
}

fn content(size: usize) -> Vec<u8> {
    (0..size as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

#[tokio::test]
async fn a_data_task_an_upload_and_the_errors() {
    let root = tempfile::tempdir().unwrap();
    let Some(server) = FtpServer::start(root.path()) else {
        return;
    };
    let small = content(70_000);
    std::fs::write(root.path().join("small.bin"), &small).unwrap();
    let session = Session::new(cleartext()).unwrap();

    // Anonymous, as a completion form: the body, and a response made of SIZE and MDTM.
    let (body, response) = session
        .data(server.url("", "/small.bin").as_str())
        .await
        .unwrap();
    assert_eq!(body.as_ref(), &small[..]);
    assert_eq!(response.expected_content_length(), Some(70_000));
    assert!(response.headers().contains_key("last-modified"));

    // An upload from a file, as the user who may write (STOR).
    let upload = tempfile::NamedTempFile::new().unwrap();
    let payload = content(300_000);
    std::fs::write(upload.path(), &payload).unwrap();
    let request = Request::new(http::Method::PUT, &server.url("ann:pw@", "/uploaded.bin"));
    session
        .upload(request, UploadBody::File(upload.path().to_path_buf()))
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(root.path().join("uploaded.bin")).unwrap(),
        payload
    );

    // A missing file, and credentials the server does not take.
    let missing = session
        .data(server.url("", "/nope.bin").as_str())
        .await
        .unwrap_err();
    assert_eq!(missing.code(), ErrorCode::FileDoesNotExist, "{missing}");
    let refused = session
        .data(server.url("ann:wrong@", "/small.bin").as_str())
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        ErrorCode::UserAuthenticationRequired,
        "{refused}"
    );
    // Anonymous users may not write.
    let denied = session
        .upload(
            Request::new(http::Method::PUT, &server.url("", "/anon.bin")),
            UploadBody::Bytes(bytes::Bytes::from_static(b"x")),
        )
        .await
        .unwrap_err();
    assert!(!root.path().join("anon.bin").exists(), "{denied}");

    // A file that cannot be read fails as an HTTP upload's does, before anything is stored.
    let here = tempfile::tempdir().unwrap();
    for (body, code, name) in [
        (
            UploadBody::File(here.path().join("missing.bin")),
            ErrorCode::FileDoesNotExist,
            "missing.bin",
        ),
        (
            UploadBody::File(here.path().to_path_buf()),
            ErrorCode::FileIsDirectory,
            "directory.bin",
        ),
    ] {
        let path = format!("/{name}");
        let err = session
            .upload(
                Request::new(http::Method::PUT, &server.url("ann:pw@", &path)),
                body,
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{err}");
        assert!(!root.path().join(name).exists(), "{name} was stored");
    }

    // A stream the delegate hands over (`courier upload --file -`), stored as it is read.
    let streamed = content(600_000);
    let rec = Arc::new(Recorder::streaming(streamed.clone()));
    let delegated = Session::with_delegate(cleartext(), rec.clone()).unwrap();
    let request = Request::new(http::Method::PUT, &server.url("ann:pw@", "/streamed.bin"));
    let task = delegated.upload_task(request, UploadBody::Stream).unwrap();
    task.resume();
    let done = rec.wait_complete(task.info().id(), WAIT);
    assert_eq!(done.await, Some(None), "stored without an error");
    assert_eq!(
        std::fs::read(root.path().join("streamed.bin")).unwrap(),
        streamed
    );
    assert_eq!(task.info().bytes_sent(), 600_000);

    // Cleartext FTP needs the policy to allow the host.
    let strict = Session::new(Configuration::ephemeral()).unwrap();
    let err = strict
        .data(server.url("", "/small.bin").as_str())
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        ErrorCode::AppTransportSecurityRequiresSecureConnection
    );
}

#[tokio::test]
async fn a_100_mib_download_cut_and_resumed_with_rest_is_byte_identical() {
    let root = tempfile::tempdir().unwrap();
    let Some(server) = FtpServer::start(root.path()) else {
        return;
    };
    const SIZE: usize = 100 << 20;
    let data = content(SIZE);
    std::fs::write(root.path().join("big.bin"), &data).unwrap();
    let rec = Arc::new(Recorder::new());
    let dir = tempfile::tempdir().unwrap();
    let mut config = cleartext();
    config.session_directory = Some(dir.path().join("session"));
    // Slow enough to be cut in the middle.
    config.maximum_receive_rate_per_task = Some(64 << 20);
    let session = Session::with_delegate(config, rec.clone()).unwrap();
    let task = session
        .download_task(server.url("", "/big.bin").as_str())
        .unwrap();
    task.resume();
    rec.wait_written(WAIT, 20 << 20).await;
    let resume = task
        .cancel_by_producing_resume_data()
        .await
        .expect("resume data");
    let cut = task.info().bytes_received();
    assert!(cut > 0 && (cut as usize) < SIZE, "cut at {cut}");

    let resumed = session.download_task_with_resume_data(&resume).unwrap();
    resumed.resume();
    assert_eq!(
        rec.wait_complete(resumed.info().id(), WAIT).await,
        Some(None)
    );
    let events = rec.events();
    let finished = events
        .iter()
        .find_map(|e| match e {
            Event::Finished { task, size, sha256 } if *task == resumed.info().id() => {
                Some((*size, sha256.clone()))
            }
            _ => None,
        })
        .expect("did_finish_downloading_to");
    assert_eq!(finished, (SIZE as u64, sha256_hex(&data)));
    let offset = events
        .iter()
        .find_map(|e| match e {
            Event::Resumed { task, offset, .. } if *task == resumed.info().id() => Some(*offset),
            _ => None,
        })
        .expect("did_resume_at_offset");
    assert!(offset > 0, "continued, not started over");
    // The server was asked for the rest only.
    assert!(
        server.log().contains(&format!("REST {offset}")),
        "{}",
        server.log()
    );
    session.finish_tasks_and_invalidate();
    check_invariants(&rec.wait_invalid(WAIT).await).unwrap();
}

/// The rate caps hold FTP transfers too, both ways: 100,000 bytes at 2,000 a second cannot move
/// inside a 1 s resource timeout (unpaced, they take milliseconds), and nothing half sent is kept
/// as if complete.
#[tokio::test]
async fn the_rate_caps_hold_ftp_both_ways() {
    let root = tempfile::tempdir().unwrap();
    let Some(server) = FtpServer::start(root.path()) else {
        return;
    };
    let payload = content(100_000);
    std::fs::write(root.path().join("paced.bin"), &payload).unwrap();
    for way in ["receive", "send"] {
        let mut config = cleartext();
        config.timeout_for_resource = Duration::from_secs(1);
        if way == "receive" {
            config.maximum_receive_rate_per_task = Some(2000);
        } else {
            config.maximum_send_rate_per_task = Some(2000);
        }
        let session = Session::new(config).unwrap();
        let moving = async {
            if way == "receive" {
                session
                    .data(server.url("", "/paced.bin").as_str())
                    .await
                    .map(|_| ())
            } else {
                let request =
                    Request::new(http::Method::PUT, &server.url("ann:pw@", "/up-paced.bin"));
                session
                    .upload(request, UploadBody::Bytes(payload.clone().into()))
                    .await
                    .map(|_| ())
            }
        };
        let err = tokio::time::timeout(WAIT, moving)
            .await
            .expect("the resource timeout ends the paced transfer")
            .expect_err(way);
        assert_eq!(err.code(), ErrorCode::TimedOut, "{way}: {err}");
    }
    let stored = std::fs::read(root.path().join("up-paced.bin")).unwrap_or_default();
    assert!(stored.len() < payload.len(), "the paced upload was cut");
}

#[tokio::test]
async fn explicit_ftps_uses_the_sessions_trust() {
    let root = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let Some(server) = FtpServer::start_tls(root.path(), &ca) else {
        return;
    };
    let payload = content(200_000);
    std::fs::write(root.path().join("secret.bin"), &payload).unwrap();
    let mut config = Configuration::ephemeral();
    config.ftp_explicit_tls = true;
    config.trust_pem_certificates(ca.ca_pem.as_bytes()).unwrap();
    let session = Session::new(config).unwrap();
    let url = server
        .url("ann:pw@", "/secret.bin")
        .replace("127.0.0.1", "localhost");
    // No cleartext allowance is needed: everything goes over TLS.
    let (body, _) = session.data(url.as_str()).await.unwrap();
    assert_eq!(body.as_ref(), &payload[..]);

    // Without the CA: refused at the AUTH TLS handshake.
    let mut strict = Configuration::ephemeral();
    strict.ftp_explicit_tls = true;
    let err = Session::new(strict)
        .unwrap()
        .data(url.as_str())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.code(),
            ErrorCode::NetworkConnectionLost
                | ErrorCode::ServerCertificateHasUnknownRoot
                | ErrorCode::ServerCertificateUntrusted
                | ErrorCode::SecureConnectionFailed
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_refused_login_is_a_challenge_for_the_ftp_protection_space() {
    use courier_engine::{AuthChallengeDisposition, Credential, CredentialPersistence};
    let root = tempfile::tempdir().unwrap();
    let Some(server) = FtpServer::start(root.path()) else {
        return;
    };
    std::fs::write(root.path().join("f.txt"), b"for ann").unwrap();
    let ann = Credential::password("ann", "pw", CredentialPersistence::None);
    let rec = Arc::new(Recorder::challenged([
        AuthChallengeDisposition::UseCredential(Some(ann)),
    ]));
    let session = Session::with_delegate(cleartext(), rec.clone()).unwrap();
    let task = session
        .data_task(server.url("ann:wrong@", "/f.txt").as_str())
        .unwrap();
    task.resume();
    assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
    assert_eq!(rec.body(), b"for ann");
    let challenges: Vec<_> = rec
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Challenge {
                method,
                previous_failure_count,
                ..
            } => Some((method, previous_failure_count)),
            _ => None,
        })
        .collect();
    assert_eq!(challenges, vec![("default", 0)]);
    session.finish_tasks_and_invalidate();
    check_invariants(&rec.wait_invalid(WAIT).await).unwrap();
}

/// An `ftp:` URL is fetched with `GET` and stored with a `PUT` that has a body; any other method
/// fails with -1002 before the server is asked anything. A `POST` with a body (a form, `courier
/// get --json`) was stored over the file, and a `DELETE` fetched it.
#[tokio::test]
async fn an_ftp_url_takes_get_or_a_put_with_a_body_only() {
    let root = tempfile::tempdir().unwrap();
    let Some(server) = FtpServer::start(root.path()) else {
        return;
    };
    let kept = content(5_000);
    std::fs::write(root.path().join("kept.bin"), &kept).unwrap();
    let session = Session::new(cleartext()).unwrap();
    let url = server.url("ann:pw@", "/kept.bin");
    let posted = session
        .upload(
            Request::new(http::Method::POST, &url),
            UploadBody::Bytes(bytes::Bytes::from_static(b"{}")),
        )
        .await
        .unwrap_err();
    assert_eq!(posted.code(), ErrorCode::UnsupportedUrl, "{posted}");
    assert!(
        posted.message().contains("not POST with a body"),
        "{posted}"
    );
    let deleted = session
        .data(Request::new(http::Method::DELETE, &url))
        .await
        .unwrap_err();
    assert_eq!(deleted.code(), ErrorCode::UnsupportedUrl, "{deleted}");
    assert_eq!(std::fs::read(root.path().join("kept.bin")).unwrap(), kept);
    // GET fetches it; HEAD its response only, from SIZE and MDTM.
    let (body, response) = session
        .data(Request::new(http::Method::GET, &url))
        .await
        .unwrap();
    assert_eq!(
        (body.as_ref(), response.expected_content_length()),
        (&kept[..], Some(5_000))
    );
    let (body, response) = session
        .data(Request::new(http::Method::HEAD, &url))
        .await
        .unwrap();
    assert_eq!(
        (body.len(), response.expected_content_length()),
        (0, Some(5_000))
    );
    assert!(response.headers().contains_key("last-modified"));
    let missing = server.url("ann:pw@", "/missing.bin");
    let head = session
        .data(Request::new(http::Method::HEAD, &missing))
        .await;
    assert_eq!(head.unwrap_err().code(), ErrorCode::FileDoesNotExist);
}

/// A `Range` on an `ftp:` GET is answered as an HTTP server answers it: the part (`REST` to its
/// first byte, the data connection closed after its last), a 206 with its `Content-Range`; a 416
/// for a range past the end, with nothing retrieved; the whole file for a range this side does
/// not serve. It was ignored: the whole file came with a 200 (curl sends `REST` and stops).
#[tokio::test]
async fn a_range_of_an_ftp_file_comes_as_a_206_and_past_the_end_as_a_416() {
    let root = tempfile::tempdir().unwrap();
    let Some(server) = FtpServer::start(root.path()) else {
        return;
    };
    let file = content(2_000_000);
    std::fs::write(root.path().join("model.bin"), &file).unwrap();
    let session = Session::new(cleartext()).unwrap();
    let url = server.url("", "/model.bin");
    let ranged = |range: &'static str| {
        let mut request = Request::get(&url);
        request
            .headers_mut()
            .insert(http::header::RANGE, http::HeaderValue::from_static(range));
        session.data(request)
    };
    let content_range = |response: &courier_engine::Response| {
        response
            .headers()
            .get(http::header::CONTENT_RANGE)
            .map(|v| v.to_str().unwrap().to_owned())
    };

    for (range, first, last) in [
        ("bytes=100-199", 100, 199),
        ("bytes=-50", 1_999_950, 1_999_999),
        ("bytes=1999990-", 1_999_990, 1_999_999),
        ("bytes=1500000-9999999", 1_500_000, 1_999_999),
    ] {
        let (body, response) = ranged(range).await.unwrap();
        assert_eq!(response.status(), 206, "{range}");
        assert_eq!(body.as_ref(), &file[first..=last], "{range}");
        assert_eq!(
            content_range(&response),
            Some(format!("bytes {first}-{last}/2000000")),
            "{range}"
        );
        assert_eq!(
            response.expected_content_length(),
            Some((last - first + 1) as u64)
        );
    }

    let (body, response) = ranged("bytes=2000000-").await.unwrap();
    assert_eq!(response.status(), 416);
    assert!(body.is_empty());
    assert_eq!(content_range(&response).as_deref(), Some("bytes */2000000"));

    let (body, response) = ranged("bytes=0-1,5-6").await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(body.len(), file.len());
    // Four parts and the whole file; nothing for the 416.
    let log = server.log();
    assert_eq!(log.matches("<- RETR").count(), 5, "{log}");
}
