//! Stream tasks (URLSessionStreamTask): a line exchange, half-closes both ways, read timeouts and
//! capture against in-process TCP servers; STARTTLS against a real SMTP server (Python's
//! `aiosmtpd`), with the session's trust, and refused for a CA the session does not know. Every
//! task ends with exactly one `did_complete`, and `did_become_invalid` comes last.

use std::sync::Arc;
use std::time::Duration;

use courier_engine::{Configuration, ErrorCode, Session, StreamTask};
use courier_tests::{Event, Recorder, SmtpServer, TestCa, check_invariants};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(10);

/// A TCP server on loopback running `serve` on its one connection.
async fn serve_once<F, Fut>(serve: F) -> u16
where
    F: FnOnce(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        if let Ok((socket, _)) = listener.accept().await {
            serve(socket).await;
        }
    });
    port
}

/// A stream task to 127.0.0.1:`port` in a session with a recorder, resumed.
fn connect(port: u16) -> (Session, Arc<Recorder>, StreamTask) {
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(Configuration::ephemeral(), rec.clone()).unwrap();
    let task = session.stream_task("127.0.0.1", port).unwrap();
    task.resume();
    (session, rec, task)
}

/// Reads until `needle` shows up (or the end); everything read.
async fn read_until(task: &StreamTask, needle: &str) -> String {
    let mut seen = String::new();
    while !seen.contains(needle) {
        let (bytes, eof) = task
            .read(1, 4096, WAIT)
            .await
            .unwrap_or_else(|e| panic!("a read after {seen:?}: {e:?}"));
        seen.push_str(&String::from_utf8_lossy(&bytes));
        if eof {
            break;
        }
    }
    seen
}

async fn finish(session: Session, rec: &Recorder) -> Vec<Event> {
    session.finish_tasks_and_invalidate();
    let events = rec.wait_invalid(WAIT).await;
    check_invariants(&events).unwrap();
    events
}

#[tokio::test]
async fn lines_both_ways_then_half_closes_complete_the_task() {
    // An echo server, line by line, that says "bye" once the client's side ends.
    let port = serve_once(|mut socket| async move {
        let mut buf = [0u8; 1024];
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => socket.write_all(&buf[..n]).await.unwrap(),
            }
        }
        socket.write_all(b"bye\n").await.unwrap();
    })
    .await;
    let (session, rec, task) = connect(port);
    // Asked before the connection is open: served once it is.
    task.write(&b"hello\n"[..], WAIT).await.unwrap();
    let (echo, eof) = task.read(6, 100, WAIT).await.unwrap();
    assert_eq!((&echo[..], eof), (&b"hello\n"[..], false));
    task.write(&b"second line\n"[..], WAIT).await.unwrap();
    assert_eq!(read_until(&task, "line\n").await, "second line\n");

    task.close_write();
    // The server saw the end of the stream, answered, and ended its side.
    assert_eq!(read_until(&task, "bye\n").await, "bye\n");
    assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
    assert!(task.write(&b"late"[..], WAIT).await.is_err());
    let events = finish(session, &rec).await;
    let names: Vec<&str> = events
        .iter()
        .filter(|e| e.task() == Some(task.info().id()))
        .map(Event::name)
        .collect();
    assert!(
        names.contains(&"read_closed") && names.contains(&"write_closed"),
        "{names:?}"
    );
    assert_eq!(task.info().bytes_received(), 6 + 12 + 4);
    assert_eq!(task.info().bytes_sent(), 6 + 12);
}

#[tokio::test]
async fn a_read_times_out_and_the_task_goes_on() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let port = serve_once(|mut socket| async move {
        // Silent until told, then one line.
        let _ = rx.await;
        socket.write_all(b"late\n").await.unwrap();
        let mut sink = [0u8; 16];
        let _ = socket.read(&mut sink).await;
    })
    .await;
    let (session, rec, task) = connect(port);
    let err = task
        .read(1, 100, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::TimedOut);
    tx.send(()).unwrap();
    assert_eq!(read_until(&task, "late\n").await, "late\n");
    task.cancel();
    assert_eq!(
        rec.wait_complete(task.info().id(), WAIT).await,
        Some(Some(ErrorCode::Cancelled))
    );
    finish(session, &rec).await;
}

#[tokio::test]
async fn captured_streams_belong_to_the_application() {
    let port = serve_once(|mut socket| async move {
        let mut buf = [0u8; 64];
        let n = socket.read(&mut buf).await.unwrap();
        socket.write_all(&buf[..n]).await.unwrap();
    })
    .await;
    let (session, rec, task) = connect(port);
    let mut stream = task.capture_streams().await.unwrap();
    assert!(!stream.is_secure());
    stream.write_all(b"mine now").await.unwrap();
    let mut back = [0u8; 8];
    stream.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"mine now");
    assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
    let events = finish(session, &rec).await;
    assert!(
        events
            .iter()
            .any(|e| e.task() == Some(task.info().id()) && e.name() == "became_streams")
    );
}

/// An IPv6 literal reaches its server: the task's URL writes it in brackets (`tcp://[::1]:PORT`),
/// which name no host to resolve (it failed with -1003, "cannot find host [::1]"; so did an
/// `ftp://[::1]/` URL, whose connection is made the same way).
#[tokio::test]
async fn an_ipv6_literal_is_reached() {
    let listener = tokio::net::TcpListener::bind("[::1]:0")
        .await
        .expect("IPv6 loopback");
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        if let Ok((mut socket, _)) = listener.accept().await {
            let _ = socket.write_all(b"hello over ipv6\n").await;
        }
    });
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(Configuration::ephemeral(), rec.clone()).unwrap();
    let task = session.stream_task("::1", port).unwrap();
    task.resume();
    assert_eq!(read_until(&task, "\n").await, "hello over ipv6\n");
    task.cancel();
    finish(session, &rec).await;
}

#[tokio::test]
async fn nothing_listening_fails_with_cannot_connect() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (session, rec, task) = connect(port);
    assert_eq!(
        rec.wait_complete(task.info().id(), WAIT).await,
        Some(Some(ErrorCode::CannotConnectToHost))
    );
    assert!(task.read(1, 1, WAIT).await.is_err());
    finish(session, &rec).await;
}

/// One SMTP reply, whole: its lines up to the last (`250 ...`, where the others are `250-...`).
async fn reply(task: &StreamTask) -> String {
    let mut seen = String::new();
    let last_line = |s: &str| {
        s.split_inclusive("\r\n")
            .any(|l| l.ends_with("\r\n") && l.as_bytes().get(3) == Some(&b' '))
    };
    while !last_line(&seen) {
        seen.push_str(&read_until(task, "\r\n").await);
    }
    seen
}

/// The SMTP dialogue up to STARTTLS's go-ahead.
async fn up_to_starttls(task: &StreamTask) {
    assert!(reply(task).await.starts_with("220"));
    task.write(&b"EHLO courier.test\r\n"[..], WAIT)
        .await
        .unwrap();
    let ehlo = reply(task).await;
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    task.write(&b"STARTTLS\r\n"[..], WAIT).await.unwrap();
    assert!(reply(task).await.starts_with("220"));
}

#[tokio::test]
async fn starttls_with_a_real_smtp_server_uses_the_sessions_trust() {
    let ca = TestCa::new();
    let Some(smtp) = SmtpServer::start_starttls(&ca) else {
        return;
    };
    let mut config = Configuration::ephemeral();
    config.trust_pem_certificates(ca.ca_pem.as_bytes()).unwrap();
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(config, rec.clone()).unwrap();
    let task = session.stream_task("localhost", smtp.port()).unwrap();
    task.resume();
    up_to_starttls(&task).await;
    task.start_secure_connection().await.unwrap();
    // Over TLS now: the server offers what it keeps for secure sessions.
    task.write(&b"EHLO courier.test\r\n"[..], WAIT)
        .await
        .unwrap();
    let ehlo = reply(&task).await;
    assert!(ehlo.starts_with("250-"), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    task.write(&b"QUIT\r\n"[..], WAIT).await.unwrap();
    assert!(reply(&task).await.starts_with("221"), "{}", smtp.log());
    task.close_write();
    assert_eq!(rec.wait_complete(task.info().id(), WAIT).await, Some(None));
    finish(session, &rec).await;
}

#[tokio::test]
async fn starttls_raises_the_server_trust_challenge_for_the_delegate() {
    use courier_tests::TrustAnswer;
    let ca = TestCa::new();
    let Some(smtp) = SmtpServer::start_starttls(&ca) else {
        return;
    };
    // The session does not know the CA; its delegate trusts the server when asked.
    let rec = Arc::new(Recorder::with_server_trust(TrustAnswer::TrustAll));
    let session = Session::with_delegate(Configuration::ephemeral(), rec.clone()).unwrap();
    let task = session.stream_task("localhost", smtp.port()).unwrap();
    task.resume();
    up_to_starttls(&task).await;
    task.start_secure_connection().await.unwrap();
    task.write(&b"QUIT\r\n"[..], WAIT).await.unwrap();
    assert!(reply(&task).await.starts_with("221"));
    let asked = rec.events().into_iter().any(|e| {
        matches!(e, Event::SessionChallenge { method: "server_trust", ref host, .. } if host == "localhost")
    });
    assert!(asked, "{:?}", rec.events());
    task.cancel();
    finish(session, &rec).await;
}

#[tokio::test]
async fn tls_started_then_stopped_goes_on_in_cleartext() {
    use tokio::io::AsyncBufReadExt;
    let ca = TestCa::new();
    let acceptor = tokio_rustls::TlsAcceptor::from(ca.server_config());
    // TLS from the start; "STOPTLS" ends it (close_notify both ways), then one cleartext line.
    let port = serve_once(move |tcp| async move {
        let tls = acceptor.accept(tcp).await.unwrap();
        let mut lines = tokio::io::BufReader::new(tls);
        let mut line = String::new();
        lines.read_line(&mut line).await.unwrap();
        assert_eq!(line, "STOPTLS\r\n");
        let mut tls = lines.into_inner();
        tls.write_all(b"200 back to cleartext\r\n").await.unwrap();
        // The client's close_notify ends the TLS stream; this side answers with its own.
        let mut rest = [0u8; 64];
        while tls.read(&mut rest).await.unwrap_or(0) > 0 {}
        tls.get_mut().1.send_close_notify();
        tls.flush().await.unwrap();
        let (mut tcp, _) = tls.into_inner();
        let mut plain = [0u8; 64];
        let n = tcp.read(&mut plain).await.unwrap();
        assert_eq!(&plain[..n], b"in the clear\r\n");
        tcp.write_all(b"seen in the clear\r\n").await.unwrap();
    })
    .await;
    let mut config = Configuration::ephemeral();
    config.trust_pem_certificates(ca.ca_pem.as_bytes()).unwrap();
    let session = Session::new(config).unwrap();
    let task = session.stream_task("localhost", port).unwrap();
    task.resume();
    task.start_secure_connection().await.unwrap();
    task.write(&b"STOPTLS\r\n"[..], WAIT).await.unwrap();
    assert_eq!(read_until(&task, "\r\n").await, "200 back to cleartext\r\n");
    task.stop_secure_connection().await.unwrap();
    task.write(&b"in the clear\r\n"[..], WAIT).await.unwrap();
    assert_eq!(read_until(&task, "\r\n").await, "seen in the clear\r\n");
    task.cancel();
}

#[tokio::test]
async fn starttls_to_an_unknown_ca_is_refused_by_default() {
    let ca = TestCa::new();
    let Some(smtp) = SmtpServer::start_starttls(&ca) else {
        return;
    };
    let rec = Arc::new(Recorder::new());
    let session = Session::with_delegate(Configuration::ephemeral(), rec.clone()).unwrap();
    let task = session.stream_task("localhost", smtp.port()).unwrap();
    task.resume();
    up_to_starttls(&task).await;
    let err = task.start_secure_connection().await.unwrap_err();
    assert!(
        matches!(
            err.code(),
            ErrorCode::ServerCertificateHasUnknownRoot | ErrorCode::ServerCertificateUntrusted
        ),
        "{err:?}"
    );
    assert_eq!(
        rec.wait_complete(task.info().id(), WAIT).await,
        Some(Some(err.code()))
    );
    finish(session, &rec).await;
}

#[tokio::test]
async fn a_data_task_answered_101_becomes_a_stream_task_on_the_same_connection() {
    use courier_engine::{CleartextPolicy, Request, ResponseDisposition};
    // A server that switches to a line protocol of its own after the 101: "ping" gets "pong".
    let port = serve_once(|mut socket| async move {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if socket.read(&mut byte).await.unwrap_or(0) == 0 {
                return;
            }
            head.push(byte[0]);
        }
        socket
            .write_all(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: lines\r\nconnection: upgrade\r\n\r\nhello\n")
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        while let Ok(n) = socket.read(&mut buf).await {
            if n == 0 {
                break;
            }
            if buf[..n].starts_with(b"ping") {
                socket.write_all(b"pong\n").await.unwrap();
            }
        }
    })
    .await;
    let rec = Arc::new(Recorder::answering(ResponseDisposition::BecomeStream));
    let mut config = Configuration::ephemeral();
    config.cleartext = CleartextPolicy::AllowAll;
    let session = Session::with_delegate(config, rec.clone()).unwrap();
    let request = Request::get(&format!("http://127.0.0.1:{port}/upgrade"))
        .with_header(
            http::header::UPGRADE,
            http::HeaderValue::from_static("lines"),
        )
        .with_header(
            http::header::CONNECTION,
            http::HeaderValue::from_static("upgrade"),
        );
    let data = session.data_task(request).unwrap();
    data.resume();
    let events = rec
        .wait_for(WAIT, |e| {
            e.iter()
                .any(|e| matches!(e, Event::BecameStreamTask { .. }))
        })
        .await;
    let stream_id = events
        .iter()
        .find_map(|e| match e {
            Event::BecameStreamTask { task, stream } if *task == data.info().id() => Some(*stream),
            _ => None,
        })
        .unwrap();
    let stream = session
        .adopt_stream_task(stream_id)
        .expect("the stream task's handle");
    assert!(session.adopt_stream_task(stream_id).is_none(), "given once");
    // What came after the 101 head is the stream's first bytes.
    assert_eq!(read_until(&stream, "\n").await, "hello\n");
    stream.write(&b"ping\n"[..], WAIT).await.unwrap();
    assert_eq!(read_until(&stream, "\n").await, "pong\n");
    stream.close_write();
    assert_eq!(rec.wait_complete(stream_id, WAIT).await, Some(None));
    let events = finish(session, &rec).await;
    // The data task got no did_complete.
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::Complete { task, .. } if *task == data.info().id()))
    );
}
