//! The suite's scenario of 10,000 downloads running at once from one server: every one completes,
//! and the memory per running task, against reqwest's for the same downloads. Each side runs in a
//! child process of its own (`courier-bench concurrent-once`, `concurrent-once-reqwest`), raised
//! to the hard open-file limit, with as many downloads as that limit allows it: Courier's take a
//! descriptor each (their files are closed between writes), reqwest's two. Three floor children
//! (`concurrent-once-floor`) measure what Courier's figure stands on: hyper-util's client alone,
//! and the same with each download in a ractor actor of its own, or in a hand-written one.

use std::path::PathBuf;

use courier_engine::Session;

use super::floor::minimal_request;
use super::report::{Report, Scenario, Side, Target, Unit};
use super::small::HyperClient;
use super::transfers::{child_with_many_files, cleartext, runtime, value};
use super::{loopback_server, status_field};

/// `courier-bench concurrent-once URL N`: N downloads at once in one session, each on a
/// connection of its own; reports the RSS before and at the peak.
pub(crate) fn concurrent_once(url: &str, n: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    runtime().block_on(async {
        let mut config = cleartext(dir.path());
        config.http_maximum_connections_per_host = n;
        let session = Session::new(config).expect("session");
        // The session and its first connection exist before the baseline.
        let (warm, _) = session.download(url).await.expect("a first download");
        drop(warm);
        println!("base_kib={}", status_field("self", "VmRSS:"));
        let mut running = tokio::task::JoinSet::new();
        for _ in 0..n {
            let download = session.download(url);
            running.spawn(async move {
                let (file, _) = download.await.expect("download");
                drop(file); // removes it
            });
        }
        while let Some(done) = running.join_next().await {
            done.expect("download task");
        }
    });
    println!("peak_kib={}", status_field("self", "VmHWM:"));
}

/// `courier-bench concurrent-once-reqwest URL N`: the same with reqwest, each body streamed to a
/// file as its chunks arrive (`tokio::fs::File`), as a reqwest user writes a download.
pub(crate) fn concurrent_once_reqwest(url: &str, n: usize) {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().expect("temp dir");
    runtime().block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(n)
            .build()
            .expect("client");
        let fetch = |client: reqwest::Client, path: PathBuf, url: String| async move {
            let mut response = client.get(url).send().await.expect("response");
            let mut file = tokio::fs::File::create(&path).await.expect("file");
            while let Some(chunk) = response.chunk().await.expect("body") {
                file.write_all(&chunk).await.expect("write");
            }
            file.flush().await.expect("flush");
            drop(file);
            std::fs::remove_file(&path).expect("remove");
        };
        fetch(client.clone(), dir.path().join("warm"), url.to_owned()).await;
        println!("base_kib={}", status_field("self", "VmRSS:"));
        let mut running = tokio::task::JoinSet::new();
        for i in 0..n {
            running.spawn(fetch(
                client.clone(),
                dir.path().join(i.to_string()),
                url.to_owned(),
            ));
        }
        while let Some(done) = running.join_next().await {
            done.expect("download task");
        }
    });
    println!("peak_kib={}", status_field("self", "VmHWM:"));
}

/// What runs each download in a floor child ([`concurrent_once_floor`]).
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum FloorShape {
    /// hyper-util's client alone.
    Transport,
    /// The same, each download inside a ractor actor of its own, as a Courier task runs in one.
    Actor,
    /// The same, each download inside the cheapest actor written by hand (`floor.rs`'s minimal
    /// actor): a Tokio task with a mailbox, its transfer inside it, its panic caught.
    MinimalActor,
}

impl FloorShape {
    const ALL: [FloorShape; 3] = [
        FloorShape::Transport,
        FloorShape::Actor,
        FloorShape::MinimalActor,
    ];

    pub(crate) fn named(name: &str) -> Option<FloorShape> {
        FloorShape::ALL.into_iter().find(|s| s.name() == name)
    }

    fn name(self) -> &'static str {
        match self {
            FloorShape::Transport => "transport",
            FloorShape::Actor => "actor",
            FloorShape::MinimalActor => "minimal-actor",
        }
    }

    /// The side's name in the report's note.
    fn label(self) -> &'static str {
        match self {
            FloorShape::Transport => "hyper-util's client alone",
            FloorShape::Actor => "the same with each download in a ractor actor",
            FloorShape::MinimalActor => {
                "the same with each download in a hand-written actor (a Tokio task and a mailbox)"
            }
        }
    }
}

/// One download of the floor: the GET, its body read frame by frame and dropped. The body goes to
/// no file: what is left is the transport's own memory.
async fn floor_download(client: HyperClient, uri: http::Uri) -> usize {
    use http_body_util::BodyExt;
    let mut body = client.get(uri).await.expect("GET").into_body();
    let mut got = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("body").into_data() {
            got += data.len();
        }
    }
    got
}

/// A floor download's actor: it runs its one download when told to, answers, and stops.
struct FloorActor;

impl ractor::Actor for FloorActor {
    type Msg = tokio::sync::oneshot::Sender<usize>;
    type State = (HyperClient, http::Uri);
    type Arguments = (HyperClient, http::Uri);

    async fn pre_start(
        &self,
        _: ractor::ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ractor::ActorProcessingErr> {
        Ok(args)
    }

    async fn handle(
        &self,
        me: ractor::ActorRef<Self::Msg>,
        reply: Self::Msg,
        (client, uri): &mut Self::State,
    ) -> Result<(), ractor::ActorProcessingErr> {
        let _ = reply.send(floor_download(client.clone(), uri.clone()).await);
        me.stop(None);
        Ok(())
    }
}

/// `courier-bench concurrent-once-floor URL N SHAPE`: what Courier's downloads stand on, the same
/// N downloads at once through hyper-util's client alone (`transport`), or each in an actor of its
/// own (`actor`: ractor's, `minimal-actor`: written by hand); reports the RSS before and at the
/// peak, as [`concurrent_once`] does.
pub(crate) fn concurrent_once_floor(url: &str, n: usize, shape: FloorShape) {
    runtime().block_on(async {
        // hyper-util's pooled client with the settings Courier's transport gives it for HTTP/1.1:
        // a connection per download kept in the pool, reads of up to 256 KiB.
        let client: HyperClient =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_max_idle_per_host(n)
                .http1_max_buf_size(256 * 1024) // Courier's `MAX_HEAD_BYTES`
                .build_http();
        let uri: http::Uri = url.parse().expect("URI");
        let fetch = move |client: HyperClient, uri: http::Uri| async move {
            let got = match shape {
                FloorShape::Transport => floor_download(client, uri).await,
                FloorShape::Actor => {
                    let (actor, _) = ractor::Actor::spawn(None, FloorActor, (client, uri))
                        .await
                        .expect("actor");
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    actor.cast(tx).expect("cast");
                    rx.await.expect("the actor's answer")
                }
                FloorShape::MinimalActor => {
                    use futures_util::FutureExt;
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    // Its mailbox: its one control call would be a cancel.
                    let (_cancel, cancels) = tokio::sync::mpsc::unbounded_channel::<()>();
                    let actor = tokio::spawn(async move {
                        let run = minimal_request(floor_download(client, uri), tx, cancels);
                        std::panic::AssertUnwindSafe(run)
                            .catch_unwind()
                            .await
                            .is_ok()
                    });
                    let got = rx.await.expect("the actor's answer");
                    assert!(actor.await.expect("the actor's task"), "no panic");
                    got
                }
            };
            assert_eq!(got, 65_536, "the whole body");
        };
        fetch(client.clone(), uri.clone()).await;
        println!("base_kib={}", status_field("self", "VmRSS:"));
        let mut running = tokio::task::JoinSet::new();
        for _ in 0..n {
            running.spawn(fetch(client.clone(), uri.clone()));
        }
        while let Some(done) = running.join_next().await {
            done.expect("download task");
        }
    });
    println!("peak_kib={}", status_field("self", "VmHWM:"));
}

/// 10,000 downloads running at once from one server (each 64 KiB, paced at 4 KiB every 200 ms, so
/// all are under way together): every one completes, and the memory per running task, against
/// reqwest's for the same downloads.
pub(crate) fn concurrent(report: &mut Report, rounds: usize, n: usize) {
    // As many downloads as the hard open-file limit allows, with room for the rest: the files
    // being written (one per blocking thread at most, 512), the checkpoints' reads and records,
    // the runtime's own. Courier's downloads hold a socket each, and their files only while
    // writing; reqwest's hold a socket and a file each, so a limit of 20,000 allows 8,976 of
    // them. (Runs failed with "Too many open files" while every Courier download's periodic
    // checkpoint could hold a handle in the blocking pool's queue; a session now runs a few at
    // once.)
    let room = open_file_limit().saturating_sub(2048);
    let (n, n_reqwest) = (n.min(room), n.min(room / 2));
    let (_server_rt, server) = loopback_server();
    let url = server.url("/resource/65536?chunk=4096&delay_ms=200");
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let mut times = Vec::new();
    for round in 0..rounds {
        for (mode, n, per_task) in [
            ("concurrent-once", n, &mut ours),
            ("concurrent-once-reqwest", n_reqwest, &mut theirs),
        ] {
            let (took, out) = child_with_many_files(&[mode, &url, &n.to_string()]);
            let (base, peak) = (value(&out, "base_kib"), value(&out, "peak_kib"));
            let each = (peak - base) * 1024.0 / n as f64;
            println!(
                "round {round}, {mode}: {n} downloads in {took:.2} s; {each:.0} bytes per running task"
            );
            per_task.push(each);
            if mode == "concurrent-once" {
                times.push(took);
            }
        }
    }
    // What Courier's downloads stand on, measured once (their figures move less than a
    // kilobyte from round to round): the part of Courier's figure that is not its own.
    let floors: Vec<String> = FloorShape::ALL
        .into_iter()
        .map(|shape| {
            let (took, out) = child_with_many_files(&[
                "concurrent-once-floor",
                &url,
                &n.to_string(),
                shape.name(),
            ]);
            let (base, peak) = (value(&out, "base_kib"), value(&out, "peak_kib"));
            let each = (peak - base) / n as f64;
            println!(
                "floor, {}: {n} downloads in {took:.2} s; {each:.2} KiB per running task",
                shape.label()
            );
            format!("{}, {each:.2} KiB", shape.label())
        })
        .collect();
    report.add(Scenario {
        name: format!("{n} downloads running at once from one server: memory per running task"),
        unit: Unit::Bytes,
        courier: vec![Side::new("courier (peak RSS growth / tasks)", ours)],
        peers: vec![Side::new("reqwest (peak RSS growth / tasks)", theirs)],
        target: Target::AtMost(32.0 * 1024.0),
        note: format!(
            "all {n} completed in every round (each 64 KiB paced over 3.2 s, a connection each; \
             reqwest's side ran {n_reqwest}, what this machine's open-file limit allows a socket \
             and a file each); Courier's wall times {}; the floor under Courier's figure, each \
             body read and dropped, measured once: {}",
            times
                .iter()
                .map(|t| format!("{t:.2} s"))
                .collect::<Vec<_>>()
                .join(", "),
            floors.join("; ")
        ),
    });
}

/// The hard limit on open files (what the child raises its own to).
fn open_file_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(4).map(str::to_owned))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}
