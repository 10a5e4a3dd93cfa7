//! Courier's bench binary: every scenario of issue 10, Courier and its peers (curl, reqwest on both
//! runtime flavours, hyper-util's client alone, tokio-tungstenite for WebSockets) alternating in the
//! same run, then a report.
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
//!    Courier's own layers, and the same client inside Courier's shape alone, with ractor's actors
//!    and with hand-written ones, `bench/floor.rs`), 10,000 POSTs of 1 KiB over HTTP/1.1 (courier's
//!    `Session::upload` against reqwest),
//!    over HTTPS with HTTP/2 (h2load as the ceiling, `bench/small_h2.rs`), and through the
//!    `courier` command against `curl --parallel` (`bench/small.rs`).
//! 3. 10,000 delegate-style data tasks (six connections, no URL cache) against curl fetching the
//!    same URLs with `--parallel --parallel-max 6`, the delegate on the session's thread or on the
//!    caller's runtime (multi-thread and current-thread) (`bench/tasks.rs`, which also measures
//!    part 1).
//! 4. WebSocket tasks against Python's `websockets` server: 2,000 sequential echo round trips and
//!    100 MiB of 1 MiB binary messages echoed, beside the same library's client and
//!    tokio-tungstenite (`bench/web_socket.rs`; `--only ws [--trips N] [--mib N] [--side NAME]`).
//! 5. 10,000 downloads running at once, beside reqwest (`bench/concurrent.rs`), a resume of 1 GiB
//!    cut at 50% (`bench/transfers.rs`), and a 1 GiB upload to a sink against `curl -T` and reqwest
//!    on both runtime flavours (`bench/upload.rs`).
//! 6. Last, a 1 GiB download to a file from nginx (HTTP/1.1, then HTTPS with HTTP/2): courier (a
//!    fresh process per run, the engine's completion form on a current-thread runtime, as the CLI
//!    runs it) and the `courier download` command, against `curl -o` and reqwest on both runtime
//!    flavours (each a fresh process too), and the peak RSS (VmHWM) of each Courier side and of
//!    reqwest; then the same from an FTP server
//!    (pyftpdlib) against `curl -o ftp://` (`--only ftp`).
//! 7. 128 MiB over HTTPS with HTTP/2 from a distant server: nginx behind a delay line of 40 ms
//!    round trips, courier against curl and reqwest (`bench/distant.rs`, `--only distant`).
//!
//! One part alone, printed and not written to the report: `--only small [--requests N] [--side
//! NAME]` (`--side "courier current-thread"` runs that side alone, for a profile), `--only
//! small-h2 [--side NAME]`, `--only small-post [--requests N] [--side NAME]`, `--only command`, `--only tasks`, `--only concurrent`, `--only resume`, `--only
//! upload`, `--only download` (`download-h1`, `download-h2`), `--only distant`, and the parts outside the suite:
//! `--only bombs [--courier PATH]` (the peak RSS of `courier get` refusing 1 GiB of zeros sent
//! compressed, beside `curl --compressed`) and `--only background [--courier PATH]` (what
//! background sessions cost, `bench/background.rs`).
//!
//! The server runs on its own runtime thread, so client and server share the two cores as they would
//! with a separate server process.

use std::process::Command;
use std::time::{Duration, Instant};

use courier_tests::TestServer;

#[path = "bench/background.rs"]
mod background;
#[path = "bench/concurrent.rs"]
mod concurrent;
#[path = "bench/distant.rs"]
mod distant;
#[path = "bench/floor.rs"]
mod floor;
#[path = "bench/report.rs"]
mod report;
#[path = "bench/small.rs"]
mod small;
#[path = "bench/small_h2.rs"]
mod small_h2;
#[path = "bench/tasks.rs"]
mod tasks;
#[path = "bench/transfers.rs"]
mod transfers;
#[path = "bench/upload.rs"]
mod upload;
#[path = "bench/web_socket.rs"]
mod web_socket;

use report::Report;

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
///
/// `cargo run --bin courier-bench` builds the bench alone, not the command beside it: under cargo
/// (`CARGO` is set), the command is built first with the bench's profile, once per run, so that a
/// fresh checkout measures it and a stale one is never measured in its place.
pub(crate) fn courier_binary() -> std::path::PathBuf {
    static BUILT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    let args: Vec<String> = std::env::args().collect();
    if let Some(given) = args
        .iter()
        .position(|a| a == "--courier")
        .and_then(|i| args.get(i + 1))
    {
        return std::path::PathBuf::from(given);
    }
    BUILT
        .get_or_init(|| {
            let beside = std::env::current_exe()
                .expect("own path")
                .with_file_name("courier");
            if let Some(cargo) = std::env::var_os("CARGO") {
                // The profile is the name of the directory the bench runs from.
                let profile = beside
                    .parent()
                    .and_then(|d| d.file_name())
                    .and_then(|n| n.to_str())
                    .map(|n| if n == "debug" { "dev" } else { n })
                    .unwrap_or("release")
                    .to_owned();
                println!("building the courier command ({profile} profile): it is measured too");
                let status = Command::new(cargo)
                    .args(["build", "--quiet", "--profile", &profile])
                    .args(["-p", "courier-cli", "--bin", "courier"])
                    .status()
                    .expect("cargo runs");
                assert!(status.success(), "building the courier command failed");
            }
            assert!(
                beside.exists(),
                "{} is missing: build it (cargo build --release -p courier-cli) or pass --courier PATH",
                beside.display()
            );
            beside
        })
        .clone()
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

/// What `--help` prints, and what a wrong argument is answered with.
const USAGE: &str = "\
usage: courier-bench [--quick] [--rounds N] [--download-pairs N]
       courier-bench --only PART [OPTIONS]

With no --only, runs the whole suite (a few minutes) and rewrites the generated section of
BENCHMARKS.md and benchmarks.svg; --quick runs every scenario once and writes under
target/courier-bench/ instead.

PART (printed, not written to the report):
  small [--requests N] [--side NAME]   small-post [--requests N] [--side NAME]
  per-task [--tasks N] [--side NAME]   small-h2 [--side NAME]
  command   tasks [--tasks N] [--pairs N] [--side NAME]
  concurrent [--tasks N]   resume   upload   download   download-h1   download-h2   ftp   distant
  ws [--trips N] [--mib N] [--side NAME]   bombs [--courier PATH]   background [--courier PATH]
";

/// Flags that take a value, and flags that stand alone.
const VALUED: &[&str] = &[
    "--only",
    "--side",
    "--rounds",
    "--download-pairs",
    "--requests",
    "--tasks",
    "--pairs",
    "--trips",
    "--mib",
    "--courier",
];

/// Checks the command line: `--help` prints the usage and exits 0, anything unknown exits 2 (rather
/// than running the whole suite, which rewrites BENCHMARKS.md).
fn check_arguments(args: &[String]) {
    let mut rest = args.iter().skip(1);
    while let Some(a) = rest.next() {
        match a.as_str() {
            "--help" | "-h" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            "--quick" => {}
            flag if VALUED.contains(&flag) => {
                if rest.next().is_none() {
                    eprint!("courier-bench: {flag} needs a value\n\n{USAGE}");
                    std::process::exit(2);
                }
            }
            other => {
                eprint!("courier-bench: unknown argument {other:?}\n\n{USAGE}");
                std::process::exit(2);
            }
        }
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
            return upload::upload_once(&args[2], std::path::Path::new(&args[3]));
        }
        Some("resume-once") => {
            return transfers::resume_once(&args[2], args[3].parse().expect("a size"));
        }
        Some("concurrent-once") => {
            return concurrent::concurrent_once(&args[2], args[3].parse().expect("a count"));
        }
        Some("download-once-reqwest") => {
            return transfers::download_once_reqwest(
                &args[2],
                std::path::Path::new(&args[3]),
                &args[4],
                args.get(5).map(std::path::Path::new),
            );
        }
        Some("upload-once-reqwest") => {
            return upload::upload_once_reqwest(&args[2], std::path::Path::new(&args[3]), &args[4]);
        }
        Some("concurrent-once-floor") => {
            return concurrent::concurrent_once_floor(
                &args[2],
                args[3].parse().expect("a count"),
                concurrent::FloorShape::named(&args[4]).expect("transport, actor or minimal-actor"),
            );
        }
        Some("concurrent-once-reqwest") => {
            return concurrent::concurrent_once_reqwest(
                &args[2],
                args[3].parse().expect("a count"),
            );
        }
        _ => {}
    }
    check_arguments(&args);
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    // `--side NAME`: one side of `small`, `small-h2`, `tasks` or `ws` alone, for a profile.
    let side = args
        .iter()
        .position(|a| a == "--side")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str);
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
        Some("distant") => {
            return distant::distant_download(&mut report, arg("--download-pairs", 5), 128 << 20);
        }
        Some("upload") => {
            return upload::upload(&mut report, arg("--download-pairs", 7), 1 << 30);
        }
        Some("resume") => return transfers::resume(&mut report, arg("--rounds", 5), 1 << 30),
        Some("concurrent") => {
            return concurrent::concurrent(&mut report, arg("--rounds", 3), arg("--tasks", 10_000));
        }
        Some("bombs") => return bombs_bench(),
        Some("small-h2") => {
            if let Some(scenario) =
                small_h2::run_h2(arg("--requests", 10_000), arg("--rounds", 5), side)
            {
                report.add(scenario);
            }
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
            if let Some(scenario) = small::run(arg("--requests", 10_000), arg("--rounds", 5), side)
            {
                report.add(scenario);
            }
            return;
        }
        Some("small-post") => {
            if let Some(scenario) =
                small::run_post(arg("--requests", 10_000), arg("--rounds", 5), side)
            {
                report.add(scenario);
            }
            return;
        }
        Some("per-task") => {
            if let Some(scenario) =
                small::per_task(arg("--tasks", 100_000), arg("--rounds", 5), side)
            {
                report.add(scenario);
            }
            return;
        }
        Some("background") => return background::run(&courier_binary(), arg("--rounds", 5)),
        Some("ftp") => {
            return transfers::ftp_download(&mut report, arg("--download-pairs", 5), 1 << 30);
        }
        Some("ws") => {
            if let Some(side) = side {
                return web_socket::one_side(side, arg("--trips", 2_000), arg("--mib", 100));
            }
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
            if let Some(side) = side {
                return tasks::one_side(&url, arg("--tasks", 10_000), side);
            }
            report.add(tasks::suspended_memory(&url, arg("--tasks", 10_000)));
            report.add(tasks::against_curl(
                &url,
                arg("--tasks", 10_000),
                arg("--pairs", 11),
            ));
            return;
        }
        Some(other) => {
            eprint!("courier-bench: --only {other}: not a part of this bench\n\n{USAGE}");
            std::process::exit(2);
        }
    }

    // The whole suite: every scenario, then the report. `--quick` runs each once, smaller, and
    // writes its report under target/ (its figures compare nothing).
    let rounds = if quick { 1 } else { arg("--rounds", 5) };
    let pairs = if quick { 1 } else { arg("--download-pairs", 7) };
    {
        let (_server_rt, server) = loopback_server();
        let url = server.url("/bytes/1024");
        // First, while the heap is fresh: freed memory from the runs below would hide the growth.
        report.add(tasks::suspended_memory(
            &url,
            if quick { 10_000 } else { 100_000 },
        ));
        if let Some(scenario) = small::run(if quick { 2_000 } else { 10_000 }, rounds, None) {
            report.add(scenario);
        }
        if let Some(scenario) = small::run_post(if quick { 2_000 } else { 10_000 }, rounds, None) {
            report.add(scenario);
        }
        if let Some(scenario) = small::per_task(if quick { 2_000 } else { 100_000 }, rounds, None) {
            report.add(scenario);
        }
        if let Some(scenario) = small_h2::run_h2(if quick { 2_000 } else { 10_000 }, rounds, None) {
            report.add(scenario);
        }
        report.add(small::command(
            &courier_binary(),
            if quick { 2_000 } else { 10_000 },
            rounds,
        ));
        report.add(tasks::against_curl(
            &url,
            if quick { 2_000 } else { 10_000 },
            if quick { 1 } else { 2 * rounds + 1 },
        ));
    }
    // Twice the rounds: a round trip's time spreads by a quarter from one run to the next (the
    // Python server's), and a round takes about three seconds.
    web_socket::run(
        &mut report,
        rounds * 2,
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
    upload::upload(&mut report, pairs, size);
    transfers::download(&mut report, pairs, false, size);
    transfers::download(&mut report, pairs, true, size);
    transfers::ftp_download(&mut report, pairs, size);
    distant::distant_download(
        &mut report,
        if quick { 1 } else { 5 },
        if quick { 16 << 20 } else { 128 << 20 },
    );
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
