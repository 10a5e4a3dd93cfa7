//! `Session::bytes`: the response as soon as its head is in, the body read as it arrives, with
//! backpressure, errors part-way, and cancellation when the reader lets go.

use std::time::Duration;

use courier_engine::{CleartextPolicy, Configuration, ErrorCode, Session, TaskState};
use courier_tests::server::pattern_bytes;
use courier_tests::{Fault, FaultServer, TestServer};

const WAIT: Duration = Duration::from_secs(20);

fn session() -> Session {
    let mut c = Configuration::ephemeral();
    c.cleartext = CleartextPolicy::AllowAll;
    Session::new(c).unwrap()
}

/// Waits (polling, within `WAIT`) until `done` holds.
async fn until(mut done: impl FnMut() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the condition holds in time");
}

#[tokio::test]
async fn the_head_comes_first_and_the_body_follows_as_it_arrives() {
    let server = TestServer::http().await;
    let session = session();
    // Four pieces of 1000 bytes, 300 ms apart: the head is in long before the body ends.
    let url = server.url("/drip?chunks=4&size=1000&delay_ms=300");
    let (mut stream, response) = tokio::time::timeout(WAIT, session.bytes(url.as_str()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        stream.task().info().state(),
        TaskState::Running,
        "the response came before the body was complete"
    );
    let mut body = Vec::new();
    let mut pieces = 0;
    while let Some(chunk) = stream.chunk().await {
        body.extend_from_slice(&chunk.unwrap());
        pieces += 1;
    }
    assert_eq!(body.len(), 4000);
    assert!(pieces >= 2, "the body came in pieces ({pieces})");
    until(|| stream.task().info().state() == TaskState::Completed).await;
    assert!(stream.task().info().error().is_none());
}

#[tokio::test]
async fn a_stream_reads_whole_as_async_read_and_as_a_stream() {
    let server = TestServer::http().await;
    let session = session();
    let url = server.url("/bytes/3000000");
    let (mut stream, _) = session.bytes(url.as_str()).await.unwrap();
    let mut copied = Vec::new();
    tokio::io::copy(&mut stream, &mut copied).await.unwrap();
    assert!(
        copied == pattern_bytes(0, 3_000_000),
        "tokio::io::copy got the body"
    );

    let (mut stream, _) = session.bytes(url.as_str()).await.unwrap();
    let mut gathered = Vec::new();
    while let Some(chunk) = std::future::poll_fn(|cx| {
        futures_core::Stream::poll_next(std::pin::Pin::new(&mut stream), cx)
    })
    .await
    {
        gathered.extend_from_slice(&chunk.unwrap());
    }
    assert!(
        gathered == pattern_bytes(0, 3_000_000),
        "the Stream got the body"
    );
}

#[tokio::test]
async fn a_reader_that_stops_reading_stops_the_transfer() {
    let server = TestServer::http().await;
    let session = session();
    let total = 64 * 1024 * 1024;
    let url = server.url(&format!("/bytes/{total}"));
    let (mut stream, _) = session.bytes(url.as_str()).await.unwrap();
    let first = stream.chunk().await.unwrap().unwrap();
    // Let the transfer run as far ahead as it may.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = stream.task().info().bytes_received() as usize;
    assert!(
        received <= first.len() + (1 << 20) + 64 * 1024,
        "at most the 1 MiB window beyond what was read: {received} received"
    );
    // Reading on gets the rest, byte for byte.
    let mut rest = first.to_vec();
    while let Some(chunk) = stream.chunk().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    assert!(rest == pattern_bytes(0, total));
}

#[tokio::test]
async fn a_cut_ends_the_stream_with_the_error_and_a_refusal_fails_the_call() {
    let server = FaultServer::start(Fault::CloseMidBody {
        announced: 100_000,
        sent: 10_000,
    })
    .await;
    let session = session();
    let (mut stream, response) = session.bytes(server.url("/").as_str()).await.unwrap();
    assert_eq!(response.expected_content_length(), Some(100_000));
    let mut got = 0;
    let error = loop {
        match stream.chunk().await {
            Some(Ok(chunk)) => got += chunk.len(),
            Some(Err(e)) => break e,
            None => panic!("the stream ended without the error"),
        }
    };
    assert_eq!(got, 10_000);
    assert_eq!(error.code(), ErrorCode::NetworkConnectionLost, "{error}");
    assert!(stream.chunk().await.is_none(), "nothing after the error");

    let refused = session.bytes("http://127.0.0.1:1/").await.unwrap_err();
    assert_eq!(refused.code(), ErrorCode::CannotConnectToHost);
}

#[tokio::test]
async fn dropping_the_stream_cancels_the_task() {
    let server = TestServer::http().await;
    let session = session();
    let url = server.url("/drip?chunks=100&size=1000&delay_ms=100");
    let (stream, _) = session.bytes(url.as_str()).await.unwrap();
    let task = session
        .all_tasks()
        .await
        .pop()
        .expect("the task is running");
    drop(stream);
    until(|| task.info().state() == TaskState::Completed).await;
    assert_eq!(
        task.info().error().map(|e| e.code()),
        Some(ErrorCode::Cancelled)
    );
}
