//! Waiting for connectivity, in a network namespace of the test's own: its loopback interface
//! starts down (no network at all), then comes up with a server behind it.
//!
//! The test runs itself again inside the namespace ([`courier_tests::netns`]), where the child half
//! does the work; the parent checks that it passed. Outside a namespace the case cannot be made
//! honestly (every machine has a network).

use std::sync::Arc;
use std::time::Duration;

use courier_engine::{CleartextPolicy, Configuration, ErrorCode, Session};
use courier_tests::{Event, Recorder, check_invariants};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(20);
/// Free in a fresh namespace: nothing else lives there.
const PORT: u16 = 18_444;

#[test]
fn a_task_waits_for_the_network_and_goes_on_when_it_comes_up() {
    if !courier_tests::netns::inside() {
        courier_tests::netns::run_in_new_namespace("in_the_namespace");
    }
}

/// The child half, in a namespace whose only interface (loopback) is down.
#[tokio::test(flavor = "current_thread")]
#[ignore = "runs inside a network namespace, started by the test above"]
async fn in_the_namespace() {
    assert!(courier_tests::netns::inside(), "run by the test above");
    let mut config = Configuration::ephemeral();
    config.cleartext = CleartextPolicy::AllowAll;
    let url = format!("http://127.0.0.1:{PORT}/");

    // Without the option: -1009 at once.
    let session = Session::new(config.clone()).unwrap();
    let error = tokio::time::timeout(WAIT, session.data(url.as_str()))
        .await
        .expect("at once")
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::NotConnectedToInternet, "{error}");

    // With it: the delegate hears of the wait once, and the task goes on when the network does.
    config.wait_for_connectivity = true;
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(config, rec.clone()).unwrap();
    let task = session.data_task(url.as_str()).unwrap();
    task.resume();
    tokio::time::timeout(WAIT, async {
        while !rec
            .events()
            .iter()
            .any(|e| matches!(e, Event::WaitingForConnectivity { .. }))
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("task_is_waiting_for_connectivity");
    // Let it try and fail a few times more.
    tokio::time::sleep(Duration::from_millis(600)).await;
    courier_tests::netns::loopback_up();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", PORT))
        .await
        .unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = tcp.read(&mut buf).await;
            let _ = tcp
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await;
        }
    });
    assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
    assert_eq!(rec.body(), b"ok");
    let events = rec.events();
    check_invariants(&events).unwrap();
    let waits = events
        .iter()
        .filter(|e| matches!(e, Event::WaitingForConnectivity { .. }))
        .count();
    assert_eq!(waits, 1, "told once: {events:?}");
}
