//! `Session::reset` and `Session::flush` (URLSession's `reset(completionHandler:)` and
//! `flush(completionHandler:)`): stores emptied, in memory and on disk, and new connections after.

use std::sync::Arc;

use courier_engine::{AuthChallengeDisposition as D, Credential, CredentialPersistence, Session};
use courier_tests::{Recorder, TestServer};

async fn text(session: &Session, url: &str) -> (u16, String) {
    let (body, response) = session.data(url).await.unwrap();
    (
        response.status().as_u16(),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test]
async fn reset_empties_cookies_cache_and_credentials_and_starts_new_connections() {
    let server = TestServer::http().await;
    let dir = tempfile::tempdir().unwrap();
    let permanent = D::UseCredential(Some(Credential::password(
        "ann",
        "pw",
        CredentialPersistence::Permanent,
    )));
    let session = Session::with_delegate(
        courier_tests::default_config_in(dir.path()),
        Arc::new(Recorder::challenged([permanent])),
    )
    .unwrap();

    // Fill every store: a persistent cookie, a fresh cached response, a permanent credential.
    text(&session, &server.url("/cookie/flavour/plum?max_age=600")).await;
    let cached = server.url("/cache/max-age/600");
    let (_, first) = text(&session, &cached).await;
    assert_eq!(
        text(&session, &cached).await.1,
        first,
        "served from the cache"
    );
    assert_eq!(text(&session, &server.url("/basic/ann/pw")).await.0, 200);
    let headers = text(&session, &server.url("/headers")).await.1;
    assert!(headers.contains("cookie: flavour=plum"), "{headers}");
    session.flush().await;
    for kept in ["cookies.json", "credentials", "cache"] {
        assert!(dir.path().join(kept).exists(), "{kept} is on disk");
    }
    // Secrets stay private (curl CVE-2022-32207's class): every file 0600, every directory 0700.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(dir.path()), 0o700, "the session directory");
        assert_eq!(mode(&dir.path().join("cache")), 0o700);
        let cached: Vec<_> = std::fs::read_dir(dir.path().join("cache"))
            .unwrap()
            .collect();
        assert!(!cached.is_empty());
        for entry in cached {
            assert_eq!(mode(&entry.unwrap().path()), 0o600, "a cached response");
        }
        for file in ["cookies.json", "credentials"] {
            assert_eq!(mode(&dir.path().join(file)), 0o600, "{file}");
        }
    }
    let connections = server.connections();

    session.reset().await;

    for gone in ["cookies.json", "credentials", "cache"] {
        assert!(!dir.path().join(gone).exists(), "{gone} is gone from disk");
    }
    let headers = text(&session, &server.url("/headers")).await.1;
    assert!(
        !headers.contains("cookie:"),
        "no cookie after reset: {headers}"
    );
    assert!(
        server.connections() > connections,
        "the request after the reset came on a new connection"
    );
    assert_ne!(text(&session, &cached).await.1, first, "the cache is empty");
    // The credential store is empty: with the delegate's one answer used up, default handling
    // has nothing to offer and the 401 is the response.
    assert_eq!(text(&session, &server.url("/basic/ann/pw")).await.0, 401);

    // A later session on the same directory finds nothing either.
    drop(session);
    let later = Session::new(courier_tests::default_config_in(dir.path())).unwrap();
    assert_eq!(text(&later, &server.url("/basic/ann/pw")).await.0, 401);
    let headers = text(&later, &server.url("/headers")).await.1;
    assert!(!headers.contains("cookie:"), "{headers}");
}

#[tokio::test]
async fn flush_starts_new_connections_and_keeps_the_stores() {
    let server = TestServer::http().await;
    let dir = tempfile::tempdir().unwrap();
    let session = Session::new(courier_tests::default_config_in(dir.path())).unwrap();
    text(&session, &server.url("/cookie/kept/yes")).await;
    text(&session, &server.url("/bytes/10")).await;
    let connections = server.connections();
    text(&session, &server.url("/bytes/10")).await;
    assert_eq!(
        server.connections(),
        connections,
        "kept alive before the flush"
    );

    session.flush().await;

    let headers = text(&session, &server.url("/headers")).await.1;
    assert!(headers.contains("cookie: kept=yes"), "{headers}");
    assert_eq!(
        server.connections(),
        connections + 1,
        "one new connection after the flush"
    );
}
