//! Courier's bench binary: every scenario of issue 10, Courier and its peers (curl, reqwest on both
//! runtime flavours, hyper-util's client alone) alternating in the same run, then a report.
//!
//! `cargo run --release -p courier-tests --bin courier-bench` runs the whole suite (a few minutes)
//! and rewrites the generated section of `BENCHMARKS.md` and `benchmarks.svg` at the workspace root
//! (`report.rs`). `--quick` runs every scenario once, smaller (64 MiB downloads), and writes its
//! report under `target/courier-bench/` instead: a smoke run, its figures compare nothing.
//! `--rounds N` (default 5) and `--download-pairs N` (default 7) set the repetitions.
//!
//! The suite, in order:
//! 1. The resident memory of 100,000 data tasks created and never resumed: RSS growth per task.
//! 2. 10,000 GETs of 1 KiB, 64 at once: through the library over HTTP/1.1 (courier against
//!    reqwest, each on both runtime flavours, and hyper-util's client alone for the cost of
//!    Courier's own layers), over HTTPS with HTTP/2 (h2load as the ceiling), and through the
//!    `courier` command against `curl --parallel` (`bench/small.rs`).
//! 3. 10,000 delegate-style data tasks (six connections, no URL cache) against curl fetching the
//!    same URLs with `--parallel --parallel-max 6`.
//! 4. WebSocket tasks against Python's `websockets` server: 2,000 sequential echo round trips and
//!    100 MiB of 1 MiB binary messages echoed, beside the same library's client
//!    (`bench/web_socket.rs`; `--only ws [--trips N] [--mib N]`).
//! 5. 10,000 downloads running at once, beside reqwest (`bench/concurrent.rs`), a resume of 1 GiB
//!    cut at 50%, and a 1 GiB upload to a sink against `curl -T` (`bench/transfers.rs`).
//! 6. Last, a 1 GiB download to a file from nginx (HTTP/1.1, then HTTPS with HTTP/2): courier (a
//!    fresh process per run, the engine's completion form on a current-thread runtime, as the CLI
//!    runs it) against `curl -o`, and courier's peak RSS (VmHWM); then the same from an FTP server
//!    (pyftpdlib) against `curl -o ftp://` (`--only ftp`).
//!
//! One part alone, printed and not written to the report: `--only small [--requests N] [--side
//! NAME]` (`--side "courier current-thread"` runs that side alone, for a profile), `--only
//! small-h2`, `--only command`, `--only tasks`, `--only concurrent`, `--only resume`, `--only
//! upload`, `--only download` (`download-h1`, `download-h2`), and the parts outside the suite:
//! `--only bombs [--courier PATH]` (the peak RSS of `courier get` refusing 1 GiB of zeros sent
//! compressed, beside `curl --compressed`) and `--only background [--courier PATH]` (what
//! background sessions cost, `bench/background.rs`).
//!
//! The server runs on its own runtime thread, so client and server share the two cores as they would
//! with a separate server process.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use courier_engine::{
    CleartextPolicy, Configuration, DataDelegate, Error, Session, SessionDelegate, TaskDelegate,
    TaskInfo,
};
use courier_tests::TestServer;
use tokio::sync::Notify;

#[path = "bench/background.rs"]
mod background;
#[path = "bench/concurrent.rs"]
mod concurrent;
#[path = "bench/floor.rs"]
mod floor;
#[path = "bench/report.rs"]
mod report;
#[path = "bench/small.rs"]
mod small;
#[path = "bench/transfers.rs"]
mod transfers;
#[path = "bench/web_socket.rs"]
mod web_socket;

use report::{Report, Scenario, Side, Target, Unit};

struct Counter {
    done: AtomicUsize,
    failed: AtomicUsize,
    target: usize,
    notify: Notify,
}

impl Counter {
    /// Counts completions until `target`.
    fn new(target: usize) -> Counter {
        Counter {
            done: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            target,
            notify: Notify::new(),
        }
    }
}

impl SessionDelegate for Counter {}
impl DataDelegate for Counter {}
impl courier_engine::DownloadDelegate for Counter {}
impl TaskDelegate for Counter {
    fn did_complete(&self, _task: &TaskInfo, error: Option<&Error>) {
        if error.is_some() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        if self.done.fetch_add(1, Ordering::AcqRel) + 1 == self.target {
            self.notify.notify_one();
        }
    }
}

fn config() -> Configuration {
    let mut c = Configuration::ephemeral();
    c.cleartext = CleartextPolicy::AllowAll;
    c
}

/// Like curl, no URL cache: the comparison is of transfers, not of caching.
fn config_without_cache() -> Configuration {
    let mut c = config();
    c.url_cache_memory_capacity = 0;
    c
}

async fn courier_run(url: &str, n: usize) -> Duration {
    courier_run_with(url, n, config_without_cache()).await
}

async fn courier_run_with(url: &str, n: usize, config: Configuration) -> Duration {
    complete_all(config, n, |session, _| {
        session.data_task(url).expect("task").resume();
    })
    .await
}

/// [`courier_run`] with the delegate called on this runtime (`Session::with_delegate_on`) rather
/// than on the session's own thread.
async fn courier_run_on_runtime(url: &str, n: usize) -> Duration {
    complete_all_on(
        config_without_cache(),
        n,
        Delivery::Runtime,
        |session, _, _| {
            session.data_task(url).expect("task").resume();
        },
    )
    .await
}

/// [`courier_run`] with each task's completion going to a delegate of its own (`set_delegate`),
/// the session's delegate implementing nothing: what routing through a task's delegate costs.
async fn courier_run_per_task_delegate(url: &str, n: usize) -> Duration {
    complete_all_on(
        config_without_cache(),
        n,
        Delivery::PerTask,
        |session, _, counter| {
            let task = session.data_task(url).expect("task");
            task.set_delegate(counter.clone())
                .expect("a delegate of its own");
            task.resume();
        },
    )
    .await
}

/// Where [`complete_all_on`]'s completions are delivered.
#[derive(Clone, Copy, PartialEq)]
enum Delivery {
    /// To the session's delegate, on the session's own thread.
    Thread,
    /// To the session's delegate, on the caller's runtime.
    Runtime,
    /// To each task's own delegate (the `start` closure attaches it); the session's implements
    /// nothing.
    PerTask,
}

/// A session delegate that leaves every method at its default.
struct Quiet;
impl SessionDelegate for Quiet {}
impl DataDelegate for Quiet {}
impl courier_engine::DownloadDelegate for Quiet {}
impl TaskDelegate for Quiet {}

/// Starts `n` tasks in one session of `config` (`start` creates and resumes task `i`) and waits for
/// every completion; the wall time. Every task must succeed.
async fn complete_all(
    config: Configuration,
    n: usize,
    start: impl Fn(&Session, usize),
) -> Duration {
    complete_all_on(config, n, Delivery::Thread, |session, i, _| {
        start(session, i)
    })
    .await
}

/// [`complete_all`], with the completions delivered as `delivery` says; `start` gets the counter
/// (for a task's own delegate).
async fn complete_all_on(
    config: Configuration,
    n: usize,
    delivery: Delivery,
    start: impl Fn(&Session, usize, &Arc<Counter>),
) -> Duration {
    let counter = Arc::new(Counter::new(n));
    let session = match delivery {
        Delivery::Runtime => {
            let here = tokio::runtime::Handle::current();
            Session::with_delegate_on(config, counter.clone(), &here)
        }
        Delivery::Thread => Session::with_delegate(config, counter.clone()),
        Delivery::PerTask => Session::with_delegate(config, Arc::new(Quiet)),
    }
    .expect("session");
    let started = Instant::now();
    for i in 0..n {
        start(&session, i, &counter);
    }
    counter.notify.notified().await;
    let took = started.elapsed();
    assert_eq!(
        counter.failed.load(Ordering::Relaxed),
        0,
        "every task succeeds"
    );
    session.finish_tasks_and_invalidate();
    session.invalidated().await;
    took
}

/// Writes a curl config fetching `url` `n` times to /dev/null (`curl -K`).
fn write_curl_config(path: &std::path::Path, url: &str, n: usize) {
    std::fs::write(
        path,
        format!("url = \"{url}\"\noutput = \"/dev/null\"\n").repeat(n),
    )
    .expect("curl config");
}

/// `curl --parallel --parallel-max PARALLEL -K CONFIG`, its wall time.
fn curl_run(config_file: &std::path::Path, parallel: usize) -> Duration {
    let started = Instant::now();
    let status = Command::new("curl")
        .args(["-s", "--no-progress-meter", "--parallel", "--parallel-max"])
        .arg(parallel.to_string())
        .arg("-K")
        .arg(config_file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("curl runs");
    assert!(status.success());
    started.elapsed()
}

/// The loopback server, on a runtime thread of its own (client and server share the two cores as
/// with a separate server process); keep the runtime as long as the server.
fn loopback_server() -> (tokio::runtime::Runtime, TestServer) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("server runtime");
    let server = runtime.block_on(TestServer::http());
    (runtime, server)
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A field of `/proc/PROCESS/status` (`self`, or a process id), in KiB.
fn status_field(process: &str, name: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{process}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The `courier` binary the on-demand parts run: `--courier PATH`, else the one beside this bench.
fn courier_binary() -> std::path::PathBuf {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--courier")
        .and_then(|i| args.get(i + 1))
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::env::current_exe()
                .expect("own path")
                .with_file_name("courier")
        })
}

/// Part 4: decompression bombs, refused by `courier get`; `curl --compressed` decodes them whole.
fn bombs_bench() {
    let courier = courier_binary();
    let (_server_rt, server) = loopback_server();
    println!(
        "# 1 GiB of zeros as each encoding: peak RSS of {}",
        courier.display()
    );
    for encoding in ["gzip", "deflate", "br"] {
        let url = server.url(&format!("/bomb-of/{encoding}/1024"));
        // The first request makes (and keeps) the body; it is not measured.
        let _ = Command::new("curl")
            .args(["-s", "-o", "/dev/null", &url])
            .status();
        let peak = |program: &std::path::Path, extra: &[&str]| -> (u64, Option<i32>, String) {
            let out = Command::new("/usr/bin/time")
                .args(["-f", "maxrss_kib=%M"])
                .arg(program)
                .args(extra)
                .arg(&url)
                .output()
                .expect("/usr/bin/time runs");
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            let kib = stderr
                .lines()
                .find_map(|l| l.strip_prefix("maxrss_kib="))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let last = stderr
                .lines()
                .rfind(|l| l.starts_with("courier:"))
                .unwrap_or("")
                .to_owned();
            (kib, out.status.code(), last)
        };
        let (ours, code, said) = peak(&courier, &["get", "-q", "--allow-http", "-o", "/dev/null"]);
        let (theirs, _, _) = peak(
            std::path::Path::new("curl"),
            &["-s", "--compressed", "-o", "/dev/null"],
        );
        println!(
            "{encoding:8} courier peak RSS {:.1} MiB (exit {code:?}: {said})  curl --compressed {:.1} MiB  ratio {:.2}",
            ours as f64 / 1024.0,
            theirs as f64 / 1024.0,
            ours as f64 / theirs.max(1) as f64
        );
    }
}

fn main() {
    // reqwest is built without a crypto provider of its own (`rustls-no-provider`): it takes the
    // process's, ring, as Courier does.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().collect();
    // The child processes the suite runs courier in.
    match args.get(1).map(String::as_str) {
        Some("download-once") => {
            return transfers::download_once(
                &args[2],
                std::path::Path::new(&args[3]),
                args.get(4).map(std::path::Path::new),
            );
        }
        Some("upload-once") => {
            return transfers::upload_once(&args[2], std::path::Path::new(&args[3]));
        }
        Some("resume-once") => {
            return transfers::resume_once(&args[2], args[3].parse().expect("a size"));
        }
        Some("concurrent-once") => {
            return concurrent::concurrent_once(&args[2], args[3].parse().expect("a count"));
        }
        Some("concurrent-once-reqwest") => {
            return concurrent::concurrent_once_reqwest(
                &args[2],
                args[3].parse().expect("a count"),
            );
        }
        _ => {}
    }
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let quick = args.iter().any(|a| a == "--quick");
    let mut report = Report::default();
    match only.as_deref() {
        None => {}
        Some("download") => {
            for tls in [false, true] {
                transfers::download(&mut report, arg("--download-pairs", 9), tls, 1 << 30);
            }
            return;
        }
        Some("download-h1") => {
            return transfers::download(&mut report, arg("--download-pairs", 9), false, 1 << 30);
        }
        Some("download-h2") => {
            return transfers::download(&mut report, arg("--download-pairs", 9), true, 1 << 30);
        }
        Some("upload") => {
            return transfers::upload(&mut report, arg("--download-pairs", 7), 1 << 30);
        }
        Some("resume") => return transfers::resume(&mut report, arg("--rounds", 5), 1 << 30),
        Some("concurrent") => {
            return concurrent::concurrent(&mut report, arg("--rounds", 3), arg("--tasks", 10_000));
        }
        Some("bombs") => return bombs_bench(),
        Some("small-h2") => {
            report.add(small::run_h2(arg("--requests", 10_000), arg("--rounds", 5)));
            return;
        }
        Some("command") => {
            report.add(small::command(
                &courier_binary(),
                arg("--requests", 10_000),
                arg("--rounds", 5),
            ));
            return;
        }
        Some("small") => {
            let side = args
                .iter()
                .position(|a| a == "--side")
                .and_then(|i| args.get(i + 1));
            for scenario in small::run(
                arg("--requests", 10_000),
                arg("--rounds", 5),
                side.map(String::as_str),
            ) {
                report.add(scenario);
            }
            return;
        }
        Some("background") => return background::run(&courier_binary(), arg("--rounds", 5)),
        Some("ftp") => {
            return transfers::ftp_download(&mut report, arg("--download-pairs", 5), 1 << 30);
        }
        Some("ws") => {
            return web_socket::run(
                &mut report,
                arg("--rounds", 5),
                arg("--trips", 2_000),
                arg("--mib", 100),
            );
        }
        Some("tasks") => {
            let (_server_rt, server) = loopback_server();
            let url = server.url("/bytes/1024");
            report.add(suspended_memory(&url, arg("--tasks", 10_000)));
            report.add(tasks_against_curl(
                &url,
                arg("--tasks", 10_000),
                arg("--pairs", 11),
            ));
            return;
        }
        Some(other) => panic!("--only {other}: not a part of this bench"),
    }

    // The whole suite: every scenario, then the report. `--quick` runs each once, smaller, and
    // writes its report under target/ (its figures compare nothing).
    let rounds = if quick { 1 } else { arg("--rounds", 5) };
    let pairs = if quick { 1 } else { arg("--download-pairs", 7) };
    {
        let (_server_rt, server) = loopback_server();
        let url = server.url("/bytes/1024");
        // First, while the heap is fresh: freed memory from the runs below would hide the growth.
        report.add(suspended_memory(&url, if quick { 10_000 } else { 100_000 }));
        for scenario in small::run(if quick { 2_000 } else { 10_000 }, rounds, None) {
            report.add(scenario);
        }
        report.add(small::run_h2(if quick { 2_000 } else { 10_000 }, rounds));
        report.add(small::command(
            &courier_binary(),
            if quick { 2_000 } else { 10_000 },
            rounds,
        ));
        report.add(tasks_against_curl(
            &url,
            if quick { 2_000 } else { 10_000 },
            if quick { 1 } else { 2 * rounds + 1 },
        ));
    }
    web_socket::run(
        &mut report,
        rounds,
        if quick { 200 } else { 2_000 },
        if quick { 8 } else { 100 },
    );
    // Last: writing 1 GiB files leaves the kernel flushing them for a while, which would slow the
    // parts above.
    concurrent::concurrent(
        &mut report,
        if quick { 1 } else { 3 },
        if quick { 1_000 } else { 10_000 },
    );
    let size = if quick { 64 << 20 } else { 1 << 30 };
    transfers::resume(&mut report, rounds, size as u64);
    transfers::upload(&mut report, pairs, size);
    transfers::download(&mut report, pairs, false, size);
    transfers::download(&mut report, pairs, true, size);
    transfers::ftp_download(&mut report, pairs, size);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf();
    let dir = if quick {
        let dir = root.join("target").join("courier-bench");
        std::fs::create_dir_all(&dir).expect("report directory");
        dir
    } else {
        root
    };
    report
        .write(
            &dir.join("BENCHMARKS.md"),
            &dir.join("benchmarks.svg"),
            quick,
        )
        .expect("report written");
    println!(
        "report: {} and {}",
        dir.join("BENCHMARKS.md").display(),
        dir.join("benchmarks.svg").display()
    );
}

/// The resident memory of `tasks` data tasks created and never resumed, per task.
fn suspended_memory(url: &str, tasks: usize) -> Scenario {
    let client = small::Flavor::MultiThread.runtime();
    let (before, after) = client.block_on(async {
        let session = Session::with_delegate(config(), Arc::new(Counter::new(0))).expect("session");
        // One task first, so the session actor and its maps exist before the baseline.
        let warm = session.data_task(url).expect("task");
        let _ = session.all_tasks().await;
        let before = rss_bytes();
        let kept: Vec<_> = (0..tasks)
            .map(|_| session.data_task(url).expect("task"))
            .collect();
        // A round trip through the session actor: every registration has been handled by then.
        let _ = session.all_tasks().await;
        let after = rss_bytes();
        drop((warm, kept));
        session.invalidate_and_cancel();
        session.invalidated().await;
        (before, after)
    });
    let per_task = after.saturating_sub(before) as f64 / tasks as f64;
    Scenario {
        name: format!("{tasks} tasks created and not resumed, in one session: memory each"),
        unit: Unit::Bytes,
        courier: vec![Side::new("courier (RSS growth per task)", vec![per_task])],
        peers: Vec::new(),
        target: Target::AtMost(2048.0),
        note: String::new(),
    }
}

/// Delegate-style data tasks (one session, the default six connections per host, no URL cache)
/// against curl fetching the same URLs with `--parallel --parallel-max 6`, interleaved.
fn tasks_against_curl(url: &str, tasks: usize, pairs: usize) -> Scenario {
    let client = small::Flavor::MultiThread.runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let curl_config = dir.path().join("urls.curl");
    write_curl_config(&curl_config, url, tasks);
    client.block_on(courier_run(url, tasks.min(1000))); // warm-up
    let (mut ours, mut on_runtime, mut per_task, mut theirs) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..pairs {
        let c = client.block_on(courier_run(url, tasks)).as_secs_f64();
        let r = client
            .block_on(courier_run_on_runtime(url, tasks))
            .as_secs_f64();
        let p = client
            .block_on(courier_run_per_task_delegate(url, tasks))
            .as_secs_f64();
        let k = curl_run(&curl_config, 6).as_secs_f64();
        println!(
            "pair {i:2}: courier {c:.3} s  (delegate on the runtime {r:.3} s, per-task delegates {p:.3} s)  curl {k:.3} s  ratio {:.2}",
            c / k
        );
        ours.push(c);
        on_runtime.push(r);
        per_task.push(p);
        theirs.push(k);
    }
    Scenario {
        name: format!("{tasks} data tasks of 1 KiB with a delegate, 6 connections"),
        unit: Unit::Seconds,
        courier: vec![
            Side::new("courier data tasks (multi-thread)", ours),
            Side::new("courier, delegate on the runtime", on_runtime),
            Side::new("courier, a delegate per task", per_task),
        ],
        peers: vec![Side::new("curl --parallel-max 6", theirs)],
        target: Target::AtMostTimesBestPeer(1.0),
        note: "curl runs as a process of its own (its start-up counts)".into(),
    }
}
