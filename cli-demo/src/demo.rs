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

fn step(n: u32, title: &str) {
    println!("\n== {n}. {title}");
}

fn check(ok: bool, what: &str) -> Result<(), Failure> {
    if ok {
        println!("   ok: {what}");
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
    println!("courier demo: URLSession's model in Rust, on a loopback server");
    let ca = LoopbackCa::new();
    let http = LoopbackServer::http(demo_route).await;
    let https = LoopbackServer::https(&ca, demo_route).await;
    println!(
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
    println!(
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
    println!(
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
        done.error.is_none() && task.bytes_received() == 8000,
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
    let before = task.bytes_received();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let after = task.bytes_received();
    println!("   suspended at {before} bytes; 400 ms later still {after}");
    check(
        before == after && task.state() == TaskState::Suspended,
        "nothing moved while suspended",
    )?;
    task.resume();
    let done = next(&mut finished).await?;
    check(
        done.error.is_none() && task.bytes_received() == 20_000,
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
        println!(
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
        done.error.is_none() && task.current_request().url_str() == http.url("/chain/0"),
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
    println!(
        "   first:  {}\n   second: {}",
        String::from_utf8_lossy(&first),
        String::from_utf8_lossy(&second)
    );
    check(first == second, "the same body, from the cache")?;

    step(
        14,
        "a body read as it arrives: session.bytes(url) gives the response, then a stream of chunks",
    );
    let (response, mut stream) = session
        .bytes(http.url("/drip?chunks=4&size=2500&delay_ms=50").as_str())
        .await?;
    println!(
        "   status {} before the body; task state {:?}",
        response.status(),
        stream.task().state()
    );
    let mut pieces = Vec::new();
    while let Some(chunk) = stream.chunk().await {
        pieces.push(chunk?.len());
    }
    println!("   chunks as they came: {pieces:?}");
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
        println!("   the proxy was asked: {}", asked.line);
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

    background().await?;

    println!("\ncourier demo: every step behaved as described.");
    Ok(ExitCode::Success)
}

/// What the application's delegate saw of a background session, in order.
#[derive(Default)]
struct Seen {
    events: std::sync::Mutex<Vec<String>>,
    /// Each finished file's SHA-256, read during `did_finish_downloading_to`.
    files: std::sync::Mutex<Vec<String>>,
}

impl Seen {
    fn push(&self, event: String) {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event);
    }

    fn events(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl courier_engine::SessionDelegate for Seen {
    fn did_finish_events_for_background_session(&self, identifier: &str) {
        self.push(format!(
            "did_finish_events_for_background_session({identifier})"
        ));
    }
}
impl courier_engine::DataDelegate for Seen {}
impl courier_engine::TaskDelegate for Seen {
    fn did_complete(&self, task: &courier_engine::TaskInfo, error: Option<&courier_engine::Error>) {
        let outcome = error.map_or("ok".to_owned(), |e| e.code().number().to_string());
        self.push(format!("did_complete(task {}, {outcome})", task.id()));
    }
}
impl courier_engine::DownloadDelegate for Seen {
    fn did_finish_downloading_to(
        &self,
        task: &courier_engine::TaskInfo,
        location: &std::path::Path,
    ) {
        let sha = std::fs::read(location)
            .map(|b| sha256_hex(&b))
            .unwrap_or_default();
        self.files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(sha);
        self.push(format!("did_finish_downloading_to(task {})", task.id()));
    }
}

/// Step 17: a background session hands two downloads to a service (in-process here; `courier
/// daemon` in real use), the application goes, the downloads finish without it, and the next
/// session with the identifier gets everything replayed.
async fn background() -> Result<(), Failure> {
    step(
        17,
        "a background session: the application goes, its downloads go on, the next session gets the replay",
    );
    let state = tempfile::tempdir()?;
    let service = InProcessService::start(state.path())?;
    let http = LoopbackServer::http(demo_route).await;
    let mut config = Configuration::background("com.example.demo");
    config.background_service = Some(service.socket.clone());
    let sizes = [3 * 1024 * 1024, 1024 * 1024];
    {
        let app = Session::with_delegate(config.clone(), Arc::new(Seen::default()))?;
        for size in sizes {
            let url = http.url(&format!("/resource/{size}?chunk=65536&delay_ms=10"));
            app.download_task(url.as_str())?.resume();
        }
        println!("   two downloads handed to the service; the application session is dropped");
    }
    // Watched from outside (as `courier bg list` does) until both completed.
    let mut watcher = courier_engine::background::wire::Connection::new(
        tokio::net::UnixStream::connect(&service.socket).await?,
    );
    watcher.hello_without_events("com.example.demo").await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        use courier_storage::journal::TaskPhase;
        let completed = watcher
            .list_tasks()
            .await?
            .iter()
            .filter(|t| t.record.phase == TaskPhase::Completed)
            .count();
        if completed == sizes.len() {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            return Err(Failure::usage(
                "demo: the background downloads did not finish".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("   both finished while no application was there");
    let seen = Arc::new(Seen::default());
    let app = Session::with_delegate(config, seen.clone())?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !seen
        .events()
        .iter()
        .any(|e| e.starts_with("did_finish_events"))
    {
        if tokio::time::Instant::now() > deadline {
            return Err(Failure::usage("demo: no replay".into()));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for event in seen.events() {
        println!("   replayed: {event}");
    }
    let files = seen.files.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut expected: Vec<String> = sizes
        .iter()
        .map(|n| sha256_hex(&pattern_bytes(0, *n)))
        .collect();
    let mut got = files.clone();
    expected.sort();
    got.sort();
    check(got == expected, "both files handed over, byte for byte")?;
    check(
        seen.events()
            .last()
            .is_some_and(|e| e.starts_with("did_finish_events_for_background_session")),
        "then did_finish_events_for_background_session",
    )?;
    drop(app);
    service.stop();
    Ok(())
}

/// A background service on a runtime of its own, as an application hosting one would run it: the
/// application side of a background session makes short blocking round trips to the service,
/// which must not wait for the thread they block (the demo runs on a current-thread runtime).
struct InProcessService {
    socket: std::path::PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcessService {
    fn start(dir: &std::path::Path) -> Result<InProcessService, Failure> {
        let (data, run) = (dir.join("data"), dir.join("run"));
        let (started_tx, started) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = started_tx.send(Err(e.to_string()));
                    return;
                }
            };
            runtime.block_on(async move {
                let mut template = Configuration::default();
                template.cleartext.allow_host("127.0.0.1");
                let policy = courier_engine::background::Policy::default();
                match courier_engine::background::Service::start(&data, &run, template, policy)
                    .await
                {
                    Ok(service) => {
                        let _ = started_tx.send(Ok(service.socket().to_path_buf()));
                        let _ = stopped.await;
                        service.shutdown().await;
                    }
                    Err(e) => {
                        let _ = started_tx.send(Err(e.to_string()));
                    }
                }
            });
        });
        let socket = started
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| Failure::usage("demo: the background service did not start".into()))?
            .map_err(Failure::usage)?;
        Ok(InProcessService {
            socket,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
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
    delegate.set_destination(task.id(), target.clone());
    delegate.bars().add(task.id(), "first.bin");
    task.resume();
    let done = next(&mut finished).await?;
    let saved = std::fs::read(&target)?;
    println!("   saved {} bytes to {}", saved.len(), target.display());
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
    delegate.bars().add(task.id(), "interrupted.bin");
    task.resume();
    while task.bytes_received() < 2 * 1024 * 1024 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let data = task
        .cancel_by_producing_resume_data()
        .await
        .ok_or_else(|| Failure::usage("demo: no resume data".into()))?;
    next(&mut finished).await?;
    println!(
        "   cancelled past 2 MiB; the resume data ({} bytes) names the partial file kept",
        data.as_bytes().len()
    );
    let target = files.path().join("resumed.bin");
    let resumed = session.download_task_with_resume_data(&data)?;
    delegate.set_destination(resumed.id(), target.clone());
    delegate.bars().add(resumed.id(), "resumed.bin");
    resumed.resume();
    let done = next(&mut finished).await?;
    let asked = http.ranges_asked().pop().flatten().unwrap_or_default();
    println!("   the new task asked for {asked:?}");
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
    println!("   server: {} {receipt}", response.status());
    check(
        receipt == format!("bytes=3000000 sha256={}", sha256_hex(&payload)),
        "the server read every byte",
    )?;
    session.finish_tasks_and_invalidate();
    Ok(())
}
