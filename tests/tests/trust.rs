//! The session-level server-trust challenge: default handling verifies against the roots; a delegate
//! can trust a server itself (a pin, a private CA), refuse one, or cancel.

use std::sync::Arc;

use courier_engine::{Configuration, ErrorCode, Session};
use courier_tests::{Event, Leaf, Recorder, TestCa, TestServer, TrustAnswer};

fn trust_challenges(rec: &Recorder) -> Vec<(String, usize)> {
    rec.events()
        .into_iter()
        .filter_map(|e| match e {
            Event::SessionChallenge {
                method: "server_trust",
                host,
                chain_len,
            } => Some((host, chain_len)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn default_handling_verifies_against_the_roots_and_asks_once_per_connection() {
    let ca = TestCa::new();
    let server = TestServer::https(&ca).await;
    let rec = Arc::new(Recorder::new());
    // Unknown CA: refused as before, now after asking the delegate.
    let session = Session::with_delegate(Configuration::ephemeral(), rec.clone()).unwrap();
    let err = session.data(server.url("/").as_str()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::ServerCertificateHasUnknownRoot);
    assert_eq!(trust_challenges(&rec), [("localhost".to_owned(), 1)]);
    // Trusted CA: accepted; two requests share the connection, so one challenge.
    let rec = Arc::new(Recorder::new());
    let mut config = Configuration::ephemeral();
    config.extra_root_certificates.push(ca.ca_der.clone());
    let session = Session::with_delegate(config, rec.clone()).unwrap();
    for _ in 0..2 {
        assert!(session.data(server.url("/").as_str()).await.is_ok());
    }
    assert_eq!(trust_challenges(&rec).len(), 1);
}

#[tokio::test]
async fn standard_verification_still_names_each_failure() {
    for (leaf, code) in [
        (Leaf::Expired, ErrorCode::ServerCertificateHasBadDate),
        (Leaf::NotYetValid, ErrorCode::ServerCertificateNotYetValid),
        (Leaf::OtherHost, ErrorCode::ServerCertificateUntrusted),
    ] {
        let ca = TestCa::with_leaf(leaf);
        let server = TestServer::https(&ca).await;
        let mut config = Configuration::ephemeral();
        config.extra_root_certificates.push(ca.ca_der.clone());
        let session = Session::with_delegate(config, Arc::new(Recorder::new())).unwrap();
        let err = session.data(server.url("/").as_str()).await.unwrap_err();
        assert_eq!(err.code(), code, "{leaf:?}");
        if leaf == Leaf::OtherHost {
            // Which name was wanted, and which the certificate covers.
            assert!(
                err.message().contains("not valid for this host")
                    && err.message().contains("localhost"),
                "{err}"
            );
        }
    }
}

#[tokio::test]
async fn the_delegate_can_trust_refuse_or_cancel() {
    let ca = TestCa::new();
    let server = TestServer::https(&ca).await;
    // Trusting a server the roots do not know (a private CA the application checks itself).
    let trusting = Session::with_delegate(
        Configuration::ephemeral(),
        Arc::new(Recorder::with_server_trust(TrustAnswer::TrustAll)),
    )
    .unwrap();
    let (body, _) = trusting
        .data(server.url("/bytes/10").as_str())
        .await
        .unwrap();
    assert_eq!(body.len(), 10);

    // Refusing a server the roots do know.
    let mut config = Configuration::ephemeral();
    config.extra_root_certificates.push(ca.ca_der.clone());
    let refusing = Session::with_delegate(
        config.clone(),
        Arc::new(Recorder::with_server_trust(TrustAnswer::Refuse)),
    )
    .unwrap();
    let err = refusing.data(server.url("/").as_str()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::ServerCertificateUntrusted);

    let cancelling = Session::with_delegate(
        config,
        Arc::new(Recorder::with_server_trust(TrustAnswer::Cancel)),
    )
    .unwrap();
    let err = cancelling.data(server.url("/").as_str()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Cancelled);

    // The trusting session's decision is its own: another session still refuses the server.
    let other =
        Session::with_delegate(Configuration::ephemeral(), Arc::new(Recorder::new())).unwrap();
    let err = other.data(server.url("/").as_str()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::ServerCertificateHasUnknownRoot);
}

#[tokio::test]
async fn a_server_that_requires_a_client_certificate_gets_the_delegates_identity() {
    let ca = TestCa::new();
    let server = TestServer::https_requiring_client_cert(&ca).await;
    let mut config = Configuration::ephemeral();
    config.extra_root_certificates.push(ca.ca_der.clone());

    // Without an identity: the server refuses, named as URLSession names it.
    let bare = Session::new(config.clone()).unwrap();
    let err = bare
        .data(server.url("/bytes/3").as_str())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ClientCertificateRequired, "{err}");

    // With one: the delegate is asked once per host, and the connection is made again with it.
    let rec = Arc::new(Recorder::with_identity(ca.client_identity()));
    let session = Session::with_delegate(config.clone(), rec.clone()).unwrap();
    for _ in 0..2 {
        let (body, _) = session.data(server.url("/bytes/3").as_str()).await.unwrap();
        assert_eq!(body.len(), 3);
    }
    let asked = rec
        .events()
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::SessionChallenge {
                    method: "client_certificate",
                    ..
                }
            )
        })
        .count();
    assert_eq!(asked, 1);
    // As URLSession asks: the server's trust once, then the identity. (The connection made again
    // with the identity shows the same chain, which is not put to the delegate again.)
    let challenges: Vec<&str> = rec
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::SessionChallenge { method, .. } => Some(*method),
            _ => None,
        })
        .collect();
    assert_eq!(challenges, ["server_trust", "client_certificate"]);

    // An identity from another CA is rejected.
    let stranger = TestCa::new();
    let rec = Arc::new(Recorder::with_identity(stranger.client_identity()));
    let session = Session::with_delegate(config, rec).unwrap();
    let err = session
        .data(server.url("/bytes/3").as_str())
        .await
        .unwrap_err();
    // Under TLS 1.3 a server judges the client's certificate after the handshake; its alert can be
    // lost to the connection's reset, and the request then only sees the connection go. The
    // transport names it as a rejection when it can tell (an alert, or a close before any byte
    // right after presenting a certificate); otherwise it is a lost connection.
    assert!(
        matches!(
            err.code(),
            ErrorCode::ClientCertificateRejected | ErrorCode::NetworkConnectionLost
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_server_below_the_minimum_tls_version_or_not_speaking_tls_is_refused_saying_why() {
    let ca = TestCa::new();
    let old = TestServer::https_tls12_only(&ca).await;
    let mut config = courier_engine::Configuration::ephemeral();
    config.extra_root_certificates.push(ca.ca_der.clone());
    let url = old.url("/bytes/10");
    let (body, _) = courier_engine::Session::new(config.clone())
        .unwrap()
        .data(url.as_str())
        .await
        .unwrap();
    assert_eq!(body.len(), 10, "TLS 1.2 is accepted by default");

    config.tls_minimum_version = courier_engine::TlsVersion::Tls13;
    let err = courier_engine::Session::new(config)
        .unwrap()
        .data(url.as_str())
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        courier_engine::ErrorCode::SecureConnectionFailed,
        "{err}"
    );
    assert!(
        err.message().contains("no TLS version the session allows"),
        "says why: {err}"
    );

    // `https` to a port that speaks plain HTTP: said so, not only that the handshake failed.
    let plain = TestServer::http().await;
    let url = plain.url("/bytes/10").replace("http://", "https://");
    let err = courier_engine::Session::new(courier_engine::Configuration::ephemeral())
        .unwrap()
        .data(url.as_str())
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        courier_engine::ErrorCode::SecureConnectionFailed,
        "{err}"
    );
    assert!(err.message().contains("not TLS"), "says why: {err}");
}

/// Trust overrides do not persist (Chromium's rule; curl CVE-2021-22924's class): over a connection
/// the delegate trusted although standard verification refuses it, responses are not cached and
/// cookies last for the session only. The same server behind a trusted root is cached and its
/// cookies saved.
#[tokio::test]
async fn curl_cve_2021_22924_what_comes_over_an_overridden_trust_does_not_outlive_the_session() {
    let ca = TestCa::new();
    let server = TestServer::https(&ca).await;
    for verified in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = courier_tests::default_config_in(dir.path());
        if verified {
            config.extra_root_certificates.push(ca.ca_der.clone());
        }
        let rec = Arc::new(Recorder::with_server_trust(TrustAnswer::TrustAll));
        let session = Session::with_delegate(config, rec.clone()).unwrap();
        let fetch = |path: &'static str| {
            let (session, url) = (session.clone(), server.url(path));
            async move {
                let (body, _) = session.data(url.as_str()).await.unwrap();
                String::from_utf8_lossy(&body).into_owned()
            }
        };
        let first = fetch("/cache/max-age/60").await;
        let again = fetch("/cache/max-age/60").await;
        assert_eq!(first == again, verified, "cached only when verified");
        fetch("/cookie/kept/1?max_age=3600").await;
        let seen = fetch("/headers").await;
        assert!(seen.contains("kept=1"), "sent within the session: {seen}");
        session.finish_tasks_and_invalidate();
        session.invalidated().await;
        let saved = std::fs::read_to_string(dir.path().join("cookies.json")).unwrap_or_default();
        assert_eq!(
            saved.contains("kept"),
            verified,
            "saved only when verified: {saved}"
        );
        let cache_files = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("cache"))
            .count();
        assert_eq!(
            cache_files > 0,
            verified,
            "nothing on disk from an override"
        );
    }
}

/// The usual self-signed certificate (`openssl req -x509`) says it is a CA, and webpki alone refuses
/// a CA's certificate as a server's. Given as a root, it is trusted as URLSession (anchor
/// certificates) and `curl --cacert` trust it: for its names, while in date, with a delegate's
/// default handling as without a delegate. Not given, or given another, it is refused as before.
#[tokio::test]
async fn a_self_signed_ca_certificate_given_as_a_root_is_trusted_for_its_names_while_in_date() {
    for with_delegate in [false, true] {
        let session_trusting = |roots: Vec<rustls::pki_types::CertificateDer<'static>>| {
            let mut config = Configuration::ephemeral();
            config.extra_root_certificates = roots;
            match with_delegate {
                true => Session::with_delegate(config, Arc::new(Recorder::new())).unwrap(),
                false => Session::new(config).unwrap(),
            }
        };
        let ca = TestCa::self_signed(Leaf::Valid);
        let server = TestServer::https(&ca).await;
        for url in [
            server.url("/bytes/10"),
            server.url("/bytes/10").replace("localhost", "127.0.0.1"),
        ] {
            let (body, _) = session_trusting(vec![ca.ca_der.clone()])
                .data(url.as_str())
                .await
                .unwrap_or_else(|e| panic!("{url} (delegate: {with_delegate}): {e}"));
            assert_eq!(body.len(), 10);
        }

        // Not given, or another self-signed certificate given: refused, saying what it is.
        let other = TestCa::self_signed(Leaf::Valid);
        for roots in [vec![], vec![other.ca_der.clone()]] {
            let err = session_trusting(roots)
                .data(server.url("/").as_str())
                .await
                .unwrap_err();
            assert_eq!(err.code(), ErrorCode::ServerCertificateUntrusted, "{err}");
            assert!(err.message().contains("a CA's, not a server's"), "{err}");
        }

        // Given, but out of date or for another name: refused as any server certificate is.
        for (leaf, code) in [
            (Leaf::Expired, ErrorCode::ServerCertificateHasBadDate),
            (Leaf::NotYetValid, ErrorCode::ServerCertificateNotYetValid),
            (Leaf::OtherHost, ErrorCode::ServerCertificateUntrusted),
        ] {
            let ca = TestCa::self_signed(leaf);
            let server = TestServer::https(&ca).await;
            let err = session_trusting(vec![ca.ca_der.clone()])
                .data(server.url("/").as_str())
                .await
                .unwrap_err();
            assert_eq!(
                err.code(),
                code,
                "{leaf:?} (delegate: {with_delegate}): {err}"
            );
        }
    }
}
