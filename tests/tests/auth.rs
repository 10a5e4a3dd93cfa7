//! HTTP authentication challenges (spec 1.4, 2.5): Basic and Digest, every disposition, default
//! handling (URL credentials, the credential store), and a loop that always ends.

use std::sync::Arc;
use std::time::Duration;

use courier_engine::reexports::http::Method;
use courier_engine::{
    AuthChallengeDisposition as D, CleartextPolicy, Configuration, Credential,
    CredentialPersistence, ErrorCode, Request, Session, UploadBody,
};
use courier_tests::{Event, Recorder, TestServer, check_invariants};

const WAIT: Duration = Duration::from_secs(20);

fn config() -> Configuration {
    let mut c = Configuration::ephemeral();
    c.cleartext = CleartextPolicy::AllowAll;
    c
}

fn use_password(user: &str, pass: &str) -> D {
    D::UseCredential(Some(Credential::password(
        user,
        pass,
        CredentialPersistence::ForSession,
    )))
}

fn challenges(rec: &Recorder) -> Vec<(&'static str, u32, bool)> {
    rec.events()
        .iter()
        .filter_map(|e| match e {
            Event::Challenge {
                method,
                previous_failure_count,
                proposed,
                ..
            } => Some((*method, *previous_failure_count, *proposed)),
            _ => None,
        })
        .collect()
}

async fn fetch(session: &Session, url: String) -> (u16, String) {
    let (body, response) = session.data(url.as_str()).await.unwrap();
    (
        response.status().as_u16(),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test]
async fn basic_with_a_credential_from_the_delegate() {
    let server = TestServer::http().await;
    let rec = Arc::new(Recorder::challenged([use_password("ann", "pw")]));
    let session = Session::with_delegate(config(), rec.clone()).unwrap();
    let task = session
        .data_task(server.url("/basic/ann/pw").as_str())
        .unwrap();
    task.resume();
    assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
    assert_eq!(task.info().response().unwrap().status(), 200);
    assert_eq!(rec.body(), b"welcome ann");
    assert_eq!(challenges(&rec), [("http_basic", 0, false)]);
    // Exactly one response reached the delegate: the 200, not the 401.
    let events = rec.events();
    check_invariants(&events).unwrap();
    let statuses: Vec<u16> = events
        .iter()
        .filter_map(|e| match e {
            Event::Response { status, .. } => Some(*status),
            _ => None,
        })
        .collect();
    assert_eq!(statuses, [200]);
}

#[tokio::test]
async fn a_refused_credential_is_asked_for_again_with_a_higher_failure_count() {
    let server = TestServer::http().await;
    let rec = Arc::new(Recorder::challenged([
        use_password("ann", "wrong"),
        use_password("ann", "pw"),
    ]));
    let session = Session::with_delegate(config(), rec.clone()).unwrap();
    assert_eq!(
        fetch(&session, server.url("/basic/ann/pw")).await,
        (200, "welcome ann".into())
    );
    let seen: Vec<u32> = challenges(&rec).iter().map(|c| c.1).collect();
    assert_eq!(seen, [0, 1]);
}

#[tokio::test]
async fn digest_md5_and_sha256_are_answered() {
    let server = TestServer::http().await;
    for alg in ["MD5", "SHA-256"] {
        let rec = Arc::new(Recorder::challenged([use_password("bob", "secret")]));
        let session = Session::with_delegate(config(), rec.clone()).unwrap();
        let url = server.url(&format!("/digest/bob/secret?alg={alg}"));
        assert_eq!(
            fetch(&session, url).await,
            (200, "welcome bob".into()),
            "{alg}"
        );
        assert_eq!(challenges(&rec), [("http_digest", 0, false)], "{alg}");
    }
}

#[tokio::test]
async fn default_handling_uses_the_urls_user_and_password_then_delivers_the_401() {
    let server = TestServer::http().await;
    let session = Session::new(config()).unwrap(); // no delegate: default handling
    let with_user = server
        .url("/basic/ann/p%40ss")
        .replace("http://", "http://ann:p%40ss@");
    assert_eq!(
        fetch(&session, with_user).await,
        (200, "welcome ann".into())
    );
    // Without a credential anywhere, the 401 is the response (not an error).
    let (status, body) = fetch(&session, server.url("/basic/carl/x")).await;
    assert_eq!((status, body.as_str()), (401, "who are you?"));
    // A wrong URL credential is tried once, then the 401 is delivered: no loop.
    let wrong = server
        .url("/basic/ann/pw")
        .replace("http://", "http://ann:nope@");
    assert_eq!(fetch(&session, wrong).await.0, 401);
}

#[tokio::test]
async fn an_accepted_credential_is_kept_for_the_session_and_proposed_next_time() {
    let server = TestServer::http().await;
    let rec = Arc::new(Recorder::challenged([use_password("ann", "pw")]));
    let session = Session::with_delegate(config(), rec.clone()).unwrap();
    assert_eq!(fetch(&session, server.url("/basic/ann/pw")).await.0, 200);
    // Second task, same protection space: the delegate now answers with default handling, which
    // proposes (and uses) the stored credential.
    assert_eq!(fetch(&session, server.url("/basic/ann/pw")).await.0, 200);
    assert_eq!(
        challenges(&rec),
        [("http_basic", 0, false), ("http_basic", 0, true)]
    );
    // Another session shares nothing.
    let other = Session::new(config()).unwrap();
    assert_eq!(fetch(&other, server.url("/basic/ann/pw")).await.0, 401);
}

#[tokio::test]
async fn cancel_ends_the_task_with_999() {
    let server = TestServer::http().await;
    let rec = Arc::new(Recorder::challenged([D::CancelAuthenticationChallenge]));
    let session = Session::with_delegate(config(), rec.clone()).unwrap();
    let err = session
        .data(server.url("/basic/ann/pw").as_str())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Cancelled);
}

#[tokio::test]
async fn use_credential_none_delivers_the_401() {
    let server = TestServer::http().await;
    let rec = Arc::new(Recorder::challenged([D::UseCredential(None)]));
    let session = Session::with_delegate(config(), rec.clone()).unwrap();
    assert_eq!(fetch(&session, server.url("/basic/ann/pw")).await.0, 401);
}

#[tokio::test]
async fn rejecting_a_protection_space_tries_the_next_scheme() {
    let server = TestServer::http().await;
    // Digest is offered first (the stronger); rejecting it brings the Basic challenge.
    let rec = Arc::new(Recorder::challenged([
        D::RejectProtectionSpace,
        use_password("ann", "pw"),
    ]));
    let session = Session::with_delegate(config(), rec.clone()).unwrap();
    assert_eq!(
        fetch(&session, server.url("/basic-or-digest/ann/pw")).await,
        (200, "welcome ann".into())
    );
    let methods: Vec<&str> = challenges(&rec).iter().map(|c| c.0).collect();
    assert_eq!(methods, ["http_digest", "http_basic"]);
}

#[tokio::test]
async fn a_401_without_a_challenge_raises_none_and_a_stubborn_delegate_still_ends() {
    let server = TestServer::http().await;
    let wrong: Vec<D> = (0..50).map(|_| use_password("ann", "wrong")).collect();
    let rec = Arc::new(Recorder::challenged(wrong));
    let session = Session::with_delegate(config(), rec.clone()).unwrap();
    assert_eq!(fetch(&session, server.url("/status/401")).await.0, 401);
    assert!(challenges(&rec).is_empty());
    // Always the wrong password: the task still ends, with the 401, after a bounded number of tries.
    assert_eq!(fetch(&session, server.url("/basic/ann/pw")).await.0, 401);
    let tries = challenges(&rec).len();
    assert!((2..=10).contains(&tries), "{tries} challenges");
}

#[tokio::test]
async fn a_stream_upload_is_asked_for_its_body_again_after_a_challenge() {
    let server = TestServer::http().await;
    let rec = Arc::new(Recorder::streaming(&b"authenticated upload"[..]));
    // The streaming recorder answers challenges with default handling: use URL credentials.
    let session = Session::with_delegate(config(), rec.clone()).unwrap();
    let url = server
        .url("/basic/ann/pw")
        .replace("http://", "http://ann:pw@");
    let task = session
        .upload_task(Request::new(Method::PUT, &url), UploadBody::Stream)
        .unwrap();
    task.resume();
    assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
    assert_eq!(task.info().response().unwrap().status(), 200);
    let asked = rec
        .events()
        .iter()
        .filter(|e| matches!(e, Event::NeedBody { .. }))
        .count();
    assert_eq!(asked, 2, "once to start, once for the authenticated resend");
}

#[tokio::test]
async fn permanent_credentials_outlive_a_default_session_and_stay_private() {
    let server = TestServer::http().await;
    let dir = tempfile::tempdir().unwrap();
    let persistent = courier_tests::default_config_in(&dir.path().join("default"));
    let permanent = D::UseCredential(Some(Credential::password(
        "ann",
        "pw",
        CredentialPersistence::Permanent,
    )));
    let first = Session::with_delegate(
        persistent.clone(),
        Arc::new(Recorder::challenged([permanent])),
    )
    .unwrap();
    assert_eq!(fetch(&first, server.url("/basic/ann/pw")).await.0, 200);
    first.flush().await;
    drop(first);
    let file = dir.path().join("default").join("credentials");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "readable by the user only");
    }
    // A later session without a delegate answers from the stored credential.
    let later = Session::new(persistent).unwrap();
    assert_eq!(fetch(&later, server.url("/basic/ann/pw")).await.0, 200);

    // Session-only credentials are never written; an ephemeral session writes nothing.
    let mut ephemeral = config();
    ephemeral.session_directory = Some(dir.path().join("ephemeral"));
    let session = Session::with_delegate(
        ephemeral,
        Arc::new(Recorder::challenged([D::UseCredential(Some(
            Credential::password("ann", "pw", CredentialPersistence::Permanent),
        ))])),
    )
    .unwrap();
    assert_eq!(fetch(&session, server.url("/basic/ann/pw")).await.0, 200);
    assert!(!dir.path().join("ephemeral").exists());
}

/// Credentials follow the origin (curl CVE-2022-27774, CVE-2018-1000007; wget CVE-2021-31879): the
/// user and password in a URL, and what the credential store keeps, answer challenges of their own
/// scheme, host and port only, never those of the origin a redirect leads to.
#[tokio::test]
async fn curl_cve_2022_27774_credentials_follow_the_origin_after_redirects() {
    let (a, b) = (TestServer::http().await, TestServer::http().await);
    let session = Session::new(config()).unwrap();
    let with_user = |url: String| url.replacen("http://", "http://ann:pw@", 1);
    // Same origin: the URL's credential answers.
    let same = with_user(a.url("/redirect/302?to=/basic/ann/pw"));
    assert_eq!(fetch(&session, same).await, (200, "welcome ann".into()));
    // Another port of the same host is another origin: the 401 is delivered.
    let elsewhere = b.url("/basic/ann/pw");
    let cross = with_user(a.url(&format!("/redirect/302?to={elsewhere}")));
    assert_eq!(fetch(&session, cross).await.0, 401);

    // A credential the store keeps for A's protection space is not offered to B's, realm and all.
    let rec = Arc::new(Recorder::challenged([use_password("ann", "pw")]));
    let session = Session::with_delegate(config(), rec.clone()).unwrap();
    assert_eq!(fetch(&session, a.url("/basic/ann/pw")).await.0, 200);
    assert_eq!(
        fetch(&session, a.url("/basic/ann/pw")).await.0,
        200,
        "kept for A"
    );
    assert_eq!(fetch(&session, b.url("/basic/ann/pw")).await.0, 401);
    let proposed_for_b = rec.events().iter().rev().find_map(|e| match e {
        Event::Challenge { proposed, .. } => Some(*proposed),
        _ => None,
    });
    assert_eq!(
        proposed_for_b,
        Some(false),
        "nothing was proposed for the other origin"
    );
}
