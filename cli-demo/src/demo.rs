//! `courier demo`: a guided tour of what the engine does, on an embedded loopback server (HTTP, and
//! HTTPS with a certificate authority generated at start). Prints each step; exits 0 when every
//! step behaved as described.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use courier_cli::loopback::{
    LoopbackCa, LoopbackServer, ProxyServer, demo_route, pattern_bytes, sha256_hex,
};
use courier_engine::reexports::http::{Method, Version};
use courier_engine::{Configuration, ErrorCode, Proxy, Request, Session, TaskState, UploadBody};
use tokio::sync::mpsc;

use crate::events::{CliDelegate, Finished};
use crate::{ExitCode, Failure};

mod background;

fn step(n: u32, title: &str) {
    show!("\n== {n}. {title}");
}

fn check(ok: bool, what: &str) -> Result<(), Failure> {
    if ok {
        show!("   ok: {what}");
        Ok(())
    } else {
        Err(Failure::usage(format!("demo step failed: {what}")))
    }
}

async fn next(finished: &mut mpsc::UnboundedReceiver<Finished>) -> Result<Finished, Failure> {
    tokio::time::timeout(Duration::from_secs(10), finished.recv())
        .await
        .ok()
        .flatten()
        .ok_or_else(|| Failure::usage("demo: a task did not complete in time".into()))
}

/// Runs the tour.
pub(crate) async fn run() -> Result<ExitCode, Failure> {
    show!("courier demo: URLSession's model in Rust, on a loopback server");
    let ca = LoopbackCa::new();
    let http = LoopbackServer::http(demo_route).await;
    let https = LoopbackServer::https(&ca, demo_route).await;
    show!(
        "   servers: {} and {} (certificate from a CA made just now)",
        http.url("/"),
        https.url("/")
    );

    let mut config = Configuration::ephemeral();
    config.cleartext.allow_host("127.0.0.1");
    config.extra_root_certificates.push(ca.ca_der.clone());
    let session = Session::new(config.clone())?;

    step(
        1,
        "a data task over HTTP/1.1, completion form: session.data(url).await",
    );
    let (body, response) = session.data(http.url("/bytes/4096").as_str()).await?;
    show!(
        "   status {} over {:?}, {} bytes",
        response.status(),
        response.version(),
        body.len()
    );
    check(body.len() == 4096, "the whole body arrived")?;

    step(
        2,
        "HTTPS with HTTP/2 chosen by ALPN, trusting the generated CA",
    );
    let (body, response) = session.data(https.url("/bytes/65536").as_str()).await?;
    show!(
        "   status {} over {:?}, {} bytes",
        response.status(),
        response.version(),
        body.len()
    );
    check(
        response.version() == courier_engine::reexports::http::Version::HTTP_2,
        "HTTP/2 over TLS",
    )?;

    step(3, "HTTP error statuses are responses, not errors");
    let (_, response) = session.data(http.url("/status/404").as_str()).await?;
    check(response.status() == 404, "404 came back as a response")?;

    step(
        4,
        "a delegate sees every step: the event stream (as `courier get --events -` writes it)",
    );
    let (mut delegate, mut finished, mut invalid) = CliDelegate::new(
        Some(Box::new(io::stdout())),
        Box::new(io::sink()),
        Arc::new(crate::progress::Progress::new(true)),
    );
    // Used in step 12, when a server asks who we are.
    delegate.set_credential_from(Some("demo:secret"));
    let events = Session::with_delegate(config.clone(), Arc::new(delegate))?;
    let task = events.data_task(http.url("/drip?chunks=4&size=2000&delay_ms=60").as_str())?;
    task.resume();
    let done = next(&mut finished).await?;
    check(
        done.error.is_none() && task.info().bytes_received() == 8000,
        "8000 bytes, did_complete without error",
    )?;

    step(
        5,
        "suspend really pauses: no bytes read, no timers; resume continues the same transfer",
    );
    let task = events.data_task(http.url("/drip?chunks=20&size=1000&delay_ms=20").as_str())?;
    task.resume();
    tokio::time::sleep(Duration::from_millis(120)).await;
    task.suspend();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = task.info().bytes_received();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let after = task.info().bytes_received();
    show!("   suspended at {before} bytes; 400 ms later still {after}");
    check(
        before == after && task.info().state() == TaskState::Suspended,
        "nothing moved while suspended",
    )?;
    task.resume();
    let done = next(&mut finished).await?;
    check(
        done.error.is_none() && task.info().bytes_received() == 20_000,
        "resumed to the end: 20000 bytes",
    )?;

    step(
        6,
        "cancel: the task completes with cancelled (-999) and the failing URL",
    );
    let task = events.data_task(http.url("/drip?chunks=100&size=100&delay_ms=50").as_str())?;
    task.resume();
    tokio::time::sleep(Duration::from_millis(150)).await;
    task.cancel();
    let done = next(&mut finished).await?;
    check(
        done.error
            .as_ref()
            .is_some_and(|e| e.code() == ErrorCode::Cancelled),
        "cancelled (-999)",
    )?;

    step(7, "errors are typed, with Darwin's codes");
    let strict = Session::new(Configuration::ephemeral())?;
    let refused_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let mut hang = Request::get(&http.url("/hang"));
    hang.set_timeout(Duration::from_millis(300));
    let cases: Vec<(&str, &Session, Request, ErrorCode)> = vec![
        (
            "cleartext http:// without permission",
            &strict,
            Request::get(&http.url("/")),
            ErrorCode::AppTransportSecurityRequiresSecureConnection,
        ),
        (
            "a certificate from an unknown CA",
            &strict,
            Request::get(&https.url("/")),
            ErrorCode::ServerCertificateHasUnknownRoot,
        ),
        (
            "a refused port",
            &session,
            Request::get(&format!("http://127.0.0.1:{refused_port}/")),
            ErrorCode::CannotConnectToHost,
        ),
        (
            "a server that never answers (idle timeout 0.3 s)",
            &session,
            hang,
            ErrorCode::TimedOut,
        ),
        (
            "a port out of range",
            &session,
            Request::get("http://127.0.0.1:99999/"),
            ErrorCode::BadUrl,
        ),
    ];
    for (what, s, request, want) in cases {
        let got = s.data(request).await.err().map(|e| e.code());
        show!(
            "   {what}: {}",
            got.map_or("no error".to_string(), |c| c.to_string())
        );
        check(got == Some(want), &format!("{what} gives {want}"))?;
    }

    downloads(&config).await?;

    step(
        11,
        "redirects: a chain of three is followed (the delegate sees each hop); only the last body arrives",
    );
    let task = events.data_task(http.url("/chain/3").as_str())?;
    task.resume();
    let done = next(&mut finished).await?;
    check(
        done.error.is_none() && task.info().current_request().url_str() == http.url("/chain/0"),
        "three hops, current_request is the last URL",
    )?;

    step(
        12,
        "an authentication challenge (HTTP Digest, SHA-256) answered by the delegate's credential",
    );
    let task = events.data_task(http.url("/digest/demo/secret?alg=SHA-256").as_str())?;
    task.resume();
    let done = next(&mut finished).await?;
    check(
        done.error.is_none() && done.status == Some(200),
        "401, did_receive_challenge, then 200",
    )?;

    step(
        13,
        "the URL cache: the second request for a fresh response never reaches the network",
    );
    let url = http.url("/cache/max-age/60");
    let (first, _) = session.data(url.as_str()).await?;
    let (second, _) = session.data(url.as_str()).await?;
    show!(
        "   first:  {}\n   second: {}",
        String::from_utf8_lossy(&first),
        String::from_utf8_lossy(&second)
    );
    check(first == second, "the same body, from the cache")?;

    step(
        14,
        "a body read as it arrives: session.bytes(url) gives a stream of chunks and the response, as soon as the head is in",
    );
    let (mut stream, response) = session
        .bytes(http.url("/drip?chunks=4&size=2500&delay_ms=50").as_str())
        .await?;
    show!(
        "   status {} before the body; task state {:?}",
        response.status(),
        stream.task().info().state()
    );
    let mut pieces = Vec::new();
    while let Some(chunk) = stream.chunk().await {
        pieces.push(chunk?.len());
    }
    show!("   chunks as they came: {pieces:?}");
    check(
        pieces.iter().sum::<usize>() == 10_000,
        "10000 bytes, read at the pace they arrived",
    )?;

    step(
        15,
        "through an HTTP proxy: https goes in a CONNECT tunnel, so the proxy sees host and port only",
    );
    let proxy = ProxyServer::start(Some("demo:proxy-secret")).await;
    let mut proxied = config.clone();
    proxied.proxy = Proxy::Http {
        url: proxy.url("demo:proxy-secret@"),
        no_proxy: String::new(),
    };
    let (body, response) = Session::new(proxied)?
        .data(https.url("/bytes/2048").as_str())
        .await?;
    for asked in proxy.asked() {
        show!("   the proxy was asked: {}", asked.line);
    }
    let asked = proxy.asked();
    check(
        body.len() == 2048 && response.version() == Version::HTTP_2,
        "HTTP/2 end to end inside the tunnel",
    )?;
    check(
        asked.len() == 1 && asked[0].authorization.is_some(),
        "one CONNECT, carrying the proxy's credentials",
    )?;

    step(
        16,
        "invalidate_and_cancel: every task ends, never-resumed ones too; did_become_invalid comes last",
    );
    let _never_resumed = events.data_task(http.url("/bytes/10").as_str())?;
    events.invalidate_and_cancel();
    let done = next(&mut finished).await?;
    check(
        done.error.as_ref().is_some_and(|e| e.is_cancelled()),
        "the never-resumed task completed with -999",
    )?;
    tokio::time::timeout(Duration::from_secs(10), invalid.wait_for(|d| *d))
        .await
        .map_err(|_| Failure::usage("demo: no did_become_invalid".into()))?
        .map_err(|_| Failure::usage("demo: no did_become_invalid".into()))?;
    check(
        events.data_task(http.url("/").as_str()).is_err(),
        "no new tasks in an invalidated session",
    )?;

    background::step17().await?;
    web_socket(&config, &https).await?;
    starttls(&config, &ca).await?;

    show!("\ncourier demo: every step behaved as described.");
    Ok(ExitCode::Success)
}

/// Step 18: a WebSocket task over TLS, trusting the generated CA: messages both ways, a ping, then
/// a normal closure.
async fn web_socket(config: &Configuration, https: &LoopbackServer) -> Result<(), Failure> {
    use courier_engine::{CloseCode, Message};
    step(
        18,
        "a WebSocket task (wss:, the session's trust): messages both ways, then a normal closure",
    );
    let session = Session::new(config.clone())?;
    let url = https.url("/ws-echo").replacen("https:", "wss:", 1);
    let task = session.web_socket_task(url.as_str(), &[])?;
    task.resume();
    let within = |what: &'static str| move |_| Failure::usage(format!("demo: {what} in time"));
    for text in ["hello", "over a WebSocket"] {
        task.send(Message::Text(text.into())).await?;
        let echoed = tokio::time::timeout(Duration::from_secs(10), task.receive())
            .await
            .map_err(within("an echo"))??;
        show!("   sent {text:?}, received {echoed:?}");
        check(echoed == Message::Text(text.into()), "the server echoed it")?;
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    task.send_ping(move |error| {
        let _ = tx.send(error.is_none());
    });
    let ponged = tokio::time::timeout(Duration::from_secs(10), rx)
        .await
        .map_err(within("a pong"))?
        .unwrap_or(false);
    check(ponged, "a ping got its pong")?;
    task.cancel_with(CloseCode::NormalClosure, None);
    session.finish_tasks_and_invalidate();
    tokio::time::timeout(Duration::from_secs(10), session.invalidated())
        .await
        .map_err(within("the close"))?;
    show!(
        "   closed with {:?}; the task's error: {:?}",
        task.close_code(),
        task.info().error().map(|e| e.code())
    );
    check(
        task.close_code() == CloseCode::NormalClosure && task.info().error().is_none(),
        "closed normally, and the task completed without an error",
    )
}

/// Step 19: a stream task: lines in cleartext, STARTTLS with the session's trust, lines over TLS,
/// then both sides closed.
async fn starttls(config: &Configuration, ca: &LoopbackCa) -> Result<(), Failure> {
    step(
        19,
        "a stream task: a line protocol, then STARTTLS with the session's trust, then both sides closed",
    );
    let server = courier_cli::loopback::StartTlsServer::start(ca).await;
    let session = Session::new(config.clone())?;
    let task = session.stream_task("localhost", server.port())?;
    task.resume();
    let wait = Duration::from_secs(10);
    let line = |task: &courier_engine::StreamTask| {
        let task = task.clone();
        async move {
            let mut seen = Vec::new();
            while !seen.ends_with(b"\n") {
                let (bytes, eof) = task.read(1, 1024, wait).await?;
                seen.extend_from_slice(&bytes);
                if eof {
                    break;
                }
            }
            Ok::<String, courier_engine::Error>(
                String::from_utf8_lossy(&seen).trim_end().to_owned(),
            )
        }
    };
    show!("   server: {}", line(&task).await?);
    task.write(&b"STARTTLS\r\n"[..], wait).await?;
    let go = line(&task).await?;
    show!("   sent STARTTLS; server: {go}");
    task.start_secure_connection().await?;
    task.write(&b"hello over tls\r\n"[..], wait).await?;
    let echoed = line(&task).await?;
    show!("   TLS started; sent \"hello over tls\"; server: {echoed}");
    check(
        go.starts_with("220") && echoed == "250 hello over tls (tls)",
        "the line went over TLS, the server's certificate checked against the generated CA",
    )?;
    task.write(&b"QUIT\r\n"[..], wait).await?;
    show!("   sent QUIT; server: {}", line(&task).await?);
    task.close_write();
    session.finish_tasks_and_invalidate();
    tokio::time::timeout(wait, session.invalidated())
        .await
        .map_err(|_| Failure::usage("demo: the stream task did not end in time".into()))?;
    check(
        task.info().error().is_none(),
        "both sides closed: the task completed without an error",
    )
}

/// Steps 8 to 10: a download with progress, a cancel that keeps resume data and its resume, an
/// upload.
async fn downloads(config: &Configuration) -> Result<(), Failure> {
    let files = tempfile::tempdir()?;
    let http = LoopbackServer::http(demo_route).await;
    const SIZE: usize = 8 * 1024 * 1024;
    let content = pattern_bytes(0, SIZE);
    let progress = Arc::new(crate::progress::Progress::new(false));
    let (delegate, mut finished, _invalid) = CliDelegate::new(None, Box::new(io::sink()), progress);
    let delegate = Arc::new(delegate);
    let session = Session::with_delegate(config.clone(), delegate.clone())?;

    step(
        8,
        "a download task: did_write_data progress, then the file (8 MiB at about 16 MiB/s)",
    );
    let target = files.path().join("first.bin");
    let url = http.url(&format!(
        "/resource/{SIZE}?chunk={}&delay_ms=15",
        256 * 1024
    ));
    let task = session.download_task(url.as_str())?;
    delegate.set_destination(task.info().id(), target.clone());
    delegate
        .bars()
        .add(task.info().id(), || "first.bin".to_owned());
    task.resume();
    let done = next(&mut finished).await?;
    let saved = std::fs::read(&target)?;
    show!("   saved {} bytes to {}", saved.len(), target.display());
    check(
        done.error.is_none() && saved == content,
        "the file is the resource, byte for byte",
    )?;

    step(
        9,
        "cancel by producing resume data, then a new task continues where it stopped",
    );
    let url = http.url(&format!(
        "/resource/{SIZE}?chunk={}&delay_ms=20",
        128 * 1024
    ));
    let task = session.download_task(url.as_str())?;
    delegate
        .bars()
        .add(task.info().id(), || "interrupted.bin".to_owned());
    task.resume();
    while task.info().bytes_received() < 2 * 1024 * 1024 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let data = task
        .cancel_by_producing_resume_data()
        .await
        .ok_or_else(|| Failure::usage("demo: no resume data".into()))?;
    next(&mut finished).await?;
    show!(
        "   cancelled past 2 MiB; the resume data ({} bytes) names the partial file kept",
        data.as_bytes().len()
    );
    let target = files.path().join("resumed.bin");
    let resumed = session.download_task_with_resume_data(&data)?;
    delegate.set_destination(resumed.info().id(), target.clone());
    delegate
        .bars()
        .add(resumed.info().id(), || "resumed.bin".to_owned());
    resumed.resume();
    let done = next(&mut finished).await?;
    let asked = http.ranges_asked().pop().flatten().unwrap_or_default();
    show!("   the new task asked for {asked:?}");
    check(
        done.error.is_none() && std::fs::read(&target)? == content,
        "resumed with a range request; the file is whole",
    )?;

    step(
        10,
        "an upload task from a file: did_send_body_data, then the response",
    );
    let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let path = files.path().join("payload.bin");
    std::fs::write(&path, &payload)?;
    let request = Request::new(Method::PUT, &http.url("/upload"));
    let (body, response) = session.upload(request, UploadBody::File(path)).await?;
    let receipt = String::from_utf8_lossy(&body).into_owned();
    show!("   server: {} {receipt}", response.status());
    check(
        receipt == format!("bytes=3000000 sha256={}", sha256_hex(&payload)),
        "the server read every byte",
    )?;
    session.finish_tasks_and_invalidate();
    Ok(())
}
