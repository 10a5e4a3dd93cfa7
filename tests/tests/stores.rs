//! The stores as public objects (URLSession's `HTTPCookieStorage`, `URLCredentialStorage`,
//! `URLCache`): read, seeded and removed by the application, shared between sessions or turned
//! off, persisted where they were told to be.

use std::os::unix::fs::PermissionsExt;

use courier_engine::reexports::url::Url;
use courier_engine::{
    AuthenticationMethod, CleartextPolicy, Configuration, CookieRefusal, CookieStorage, Credential,
    CredentialPersistence, CredentialStorage, ProtectionSpace, Request, Session, StoreChoice,
    UrlCache,
};
use courier_tests::TestServer;

fn config() -> Configuration {
    let mut c = Configuration::ephemeral();
    c.cleartext = CleartextPolicy::AllowAll;
    c
}

async fn text(session: &Session, url: &str) -> String {
    let (body, _) = session.data(url).await.unwrap();
    String::from_utf8_lossy(&body).into_owned()
}

#[tokio::test]
async fn a_shared_cookie_storage_carries_cookies_between_sessions_and_can_be_read_and_seeded() {
    let server = TestServer::http().await;
    let cookies = CookieStorage::in_memory();
    let mut shared = config();
    shared.http_cookie_storage = StoreChoice::Shared(cookies.clone());
    let first = Session::new(shared.clone()).unwrap();
    let second = Session::new(shared).unwrap();

    text(&first, &server.url("/cookie/a/1")).await;
    let seen = text(&second, &server.url("/headers")).await;
    assert!(
        seen.contains("cookie: a=1"),
        "the other session sends it: {seen}"
    );

    let url = Url::parse(&server.url("/")).unwrap();
    let listed = cookies.cookies_for(&url);
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].name.as_str(), listed[0].value.as_str()),
        ("a", "1")
    );
    assert!(listed[0].host_only && listed[0].expires.is_none());

    // Seeded by the application, under the same rules as a response.
    cookies.set_cookie(&url, "seeded=yes; Path=/").unwrap();
    assert_eq!(
        cookies.set_cookie(&url, "__Host-x=1; Path=/"),
        Err(CookieRefusal::BrokenPrefix),
        "a __Host- cookie must be Secure"
    );
    let seen = text(&first, &server.url("/headers")).await;
    assert!(
        seen.contains("seeded=yes") && seen.contains("a=1"),
        "{seen}"
    );

    assert!(cookies.delete("a", "127.0.0.1", "/"));
    let seen = text(&second, &server.url("/headers")).await;
    assert!(
        !seen.contains("a=1") && seen.contains("seeded=yes"),
        "{seen}"
    );
    cookies.remove_all();
    assert!(cookies.cookies().is_empty());

    // The session hands out the storage it uses.
    let own = Session::new(config()).unwrap();
    text(&own, &server.url("/cookie/mine/2")).await;
    let storage = own.cookie_storage().expect("its own storage");
    assert_eq!(storage.cookies().len(), 1);
    assert!(cookies.cookies().is_empty(), "not the shared one");
}

#[tokio::test]
async fn without_should_set_cookies_nothing_is_sent_but_cookies_are_stored_and_none_keeps_nothing()
{
    let server = TestServer::http().await;
    let mut quiet = config();
    quiet.http_should_set_cookies = false;
    let session = Session::new(quiet).unwrap();
    text(&session, &server.url("/cookie/a/1")).await;
    let seen = text(&session, &server.url("/headers")).await;
    assert!(!seen.contains("cookie"), "{seen}");
    let stored = session.cookie_storage().unwrap().cookies();
    assert_eq!(stored.len(), 1, "URLSession stores them all the same");

    let mut none = config();
    none.http_cookie_storage = StoreChoice::None;
    let session = Session::new(none).unwrap();
    assert!(session.cookie_storage().is_none());
    text(&session, &server.url("/cookie/a/1")).await;
    let seen = text(&session, &server.url("/headers")).await;
    assert!(!seen.contains("cookie"), "{seen}");
}

#[tokio::test]
async fn a_persistent_cookie_storage_comes_back_from_its_directory_private_to_the_user() {
    let server = TestServer::http().await;
    let dir = tempfile::tempdir().unwrap();
    let url = Url::parse(&server.url("/")).unwrap();
    {
        let cookies = CookieStorage::persistent(dir.path());
        let mut c = config();
        c.http_cookie_storage = StoreChoice::Shared(cookies.clone());
        let session = Session::new(c).unwrap();
        // A cookie with an expiry is written; a session cookie is not.
        text(&session, &server.url("/cookie/kept/1?max_age=3600")).await;
        cookies.set_cookie(&url, "forever=1; Max-Age=3600").unwrap();
        session.flush().await;
    }
    let file = dir.path().join("cookies.json");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let again = CookieStorage::persistent(dir.path());
    let names: Vec<String> = again.cookies().into_iter().map(|c| c.name).collect();
    assert!(names.contains(&"forever".to_owned()), "{names:?}");
    assert!(again.cookies().iter().all(|c| c.expires.is_some()));
}

#[tokio::test]
async fn a_seeded_credential_answers_the_first_challenge_until_it_is_removed() {
    let server = TestServer::http().await;
    let credentials = CredentialStorage::in_memory();
    let port = Url::parse(&server.url("/")).unwrap().port().unwrap();
    let space = ProtectionSpace {
        host: "127.0.0.1".into(),
        port,
        protocol: "http".into(),
        realm: Some("basic-realm".into()),
        method: AuthenticationMethod::HttpBasic,
        proxy_type: None,
    };
    credentials.set(
        &space,
        Credential::password("ann", "pw", CredentialPersistence::ForSession),
    );
    let mut c = config();
    c.url_credential_storage = StoreChoice::Shared(credentials.clone());
    let session = Session::new(c).unwrap();
    let (_, response) = session
        .data(server.url("/basic/ann/pw").as_str())
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "answered with the seeded credential"
    );
    assert!(credentials.remove(&space));
    let (_, response) = session
        .data(server.url("/basic/ann/pw").as_str())
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "nothing left to answer with");

    let mut none = config();
    none.url_credential_storage = StoreChoice::None;
    assert!(Session::new(none).unwrap().credential_storage().is_none());
}

#[tokio::test]
async fn a_shared_url_cache_answers_another_session_and_removals_take_effect() {
    let server = TestServer::http().await;
    let cache = UrlCache::new(1 << 20, 0, None);
    let mut c = config();
    c.url_cache = StoreChoice::Shared(cache.clone());
    let first = Session::new(c.clone()).unwrap();
    let second = Session::new(c).unwrap();
    let url = server.url("/cache/max-age/60");

    let stored = text(&first, &url).await;
    assert_eq!(text(&second, &url).await, stored, "from the shared cache");
    let cached = cache
        .cached_response(&Request::get(&url))
        .await
        .expect("stored");
    assert_eq!(String::from_utf8_lossy(&cached.data), stored);
    assert_eq!(cached.response.status(), 200);
    assert!(cache.current_memory_usage() >= stored.len());

    cache.remove_cached_response(&Request::get(&url));
    assert!(cache.cached_response(&Request::get(&url)).await.is_none());
    assert_ne!(text(&second, &url).await, stored, "fetched anew");
    cache.remove_all();
    assert_eq!(cache.current_memory_usage(), 0);

    let mut none = config();
    none.url_cache = StoreChoice::None;
    let session = Session::new(none).unwrap();
    assert!(session.url_cache().is_none());
    assert_ne!(text(&session, &url).await, text(&session, &url).await);
}
