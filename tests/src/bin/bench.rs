//! Courier's bench binary.
//!
//! `cargo run --release -p courier-tests --bin courier-bench [-- --pairs N --tasks N]`
//!
//! 1. Create, resume and complete N data tasks (default 10,000; 1 KiB bodies, HTTP/1.1, the default
//!    six connections per host, no URL cache, as curl has none; then, for the record, with the
//!    default cache) against a loopback server, interleaved with curl fetching the same N
//!    URLs (`--parallel --parallel-max 6`) in the same run; reports each side's median and the median
//!    of the paired ratios.
//! 2. The resident memory of N suspended (never resumed) tasks: RSS delta per task.
//! 3. Last, a 1 GiB download to a file from nginx over loopback (HTTP/1.1, then HTTPS with HTTP/2):
//!    courier (a fresh process per run, the engine's completion form on a current-thread runtime,
//!    as the CLI runs it) against `curl -o`, interleaved pairs (`--download-pairs`, default 9),
//!    and courier's peak RSS (VmHWM).
//!
//! 4. On demand (`--only bombs [--courier PATH]`): the peak RSS of `courier get` (the binary at
//!    PATH, by default the one beside this bench) refusing 1 GiB of zeros sent as gzip, deflate
//!    and br by a loopback server, beside `curl --compressed` decoding the same bodies whole.
//!
//! 5. On demand (`--only background [--courier PATH] [--rounds N]`): what background sessions
//!    cost: journaled downloads against a default session's, the restart after SIGKILL, the
//!    daemon's memory per queued task (`bench/background.rs`).
//!
//! 6. On demand (`--only small [--requests N] [--rounds N]`): N GETs of 1 KiB, 64 at once, through
//!    the library, courier against reqwest, each on both runtime flavours (`bench/small.rs`).
//!
//! `--only tasks`, `--only download` (`download-h1`, `download-h2`: one of its two halves),
//! `--only bombs` or `--only background` runs one part.
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

#[path = "bench/background.rs"]
mod background;
#[path = "bench/small.rs"]
mod small;

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

/// Starts `n` tasks in one session of `config` (`start` creates and resumes task `i`) and waits for
/// every completion; the wall time. Every task must succeed.
async fn complete_all(
    config: Configuration,
    n: usize,
    start: impl Fn(&Session, usize),
) -> Duration {
    let counter = Arc::new(Counter::new(n));
    let session = Session::with_delegate(config, counter.clone()).expect("session");
    let started = Instant::now();
    for i in 0..n {
        start(&session, i);
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

/// `courier-bench download-once URL OUT`: one download with the engine, then the peak RSS.
fn download_once(url: &str, out: &std::path::Path, ca_pem: Option<&std::path::Path>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut c = Configuration::default();
        c.cleartext = CleartextPolicy::AllowAll;
        c.session_directory = out.parent().map(|p| p.join("session"));
        if let Some(pem) = ca_pem {
            c.trust_pem_certificates(&std::fs::read(pem).expect("CA"))
                .expect("CA");
        }
        let session = Session::new(c).expect("session");
        let (file, response) = session.download(url).await.expect("download");
        assert_eq!(response.status(), 200);
        file.persist(out).expect("persist");
    });
    println!("peak_rss_kib={}", status_field("self", "VmHWM:"));
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

/// Part 3: 1 GiB from nginx, courier against `curl -o`: over HTTP/1.1, then over HTTPS with
/// HTTP/2.
fn download_bench(pairs: usize) {
    download_bench_over(pairs, false);
    download_bench_over(pairs, true);
}

fn download_bench_over(pairs: usize, tls: bool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).expect("root");
    let size = 1usize << 30;
    courier_tests::write_random_file(&root.join("1g.bin"), size, 42).expect("1 GiB file");
    let ca = courier_tests::TestCa::new();
    let ca_pem = dir.path().join("ca.pem");
    std::fs::write(&ca_pem, &ca.ca_pem).expect("CA file");
    let nginx = if tls {
        courier_tests::Nginx::start_tls(&root, &ca)
    } else {
        courier_tests::Nginx::start(&root)
    };
    let Some(nginx) = nginx else {
        println!("# 1 GiB download: skipped (no nginx)");
        return;
    };
    let url = if tls {
        nginx.tls_url("/1g.bin")
    } else {
        nginx.url("/1g.bin")
    };
    let over = if tls { "HTTPS, HTTP/2" } else { "HTTP/1.1" };
    let out = dir.path().join("out.bin");
    let me = std::env::current_exe().expect("own path");
    let run_courier = || -> (f64, u64) {
        let started = Instant::now();
        let mut once = Command::new(&me);
        once.args(["download-once", &url]).arg(&out);
        if tls {
            once.arg(&ca_pem);
        }
        let output = once.output().expect("courier-bench download-once");
        let took = started.elapsed().as_secs_f64();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8_lossy(&output.stdout);
        let rss = text
            .lines()
            .find_map(|l| l.strip_prefix("peak_rss_kib="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert_eq!(
            std::fs::metadata(&out).map(|m| m.len()).ok(),
            Some(size as u64)
        );
        let _ = std::fs::remove_file(&out);
        (took, rss)
    };
    let run_curl = || -> f64 {
        let started = Instant::now();
        let mut curl = Command::new("curl");
        curl.args(["-s", "-o"]).arg(&out).arg(&url);
        if tls {
            curl.arg("--cacert").arg(&ca_pem);
        }
        let status = curl.status().expect("curl runs");
        let took = started.elapsed().as_secs_f64();
        assert!(status.success());
        assert_eq!(
            std::fs::metadata(&out).map(|m| m.len()).ok(),
            Some(size as u64)
        );
        let _ = std::fs::remove_file(&out);
        took
    };
    println!(
        "# 1 GiB download to a file from nginx over loopback ({over}); {pairs} interleaved pairs"
    );
    let _ = (run_courier(), run_curl()); // warm-up: the file is in the page cache for both
    let (mut ours, mut theirs, mut ratios, mut peaks) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..pairs {
        let (c, rss) = run_courier();
        let k = run_curl();
        println!(
            "pair {i:2}: courier {c:.3} s (peak RSS {:.1} MiB)  curl {k:.3} s  ratio {:.2}",
            rss as f64 / 1024.0,
            c / k
        );
        ours.push(c);
        theirs.push(k);
        ratios.push(c / k);
        peaks.push(rss as f64);
    }
    let max_peak = peaks.iter().cloned().fold(0.0, f64::max);
    let (mc, mk, mr) = (median(&mut ours), median(&mut theirs), median(&mut ratios));
    println!(
        "courier: median {mc:.3} s ({:.0} MB/s); curl: median {mk:.3} s ({:.0} MB/s); courier/curl wall-time ratio (median of pairs): {mr:.2}; courier peak RSS: max {:.1} MiB",
        size as f64 / mc / 1e6,
        size as f64 / mk / 1e6,
        max_peak / 1024.0
    );
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
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("download-once") {
        download_once(
            &args[2],
            std::path::Path::new(&args[3]),
            args.get(4).map(std::path::Path::new),
        );
        return;
    }
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    match only.as_deref() {
        Some("download") => return download_bench(arg("--download-pairs", 9)),
        Some("download-h1") => return download_bench_over(arg("--download-pairs", 9), false),
        Some("download-h2") => return download_bench_over(arg("--download-pairs", 9), true),
        _ => {}
    }
    if only.as_deref() == Some("bombs") {
        bombs_bench();
        return;
    }
    if only.as_deref() == Some("small") {
        let side = args
            .iter()
            .position(|a| a == "--side")
            .and_then(|i| args.get(i + 1));
        small::run(
            arg("--requests", 10_000),
            arg("--rounds", 5),
            side.map(String::as_str),
        );
        return;
    }
    if only.as_deref() == Some("background") {
        background::run(&courier_binary(), arg("--rounds", 5));
        return;
    }
    let pairs = arg("--pairs", 11);
    let tasks = arg("--tasks", 10_000);
    let (_server_rt, server) = loopback_server();
    let url = server.url("/bytes/1024");
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("client runtime");

    // First, while the heap is fresh: freed memory from the runs below would hide the growth.
    println!("# memory of {tasks} suspended tasks");
    let (before, after) = client.block_on(async {
        let session = Session::with_delegate(config(), Arc::new(Counter::new(0))).expect("session");
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
    // The default configuration keeps responses in the URL cache (and revalidates these, which
    // have an ETag but no freshness): that work, for the record.
    let mut cached: Vec<f64> = (0..5)
        .map(|_| {
            client
                .block_on(courier_run_with(&url, tasks, config()))
                .as_secs_f64()
        })
        .collect();
    let mcached = median(&mut cached);
    println!(
        "courier with the default URL cache on: median {mcached:.3} s ({:.0} tasks/s), {:.2}x the no-cache median",
        tasks as f64 / mcached,
        mcached / mc
    );
    println!(
        "courier: median {mc:.3} s ({:.0} tasks/s); curl: median {mk:.3} s ({:.0} req/s); courier/curl wall-time ratio (median of pairs): {mr:.2}",
        tasks as f64 / mc,
        tasks as f64 / mk
    );

    let _ = std::fs::remove_dir_all(&dir);
    // Last: writing 1 GiB files leaves the kernel flushing them for a while, which would slow the
    // parts above.
    if only.as_deref() != Some("tasks") {
        download_bench(arg("--download-pairs", 9));
    }
}
