//! The suite's delegate-style tasks: data tasks whose completions go to a delegate, against curl
//! fetching the same URLs (`against_curl`, `--only tasks`), and what tasks created and never resumed
//! hold (`suspended_memory`). `complete_all` starts tasks in one session and waits for every
//! completion; the background part runs its in-process sessions through it too.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use courier_engine::{
    CleartextPolicy, Configuration, DataDelegate, Error, Session, SessionDelegate, TaskDelegate,
    TaskInfo,
};
use tokio::sync::Notify;

use super::report::{Scenario, Side, Target, Unit};
use super::{curl_run, small, status_field, write_curl_config};

/// The resident set, in bytes.
fn rss_bytes() -> u64 {
    status_field("self", "VmRSS:") * 1024
}

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

/// One of [`against_curl`]'s Courier variants alone, once (`thread`, `runtime`, `runtime-current`
/// or `per-task`: where the completions are delivered, and on which runtime), for a profile; or
/// `windowN`: [`windowed`].
pub(crate) fn one_side(url: &str, tasks: usize, side: &str) {
    if let Some(window) = side.strip_prefix("window") {
        let window = window.parse().expect("--side windowN: N a number");
        return windowed(url, tasks, window);
    }
    let client = small::Flavor::MultiThread.runtime();
    let took = match side {
        "thread" => client.block_on(courier_run(url, tasks)),
        "runtime" => client.block_on(courier_run_on_runtime(url, tasks)),
        "runtime-current" => small::Flavor::CurrentThread
            .runtime()
            .block_on(courier_run_on_runtime(url, tasks)),
        "per-task" => client.block_on(courier_run_per_task_delegate(url, tasks)),
        other => panic!("--side {other}: thread, runtime, runtime-current or per-task"),
    };
    println!("{side}: {tasks} tasks in {:.3} s", took.as_secs_f64());
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
pub(crate) async fn complete_all(
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

/// The resident memory of `tasks` data tasks created and never resumed, per task.
pub(crate) fn suspended_memory(url: &str, tasks: usize) -> Scenario {
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
pub(crate) fn against_curl(url: &str, tasks: usize, pairs: usize) -> Scenario {
    let client = small::Flavor::MultiThread.runtime();
    // The same program on a current-thread runtime, as a user on two cores may choose it (the
    // small-request scenario measures both flavours too).
    let current = small::Flavor::CurrentThread.runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let curl_config = dir.path().join("urls.curl");
    write_curl_config(&curl_config, url, tasks);
    client.block_on(courier_run(url, tasks.min(1000))); // warm-up
    let (mut ours, mut on_runtime, mut on_current, mut per_task, mut theirs) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..pairs {
        let c = client.block_on(courier_run(url, tasks)).as_secs_f64();
        let r = client
            .block_on(courier_run_on_runtime(url, tasks))
            .as_secs_f64();
        let t = current
            .block_on(courier_run_on_runtime(url, tasks))
            .as_secs_f64();
        let p = client
            .block_on(courier_run_per_task_delegate(url, tasks))
            .as_secs_f64();
        let k = curl_run(&curl_config, 6).as_secs_f64();
        println!(
            "pair {i:2}: courier {c:.3} s  (delegate on the runtime {r:.3} s, on a current-thread runtime {t:.3} s, per-task delegates {p:.3} s)  curl {k:.3} s  ratio {:.2}",
            c / k
        );
        ours.push(c);
        on_runtime.push(r);
        on_current.push(t);
        per_task.push(p);
        theirs.push(k);
    }
    Scenario {
        name: format!("{tasks} data tasks of 1 KiB with a delegate, 6 connections"),
        unit: Unit::Seconds,
        courier: vec![
            Side::new("courier data tasks (multi-thread)", ours),
            Side::new("courier, delegate on the runtime", on_runtime),
            Side::new(
                "courier, delegate on the runtime (current-thread)",
                on_current,
            ),
            Side::new("courier, a delegate per task", per_task),
        ],
        peers: vec![Side::new("curl --parallel-max 6", theirs)],
        target: Target::AtMostTimesBestPeer(1.0),
        note: "curl runs as a process of its own (its start-up counts)".into(),
    }
}

/// The same tasks with at most `window` of them created and not yet completed at any time (a new
/// one made as one completes, as curl makes its transfers), the delegate on the runtime: what
/// holding many tasks at once costs, against `--side runtime` (all of them resumed at the start).
/// A profile only, not a side of the suite.
fn windowed(url: &str, n: usize, window: usize) {
    /// Counts completions, and wakes the loop that makes tasks at each.
    struct Completions {
        done: AtomicUsize,
        notify: Notify,
    }
    impl SessionDelegate for Completions {}
    impl DataDelegate for Completions {}
    impl courier_engine::DownloadDelegate for Completions {}
    impl TaskDelegate for Completions {
        fn did_complete(&self, _task: &TaskInfo, _error: Option<&Error>) {
            self.done.fetch_add(1, Ordering::AcqRel);
            self.notify.notify_one();
        }
    }
    let client = small::Flavor::MultiThread.runtime();
    client.block_on(async {
        let w = Arc::new(Completions {
            done: AtomicUsize::new(0),
            notify: Notify::new(),
        });
        let here = tokio::runtime::Handle::current();
        let session = Session::with_delegate_on(config_without_cache(), w.clone(), &here).unwrap();
        let started = Instant::now();
        let mut created = 0;
        while w.done.load(Ordering::Acquire) < n {
            while created < n && created - w.done.load(Ordering::Acquire) < window {
                session.data_task(url).unwrap().resume();
                created += 1;
            }
            w.notify.notified().await;
        }
        println!(
            "window {window}: {n} tasks in {:.3} s",
            started.elapsed().as_secs_f64()
        );
        session.finish_tasks_and_invalidate();
        session.invalidated().await;
    });
}
