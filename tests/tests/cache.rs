//! The URL cache: RFC 9111 freshness and revalidation, the four request cache policies,
//! `will_cache_response`, and where the cache lives (memory; disk for default sessions only).

use std::sync::Arc;
use std::time::Duration;

use courier_engine::{CachePolicy, CleartextPolicy, Configuration, ErrorCode, Request, Session};
use courier_tests::{Event, Recorder, TestServer};

const WAIT: Duration = Duration::from_secs(20);

fn config() -> Configuration {
    let mut c = Configuration::ephemeral();
    c.cleartext = CleartextPolicy::AllowAll;
    c
}

async fn body(session: &Session, request: impl Into<Request>) -> String {
    let (body, _) = session.data(request).await.unwrap();
    String::from_utf8_lossy(&body).into_owned()
}

fn with_policy(url: &str, policy: CachePolicy) -> Request {
    let mut r = Request::get(url);
    r.set_cache_policy(policy);
    r
}

#[tokio::test]
async fn a_fresh_response_comes_from_the_cache_and_no_store_never_does() {
    let server = TestServer::http().await;
    let session = Session::new(config()).unwrap();
    let fresh = server.url("/cache/max-age/60");
    let first = body(&session, fresh.as_str()).await;
    let (again, response) = session.data(fresh.as_str()).await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&again),
        first,
        "served from the cache"
    );
    assert_http_date(&response);
    let never = server.url("/cache/no-store");
    let a = body(&session, never.as_str()).await;
    assert_ne!(
        body(&session, never.as_str()).await,
        a,
        "no-store is never cached"
    );
}

#[tokio::test]
async fn a_stale_response_is_revalidated_and_a_304_is_answered_from_the_cache() {
    let server = TestServer::http().await;
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(config(), rec.clone()).unwrap();
    let url = server.url("/cache/revalidate");
    let first = body(&session, url.as_str()).await;
    let (again, response) = session.data(url.as_str()).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&again), first, "the cached body");
    // Every 200 from the server has a new body: the same one means the 304 was answered from the
    // cache, as the stored 200.
    assert_eq!(response.status(), 200, "the stored response, not the 304");
    assert_http_date(&response);
}

/// A 304 without the validator the stored response has (Python's `http.server` sends one with
/// only `Date` and `Server`) still answers the cache's revalidation with the stored 200: it
/// answered with the 304's status and fields over the stored body.
#[tokio::test]
async fn a_304_without_validators_is_answered_with_the_stored_response() {
    let server = TestServer::http().await;
    let session = Session::new(config()).unwrap();
    let url = server.url("/cache/revalidate-bare");
    let (first, stored) = session.data(url.as_str()).await.unwrap();
    let (again, response) = session.data(url.as_str()).await.unwrap();
    assert_eq!(again, first, "the cached body");
    assert_eq!(response.status(), 200, "the stored response, not the 304");
    assert_eq!(response.headers()["etag"], stored.headers()["etag"]);
    assert_eq!(
        response.headers()["content-length"],
        first.len().to_string().as_str()
    );
}

/// A response served from the cache carries a `Date` in HTTP's own form (RFC 9110's IMF-fixdate,
/// `... GMT`), as a server's, not RFC 2822's (`... +0000`).
fn assert_http_date(response: &courier_engine::Response) {
    let date = response.headers()["date"].to_str().unwrap();
    assert!(
        httpdate::parse_http_date(date).is_ok(),
        "not an HTTP date: {date}"
    );
}

#[tokio::test]
async fn the_four_cache_policies() {
    let server = TestServer::http().await;
    let session = Session::new(config()).unwrap();
    let url = server.url("/cache/max-age/60");
    // Nothing cached yet: "return cache data, don't load" fails with -2000.
    let err = session
        .data(with_policy(&url, CachePolicy::ReturnCacheDataDontLoad))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::CannotLoadFromNetwork);
    let first = body(
        &session,
        with_policy(&url, CachePolicy::UseProtocolCachePolicy),
    )
    .await;
    let reloaded = body(
        &session,
        with_policy(&url, CachePolicy::ReloadIgnoringLocalCacheData),
    )
    .await;
    assert_ne!(reloaded, first, "reload goes to the network");
    // The reload's response was stored: the cache-first policies return it.
    assert_eq!(
        body(
            &session,
            with_policy(&url, CachePolicy::ReturnCacheDataElseLoad)
        )
        .await,
        reloaded
    );
    assert_eq!(
        body(
            &session,
            with_policy(&url, CachePolicy::ReturnCacheDataDontLoad)
        )
        .await,
        reloaded
    );
    // "Else load" loads what is not cached.
    let other = server.url("/cache/max-age/61");
    assert!(
        body(
            &session,
            with_policy(&other, CachePolicy::ReturnCacheDataElseLoad)
        )
        .await
        .starts_with("token")
    );
    // The configuration's policy applies to requests without one.
    let mut reload_all = config();
    reload_all.request_cache_policy = CachePolicy::ReloadIgnoringLocalCacheData;
    let session = Session::new(reload_all).unwrap();
    let a = body(&session, url.as_str()).await;
    assert_ne!(body(&session, url.as_str()).await, a);
}

#[tokio::test]
async fn a_cache_with_no_room_keeps_nothing_and_serves_nothing() {
    let server = TestServer::http().await;
    let mut c = config();
    c.url_cache_memory_capacity = 0;
    let session = Session::new(c).unwrap();
    let cache = session
        .url_cache()
        .expect("the session still has its cache");
    let url = server.url("/cache/max-age/60");
    let a = body(&session, url.as_str()).await;
    assert_ne!(
        body(&session, url.as_str()).await,
        a,
        "each GET went to the network"
    );
    assert_eq!(cache.current_memory_usage(), 0);
    // Cache-first policies find nothing: the one that may not load fails as for an empty cache.
    let err = session
        .data(with_policy(&url, CachePolicy::ReturnCacheDataDontLoad))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::CannotLoadFromNetwork);
    assert_ne!(
        body(
            &session,
            with_policy(&url, CachePolicy::ReturnCacheDataElseLoad)
        )
        .await,
        a
    );
}

#[tokio::test]
async fn will_cache_response_is_asked_and_can_refuse() {
    let server = TestServer::http().await;
    let url = server.url("/cache/max-age/60");
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(config(), rec.clone()).unwrap();
    let task = session.data_task(url.as_str()).unwrap();
    task.resume();
    rec.wait_complete(task.info().id(), WAIT).await;
    let names: Vec<&str> = rec.events().iter().map(Event::name).collect();
    let at = names
        .iter()
        .position(|n| *n == "will_cache")
        .expect("asked");
    assert!(names[..at].contains(&"data") && names[at..].contains(&"complete"));
    // The cached answer: no network, metrics say local cache, and no second will_cache.
    let again = session.data_task(url.as_str()).unwrap();
    again.resume();
    rec.wait_complete(again.info().id(), WAIT).await;
    let asked = rec
        .events()
        .iter()
        .filter(|e| matches!(e, Event::WillCache { .. }))
        .count();
    assert_eq!(asked, 1);

    let refusing = Arc::new(Recorder::refusing_cache());
    let session = Session::with_delegate(config(), refusing.clone()).unwrap();
    let a = body(&session, url.as_str()).await;
    assert_ne!(body(&session, url.as_str()).await, a, "refused: not cached");
}

#[tokio::test]
async fn default_sessions_cache_on_disk_and_ephemeral_ones_in_memory_only() {
    let server = TestServer::http().await;
    let url = server.url("/cache/max-age/600");
    let dir = tempfile::tempdir().unwrap();
    let persistent = courier_tests::default_config_in(&dir.path().join("default"));
    let session = Session::new(persistent.clone()).unwrap();
    let first = body(&session, url.as_str()).await;
    // Stores are written in the background; `flush` returns once they are on disk.
    session.flush().await;
    assert!(dir.path().join("default").join("cache").is_dir());
    // A later session on the same directory answers from the disk cache.
    let later = Session::new(persistent).unwrap();
    assert_eq!(
        body(
            &later,
            with_policy(&url, CachePolicy::ReturnCacheDataDontLoad)
        )
        .await,
        first
    );

    let mut ephemeral = config();
    ephemeral.session_directory = Some(dir.path().join("ephemeral"));
    let session = Session::new(ephemeral).unwrap();
    let a = body(&session, url.as_str()).await;
    assert_eq!(body(&session, url.as_str()).await, a, "cached in memory");
    assert!(!dir.path().join("ephemeral").exists(), "nothing written");
}

/// Default sessions alive at once on one directory share its disk cache: a response one stores is
/// answered by the other from the disk (its memory never held it), and either's `flush` waits for
/// the stores to that directory. The same holds across processes only for a session made after the
/// store: a session reads the directory's files once.
#[tokio::test]
async fn default_sessions_on_one_directory_share_its_disk_cache_at_once() {
    let server = TestServer::http().await;
    let url = server.url("/cache/max-age/600");
    let dir = tempfile::tempdir().unwrap();
    let persistent = courier_tests::default_config_in(&dir.path().join("default"));
    let (one, other) = (
        Session::new(persistent.clone()).unwrap(),
        Session::new(persistent).unwrap(),
    );
    // The other has read the (empty) directory before the store.
    let miss = other
        .data(with_policy(
            &server.url("/bytes/1"),
            CachePolicy::ReturnCacheDataDontLoad,
        ))
        .await;
    assert_eq!(
        miss.map(|_| ()).map_err(|e| e.code()),
        Err(ErrorCode::CannotLoadFromNetwork)
    );
    let first = body(&one, url.as_str()).await;
    other.flush().await;
    let names: Vec<_> = std::fs::read_dir(dir.path().join("default").join("cache"))
        .unwrap()
        .collect();
    assert_eq!(names.len(), 1, "on disk once the other's flush returned");
    assert_eq!(
        body(
            &other,
            with_policy(&url, CachePolicy::ReturnCacheDataDontLoad)
        )
        .await,
        first
    );
}

/// A request for part of a resource (`Range`) is not answered with the whole one the cache keeps:
/// it goes to the server, which answers 206 with those bytes. (`/resource/N` is fresh for years by
/// its `Last-Modified`: the whole one is kept, and was served, 200 and all, to the range.)
#[tokio::test]
async fn a_range_request_is_not_answered_with_the_whole_cached_response() {
    let server = TestServer::http().await;
    let session = Session::new(config()).unwrap();
    let url = server.url("/resource/1000");
    let (whole, _) = session.data(url.as_str()).await.unwrap();
    assert_eq!(whole.len(), 1000);
    let mut ranged = Request::get(url.as_str());
    ranged.headers_mut().insert(
        http::header::RANGE,
        http::HeaderValue::from_static("bytes=10-"),
    );
    let (part, response) = session.data(ranged).await.unwrap();
    assert_eq!(response.status(), 206);
    assert_eq!(&part[..], &whole[10..]);
    let (again, response) = session
        .data(with_policy(&url, CachePolicy::ReturnCacheDataDontLoad))
        .await
        .unwrap();
    assert_eq!(
        (response.status().as_u16(), again.len()),
        (200, 1000),
        "still kept whole"
    );
}

/// A request with conditions of its own goes to the server, whose answer is delivered as it is:
/// a 304 says the copy its sender holds is current. (A fresh stored 200 was served instead,
/// without asking the server, and a stored one being revalidated hid the 304.) A 304 leaves the
/// stored response for requests without conditions.
#[tokio::test]
async fn a_request_with_its_own_conditions_gets_the_servers_answer() {
    let server = TestServer::http().await;
    let session = Session::new(config()).unwrap();
    let conditional = |url: &str, etag: &'static str| {
        let mut r = Request::get(url);
        r.headers_mut().insert(
            http::header::IF_NONE_MATCH,
            http::HeaderValue::from_static(etag),
        );
        r
    };
    let fresh = server.url("/cache/max-age/60");
    let stored = body(&session, fresh.as_str()).await;
    // Every answer of the route has a new body: another one came from the server, a full
    // response, which takes the stored one's place.
    let newer = body(&session, conditional(&fresh, "\"m1\"")).await;
    assert_ne!(newer, stored);
    assert_eq!(
        body(&session, fresh.as_str()).await,
        newer,
        "stored in its place"
    );
    let revalidated = server.url("/cache/revalidate");
    let stored = body(&session, revalidated.as_str()).await;
    let (empty, response) = session
        .data(conditional(&revalidated, "\"r1\""))
        .await
        .unwrap();
    assert_eq!((response.status().as_u16(), empty.len()), (304, 0));
    assert_eq!(response.headers()["x-revalidated"], "yes");
    let (again, response) = session.data(revalidated.as_str()).await.unwrap();
    assert_eq!(
        (response.status().as_u16(), String::from_utf8_lossy(&again)),
        (200, stored.into()),
        "still stored"
    );
}

/// A response the cache serves says the HTTP version it came over: HTTP/2 here, not the
/// HTTP/1.1 the freshness policy's parts carry.
#[tokio::test]
async fn a_cached_response_keeps_the_version_it_came_over() {
    let ca = courier_tests::TestCa::new();
    let server = TestServer::https(&ca).await;
    let mut config = Configuration::ephemeral();
    config.extra_root_certificates.push(ca.ca_der.clone());
    let session = Session::new(config).unwrap();
    let url = server.url("/cache/max-age/60");
    let (first, network) = session.data(url.as_str()).await.unwrap();
    let (again, cached) = session.data(url.as_str()).await.unwrap();
    assert_eq!(again, first, "served from the cache");
    assert_eq!(
        network.version(),
        courier_engine::reexports::http::Version::HTTP_2
    );
    assert_eq!(cached.version(), network.version());
    assert_http_date(&cached);

    // So does one a later session reads from the disk (its memory never held it).
    let dir = tempfile::tempdir().unwrap();
    let mut persistent = courier_tests::default_config_in(dir.path());
    persistent.extra_root_certificates.push(ca.ca_der.clone());
    let session = Session::new(persistent.clone()).unwrap();
    let (stored, _) = session.data(url.as_str()).await.unwrap();
    session.flush().await;
    let later = Session::new(persistent).unwrap();
    let from_disk = with_policy(&url, CachePolicy::ReturnCacheDataDontLoad);
    let (body, response) = later.data(from_disk).await.unwrap();
    assert_eq!(body, stored);
    assert_eq!(
        response.version(),
        courier_engine::reexports::http::Version::HTTP_2
    );
}
