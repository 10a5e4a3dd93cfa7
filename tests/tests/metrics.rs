//! Task metrics: one transaction per request (redirects and authentication retries included),
//! delivered right before the task completes.

use std::sync::Arc;
use std::time::Duration;

use courier_engine::{CleartextPolicy, Configuration, Session};
use courier_tests::{Event, Recorder, TestCa, TestServer, Transaction};

const WAIT: Duration = Duration::from_secs(20);

fn metrics_of(rec: &Recorder, id: u64) -> (u32, Vec<Transaction>) {
    rec.events()
        .into_iter()
        .find_map(|e| match e {
            Event::Metrics {
                task,
                redirect_count,
                transactions,
            } if task == id => Some((redirect_count, transactions)),
            _ => None,
        })
        .expect("did_finish_collecting_metrics")
}

#[tokio::test]
async fn a_redirect_chain_and_an_auth_retry_give_one_transaction_per_request() {
    let server = TestServer::http().await;
    let mut config = Configuration::ephemeral();
    config.cleartext = CleartextPolicy::AllowAll;
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(config, rec.clone()).unwrap();
    let task = session.data_task(server.url("/chain/2").as_str()).unwrap();
    task.resume();
    rec.wait_complete(task.info().id(), WAIT).await;
    let (redirects, t) = metrics_of(&rec, task.info().id());
    assert_eq!(redirects, 2);
    let statuses: Vec<Option<u16>> = t.iter().map(|t| t.status).collect();
    assert_eq!(statuses, [Some(302), Some(302), Some(200)]);
    assert_eq!(t[0].url, server.url("/chain/2"));
    assert_eq!(t[2].url, server.url("/chain/0"));
    assert!(
        t.iter()
            .all(|t| t.protocol == Some("http/1.1") && t.ordered),
        "{t:?}"
    );
    // Metrics come right before the completion (its state change, then did_complete).
    let names: Vec<&str> = rec.events().iter().map(Event::name).collect();
    let at = names.iter().position(|n| *n == "metrics").unwrap();
    assert_eq!(&names[at..at + 3], ["metrics", "state", "complete"]);

    let url = server
        .url("/basic/ann/pw")
        .replace("http://", "http://ann:pw@");
    let task = session.data_task(url.as_str()).unwrap();
    task.resume();
    rec.wait_complete(task.info().id(), WAIT).await;
    let (redirects, t) = metrics_of(&rec, task.info().id());
    assert_eq!(redirects, 0);
    let statuses: Vec<Option<u16>> = t.iter().map(|t| t.status).collect();
    assert_eq!(statuses, [Some(401), Some(200)]);
}

#[tokio::test]
async fn http2_transactions_name_their_protocol_and_reuse_the_connection() {
    let ca = TestCa::new();
    let server = TestServer::https(&ca).await;
    let mut config = Configuration::ephemeral();
    config.extra_root_certificates.push(ca.ca_der.clone());
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(config, rec.clone()).unwrap();
    for _ in 0..2 {
        let task = session
            .data_task(server.url("/bytes/100").as_str())
            .unwrap();
        task.resume();
        rec.wait_complete(task.info().id(), WAIT).await;
    }
    let (_, first) = metrics_of(&rec, 1);
    let (_, second) = metrics_of(&rec, 2);
    assert_eq!(first[0].protocol, Some("h2"));
    assert!(!first[0].reused, "the first request opened the connection");
    assert!(second[0].reused, "the second reused it");
}

#[tokio::test]
async fn a_transaction_names_its_addresses_tls_and_the_bytes_each_way() {
    let ca = TestCa::new();
    let tls = TestServer::https(&ca).await;
    let plain = TestServer::http().await;
    let mut config = Configuration::ephemeral();
    config.cleartext = CleartextPolicy::AllowAll;
    config.extra_root_certificates.push(ca.ca_der.clone());
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(config, rec.clone()).unwrap();
    let fetch = |url: String| {
        let task = session.data_task(url.as_str()).unwrap();
        task.resume();
        task.info().id()
    };

    // HTTPS, a plain body.
    let id = fetch(tls.url("/bytes/100"));
    rec.wait_complete(id, WAIT).await;
    let t = metrics_of(&rec, id).1.remove(0).full;
    assert_eq!(t.tls_protocol_version, Some("TLSv1.3"));
    assert!(
        t.tls_cipher_suite.is_some_and(|s| s.starts_with("TLS13_")),
        "{:?}",
        t.tls_cipher_suite
    );
    let port = courier_engine::reexports::url::Url::parse(&tls.url("/"))
        .unwrap()
        .port()
        .unwrap();
    let remote = t.remote_address.expect("remote");
    assert!(
        remote.ip().is_loopback() && remote.port() == port,
        "{remote}"
    );
    let local = t.local_address.expect("local");
    assert!(local.ip().is_loopback() && local.port() != port, "{local}");
    assert_eq!(
        (
            t.response_body_bytes_received,
            t.response_body_bytes_after_decoding
        ),
        (100, 100)
    );
    assert!(
        t.request_header_bytes_sent > 40 && t.response_header_bytes_received > 15,
        "{t:?}"
    );
    assert_eq!(t.request_body_bytes_sent, 0);
    assert_eq!(
        t.request_end, t.request_start,
        "a GET's head is the whole request"
    );
    assert!(!t.proxy_connection);

    // Cleartext and gzip: fewer bytes came than were delivered.
    let id = fetch(plain.url("/gzip/100000"));
    rec.wait_complete(id, WAIT).await;
    let t = metrics_of(&rec, id).1.remove(0).full;
    assert_eq!(t.tls_protocol_version, None);
    assert_eq!(t.response_body_bytes_after_decoding, 100_000);
    assert!(
        t.response_body_bytes_received > 0 && t.response_body_bytes_received < 100_000,
        "{t:?}"
    );

    // An upload: its body, and when it ended.
    let request = courier_engine::Request::new(
        courier_engine::reexports::http::Method::PUT,
        &plain.url("/sink"),
    );
    let body = courier_engine::UploadBody::Bytes(vec![1u8; 300_000].into());
    let task = session.upload_task(request, body).unwrap();
    task.resume();
    rec.wait_complete(task.info().id(), WAIT).await;
    let t = metrics_of(&rec, task.info().id()).1.remove(0).full;
    assert_eq!(t.request_body_bytes_sent, 300_000);
    let (start, end) = (
        t.request_start.unwrap(),
        t.request_end.expect("request_end"),
    );
    assert!(start <= end && end <= t.response_end.unwrap());
}

#[tokio::test]
async fn the_newest_tls_version_can_be_capped() {
    let ca = TestCa::new();
    let server = TestServer::https(&ca).await;
    let mut config = Configuration::ephemeral();
    config.extra_root_certificates.push(ca.ca_der.clone());
    config.tls_maximum_version = courier_engine::TlsVersion::Tls12;
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(config.clone(), rec.clone()).unwrap();
    let task = session.data_task(server.url("/bytes/10").as_str()).unwrap();
    task.resume();
    assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
    let t = metrics_of(&rec, task.info().id()).1.remove(0).full;
    assert_eq!(t.tls_protocol_version, Some("TLSv1.2"));

    config.tls_minimum_version = courier_engine::TlsVersion::Tls13;
    let refused = Session::new(config).unwrap_err();
    assert!(refused.to_string().contains("TLS"), "{refused}");
}
