//! `--wait-for-connectivity` from outside: `courier get` in a network namespace whose loopback is
//! down fails at once with -1009 without the option, and with it waits (one
//! `task_is_waiting_for_connectivity` event), then fetches the body once loopback comes up.

mod common;

use std::time::{Duration, Instant};

use common::*;
use courier_tests::TestServer;
use courier_tests::netns;
use courier_tests::server::pattern_bytes;

#[test]
fn get_waits_for_the_network_with_wait_for_connectivity() {
    if !netns::inside() {
        netns::run_in_new_namespace("in_the_namespace");
    }
}

/// The child half, in a namespace whose only interface (loopback) is down. The server listens
/// there already (a socket binds on a down interface); nothing reaches it until loopback is up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs inside a network namespace, started by the test above"]
async fn in_the_namespace() {
    assert!(netns::inside(), "run by the test above");
    let server = TestServer::http().await;
    let url = server.url("/bytes/5000");
    let dir = tempfile::tempdir().unwrap();
    let (log, body) = (dir.path().join("events"), dir.path().join("body"));
    let (at_once, waited) = tokio::task::spawn_blocking(move || {
        let at_once = courier(&["get", "--allow-http", "-q", "--events", "-", &url]);
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_courier"))
            .args(["get", "--allow-http", "-q", "--wait-for-connectivity"])
            .args(["--timeout-resource", "60", "--events"])
            .arg(&log)
            .arg("-o")
            .arg(&body)
            .arg(&url)
            .env("XDG_DATA_HOME", data_home())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("task_is_waiting_for_connectivity")
        {
            assert!(Instant::now() < deadline, "no waiting event");
            std::thread::sleep(Duration::from_millis(10));
        }
        netns::loopback_up();
        let status = child.wait().unwrap();
        let events: Vec<serde_json::Value> = std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(status.success(), "{events:?}");
        assert_eq!(std::fs::read(&body).unwrap(), pattern_bytes(0, 5000));
        (at_once, events)
    })
    .await
    .unwrap();
    // Without the option: at once, -1009.
    assert!(!at_once.status.success());
    let ev = stderr_events(&at_once);
    let complete = ev.iter().find(|e| e["event"] == "did_complete").unwrap();
    assert_eq!(complete["error"]["code"], "not_connected_to_internet");
    assert!(!names(&ev).contains(&"task_is_waiting_for_connectivity".to_owned()));
    // With it: told once, before the response, which then came.
    check_stream(&waited);
    let n = names(&waited);
    let told: Vec<usize> = (0..n.len())
        .filter(|&i| n[i] == "task_is_waiting_for_connectivity")
        .collect();
    assert_eq!(told.len(), 1, "{n:?}");
    let response = n.iter().position(|e| e == "did_receive_response").unwrap();
    assert!(told[0] < response, "{n:?}");
    let complete = waited
        .iter()
        .find(|e| e["event"] == "did_complete")
        .unwrap();
    assert_eq!(complete["error"], serde_json::Value::Null);
    assert_eq!(complete["status"], 200);
}
