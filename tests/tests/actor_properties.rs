//! Real task actors driven by random resume/suspend/cancel sequences against a loopback server with
//! random delays: the event stream keeps URLSession's invariants whatever the interleaving. Data
//! tasks and WebSocket tasks (against an in-process WebSocket server that sends a few messages,
//! then closes) and stream tasks (against an echo server) are driven together; a WebSocket task may
//! also be closed with a code, and a stream task's writing side closed.

use std::sync::Arc;
use std::time::Duration;

use courier_engine::{CleartextPolicy, CloseCode, Configuration, Session, Task};
use courier_tests::{Event, Recorder, TestServer, check_invariants};
use futures_util::{SinkExt, StreamExt};
use proptest::prelude::*;

#[derive(Clone, Copy, Debug)]
enum Op {
    Resume(usize),
    Suspend(usize),
    Cancel(usize),
    /// `cancel_with(1000)` on a WebSocket task, `close_write` on a stream task.
    Close(usize),
    Sleep(u64),
}

/// Data tasks, then WebSocket tasks.
const DATA_TASKS: usize = 4;
const SOCKET_TASKS: usize = 2;
/// Then stream tasks, to an echo server that ends its side once the task has ended its own.
const STREAM_TASKS: usize = 1;

fn op(tasks: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..tasks).prop_map(Op::Resume),
        2 => (0..tasks).prop_map(Op::Suspend),
        1 => (0..tasks).prop_map(Op::Cancel),
        1 => (DATA_TASKS..tasks).prop_map(Op::Close),
        2 => (0u64..15).prop_map(Op::Sleep),
    ]
}

/// A TCP echo server on loopback: each connection gets its bytes back until it ends its side.
async fn echo_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut rd, mut wr) = tcp.split();
                let _ = tokio::io::copy(&mut rd, &mut wr).await;
            });
        }
    });
    port
}

/// A WebSocket server on loopback: each connection gets three messages `delay_ms` apart, then a
/// close (1000), whose answer it awaits.
async fn socket_server(delay_ms: u64) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                use tokio_tungstenite::tungstenite::Message;
                for i in 0..3 {
                    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                    if ws.send(Message::text(format!("m{i}"))).await.is_err() {
                        return;
                    }
                }
                let _ = ws.close(None).await;
                while let Some(Ok(_)) = ws.next().await {}
            });
        }
    });
    addr
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn event_stream_keeps_its_invariants(
        delays in proptest::collection::vec(0u64..8, DATA_TASKS),
        ops in proptest::collection::vec(op(DATA_TASKS + SOCKET_TASKS + STREAM_TASKS), 1..25),
        cancel_at_end in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let result: Result<(), String> = rt.block_on(async move {
            let server = TestServer::http().await;
            let mut config = Configuration::ephemeral();
            config.cleartext = CleartextPolicy::AllowAll;
            let rec = Arc::new(Recorder::new());
            let session = Session::with_delegate(config, rec.clone()).unwrap();
            let mut tasks: Vec<Task> = delays
                .iter()
                .map(|d| session.data_task(server.url(&format!("/drip?chunks=6&size=200&delay_ms={d}")).as_str()).unwrap().task().clone())
                .collect();
            let sockets_at = socket_server(delays[0] * 2).await;
            let sockets: Vec<_> = (0..SOCKET_TASKS)
                .map(|_| session.web_socket_task(format!("ws://{sockets_at}/").as_str(), &[]).unwrap())
                .collect();
            tasks.extend(sockets.iter().map(|s| s.task().clone()));
            let echo_port = echo_server().await;
            let streams: Vec<_> = (0..STREAM_TASKS)
                .map(|_| session.stream_task("127.0.0.1", echo_port).unwrap())
                .collect();
            tasks.extend(streams.iter().map(|s| s.task().clone()));
            for op in &ops {
                match *op {
                    Op::Resume(i) => tasks[i].resume(),
                    Op::Suspend(i) => tasks[i].suspend(),
                    Op::Cancel(i) => tasks[i].cancel(),
                    Op::Close(i) if i < DATA_TASKS + SOCKET_TASKS => {
                        sockets[i - DATA_TASKS].cancel_with(CloseCode::NormalClosure, None)
                    }
                    Op::Close(i) => streams[i - DATA_TASKS - SOCKET_TASKS].close_write(),
                    Op::Sleep(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                }
            }
            // Whatever state the tasks were left in, invalidation must end every one exactly once.
            if cancel_at_end {
                session.invalidate_and_cancel();
            } else {
                for t in &tasks {
                    t.resume();
                }
                // A stream task ends once both sides are closed: this one closes its own.
                for s in &streams {
                    s.close_write();
                }
                session.finish_tasks_and_invalidate();
            }
            let events = rec.wait_invalid(Duration::from_secs(30)).await;
            check_invariants(&events)?;
            if events.last() != Some(&Event::Invalid) {
                return Err(format!("did_become_invalid missing or not last: {events:?}"));
            }
            for t in &tasks {
                let n = events.iter().filter(|e| matches!(e, Event::Complete { task, .. } if *task == t.info().id())).count();
                if n != 1 {
                    return Err(format!("task {} completed {n} times: {events:?}", t.info().id()));
                }
            }
            // A WebSocket task that completed without an error closed first, after it opened.
            for socket in &sockets {
                let id = socket.info().id();
                let mine: Vec<&Event> = events.iter().filter(|e| e.task() == Some(id)).collect();
                if mine.iter().any(|e| matches!(e, Event::Complete { error: None, .. })) {
                    let opened = mine.iter().position(|e| matches!(e, Event::Opened { .. }));
                    let closed = mine.iter().position(|e| matches!(e, Event::Closed { .. }));
                    if !matches!((opened, closed), (Some(o), Some(c)) if o < c) {
                        return Err(format!("socket {id} completed without open, then close: {mine:?}"));
                    }
                }
            }
            Ok(())
        });
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    }
}
