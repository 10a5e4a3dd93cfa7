//! `courier demo`, step 17: a background session hands two downloads to a service (in-process
//! here, on a runtime of its own; `courier daemon` in real use), the application goes, and the next
//! session with the identifier gets everything replayed.

use std::sync::Arc;
use std::time::Duration;

use courier_cli::loopback::{LoopbackServer, demo_route, pattern_bytes, sha256_hex};
use courier_engine::{Configuration, Session};

use super::{check, step};
use crate::Failure;

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
pub(super) async fn step17() -> Result<(), Failure> {
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
        show!("   two downloads handed to the service; the application session is dropped");
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
    show!("   both finished while no application was there");
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
        show!("   replayed: {event}");
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
