//! WebSocket tasks (URLSessionWebSocketTask) against a real server program (Python's `websockets`
//! library): echo of text and binary messages, large ones, subprotocols, ping/pong, closes from
//! either side with their codes, the size limit, `wss://` with the session's trust; and against
//! in-process servers for the faults (a refused handshake, a server that never answers a close, a
//! dropped connection). Every task ends with exactly one `did_complete`, after its
//! `did_close_with`, and the session's `did_become_invalid` comes last.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use courier_engine::{
    CleartextPolicy, CloseCode, Configuration, ErrorCode, Message, Session, WebSocketTask,
};
use courier_tests::{Event, Recorder, TestCa, WebSocketServer, check_invariants};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(20);

fn cleartext() -> Configuration {
    let mut c = Configuration::ephemeral();
    c.cleartext = CleartextPolicy::AllowAll;
    c
}

async fn receive(task: &WebSocketTask) -> Message {
    tokio::time::timeout(WAIT, task.receive())
        .await
        .expect("a message in time")
        .expect("a message")
}

/// A session with a recorder, and a WebSocket task for `url`, resumed.
fn resumed(url: &str) -> (Session, Arc<Recorder>, WebSocketTask) {
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(cleartext(), rec.clone()).unwrap();
    let task = session.web_socket_task(url, &[]).unwrap();
    task.resume();
    (session, rec, task)
}

/// Invalidates the session and checks the stream's invariants; the events.
async fn finish(session: Session, rec: &Recorder) -> Vec<Event> {
    session.finish_tasks_and_invalidate();
    let events = rec.wait_invalid(WAIT).await;
    check_invariants(&events).unwrap();
    events
}

#[tokio::test]
async fn echo_of_text_and_binary_messages_with_a_chosen_subprotocol_then_a_normal_close() {
    let Some(server) = WebSocketServer::start() else {
        return;
    };
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(cleartext(), rec.clone()).unwrap();
    let task = session
        .web_socket_task(server.url("/echo").as_str(), &["chat", "other"])
        .unwrap();
    // Sent before the socket opens: it goes once it has.
    let early = {
        let task = task.clone();
        tokio::spawn(async move { task.send(Message::Text("early".into())).await })
    };
    task.resume();
    assert_eq!(receive(&task).await, Message::Text("early".into()));
    early.await.unwrap().unwrap();
    task.send(Message::Binary(Bytes::from_static(&[0, 1, 2, 255])))
        .await
        .unwrap();
    assert_eq!(
        receive(&task).await,
        Message::Binary(Bytes::from_static(&[0, 1, 2, 255]))
    );
    // Large messages, both ways (the server's frames may be fragmented; the message is whole).
    task.set_maximum_message_size(8 << 20);
    let big: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    task.send(Message::Binary(big.clone().into()))
        .await
        .unwrap();
    assert_eq!(receive(&task).await, Message::Binary(big.into()));

    task.cancel_with(CloseCode::NormalClosure, Some(Bytes::from_static(b"done")));
    assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
    assert_eq!(task.close_code(), CloseCode::NormalClosure);
    assert_eq!(task.close_reason().as_deref(), Some(&b"done"[..]));
    // After the close, receiving fails instead of waiting.
    assert!(task.receive().await.is_err());
    let events = finish(session, &rec).await;
    let id = task.info().id();
    let mine: Vec<&Event> = events.iter().filter(|e| e.task() == Some(id)).collect();
    assert!(
        mine.iter().any(|e| **e
            == Event::Opened {
                task: id,
                protocol: Some("chat".into())
            }),
        "{mine:?}"
    );
    let closed = mine
        .iter()
        .position(|e| matches!(e, Event::Closed { code: 1000, .. }))
        .expect("did_close_with");
    let completed = mine
        .iter()
        .position(|e| matches!(e, Event::Complete { .. }))
        .expect("did_complete");
    assert!(closed < completed, "{mine:?}");
    assert_eq!(task.info().response().unwrap().status(), 101);
    assert_eq!(task.info().kind(), courier_engine::TaskKind::WebSocket);
}

#[tokio::test]
async fn a_message_in_several_frames_arrives_whole() {
    let Some(server) = WebSocketServer::start() else {
        return;
    };
    let session = Session::new(cleartext()).unwrap();
    let task = session
        .web_socket_task(server.url("/fragments").as_str(), &[])
        .unwrap();
    task.resume();
    assert_eq!(receive(&task).await, Message::Text("fragmented".into()));
    task.cancel_with(CloseCode::NormalClosure, None);
}

#[tokio::test]
async fn a_close_from_the_server_gives_its_code_and_reason() {
    let Some(server) = WebSocketServer::start() else {
        return;
    };
    let (session, rec, task) = resumed(&server.url("/close/4001"));
    assert!(
        tokio::time::timeout(WAIT, task.receive())
            .await
            .unwrap()
            .is_err()
    );
    assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
    assert_eq!(task.close_code(), CloseCode::Other(4001));
    assert_eq!(task.close_reason().as_deref(), Some(&b"bye"[..]));
    let events = finish(session, &rec).await;
    assert!(events.contains(&Event::Closed {
        task: task.info().id(),
        code: 4001,
        reason: Some("bye".into())
    }));
    assert!(events.contains(&Event::Opened {
        task: task.info().id(),
        protocol: None
    }));
}

#[tokio::test]
async fn ping_gets_its_pong() {
    let Some(server) = WebSocketServer::start() else {
        return;
    };
    let session = Session::new(cleartext()).unwrap();
    let task = session
        .web_socket_task(server.url("/echo").as_str(), &[])
        .unwrap();
    task.resume();
    let (tx, rx) = tokio::sync::oneshot::channel();
    task.send_ping(move |error| {
        let _ = tx.send(error.map(|e| e.code()));
    });
    assert_eq!(tokio::time::timeout(WAIT, rx).await.unwrap().unwrap(), None);
    // A ping after the end is answered at once with the error.
    task.cancel();
    session.finish_tasks_and_invalidate();
    tokio::time::timeout(WAIT, session.invalidated())
        .await
        .expect("invalidated in time");
    let (tx, rx) = tokio::sync::oneshot::channel();
    task.send_ping(move |error| {
        let _ = tx.send(error.map(|e| e.code()));
    });
    assert!(rx.await.unwrap().is_some());
}

#[tokio::test]
async fn a_message_over_the_maximum_closes_with_1009_and_fails_the_task() {
    let Some(server) = WebSocketServer::start() else {
        return;
    };
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(cleartext(), rec.clone()).unwrap();
    // The server sends 2 MiB at once; the default limit is 1 MiB.
    let task = session
        .web_socket_task(server.url("/send/2097152").as_str(), &[])
        .unwrap();
    assert_eq!(task.maximum_message_size(), 1 << 20);
    task.resume();
    assert_eq!(
        rec.wait_complete(task.info().id(), WAIT).await,
        Some(Some(ErrorCode::DataLengthExceedsMaximum))
    );
    assert_eq!(task.close_code(), CloseCode::MessageTooBig);
    let err = task.receive().await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::DataLengthExceedsMaximum);
    let events = finish(session, &rec).await;
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Closed { code: 1009, .. }))
    );
}

#[tokio::test]
async fn the_handshake_carries_the_sessions_headers_and_ws_follows_the_cleartext_policy() {
    let Some(server) = WebSocketServer::start() else {
        return;
    };
    let mut config = cleartext();
    config
        .http_additional_headers
        .insert("x-from-config", http::HeaderValue::from_static("yes"));
    let session = Session::new(config).unwrap();
    let task = session
        .web_socket_task(server.url("/headers").as_str(), &[])
        .unwrap();
    task.resume();
    let Message::Text(headers) = receive(&task).await else {
        panic!("text");
    };
    assert!(headers.contains("x-from-config: yes"), "{headers}");
    assert!(headers.contains("upgrade: websocket"), "{headers}");
    assert!(headers.contains("user-agent: courier/"), "{headers}");
    // No compression is offered: Courier's frames are never compressed.
    assert!(!headers.contains("sec-websocket-extensions"), "{headers}");
    task.cancel();

    // Without the policy allowing the host, ws:// is refused before anything is sent.
    let rec = Arc::new(Recorder::new());
    let strict = Session::with_delegate(Configuration::ephemeral(), rec.clone()).unwrap();
    let refused = strict
        .web_socket_task(server.url("/echo").as_str(), &[])
        .unwrap();
    refused.resume();
    assert_eq!(
        rec.wait_complete(refused.info().id(), WAIT).await,
        Some(Some(
            ErrorCode::AppTransportSecurityRequiresSecureConnection
        ))
    );
    // And a URL that is not ws: or wss: is not a WebSocket's.
    let http_url = strict.web_socket_task("http://127.0.0.1:1/", &[]).unwrap();
    http_url.resume();
    assert_eq!(
        rec.wait_complete(http_url.info().id(), WAIT).await,
        Some(Some(ErrorCode::UnsupportedUrl))
    );
    finish(strict, &rec).await;
}

#[tokio::test]
async fn wss_uses_the_sessions_trust_and_refuses_an_unknown_ca() {
    let ca = TestCa::new();
    let Some(server) = WebSocketServer::start_tls(&ca) else {
        return;
    };
    let mut config = Configuration::ephemeral();
    config.trust_pem_certificates(ca.ca_pem.as_bytes()).unwrap();
    let session = Session::new(config).unwrap();
    let task = session
        .web_socket_task(server.url("/echo").as_str(), &["superchat"])
        .unwrap();
    task.resume();
    task.send(Message::Text("over tls".into())).await.unwrap();
    assert_eq!(receive(&task).await, Message::Text("over tls".into()));
    task.cancel_with(CloseCode::GoingAway, None);

    // A session that does not know the CA: the handshake never happens.
    let rec = Arc::new(Recorder::new());
    let strict = Session::with_delegate(Configuration::ephemeral(), rec.clone()).unwrap();
    let refused = strict
        .web_socket_task(server.url("/echo").as_str(), &[])
        .unwrap();
    refused.resume();
    let code = rec.wait_complete(refused.info().id(), WAIT).await.unwrap();
    assert!(
        matches!(
            code,
            Some(
                ErrorCode::ServerCertificateUntrusted | ErrorCode::ServerCertificateHasUnknownRoot
            )
        ),
        "{code:?}"
    );
    assert!(refused.receive().await.is_err());
    finish(strict, &rec).await;
}

/// A raw server on loopback that answers one connection with `answer` for the handshake, then
/// runs `after` on the socket.
async fn raw_server<F, Fut>(answer: fn(&str) -> String, after: F) -> std::net::SocketAddr
where
    F: FnOnce(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if socket.read(&mut byte).await.unwrap_or(0) == 0 {
                return;
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let key = head
            .lines()
            .find_map(|l| l.strip_prefix("sec-websocket-key: "))
            .unwrap_or("")
            .trim()
            .to_owned();
        socket.write_all(answer(&key).as_bytes()).await.unwrap();
        after(socket).await;
    });
    addr
}

fn accept(key: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: {}\r\n\r\n",
        tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes())
    )
}

#[tokio::test]
async fn a_refused_handshake_is_a_bad_server_response() {
    let addr = raw_server(
        |_| "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nno".into(),
        |_| async {},
    )
    .await;
    let (session, rec, task) = resumed(&format!("ws://{addr}/"));
    assert_eq!(
        rec.wait_complete(task.info().id(), WAIT).await,
        Some(Some(ErrorCode::BadServerResponse))
    );
    let events = finish(session, &rec).await;
    assert!(!events.iter().any(|e| matches!(e, Event::Opened { .. })));

    // A 101 whose accept key is wrong is refused the same way.
    let addr = raw_server(
        |_| "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: wrong\r\n\r\n".into(),
        |_| async {},
    )
    .await;
    let (session, rec, task) = resumed(&format!("ws://{addr}/"));
    assert_eq!(
        rec.wait_complete(task.info().id(), WAIT).await,
        Some(Some(ErrorCode::BadServerResponse))
    );
    finish(session, &rec).await;
}

/// A handshake that cannot connect fails with the task's own URL (`ws:`), not the `http:` one
/// the handshake went as.
#[tokio::test]
async fn a_failed_handshake_names_the_tasks_ws_url() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let url = format!("ws://{closed}/chat");
    let (session, rec, task) = resumed(&url);
    assert_eq!(
        rec.wait_complete(task.info().id(), WAIT).await,
        Some(Some(ErrorCode::CannotConnectToHost))
    );
    let events = finish(session, &rec).await;
    let failing = events.iter().find_map(|e| match e {
        Event::Complete { failing_url, .. } => Some(failing_url.clone()),
        _ => None,
    });
    assert_eq!(failing, Some(Some(url.clone())));
    let error = task.info().error().expect("its error");
    assert_eq!(
        error.failing_url(),
        Some(url.as_str()),
        "the task's error says the same"
    );
}

#[tokio::test]
async fn a_server_that_never_answers_the_close_is_left_after_the_grace() {
    let addr = raw_server(accept, |socket| async move {
        // Reads and never writes (no close frame back), holding the connection.
        let mut socket = socket;
        let mut sink = [0u8; 1024];
        while socket.read(&mut sink).await.unwrap_or(0) > 0 {}
    })
    .await;
    let (session, rec, task) = resumed(&format!("ws://{addr}/"));
    rec.wait_for(WAIT, |e| {
        e.iter().any(|e| matches!(e, Event::Opened { .. }))
    })
    .await;
    task.cancel_with(CloseCode::Other(4000), None);
    // Completes (after the 5 s grace), closed with the code it sent.
    assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
    assert_eq!(task.close_code(), CloseCode::Other(4000));
    finish(session, &rec).await;
}

#[tokio::test]
async fn a_dropped_connection_fails_the_task_with_connection_lost() {
    let addr = raw_server(accept, |socket| async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(socket);
    })
    .await;
    let (session, rec, task) = resumed(&format!("ws://{addr}/"));
    let err = tokio::time::timeout(WAIT, task.receive())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NetworkConnectionLost);
    assert_eq!(
        rec.wait_complete(task.info().id(), WAIT).await,
        Some(Some(ErrorCode::NetworkConnectionLost))
    );
    assert_eq!(task.close_code(), CloseCode::Invalid);
    let events = finish(session, &rec).await;
    assert!(!events.iter().any(|e| matches!(e, Event::Closed { .. })));
}

/// A server that sends far more messages than a task holds for its application, which reads none
/// for a while: the socket stops reading once the queue is full, a send still goes out meanwhile,
/// and every message then arrives whole and in order.
#[tokio::test]
async fn messages_past_the_queue_wait_for_the_application_and_arrive_in_order() {
    const SENT: usize = 100;
    let (got_tx, got_rx) = tokio::sync::oneshot::channel();
    let addr = raw_server(accept, |mut socket| async move {
        let mut burst = Vec::new();
        for i in 0..SENT {
            let text = format!("m{i}");
            burst.extend_from_slice(&[0x81, text.len() as u8]);
            burst.extend_from_slice(text.as_bytes());
        }
        socket.write_all(&burst).await.unwrap();
        // The client's text frame: short and masked.
        let mut head = [0u8; 6];
        socket.read_exact(&mut head).await.unwrap();
        let mut payload = vec![0u8; usize::from(head[1] & 0x7f)];
        socket.read_exact(&mut payload).await.unwrap();
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= head[2 + i % 4];
        }
        let _ = got_tx.send(String::from_utf8(payload).unwrap());
        // Its close, answered with 1000.
        let mut close = [0u8; 64];
        let _ = socket.read(&mut close).await;
        let _ = socket.write_all(&[0x88, 0x02, 0x03, 0xe8]).await;
    })
    .await;
    let (session, rec, task) = resumed(&format!("ws://{addr}/"));
    // The messages the task read before its queue filled (each is two bytes).
    tokio::time::timeout(WAIT, async {
        while task.info().bytes_received() < 2 * 16 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the queue fills");
    tokio::time::timeout(WAIT, task.send(Message::Text("while full".into())))
        .await
        .expect("a send does not wait for the application's reads")
        .expect("sent");
    assert_eq!(got_rx.await.unwrap(), "while full");
    for i in 0..SENT {
        assert_eq!(receive(&task).await, Message::Text(format!("m{i}")));
    }
    assert_eq!(task.info().bytes_received(), 2 * 10 + 3 * 90);
    task.cancel_with(CloseCode::NormalClosure, None);
    assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
    assert_eq!(task.close_code(), CloseCode::NormalClosure);
    finish(session, &rec).await;
}

#[tokio::test]
async fn cancel_without_a_code_completes_cancelled_and_a_never_resumed_task_too() {
    let Some(server) = WebSocketServer::start() else {
        return;
    };
    let (session, rec, task) = resumed(&server.url("/echo"));
    task.send(Message::Text("x".into())).await.unwrap();
    task.cancel();
    assert_eq!(
        rec.wait_complete(task.info().id(), WAIT).await,
        Some(Some(ErrorCode::Cancelled))
    );
    assert_eq!(task.close_code(), CloseCode::Invalid);
    let never = session
        .web_socket_task(server.url("/echo").as_str(), &[])
        .unwrap();
    never.cancel_with(CloseCode::NormalClosure, None);
    assert!(rec.wait_complete(never.info().id(), WAIT).await.is_some());
    assert!(never.send(Message::Text("late".into())).await.is_err());
    finish(session, &rec).await;
}

#[tokio::test]
async fn through_an_http_proxy_both_ws_and_wss_go_in_a_connect_tunnel() {
    let Some(proxy) = courier_tests::Tinyproxy::start(Some("ann:pw")) else {
        return;
    };
    let ca = TestCa::new();
    let (Some(plain), Some(tls)) = (WebSocketServer::start(), WebSocketServer::start_tls(&ca))
    else {
        return;
    };
    let mut config = cleartext();
    config.extra_root_certificates.push(ca.ca_der.clone());
    config.proxy = courier_engine::Proxy::Http {
        url: proxy.url("ann:pw@"),
        no_proxy: String::new(),
    };
    let session = Session::new(config).unwrap();
    for server in [&plain, &tls] {
        let task = session
            .web_socket_task(server.url("/headers").as_str(), &[])
            .unwrap();
        task.resume();
        let Message::Text(headers) = receive(&task).await else {
            panic!("text");
        };
        // The proxy's credentials went on the CONNECT, never through the tunnel.
        assert!(!headers.contains("proxy-authorization"), "{headers}");
        task.send(Message::Text("through".into())).await.unwrap();
        assert_eq!(receive(&task).await, Message::Text("through".into()));
        task.cancel_with(CloseCode::NormalClosure, None);
    }
    let log = proxy.log();
    // Two tunnels, one per socket (tinyproxy logs each request as "Request (...): CONNECT host:port").
    assert_eq!(log.matches("): CONNECT ").count(), 2, "{log}");
}
