//! Cookies: set by responses (redirects included), sent back to their host only, under the accept
//! policy; persisted for default sessions, private to an ephemeral one.

use courier_engine::{CleartextPolicy, Configuration, CookieAcceptPolicy, Session};
use courier_tests::TestServer;

fn config() -> Configuration {
    let mut c = Configuration::ephemeral();
    c.cleartext = CleartextPolicy::AllowAll;
    c
}

async fn headers_seen(session: &Session, url: &str) -> String {
    let (body, _) = session.data(url).await.unwrap();
    String::from_utf8_lossy(&body).into_owned()
}

/// The same server under another host name (another cookie domain).
fn as_localhost(url: &str) -> String {
    url.replace("127.0.0.1", "localhost")
}

#[tokio::test]
async fn a_cookie_comes_back_on_the_next_request_and_after_a_redirect() {
    let server = TestServer::http().await;
    let session = Session::new(config()).unwrap();
    session
        .data(server.url("/cookie/a/1").as_str())
        .await
        .unwrap();
    let seen = headers_seen(&session, &server.url("/headers")).await;
    assert!(seen.contains("cookie: a=1"), "{seen}");
    // Set on a redirect, sent on the next hop.
    let seen = headers_seen(&session, &server.url("/cookie/b/2?to=/headers")).await;
    assert!(seen.contains("b=2") && seen.contains("a=1"), "{seen}");
}

#[tokio::test]
async fn cookies_stay_with_their_host() {
    let server = TestServer::http().await;
    let session = Session::new(config()).unwrap();
    session
        .data(server.url("/cookie/secret/s").as_str())
        .await
        .unwrap();
    let elsewhere = headers_seen(&session, &as_localhost(&server.url("/headers"))).await;
    assert!(!elsewhere.contains("cookie"), "{elsewhere}");
    // Across a redirect chain to the other host and back, only the matching host gets it.
    let away = format!("/redirect/302?to={}", as_localhost(&server.url("/headers")));
    let seen = headers_seen(&session, &server.url(&away)).await;
    assert!(!seen.contains("secret"), "{seen}");
}

#[tokio::test]
async fn the_accept_policy_and_should_set_cookies_are_obeyed() {
    let server = TestServer::http().await;
    let mut never = config();
    never.http_cookie_accept_policy = CookieAcceptPolicy::Never;
    let session = Session::new(never).unwrap();
    session
        .data(server.url("/cookie/a/1").as_str())
        .await
        .unwrap();
    assert!(
        !headers_seen(&session, &server.url("/headers"))
            .await
            .contains("cookie")
    );

    let mut off = config();
    off.http_should_set_cookies = false;
    let session = Session::new(off).unwrap();
    session
        .data(server.url("/cookie/a/1").as_str())
        .await
        .unwrap();
    assert!(
        !headers_seen(&session, &server.url("/headers"))
            .await
            .contains("cookie")
    );

    // Only from the main document's domain: a cookie set by another host during a redirect chain
    // that started on 127.0.0.1 is refused, unless the policy is Always.
    let other = as_localhost(&server.url("/cookie/third/party?to=/status/200"));
    let start = server.url(&format!("/redirect/302?to={other}"));
    let strict = Session::new(config()).unwrap();
    strict.data(start.as_str()).await.unwrap();
    let seen = headers_seen(&strict, &as_localhost(&server.url("/headers"))).await;
    assert!(!seen.contains("third"), "{seen}");
    let mut always = config();
    always.http_cookie_accept_policy = CookieAcceptPolicy::Always;
    let lax = Session::new(always).unwrap();
    lax.data(start.as_str()).await.unwrap();
    let seen = headers_seen(&lax, &as_localhost(&server.url("/headers"))).await;
    assert!(seen.contains("third=party"), "{seen}");
}

#[tokio::test]
async fn default_sessions_keep_cookies_across_sessions_and_ephemeral_ones_write_nothing() {
    let server = TestServer::http().await;
    let dir = tempfile::tempdir().unwrap();
    let persistent = courier_tests::default_config_in(&dir.path().join("default"));
    let first = Session::new(persistent.clone()).unwrap();
    first
        .data(server.url("/cookie/kept/yes?max_age=3600").as_str())
        .await
        .unwrap();
    first
        .data(server.url("/cookie/session/only").as_str())
        .await
        .unwrap();
    // The jar is written in the background; invalidation completes once it is on disk.
    first.finish_tasks_and_invalidate();
    first.invalidated().await;
    drop(first);
    assert!(dir.path().join("default").join("cookies.json").exists());
    // A new session on the same directory (a later run of the program) has the persistent cookie;
    // the session cookie ended with its session, as it does when a browser restarts.
    let second = Session::new(persistent).unwrap();
    let seen = headers_seen(&second, &server.url("/headers")).await;
    assert!(seen.contains("kept=yes"), "{seen}");
    assert!(!seen.contains("session=only"), "{seen}");

    let mut ephemeral = config();
    ephemeral.session_directory = Some(dir.path().join("ephemeral"));
    let session = Session::new(ephemeral).unwrap();
    session
        .data(server.url("/cookie/a/1").as_str())
        .await
        .unwrap();
    let written: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(written, ["default"], "the ephemeral session wrote nothing");
}

/// A server cannot grow the jar without bound (curl CVE-2022-32205's class): a 5,000-byte cookie
/// is not kept, a host keeps 50 cookies, and the `Cookie` header stays within 8190 bytes.
#[tokio::test]
async fn curl_cve_2022_32205_a_server_cannot_flood_the_jar() {
    let server = TestServer::http().await;
    let session = Session::new(config()).unwrap();
    let set = |url: String| {
        let session = session.clone();
        async move { session.data(url.as_str()).await.unwrap() }
    };
    set(server.url(&format!("/cookie/huge/{}", "v".repeat(5000)))).await;
    for i in 0..60 {
        set(server.url(&format!("/cookie/c{i}/1"))).await;
    }
    let seen = headers_seen(&session, &server.url("/headers")).await;
    let cookie = seen
        .lines()
        .find_map(|l| l.strip_prefix("cookie: "))
        .expect("cookies sent");
    assert!(!cookie.contains("huge="), "the oversized cookie was kept");
    assert_eq!(cookie.split("; ").count(), 50, "{cookie}");
    assert!(cookie.contains("c0=1") && cookie.contains("c49=1"));
    assert!(!cookie.contains("c50="), "the 51st and later are not kept");

    // Another host, with cookies that together are longer than a header may be.
    let other = as_localhost(&server.url("/"));
    for i in 0..40 {
        set(format!("{other}cookie/big{i}/{}", "x".repeat(300))).await;
    }
    let seen = headers_seen(&session, &format!("{other}headers")).await;
    let cookie = seen
        .lines()
        .find_map(|l| l.strip_prefix("cookie: "))
        .expect("cookies sent");
    assert!(cookie.len() <= 8190, "{}", cookie.len());
    assert!(cookie.split("; ").count() > 20, "as many as fit are sent");
}

/// No writes through planted links (curl CVE-2023-32001, wget CVE-2014-4877): links planted in a
/// session directory under the names of its files are replaced, never written through, and the
/// files they pointed to keep their bytes and permissions.
#[tokio::test]
async fn curl_cve_2023_32001_session_files_are_never_written_through_planted_links() {
    use std::os::unix::fs::PermissionsExt;
    let server = TestServer::http().await;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("session");
    std::fs::create_dir(&dir).unwrap();
    let victim = root.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
    for name in ["cookies.json", "credentials", "resume.key"] {
        std::os::unix::fs::symlink(&victim, dir.join(name)).unwrap();
    }
    let session = Session::new(courier_tests::default_config_in(&dir)).unwrap();
    session
        .data(server.url("/cookie/kept/1?max_age=3600").as_str())
        .await
        .unwrap();
    session.flush().await;
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode(&victim),
        0o644,
        "the user's file keeps its permissions"
    );
    let jar = dir.join("cookies.json");
    assert!(
        !std::fs::symlink_metadata(&jar)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(std::fs::read_to_string(&jar).unwrap().contains("kept"));
    assert_eq!(mode(&jar), 0o600);
}

/// Secrets stay private (curl CVE-2022-32207): a session directory that exists wider than 0700 is
/// tightened, and what the session writes in it (the jar here) is 0600.
#[tokio::test]
async fn curl_cve_2022_32207_a_session_keeps_its_files_private() {
    use std::os::unix::fs::PermissionsExt;
    let server = TestServer::http().await;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("session");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let session = Session::new(courier_tests::default_config_in(&dir)).unwrap();
    session
        .data(server.url("/cookie/kept/1?max_age=3600").as_str())
        .await
        .unwrap();
    session.flush().await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("cookies.json")), 0o600);
}
