//! The suite's downloads of whole files: 1 GiB from nginx by the library and by `courier download`
//! against `curl -o` and reqwest (over HTTP/1.1, and HTTPS with HTTP/2) with the peak RSS of each,
//! the same from an FTP server, and the resume of a 1 GiB download cut at 50% (the upload is in
//! `upload`, 10,000 downloads at once in `concurrent`). Courier and reqwest run in child processes
//! of their own (`courier-bench download-once`, `download-once-reqwest`, `resume-once`), started
//! by the helpers here that the other parts share too, so their memory and start-up count as a
//! program's would; the servers are nginx and pyftpdlib.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use courier_engine::{
    CleartextPolicy, Configuration, DataDelegate, DownloadDelegate, Error, ResumeData, Session,
    SessionDelegate, TaskDelegate, TaskInfo,
};
use tokio::sync::Notify;

use super::report::{Report, Scenario, Side, Target, Unit};
use super::status_field;

/// As the command runs the engine.
pub(super) fn runtime() -> tokio::runtime::Runtime {
    super::small::Flavor::CurrentThread.runtime()
}

pub(super) fn cleartext(dir: &Path) -> Configuration {
    let mut c = Configuration::default();
    c.cleartext = CleartextPolicy::AllowAll;
    c.session_directory = Some(dir.join("session"));
    c
}

/// Runs `courier-bench ARGS` and returns its wall time and the `key=value` lines it printed.
pub(super) fn child(args: &[&str]) -> (f64, Vec<(String, String)>) {
    run_child(args, &[], false)
}

/// [`child`], for a child that holds thousands of files at once: it first raises its open-file
/// limit to the hard one, as a program that runs that many downloads does.
pub(super) fn child_with_many_files(args: &[&str]) -> (f64, Vec<(String, String)>) {
    run_child(args, &[], true)
}

/// [`child`], with `env` set for the child.
fn child_with(args: &[&str], env: &[(&str, &str)]) -> (f64, Vec<(String, String)>) {
    run_child(args, env, false)
}

fn run_child(
    args: &[&str],
    env: &[(&str, &str)],
    many_files: bool,
) -> (f64, Vec<(String, String)>) {
    let me = std::env::current_exe().expect("own path");
    // `COURIER_BENCH_WRAP` (say `heaptrack` or `perf record -g`) runs each child under a profiler.
    let wrap = std::env::var_os("COURIER_BENCH_WRAP").is_some_and(|w| !w.is_empty());
    // Through a shell only when one is needed (the limit raised, or the wrapper): other children
    // start as curl does, without one (the shell cost a millisecond a start).
    let mut command = if wrap || many_files {
        let mut shell = Command::new("sh");
        shell
            .arg("-c")
            .arg("ulimit -n \"$(ulimit -Hn)\" 2>/dev/null; exec $COURIER_BENCH_WRAP \"$0\" \"$@\"")
            .arg(me);
        shell
    } else {
        Command::new(me)
    };
    let started = Instant::now();
    let output = command
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("courier-bench child");
    let took = started.elapsed().as_secs_f64();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let pairs = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    (took, pairs)
}

pub(super) fn value(pairs: &[(String, String)], key: &str) -> f64 {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("{key} in the child's output"))
}

pub(super) fn megabytes(size: usize) -> String {
    if size >= 1 << 30 {
        format!("{} GiB", size >> 30)
    } else {
        format!("{} MiB", size >> 20)
    }
}

/// Counts a download's progress and keeps what the resume needs.
#[derive(Default)]
struct Watcher {
    written: AtomicU64,
    resumed_at: AtomicU64,
    half: AtomicU64,
    reached_half: Notify,
    done: Notify,
    result: std::sync::Mutex<Option<Result<(), String>>>,
}

impl SessionDelegate for Watcher {}
impl DataDelegate for Watcher {}
impl TaskDelegate for Watcher {
    fn did_complete(&self, _task: &TaskInfo, error: Option<&Error>) {
        *self.result.lock().unwrap() = Some(match error {
            None => Ok(()),
            Some(e) => Err(e.to_string()),
        });
        self.done.notify_one();
    }
}
impl DownloadDelegate for Watcher {
    fn did_write_data(&self, _task: &TaskInfo, _n: u64, total: u64, _expected: Option<u64>) {
        let before = self.written.swap(total, Ordering::AcqRel);
        let half = self.half.load(Ordering::Acquire);
        if before < half && total >= half {
            self.reached_half.notify_one();
        }
    }
    fn did_resume_at_offset(&self, _task: &TaskInfo, offset: u64, _expected: Option<u64>) {
        self.resumed_at.store(offset, Ordering::Release);
    }
    fn did_finish_downloading_to(&self, _task: &TaskInfo, _location: &Path) {}
}

/// `courier-bench resume-once URL SIZE`: downloads, cancels with resume data once half is
/// written, resumes, and reports the bytes on disk at the cut and the offset it resumed at.
pub(crate) fn resume_once(url: &str, size: u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    runtime().block_on(async {
        let watcher = Arc::new(Watcher {
            half: AtomicU64::new(size / 2),
            ..Watcher::default()
        });
        let session =
            Session::with_delegate(cleartext(dir.path()), watcher.clone()).expect("session");
        let task = session.download_task(url).expect("task");
        task.resume();
        watcher.reached_half.notified().await;
        let data: ResumeData = task
            .cancel_by_producing_resume_data()
            .await
            .expect("resume data at 50%");
        let at_cut = watcher.written.load(Ordering::Acquire);
        watcher.done.notified().await;
        let resumed = session
            .download_task_with_resume_data(&data)
            .expect("task from resume data");
        let started = Instant::now();
        resumed.resume();
        watcher.done.notified().await;
        assert_eq!(
            *watcher.result.lock().unwrap(),
            Some(Ok(())),
            "the resumed download"
        );
        println!("at_cut={at_cut}");
        println!("resumed_at={}", watcher.resumed_at.load(Ordering::Acquire));
        println!("resume_seconds={}", started.elapsed().as_secs_f64());
    });
}

/// The resume of a 1 GiB download from nginx cut at 50%: the bytes fetched again, beyond the
/// remainder (the cut is the last progress reported before the cancel; the resumed task asks
/// for everything after the offset it resumes at).
pub(crate) fn resume(report: &mut Report, rounds: usize, size: u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).expect("root");
    courier_tests::write_random_file(&root.join("file.bin"), size as usize, 9).expect("the file");
    // nginx: a static file with its validators, as a download is usually served.
    let Some(nginx) = courier_tests::Nginx::start(&root) else {
        println!("# resume: skipped (no nginx)");
        return;
    };
    let url = nginx.url("/file.bin");
    let mut extra = Vec::new();
    for round in 0..rounds {
        let (_, out) = child(&["resume-once", &url, &size.to_string()]);
        let (at_cut, resumed_at) = (value(&out, "at_cut"), value(&out, "resumed_at"));
        // What the resumed task fetches is size - resumed_at; the remainder is size - at_cut.
        let refetched = (at_cut - resumed_at).max(0.0);
        println!(
            "round {round}: cut at {at_cut:.0} bytes, resumed at {resumed_at:.0}: {refetched:.0} bytes fetched again ({:.3} s to finish)",
            value(&out, "resume_seconds")
        );
        extra.push(refetched);
    }
    report.add(Scenario {
        name: format!(
            "resume of a {} download cut at 50%: bytes fetched beyond the remainder",
            megabytes(size as usize)
        ),
        unit: Unit::Bytes,
        courier: vec![Side::new(
            "courier (cancel_by_producing_resume_data)",
            extra,
        )],
        peers: Vec::new(),
        target: Target::AtMost(1048576.0),
        note: String::new(),
    });
}

/// `courier-bench download-once URL OUT`: one download with the engine, then the peak RSS.
pub(crate) fn download_once(url: &str, out: &Path, ca_pem: Option<&Path>) {
    runtime().block_on(async {
        let mut c = Configuration::default();
        c.cleartext = CleartextPolicy::AllowAll;
        c.session_directory = out.parent().map(|p| p.join("session"));
        if let Some(pem) = ca_pem {
            c.trust_pem_certificates(&std::fs::read(pem).expect("CA"))
                .expect("CA");
        }
        let session = Session::new(c).expect("session");
        let mut download = session.download(url);
        // The progress scenario: a reader binds the task's Progress to an imaginary bar.
        let watcher = std::env::var_os(WATCH_PROGRESS).map(|_| {
            let progress = download.task().expect("a task").progress();
            tokio::spawn(async move {
                let mut reads = 0u64;
                while !progress.is_finished() {
                    let _ = (progress.fraction_completed(), progress.throughput());
                    let _ = progress.estimated_time_remaining();
                    reads += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                reads
            })
        });
        let (file, response) = download.await.expect("download");
        assert_eq!(response.status(), 200);
        if let Some(watcher) = watcher {
            assert!(
                watcher.await.expect("the watcher") > 0,
                "the progress was read"
            );
        }
        file.persist(out).expect("persist");
    });
    println!("peak_rss_kib={}", status_field("self", "VmHWM:"));
}

/// `courier-bench download-once-reqwest URL OUT FLAVOR [CA]`: the same download with reqwest on a
/// runtime of `FLAVOR` (`current-thread`, `multi-thread`), the body streamed to the file as its
/// chunks arrive, then the peak RSS. The file is a `tokio::fs::File` behind a 256 KiB `BufWriter`
/// (the size of Courier's write batches): written chunk by chunk as over HTTP/2's 8 KiB frames,
/// without the buffer it took 2-4 s, so the peer is given the buffer a user tuning it would add.
pub(crate) fn download_once_reqwest(url: &str, out: &Path, flavor: &str, ca_pem: Option<&Path>) {
    use tokio::io::AsyncWriteExt;
    let flavor = super::small::Flavor::named(flavor).expect("a runtime flavour");
    flavor.runtime().block_on(async {
        let mut client = reqwest::Client::builder();
        if let Some(pem) = ca_pem {
            let pem = std::fs::read(pem).expect("CA");
            client = client.use_preconfigured_tls(super::small_h2::reqwest_tls(&pem));
        }
        let client = client.build().expect("client");
        let mut response = client.get(url).send().await.expect("response");
        assert_eq!(response.status(), 200);
        let file = tokio::fs::File::create(out).await.expect("file");
        let mut file = tokio::io::BufWriter::with_capacity(256 << 10, file);
        while let Some(chunk) = response.chunk().await.expect("body") {
            file.write_all(&chunk).await.expect("write");
        }
        file.flush().await.expect("flush");
    });
    println!("peak_rss_kib={}", status_field("self", "VmHWM:"));
}

/// Runs `command` to its end: its wall time, and its peak RSS in KiB, read from the child's
/// `VmHWM` (a high-water mark) every few milliseconds by a thread beside the wait, so the time ends
/// when the child does, not at the next sample.
fn run_watched(mut command: Command) -> (f64, f64) {
    let started = Instant::now();
    let mut child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the command runs");
    let pid = child.id().to_string();
    let running = std::sync::atomic::AtomicBool::new(true);
    let (status, took, peak) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut peak = 0;
            while running.load(Ordering::Acquire) {
                peak = peak.max(status_field(&pid, "VmHWM:"));
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            peak
        });
        let status = child.wait().expect("the command's status");
        let took = started.elapsed().as_secs_f64();
        running.store(false, Ordering::Release);
        (status, took, sampler.join().expect("the sampler"))
    });
    assert!(status.success(), "{command:?}");
    (took, peak as f64)
}

/// Checks that a download left the whole file at `out` (`size` bytes), and removes it for the
/// next side.
pub(super) fn take_output(out: &Path, size: usize) {
    assert_eq!(
        std::fs::metadata(out).map(|m| m.len()).ok(),
        Some(size as u64)
    );
    let _ = std::fs::remove_file(out);
}

/// `curl -o OUT URL` (trusting `ca` when given): its wall time, the whole file checked and removed.
pub(super) fn curl_download(url: &str, out: &Path, ca: Option<&Path>, size: usize) -> f64 {
    let started = Instant::now();
    let mut curl = Command::new("curl");
    curl.args(["-s", "-o"]).arg(out).arg(url);
    if let Some(ca) = ca {
        curl.arg("--cacert").arg(ca);
    }
    let status = curl.status().expect("curl runs");
    let took = started.elapsed().as_secs_f64();
    assert!(status.success(), "curl {url}: {status}");
    take_output(out, size);
    took
}

/// Set in a `download-once` child: it reads the task's `Progress` every 10 ms while it downloads.
const WATCH_PROGRESS: &str = "COURIER_BENCH_WATCH_PROGRESS";

/// Part 3: a file (1 GiB; 64 MiB with `--quick`) from nginx, courier against `curl -o`: over HTTP/1.1,
/// or over HTTPS with HTTP/2. Over HTTP/1.1, courier also runs with its `Progress` read every 10
/// ms, against itself without: watching must cost the transfer nothing.
pub(crate) fn download(report: &mut Report, pairs: usize, tls: bool, size: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).expect("root");
    courier_tests::write_random_file(&root.join("1g.bin"), size, 42).expect("the file");
    let ca = courier_tests::TestCa::new();
    let ca_pem = dir.path().join("ca.pem");
    std::fs::write(&ca_pem, &ca.ca_pem).expect("CA file");
    let nginx = if tls {
        courier_tests::Nginx::start_tls(&root, &ca)
    } else {
        courier_tests::Nginx::start(&root)
    };
    let Some(nginx) = nginx else {
        println!("# download: skipped (no nginx)");
        return;
    };
    let url = if tls {
        nginx.tls_url("/1g.bin")
    } else {
        nginx.url("/1g.bin")
    };
    let over = if tls { "HTTPS, HTTP/2" } else { "HTTP/1.1" };
    let out = dir.path().join("out.bin");
    let (url_arg, out_arg) = (url.as_str(), out.to_str().expect("a UTF-8 path"));
    let ca_arg = ca_pem.to_str().expect("a UTF-8 path");
    let run_courier = |watch: bool| -> (f64, f64) {
        let mut args = vec!["download-once", url_arg, out_arg];
        if tls {
            args.push(ca_arg);
        }
        let env: &[(&str, &str)] = if watch { &[(WATCH_PROGRESS, "1")] } else { &[] };
        let (took, printed) = child_with(&args, env);
        take_output(&out, size);
        (took, value(&printed, "peak_rss_kib"))
    };
    // The `courier` command, as a user downloads with it: its time and peak RSS.
    let courier_command = super::courier_binary();
    let run_command = || -> (f64, f64) {
        let mut command = Command::new(&courier_command);
        command.args(["download", "-o", out_arg, url_arg]);
        if tls {
            command.args(["--cacert", ca_arg]);
        } else {
            command.arg("--allow-http");
        }
        let measured = run_watched(command);
        take_output(&out, size);
        measured
    };
    // reqwest on each runtime flavour, in a child of its own as courier runs.
    let run_reqwest = |flavor: &str| -> (f64, f64) {
        let mut args = vec!["download-once-reqwest", url_arg, out_arg, flavor];
        if tls {
            args.push(ca_arg);
        }
        let (took, printed) = child(&args);
        take_output(&out, size);
        (took, value(&printed, "peak_rss_kib"))
    };
    let run_curl = || curl_download(&url, &out, tls.then_some(ca_pem.as_path()), size);
    let what = megabytes(size);
    println!(
        "# {what} download to a file from nginx over loopback ({over}); {pairs} interleaved pairs"
    );
    // Warm-up: the file is in the page cache for every side.
    let _ = (
        run_courier(false),
        run_curl(),
        run_reqwest("current-thread"),
        run_command(),
    );
    let (mut ours, mut theirs, mut peaks, mut watched) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut command_times, mut command_peaks) = (Vec::new(), Vec::new());
    let (mut reqwest_ct, mut reqwest_mt, mut reqwest_peaks) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..pairs {
        let (c, rss) = run_courier(false);
        let k = run_curl();
        let (r, r_rss) = run_reqwest("current-thread");
        let (m, m_rss) = run_reqwest("multi-thread");
        let (d, d_rss) = run_command();
        print!(
            "round {i:2}: courier {c:.3} s (peak RSS {:.1} MiB)  courier download {d:.3} s (peak \
             RSS {:.1} MiB)  curl {k:.3} s  reqwest {r:.3} s (multi-thread {m:.3} s, peak RSS \
             {:.1} MiB)  ratio {:.2}",
            rss / 1024.0,
            d_rss / 1024.0,
            r_rss.min(m_rss) / 1024.0,
            c.min(d) / k.min(r).min(m)
        );
        command_times.push(d);
        command_peaks.push(d_rss * 1024.0);
        reqwest_ct.push(r);
        reqwest_mt.push(m);
        reqwest_peaks.push(r_rss.min(m_rss) * 1024.0);
        if !tls {
            let (w, _) = run_courier(true);
            print!("  courier, progress read every 10 ms {w:.3} s");
            watched.push(w);
        }
        println!();
        ours.push(c);
        theirs.push(k);
        peaks.push(rss * 1024.0);
    }
    if !tls {
        report.add(Scenario {
            name: format!("{what} download with its Progress read every 10 ms, {over}"),
            unit: Unit::Seconds,
            courier: vec![Side::new("courier, progress read", watched)],
            peers: vec![Side::new("courier, progress not read", ours.clone())],
            target: Target::AtMostTimesBestPeer(1.05),
            note: "the same child process with and without a task reading its Progress".into(),
        });
    }
    report.add(Scenario {
        name: format!("{what} download to a file, {over}"),
        unit: Unit::Seconds,
        courier: vec![
            Side::new("courier library (current-thread)", ours),
            Side::new("courier download (the command)", command_times),
        ],
        peers: vec![
            Side::new("curl -o", theirs),
            Side::new("reqwest current-thread", reqwest_ct),
            Side::new("reqwest multi-thread", reqwest_mt),
        ],
        target: Target::AtMostTimesBestPeer(1.0),
        note: "each side a fresh process per round (nginx serves the file from the page cache)"
            .into(),
    });
    report.add(Scenario {
        name: format!("peak RSS during the {what} download, {over}"),
        unit: Unit::Bytes,
        courier: vec![
            Side::new("courier library (VmHWM)", peaks),
            Side::new("courier download, the command (VmHWM)", command_peaks),
        ],
        peers: vec![Side::new(
            "reqwest, the lower of its two runtimes (VmHWM)",
            reqwest_peaks,
        )],
        target: Target::AtMost(12.0 * 1048576.0),
        note: String::new(),
    });
}

/// A download from a real FTP server (pyftpdlib) to a file: courier (a fresh process per run, as
/// `download-once` runs it) against `curl -o ftp://...`, alternating.
pub(crate) fn ftp_download(report: &mut Report, pairs: usize, size: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).expect("root");
    courier_tests::write_random_file(&root.join("big.bin"), size, 7).expect("the file");
    let Some(server) = courier_tests::FtpServer::start(&root) else {
        println!("# ftp download: skipped (no pyftpdlib)");
        return;
    };
    let url = server.url("", "/big.bin");
    let out = dir.path().join("out.bin");
    let out_arg = out.to_str().expect("a UTF-8 path");
    let run_courier = || -> f64 {
        let (took, _) = child_with(&["download-once", &url, out_arg], &[]);
        take_output(&out, size);
        took
    };
    let run_curl = || curl_download(&url, &out, None, size);
    let what = megabytes(size);
    println!("# {what} download to a file from pyftpdlib over loopback; {pairs} interleaved pairs");
    let (ours, theirs) = interleaved(pairs, run_courier, run_curl);
    report.add(Scenario {
        name: format!("{what} download to a file, ftp:"),
        unit: Unit::Seconds,
        courier: vec![Side::new("courier library (current-thread)", ours)],
        peers: vec![Side::new("curl -o ftp://", theirs)],
        target: Target::AtMostTimesBestPeer(1.0),
        note: "the server is pyftpdlib (Python), the same for both sides: probably the bound"
            .into(),
    });
}

/// A warm-up of each side (the file in the page cache for both), then `pairs` interleaved runs of
/// courier and curl, each printed with its ratio: their times.
fn interleaved(
    pairs: usize,
    run_courier: impl Fn() -> f64,
    run_curl: impl Fn() -> f64,
) -> (Vec<f64>, Vec<f64>) {
    let _ = (run_courier(), run_curl());
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for i in 0..pairs {
        let (c, k) = (run_courier(), run_curl());
        println!(
            "pair {i:2}: courier {c:.3} s  curl {k:.3} s  ratio {:.2}",
            c / k
        );
        ours.push(c);
        theirs.push(k);
    }
    (ours, theirs)
}
