//! Courier's bench binary.
//!
//! `cargo run --release -p courier-tests --bin courier-bench [-- --pairs N --tasks N]`
//!
//! 1. Create, resume and complete N data tasks (default 10,000; 1 KiB bodies, HTTP/1.1, the default
//!    six connections per host) against a loopback server, interleaved with curl fetching the same N
//!    URLs (`--parallel --parallel-max 6`) in the same run; reports each side's median and the median
//!    of the paired ratios.
//! 2. The resident memory of N suspended (never resumed) tasks: RSS delta per task.
//!
//! The server runs on its own runtime thread, so client and server share the two cores as they would
//! with a separate server process.

use std::io::Write;
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

struct Counter {
    done: AtomicUsize,
    failed: AtomicUsize,
    target: usize,
    notify: Notify,
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

async fn courier_run(url: &str, n: usize) -> Duration {
    let counter = Arc::new(Counter {
        done: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        target: n,
        notify: Notify::new(),
    });
    let session = Session::with_delegate(config(), counter.clone()).expect("session");
    let started = Instant::now();
    for _ in 0..n {
        session.data_task(url).expect("task").resume();
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

fn curl_run(config_file: &std::path::Path) -> Duration {
    let started = Instant::now();
    let status = Command::new("curl")
        .args([
            "-s",
            "--no-progress-meter",
            "--parallel",
            "--parallel-max",
            "6",
            "-K",
        ])
        .arg(config_file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("curl runs");
    assert!(status.success());
    started.elapsed()
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

fn main() {
    let pairs = arg("--pairs", 11);
    let tasks = arg("--tasks", 10_000);
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("server runtime");
    let server = server_rt.block_on(TestServer::http());
    let url = server.url("/bytes/1024");
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("client runtime");

    // First, while the heap is fresh: freed memory from the runs below would hide the growth.
    println!("# memory of {tasks} suspended tasks");
    let (before, after) = client.block_on(async {
        let counter = Counter {
            done: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            target: 0,
            notify: Notify::new(),
        };
        let session = Session::with_delegate(config(), Arc::new(counter)).expect("session");
        // One task first, so the session actor and its maps exist before the baseline.
        let warm = session.data_task(url.as_str()).expect("task");
        let _ = session.all_tasks().await;
        let before = rss_bytes();
        let kept: Vec<_> = (0..tasks)
            .map(|_| session.data_task(url.as_str()).expect("task"))
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
    println!(
        "RSS before {:.1} MiB, after {:.1} MiB: {per_task:.0} bytes per suspended task",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0
    );

    let dir = std::env::temp_dir().join(format!("courier-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let curl_config = dir.join("urls.curl");
    {
        let mut f =
            std::io::BufWriter::new(std::fs::File::create(&curl_config).expect("curl config"));
        for _ in 0..tasks {
            writeln!(f, "url = \"{url}\"\noutput = \"/dev/null\"").expect("write");
        }
    }

    println!(
        "# {tasks} data tasks of 1 KiB, HTTP/1.1 over loopback, 6 connections per host; {pairs} interleaved pairs"
    );
    client.block_on(courier_run(&url, tasks.min(1000))); // warm-up
    let (mut ours, mut theirs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..pairs {
        let c = client.block_on(courier_run(&url, tasks)).as_secs_f64();
        let k = curl_run(&curl_config).as_secs_f64();
        println!(
            "pair {i:2}: courier {c:.3} s  curl {k:.3} s  ratio {:.2}",
            c / k
        );
        ours.push(c);
        theirs.push(k);
        ratios.push(c / k);
    }
    let (mc, mk, mr) = (median(&mut ours), median(&mut theirs), median(&mut ratios));
    println!(
        "courier: median {mc:.3} s ({:.0} tasks/s); curl: median {mk:.3} s ({:.0} req/s); courier/curl wall-time ratio (median of pairs): {mr:.2}",
        tasks as f64 / mc,
        tasks as f64 / mk
    );

    let _ = std::fs::remove_dir_all(&dir);
}
