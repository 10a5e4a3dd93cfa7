//! The suite's small requests: N GETs of 1 KiB (default 10,000), 64 at once (64 workers, each
//! awaiting one response body after another), one session or client, against an in-process hyper
//! server on a runtime thread of its own.
//! - `run` (`--only small`): through the library over HTTP/1.1 keep-alive, as a Rust program
//!   makes them: Courier (`session.data`) and reqwest 0.13 (`client.get().send().bytes()`), each on
//!   a current-thread and a two-worker runtime, interleaved in every round; Courier in a default
//!   session shows what its URL cache (memory and disk, every response stored) adds.
//! - `per_task` (`--only per-task`): 100,000 such tasks, Courier against hyper-util's client
//!   alone (Courier's transport): the cost per task of Courier's own layers, and of its shape.
//! - `run_post` (`--only small-post`): N POSTs of 1 KiB, `Session::upload` against reqwest.
//! - `command` (`--only command`): through the `courier` command against `curl --parallel`.
//!
//! The same GETs over HTTPS with HTTP/2 are in `small_h2.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use courier_engine::{CleartextPolicy, Configuration, Session};

use super::median;
use super::report::{Scenario, Side, Target, Unit};

/// At once.
pub(crate) const WORKERS: usize = 64;

/// How a side's runtime runs.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Flavor {
    CurrentThread,
    MultiThread,
}

impl Flavor {
    /// The flavour [`Flavor::name`] names.
    pub(crate) fn named(name: &str) -> Option<Flavor> {
        [Flavor::CurrentThread, Flavor::MultiThread]
            .into_iter()
            .find(|f| f.name() == name)
    }

    pub(crate) fn runtime(self) -> tokio::runtime::Runtime {
        match self {
            Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
            Flavor::MultiThread => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build(),
        }
        .expect("runtime")
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Flavor::CurrentThread => "current-thread",
            Flavor::MultiThread => "multi-thread",
        }
    }
}

/// Runs `n` requests with [`WORKERS`] workers; `get` makes one and returns its body length.
pub(crate) async fn drive<F, Fut>(n: usize, get: F) -> Duration
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = usize> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..WORKERS {
        let (next, get) = (next.clone(), get.clone());
        workers.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < n {
                assert_eq!(get().await, 1024, "a whole 1 KiB body");
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.expect("worker");
    }
    started.elapsed()
}

/// An ephemeral configuration without a URL cache, like reqwest.
pub(crate) fn uncached() -> Configuration {
    let mut config = Configuration::ephemeral();
    config.url_cache_memory_capacity = 0;
    config
}

/// `config` as every Courier side of the part runs it: cleartext to the loopback server, a
/// connection for each worker. Made inside the side's runtime.
fn session_for_bench(mut config: Configuration) -> Session {
    config.cleartext = CleartextPolicy::AllowAll;
    config.http_maximum_connections_per_host = WORKERS;
    Session::new(config).expect("session")
}

fn courier(url: &str, n: usize, flavor: Flavor) -> Duration {
    courier_in(uncached(), url, n, flavor)
}

/// Courier in a default session, as `Session::new(Configuration::default())` makes it: its URL
/// cache in memory and on disk (in a session directory of its own), storing every response.
fn courier_default_session(url: &str, n: usize, flavor: Flavor) -> Duration {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Configuration::default();
    config.session_directory = Some(dir.path().join("session"));
    courier_in(config, url, n, flavor)
}

fn courier_in(config: Configuration, url: &str, n: usize, flavor: Flavor) -> Duration {
    flavor.runtime().block_on(async {
        let session = session_for_bench(config);
        let url = url.to_owned();
        drive(n, move || {
            let (session, url) = (session.clone(), url.clone());
            async move {
                let (body, _) = session.data(url.as_str()).await.expect("GET");
                body.len()
            }
        })
        .await
    })
}

/// hyper-util's pooled client over plain HTTP, as every hyper-util side of the bench makes it
/// (alone, with a task per request, inside the actor floor).
pub(crate) type HyperClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Empty<bytes::Bytes>,
>;

pub(crate) fn hyper_client() -> HyperClient {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

/// One GET of `uri` through `client`, its whole body read: the body's length.
pub(crate) async fn hyper_get(client: HyperClient, uri: http::Uri) -> usize {
    use http_body_util::BodyExt;
    let response = client.get(uri).await.expect("GET");
    let body = response.into_body().collect().await.expect("body");
    body.to_bytes().len()
}

/// hyper-util's pooled client alone, what Courier's transport is built on: the floor for the cost of
/// Courier's own layers (sessions, task actors, delegates).
fn hyper_util(url: &str, n: usize, flavor: Flavor) -> Duration {
    flavor.runtime().block_on(async {
        let client = hyper_client();
        let uri: http::Uri = url.parse().expect("URI");
        drive(n, move || hyper_get(client.clone(), uri.clone())).await
    })
}

fn reqwest(url: &str, n: usize, flavor: Flavor) -> Duration {
    flavor.runtime().block_on(async {
        let client = reqwest::Client::new();
        let url = url.to_owned();
        drive(n, move || {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let response = client.get(url.as_str()).send().await.expect("GET");
                response.bytes().await.expect("body").len()
            }
        })
        .await
    })
}

/// One side of a part that interleaves sides in-process: its name, how it runs `n` GETs of a URL,
/// and on which runtime flavour.
type Runner = (&'static str, fn(&str, usize, Flavor) -> Duration, Flavor);

/// A runner's side of the report, named after it and its flavour, with its rounds' times.
fn runner_side(runner: &Runner, times: &[f64]) -> Side {
    let (name, _, flavor) = runner;
    Side::new(format!("{name} {}", flavor.name()), times.to_vec())
}

/// Runs every side `rounds` times, interleaved round by round (after a warm-up of each), against
/// the in-process server, and returns each side's times; with `only_side` (`--side NAME`, for a
/// profile), runs that side alone, prints its rounds and returns `None`.
fn interleave(
    title: &str,
    path: &str,
    sides: &[Runner],
    n: usize,
    rounds: usize,
    only_side: Option<&str>,
) -> Option<Vec<Vec<f64>>> {
    let (_server_rt, server) = super::loopback_server();
    let url = server.url(path);
    println!("# {title}; {rounds} interleaved rounds");
    if let Some(only) = only_side {
        let (_, run, flavor) = sides
            .iter()
            .find(|(name, _, flavor)| format!("{name} {}", flavor.name()) == only)
            .expect("--side: one of the sides, as printed");
        for round in 0..rounds {
            let t = run(&url, n, *flavor).as_secs_f64();
            println!("round {round}: {only} {t:.3} s");
        }
        return None;
    }
    // Warm-up: connections, allocator, page cache.
    for (_, run, flavor) in sides {
        run(&url, (n / 10).min(10_000), *flavor);
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); sides.len()];
    for round in 0..rounds {
        let mut line = format!("round {round}:");
        for (i, (name, run, flavor)) in sides.iter().enumerate() {
            let t = run(&url, n, *flavor).as_secs_f64();
            line.push_str(&format!("  {name} {} {t:.3} s", flavor.name()));
            times[i].push(t);
        }
        println!("{line}");
    }
    Some(times)
}

/// `--only small`: N GETs through the library, Courier against reqwest.
pub(crate) fn run(n: usize, rounds: usize, only_side: Option<&str>) -> Option<Scenario> {
    let sides: [Runner; 7] = [
        ("courier", courier, Flavor::MultiThread),
        ("courier", courier, Flavor::CurrentThread),
        ("reqwest", reqwest, Flavor::CurrentThread),
        ("reqwest", reqwest, Flavor::MultiThread),
        // What a default session's URL cache (memory and disk) adds; reqwest has no cache.
        (
            "courier, default session (disk cache),",
            courier_default_session,
            Flavor::CurrentThread,
        ),
        ("hyper-util", hyper_util, Flavor::CurrentThread),
        ("hyper-util", hyper_util, Flavor::MultiThread),
    ];
    let title =
        format!("{n} GETs of 1 KiB, {WORKERS} at once, HTTP/1.1 keep-alive, one session or client");
    let times = interleave(&title, "/bytes/1024", &sides, n, rounds, only_side)?;
    let side = |i: usize| runner_side(&sides[i], &times[i]);
    let hyper_median = median(&mut times[5].clone()).min(median(&mut times[6].clone()));
    Some(Scenario {
        name: format!("{n} GETs of 1 KiB, 64 at once, HTTP/1.1 keep-alive, library"),
        unit: Unit::Seconds,
        courier: vec![side(0), side(1), side(4)],
        peers: vec![side(2), side(3)],
        target: Target::AtMostTimesBestPeer(1.0),
        note: format!(
            "hyper-util's pooled client alone (Courier's transport), its better flavour: \
             {hyper_median:.3} s; its thread and the in-process server's (which shares the two \
             cores) each wait on the other part of the time"
        ),
    })
}

/// The body of every small POST: 1 KiB, which the server's `/echo` sends back.
fn post_body() -> bytes::Bytes {
    bytes::Bytes::from(vec![b'x'; 1024])
}

fn courier_post(url: &str, n: usize, flavor: Flavor) -> Duration {
    flavor.runtime().block_on(async {
        let session = session_for_bench(uncached());
        let (url, body) = (url.to_owned(), post_body());
        drive(n, move || {
            let (session, url, body) = (session.clone(), url.clone(), body.clone());
            async move {
                let request = courier_engine::Request::new(http::Method::POST, url.as_str());
                let (body, _) = session
                    .upload(request, courier_engine::UploadBody::Bytes(body))
                    .await
                    .expect("POST");
                body.len()
            }
        })
        .await
    })
}

fn reqwest_post(url: &str, n: usize, flavor: Flavor) -> Duration {
    flavor.runtime().block_on(async {
        let client = reqwest::Client::new();
        let (url, body) = (url.to_owned(), post_body());
        drive(n, move || {
            let (client, url, body) = (client.clone(), url.clone(), body.clone());
            async move {
                let response = client.post(url.as_str()).body(body).send().await;
                response.expect("POST").bytes().await.expect("body").len()
            }
        })
        .await
    })
}

/// `--only small-post`: N POSTs of 1 KiB (each answered with the same 1 KiB), through the
/// library over HTTP/1.1 keep-alive: `Session::upload` against reqwest's `post().body()`.
pub(crate) fn run_post(n: usize, rounds: usize, only_side: Option<&str>) -> Option<Scenario> {
    let sides: [Runner; 4] = [
        ("courier", courier_post, Flavor::MultiThread),
        ("courier", courier_post, Flavor::CurrentThread),
        ("reqwest", reqwest_post, Flavor::CurrentThread),
        ("reqwest", reqwest_post, Flavor::MultiThread),
    ];
    let title = format!(
        "{n} POSTs of 1 KiB, {WORKERS} at once, HTTP/1.1 keep-alive, one session or client"
    );
    let times = interleave(&title, "/echo", &sides, n, rounds, only_side)?;
    let side = |i: usize| runner_side(&sides[i], &times[i]);
    Some(Scenario {
        name: format!("{n} POSTs of 1 KiB, 64 at once, HTTP/1.1 keep-alive, library"),
        unit: Unit::Seconds,
        courier: vec![side(0), side(1)],
        peers: vec![side(2), side(3)],
        target: Target::AtMostTimesBestPeer(1.0),
        note: "each POST's 1 KiB body is sent back (the server's /echo); Courier's completion \
               form `Session::upload`, reqwest's `post().body()`"
            .to_owned(),
    })
}

/// `--only per-task`: the issue's "create, resume and complete N data tasks against an instant
/// local server" (N = 100,000), each a GET of 1 KiB, 64 at once: what a task costs in Courier
/// over the same GET through hyper-util's client alone, and how much of it is the actor-per-task
/// shape (`floor.rs`): a Tokio task per request (a transfer's), and ractor's actors.
pub(crate) fn per_task(n: usize, rounds: usize, only_side: Option<&str>) -> Option<Scenario> {
    let sides: [Runner; 8] = [
        ("courier", courier, Flavor::MultiThread),
        ("courier", courier, Flavor::CurrentThread),
        ("hyper-util", hyper_util, Flavor::CurrentThread),
        ("hyper-util", hyper_util, Flavor::MultiThread),
        // Courier's shape with no work of Courier's in it.
        ("actor floor", super::floor::run, Flavor::CurrentThread),
        // hyper-util with a Tokio task per request: the transfer's part of the shape.
        (
            "hyper-util, a task per request,",
            super::floor::run_task,
            Flavor::CurrentThread,
        ),
        // The shape with hand-written actors: what ractor's part would cost with the cheapest.
        (
            "minimal actor floor",
            super::floor::run_minimal,
            Flavor::CurrentThread,
        ),
        (
            "pooled actor floor",
            super::floor::run_pooled,
            Flavor::CurrentThread,
        ),
    ];
    let title = format!(
        "{n} data tasks (GETs of 1 KiB), {WORKERS} at once, created, resumed and completed, \
         against hyper-util alone"
    );
    let times = interleave(&title, "/bytes/1024", &sides, n, rounds, only_side)?;
    let per_request = |t: f64| t / n as f64 * 1e6;
    let hyper = |r: usize| times[2][r].min(times[3][r]);
    // Per round, Courier's better flavour over hyper-util's better one: what Courier's own
    // layers cost.
    let overhead: Vec<f64> = (0..rounds)
        .map(|r| per_request(times[0][r].min(times[1][r]) - hyper(r)))
        .collect();
    // The same for the floors, the median over rounds of side `i` over hyper-util: the shape
    // alone (a session actor, a task actor and a transfer task per request), its Tokio task alone,
    // the shape with hand-written actors (the transfer inside the task's), and with ractor's
    // request actors each serving GET after GET.
    let beyond_hyper = |i: usize| -> f64 {
        median(
            &mut (0..rounds)
                .map(|r| per_request(times[i][r] - hyper(r)))
                .collect::<Vec<f64>>(),
        )
    };
    let medians: Vec<f64> = (0..sides.len())
        .map(|i| median(&mut times[i].clone()))
        .collect();
    Some(Scenario {
        name: format!(
            "create, resume and complete {n} data tasks against an instant local server: cost \
             per task of Courier's layers over hyper-util's client"
        ),
        unit: Unit::Micros,
        courier: vec![Side::new("courier - hyper-util, best flavours", overhead)],
        peers: Vec::new(),
        target: Target::AtMost(10.0),
        note: format!(
            "medians: courier {:.3} s (multi-thread), {:.3} s (current-thread); hyper-util \
             {:.3} s, {:.3} s; the actor-per-task shape alone, with a ractor actor spawned per \
             request (hyper-util inside it and nothing else, bench/floor.rs, {:.3} s): {:.1} µs, \
             and of that, a Tokio task per request (the transfer's; hyper-util with one, {:.3} \
             s) {:.1} µs, the rest ractor's actors (the session's and the task's: spawn, link, \
             messages, stop); the same shape with hand-written actors (a Tokio task and a \
             mailbox per task, the transfer inside it, {:.3} s): {:.1} µs; with ractor's \
             actors each serving request after request, as Courier's task actors do ({:.3} s): \
             {:.1} µs",
            medians[0],
            medians[1],
            medians[2],
            medians[3],
            medians[4],
            beyond_hyper(4),
            medians[5],
            beyond_hyper(5),
            medians[6],
            beyond_hyper(6),
            medians[7],
            beyond_hyper(7)
        ),
    })
}

/// The same N GETs through the `courier` command (`courier get -i URLS -j 64`, one process, one
/// session) against `curl --parallel --parallel-max 64` with the same URLs, interleaved; both
/// write the bodies to /dev/null.
pub(crate) fn command(courier: &std::path::Path, n: usize, rounds: usize) -> Scenario {
    let (_server_rt, server) = super::loopback_server();
    let url = server.url("/bytes/1024");
    let dir = tempfile::tempdir().expect("temp dir");
    let (urls, curl_config) = (dir.path().join("urls.txt"), dir.path().join("urls.curl"));
    std::fs::write(&urls, format!("{url}\n").repeat(n)).expect("URL list");
    super::write_curl_config(&curl_config, &url, n);
    let workers = WORKERS.to_string();
    let run = |program: &std::path::Path, args: &[&std::ffi::OsStr]| {
        let started = Instant::now();
        let status = std::process::Command::new(program)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("the command runs");
        assert!(status.success(), "{program:?} {args:?}");
        started.elapsed().as_secs_f64()
    };
    let ours = || {
        run(
            courier,
            &[
                "get".as_ref(),
                "-q".as_ref(),
                "--allow-http".as_ref(),
                "--config".as_ref(),
                "ephemeral".as_ref(),
                "-j".as_ref(),
                workers.as_ref(),
                "--max-connections-per-host".as_ref(),
                workers.as_ref(),
                "-i".as_ref(),
                urls.as_os_str(),
            ],
        )
    };
    let theirs = || super::curl_run(&curl_config, WORKERS).as_secs_f64();
    println!(
        "# {n} GETs of 1 KiB through the commands, {WORKERS} at once; {rounds} interleaved rounds"
    );
    let _ = (ours(), theirs()); // warm-up
    let (mut c, mut k) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let (a, b) = (ours(), theirs());
        println!("round {round}: courier get {a:.3} s  curl --parallel {b:.3} s");
        c.push(a);
        k.push(b);
    }
    Scenario {
        name: format!("{n} GETs of 1 KiB, {WORKERS} at once, through the command"),
        unit: Unit::Seconds,
        courier: vec![Side::new("courier get -i URLS -j 64", c)],
        peers: vec![Side::new("curl --parallel-max 64 -K URLS", k)],
        target: Target::AtMostTimesBestPeer(1.0),
        note: "whole processes, start-up included; the library figures are the row above".into(),
    }
}
