//! WebSocket tasks against the real server the tests use (Python's `websockets`, echoing), with
//! two peers alternating in the same run: the same library's client, and tokio-tungstenite (Rust's
//! common WebSocket client, and what Courier's tasks speak the protocol with, so the gap to it is
//! what a task costs on top):
//! - sequential echo round trips (send a 32-byte text message, receive its echo), one socket;
//! - a bulk of binary messages of 1 MiB echoed on one socket (sent and received at once).
//!
//! The server is the same for every side, and the bound: under `perf`, 20,000 round trips spent
//! 72% of the samples in the Python server and 6% (Courier) or 3% (tokio-tungstenite) in the
//! client's own code and libc. The figures say what a Courier WebSocket costs against other
//! clients of that server, not the most a socket can carry.

use std::process::Command;
use std::time::{Duration, Instant};

use courier_engine::reexports::bytes::Bytes;
use courier_engine::{CleartextPolicy, Configuration, Message, Session};
use courier_tests::WebSocketServer;

use crate::report::{Report, Scenario, Side, Target, Unit};

/// The peer: the `websockets` client, timing the same two exchanges; prints `trips=S bulk=S`.
const PEER: &str = r#"
import asyncio, sys, time, websockets
async def main(url, trips, count):
    async with websockets.connect(url, max_size=None, compression=None) as ws:
        t = time.perf_counter()
        for _ in range(trips):
            await ws.send("x" * 32)
            await ws.recv()
        a = time.perf_counter() - t
        payload = b"\x07" * (1 << 20)
        t = time.perf_counter()
        async def send():
            for _ in range(count):
                await ws.send(payload)
        sender = asyncio.create_task(send())
        for _ in range(count):
            await ws.recv()
        await sender
        b = time.perf_counter() - t
    print(f"trips={a} bulk={b}")
asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"#;

/// Courier's side: the same two exchanges with a WebSocket task; (round trips, bulk) in seconds.
fn courier(url: &str, trips: usize, count: usize) -> (f64, f64) {
    let rt = crate::small::Flavor::CurrentThread.runtime();
    rt.block_on(async {
        let mut config = Configuration::ephemeral();
        config.cleartext = CleartextPolicy::AllowAll;
        let session = Session::new(config).expect("session");
        let task = session.web_socket_task(url, &[]).expect("task");
        task.set_maximum_message_size(2 << 20);
        task.resume();
        let text = Message::Text("x".repeat(32));
        let started = Instant::now();
        for _ in 0..trips {
            task.send(text.clone()).await.expect("send");
            task.receive().await.expect("echo");
        }
        let trips_took = started.elapsed().as_secs_f64();
        let payload = Message::Binary(Bytes::from(vec![7u8; 1 << 20]));
        let started = Instant::now();
        let sender = {
            let task = task.clone();
            tokio::spawn(async move {
                for _ in 0..count {
                    task.send(payload.clone()).await.expect("send");
                }
            })
        };
        for _ in 0..count {
            let echoed = task.receive().await.expect("echo");
            assert_eq!(echoed.len(), 1 << 20, "the echo is whole");
        }
        sender.await.expect("sender");
        let bulk_took = started.elapsed().as_secs_f64();
        task.cancel_with(courier_engine::CloseCode::NormalClosure, None);
        session.finish_tasks_and_invalidate();
        let _ = tokio::time::timeout(Duration::from_secs(10), session.invalidated()).await;
        (trips_took, bulk_took)
    })
}

/// tokio-tungstenite's side, on the same runtime flavour as Courier's: the same two exchanges, the
/// bulk sent from a task of its own while this one reads (the stream split in two halves).
fn tungstenite(url: &str, trips: usize, count: usize) -> (f64, f64) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as Ws;
    let rt = crate::small::Flavor::CurrentThread.runtime();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(
            url.trim_start_matches("ws://")
                .split('/')
                .next()
                .expect("host"),
        )
        .await
        .expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(2 << 20));
        let (ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(config))
            .await
            .expect("handshake");
        let (mut tx, mut rx) = ws.split();
        let started = Instant::now();
        for _ in 0..trips {
            tx.send(Ws::text("x".repeat(32))).await.expect("send");
            rx.next().await.expect("an echo").expect("echo");
        }
        let trips_took = started.elapsed().as_secs_f64();
        let payload = Bytes::from(vec![7u8; 1 << 20]);
        let started = Instant::now();
        let sender = tokio::spawn(async move {
            for _ in 0..count {
                tx.send(Ws::Binary(payload.clone())).await.expect("send");
            }
            tx
        });
        for _ in 0..count {
            let echoed = rx.next().await.expect("an echo").expect("echo");
            assert_eq!(echoed.len(), 1 << 20, "the echo is whole");
        }
        let mut tx = sender.await.expect("sender");
        let bulk_took = started.elapsed().as_secs_f64();
        let _ = tx.close().await;
        (trips_took, bulk_took)
    })
}

fn peer(url: &str, trips: usize, count: usize) -> (f64, f64) {
    let out = Command::new("/usr/bin/python3")
        .args(["-c", PEER, url, &trips.to_string(), &count.to_string()])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "the websockets client: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let value = |key: &str| -> f64 {
        text.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{key} in {text}"))
    };
    (value("trips="), value("bulk="))
}

/// Sides alone, in the order given (`courier`, `tokio-tungstenite` or `websockets`, separated by
/// commas), on one server, for a profile or to see how one side's run affects the next.
pub(crate) fn one_side(sides: &str, trips: usize, count: usize) {
    let Some(server) = WebSocketServer::start() else {
        println!("WebSocket: python3-websockets is missing; skipped");
        return;
    };
    let url = server.url("/echo");
    for side in sides.split(',') {
        let (a, b) = match side {
            "courier" => courier(&url, trips, count),
            "tokio-tungstenite" => tungstenite(&url, trips, count),
            "websockets" => peer(&url, trips, count),
            other => panic!("--side {other}: courier, tokio-tungstenite or websockets"),
        };
        println!("{side}: {trips} round trips {a:.3} s, {count} MiB {b:.3} s");
    }
}

/// Runs both scenarios, `rounds` alternating rounds of `trips` round trips and `count` MiB.
pub(crate) fn run(report: &mut Report, rounds: usize, trips: usize, count: usize) {
    let Some(server) = WebSocketServer::start() else {
        println!("WebSocket: python3-websockets is missing; skipped");
        return;
    };
    let url = server.url("/echo");
    let (mut ours, mut theirs, mut rust) = (
        (Vec::new(), Vec::new()),
        (Vec::new(), Vec::new()),
        (Vec::new(), Vec::new()),
    );
    for round in 0..rounds {
        // A Rust side run right after the Python client's run measures faster than one run after
        // the other Rust side (2,000 trips: 0.132-0.177 s against 0.177-0.223 s, for either), so
        // each Rust side runs right after a run of the Python client, and which goes first
        // alternates. (A cyclic order gave one of them that place in every round.)
        let (mut a, mut b, mut e, mut f) = (0.0, 0.0, 0.0, 0.0);
        // The Python client runs twice a round; its better run counts.
        let (mut c, mut d) = (f64::INFINITY, f64::INFINITY);
        for turn in 0..2 {
            let (trips_took, bulk_took) = peer(&url, trips, count);
            (c, d) = (c.min(trips_took), d.min(bulk_took));
            if (round + turn) % 2 == 0 {
                (a, b) = courier(&url, trips, count);
            } else {
                (e, f) = tungstenite(&url, trips, count);
            }
        }
        println!(
            "round {round}: courier {trips} round trips {a:.3} s, {count} MiB {b:.3} s; websockets \
             client {c:.3} s, {d:.3} s; tokio-tungstenite {e:.3} s, {f:.3} s"
        );
        ours.0.push(a);
        ours.1.push(b);
        theirs.0.push(c);
        theirs.1.push(d);
        rust.0.push(e);
        rust.1.push(f);
    }
    report.add(Scenario {
        name: format!("{trips} WebSocket echo round trips (32-byte text), one socket"),
        unit: Unit::Seconds,
        courier: vec![Side::new("courier WebSocketTask", ours.0)],
        peers: vec![
            Side::new("Python websockets client", theirs.0),
            Side::new("tokio-tungstenite", rust.0),
        ],
        target: Target::AtMostTimesBestPeer(1.0),
        note: "the server is Python's websockets (echo), the same for every side, and the bound; \
               each Rust side runs right after a run of the Python client (twice a round, its \
               better run counted), and which Rust side goes first alternates"
            .into(),
    });
    report.add(Scenario {
        name: format!("{count} MiB of 1 MiB binary WebSocket messages echoed, one socket"),
        unit: Unit::Seconds,
        courier: vec![Side::new("courier WebSocketTask", ours.1)],
        peers: vec![
            Side::new("Python websockets client", theirs.1),
            Side::new("tokio-tungstenite", rust.1),
        ],
        target: Target::AtMostTimesBestPeer(1.0),
        note: "sent and received at once; the Python server echoes every message".into(),
    });
}
