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
