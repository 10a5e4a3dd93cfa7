//! A proxy's 407 as a challenge (URLSession's proxy protection spaces): for a cleartext request the
//! proxy carries whole and for the `CONNECT` of an `https` request's tunnel, Basic and Digest,
//! answered by the delegate or by default handling from the proxy URL's credentials, and
//! `Proxy-Authorization` never seen by the origin. Against the in-process proxy (Digest, precise
//! logs) and tinyproxy (a real program's Basic).

use std::sync::{Arc, Mutex};

use courier_engine::{
    AuthChallengeDisposition, AuthenticationChallenge, AuthenticationMethod, CleartextPolicy,
    Configuration, Credential, CredentialPersistence, DataDelegate, DownloadDelegate, ErrorCode,
    Proxy, ProxyType, Reply, Session, SessionDelegate, TaskDelegate, TaskInfo,
};
use courier_tests::{ProxyServer, TestCa, TestServer};

/// Answers proxy challenges with `answer` (server challenges with default handling), and keeps
/// every challenge it was asked.
struct ProxyAnswers {
    answer: Option<Credential>,
    asked: Mutex<Vec<AuthenticationChallenge>>,
}

impl ProxyAnswers {
    fn with(answer: Option<Credential>) -> Arc<ProxyAnswers> {
        Arc::new(ProxyAnswers {
            answer,
            asked: Mutex::new(Vec::new()),
        })
    }
}

impl SessionDelegate for ProxyAnswers {}
impl TaskDelegate for ProxyAnswers {
    fn did_receive_challenge(
        &self,
        _task: &TaskInfo,
        challenge: &AuthenticationChallenge,
        reply: Reply<AuthChallengeDisposition>,
    ) {
        self.asked.lock().unwrap().push(challenge.clone());
        if !challenge.protection_space.is_proxy() {
            return reply.send(AuthChallengeDisposition::PerformDefaultHandling);
        }
        reply.send(AuthChallengeDisposition::UseCredential(self.answer.clone()));
    }
}
impl DataDelegate for ProxyAnswers {}
impl DownloadDelegate for ProxyAnswers {}

fn ann() -> Option<Credential> {
    Some(Credential::password(
        "ann",
        "pw",
        CredentialPersistence::None,
    ))
}

fn through(proxy: &str, ca: &TestCa) -> Configuration {
    let mut c = Configuration::ephemeral();
    c.cleartext = CleartextPolicy::AllowAll;
    c.extra_root_certificates.push(ca.ca_der.clone());
    c.proxy = Proxy::Http {
        url: proxy.to_owned(),
        no_proxy: String::new(),
    };
    c
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_proxys_basic_407_is_a_challenge_for_the_delegate_on_both_paths() {
    let ca = TestCa::new();
    let (tls, plain) = (TestServer::https(&ca).await, TestServer::http().await);
    let proxy = ProxyServer::start(Some("ann:pw")).await;
    let delegate = ProxyAnswers::with(ann());
    let session = Session::with_delegate(through(&proxy.url(""), &ca), delegate.clone()).unwrap();

    for (url, kind) in [
        (tls.url("/headers"), ProxyType::Https),
        (plain.url("/headers"), ProxyType::Http),
    ] {
        let (body, response) = session.data(url.as_str()).await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        let seen = String::from_utf8_lossy(&body).to_lowercase();
        assert!(
            !seen.contains("proxy-authorization"),
            "the origin saw: {seen}"
        );
        let challenge = delegate.asked.lock().unwrap().pop().expect("asked");
        let space = &challenge.protection_space;
        assert_eq!(space.proxy_type, Some(kind));
        assert_eq!(
            (space.host.as_str(), space.port),
            ("127.0.0.1", port_of(&proxy.url("")))
        );
        assert_eq!(space.realm.as_deref(), Some("proxy"));
        assert_eq!(space.method, AuthenticationMethod::HttpBasic);
        assert_eq!(challenge.previous_failure_count, 0);
        assert_eq!(
            challenge
                .failure_response
                .as_ref()
                .map(|r| r.status().as_u16()),
            Some(407)
        );
    }
    // Each path: asked once without credentials, then again with the delegate's.
    let asked = proxy.asked();
    let auth: Vec<Option<&str>> = asked.iter().map(|a| a.authorization.as_deref()).collect();
    assert_eq!(
        auth,
        [None, Some("Basic YW5uOnB3"), None, Some("Basic YW5uOnB3")],
        "{asked:?}"
    );
    assert!(asked[0].line.starts_with("CONNECT ") && asked[1].line.starts_with("CONNECT "));
    assert!(asked[2].line.starts_with("GET http://"), "{asked:?}");
}

#[tokio::test]
async fn a_digest_proxy_is_answered_over_connect_and_over_the_whole_request() {
    let ca = TestCa::new();
    let (tls, plain) = (TestServer::https(&ca).await, TestServer::http().await);
    let proxy = ProxyServer::start_digest("ann:pw").await;
    let delegate = ProxyAnswers::with(ann());
    let session = Session::with_delegate(through(&proxy.url(""), &ca), delegate.clone()).unwrap();
    for url in [tls.url("/bytes/1000"), plain.url("/bytes/1000")] {
        let (body, response) = session.data(url.as_str()).await.unwrap();
        assert_eq!(
            (response.status().as_u16(), body.len()),
            (200, 1000),
            "{url}"
        );
    }
    let asked = delegate.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 2, "one challenge per path");
    for challenge in &asked {
        assert_eq!(
            challenge.protection_space.method,
            AuthenticationMethod::HttpDigest
        );
        assert_eq!(
            challenge.protection_space.realm.as_deref(),
            Some("proxy-realm")
        );
    }
    // The proxy checked each digest against its own request line (`CONNECT host:port`, then the
    // absolute URL) before it relayed.
    let answered: Vec<_> = proxy
        .asked()
        .into_iter()
        .filter(|a| a.authorization.is_some())
        .collect();
    assert_eq!(answered.len(), 2, "{answered:?}");
    assert!(
        answered[0]
            .authorization
            .as_deref()
            .unwrap()
            .starts_with("Digest ")
    );
}

#[tokio::test]
async fn default_handling_answers_a_digest_proxy_with_its_urls_credentials_never_the_servers() {
    let ca = TestCa::new();
    let (tls, plain) = (TestServer::https(&ca).await, TestServer::http().await);
    let proxy = ProxyServer::start_digest("ann:pw").await;
    // No delegate: the proxy URL's user and password (sent as Basic first, refused) answer the
    // Digest challenge.
    let session = Session::new(through(&proxy.url("ann:pw@"), &ca)).unwrap();
    for url in [tls.url("/bytes/10"), plain.url("/bytes/10")] {
        let answer = session.data(url.as_str()).await;
        let (_, response) = answer.unwrap_or_else(|e| panic!("{e}: {:?}", proxy.asked()));
        assert_eq!(response.status(), 200, "{url}");
    }

    // A proxy without credentials of its own never gets the request URL's: those are the
    // server's. The cleartext request gets the 407; the tunnel fails as -1004.
    let bare = ProxyServer::start_digest("ann:pw").await;
    let session = Session::new(through(&bare.url(""), &ca)).unwrap();
    let with_user = |url: String| url.replacen("://", "://ann:pw@", 1);
    let (_, response) = session
        .data(with_user(plain.url("/bytes/10")).as_str())
        .await
        .unwrap();
    assert_eq!(response.status(), 407);
    let err = session
        .data(with_user(tls.url("/bytes/10")).as_str())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::CannotConnectToHost, "{err}");
    assert!(
        bare.asked().iter().all(|a| a.authorization.is_none()),
        "{:?}",
        bare.asked()
    );
}

#[tokio::test]
async fn a_delegate_that_refuses_or_cancels_a_tunnels_challenge() {
    let ca = TestCa::new();
    let tls = TestServer::https(&ca).await;
    let proxy = ProxyServer::start(Some("ann:pw")).await;
    let refuses = ProxyAnswers::with(None);
    let session = Session::with_delegate(through(&proxy.url(""), &ca), refuses.clone()).unwrap();
    let err = session
        .data(tls.url("/bytes/10").as_str())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::CannotConnectToHost, "{err}");
    assert!(err.to_string().contains("407"), "{err}");
    assert_eq!(refuses.asked.lock().unwrap().len(), 1);

    // A wrong credential is asked about again, with the failure counted, until the delegate stops.
    struct Wrong(Mutex<Vec<u32>>);
    impl SessionDelegate for Wrong {}
    impl TaskDelegate for Wrong {
        fn did_receive_challenge(
            &self,
            _task: &TaskInfo,
            challenge: &AuthenticationChallenge,
            reply: Reply<AuthChallengeDisposition>,
        ) {
            let mut seen = self.0.lock().unwrap();
            seen.push(challenge.previous_failure_count);
            reply.send(if seen.len() < 3 {
                AuthChallengeDisposition::UseCredential(Some(Credential::password(
                    "ann",
                    "nope",
                    CredentialPersistence::None,
                )))
            } else {
                AuthChallengeDisposition::CancelAuthenticationChallenge
            });
        }
    }
    impl DataDelegate for Wrong {}
    impl DownloadDelegate for Wrong {}
    let wrong = Arc::new(Wrong(Mutex::new(Vec::new())));
    let session = Session::with_delegate(through(&proxy.url(""), &ca), wrong.clone()).unwrap();
    let err = session
        .data(tls.url("/bytes/10").as_str())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Cancelled, "{err}");
    assert_eq!(*wrong.0.lock().unwrap(), [0, 1, 2]);
}

/// tinyproxy, a real proxy program, asking for Basic credentials: the delegate's answer opens
/// the tunnel and carries the cleartext request.
#[tokio::test]
async fn tinyproxys_407_is_answered_by_the_delegate() {
    let Some(proxy) = courier_tests::Tinyproxy::start(Some("ann:pw")) else {
        return;
    };
    let ca = TestCa::new();
    let (tls, plain) = (TestServer::https(&ca).await, TestServer::http().await);
    let delegate = ProxyAnswers::with(ann());
    let session = Session::with_delegate(through(&proxy.url(""), &ca), delegate.clone()).unwrap();
    for url in [tls.url("/headers"), plain.url("/headers")] {
        let (body, response) = session.data(url.as_str()).await.unwrap();
        assert_eq!(response.status(), 200, "{url}: {}", proxy.log());
        let seen = String::from_utf8_lossy(&body).to_lowercase();
        assert!(!seen.contains("proxy-authorization"), "{seen}");
    }
    let kinds: Vec<_> = delegate
        .asked
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.protection_space.proxy_type)
        .collect();
    assert_eq!(kinds, [Some(ProxyType::Https), Some(ProxyType::Http)]);
}
