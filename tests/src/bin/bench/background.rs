//! Part 5 (`--only background`): what background sessions cost.
//!
//! 1. Durability: 100 concurrent 10 MiB downloads from nginx in a background session (an
//!    in-process service, every event journaled) against the same in a default session, both
//!    through the library with 100 transfers at once, interleaved rounds; the median of the
//!    paired wall-time ratios.
//! 2. Restart: 100 downloads running in `courier daemon` (from nginx at 512 KiB/s each), the
//!    daemon killed with SIGKILL and started again; the time from the new start until every task
//!    has said `did_resume_at_offset` (its transfer moves again).
//! 3. Memory: `courier daemon`'s RSS and journal size with 10,000 queued tasks (created, resumed,
//!    held back by an earliest begin date an hour away), per task.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime};

use courier_engine::background::journal::{self, StoredEvent, TaskKind};
use courier_engine::background::wire::{
    self, ClientMessage, Connection, RemoteControl, ServiceMessage,
};
use courier_engine::background::{Limits, Policy, Service};
use courier_engine::{CleartextPolicy, Configuration};
use tokio::net::UnixStream;

use super::median;

const TASKS: usize = 100;
const SIZE: usize = 10 << 20;

/// Runs the three measures; `courier` is the binary run as the daemon.
pub(crate) fn run(courier: &Path, rounds: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).expect("root");
    for i in 0..TASKS {
        courier_tests::write_random_file(&root.join(format!("f{i}")), SIZE, i as u64 + 7)
            .expect("file");
    }
    let Some(nginx) = courier_tests::Nginx::start(&root) else {
        println!("# background: skipped (no nginx)");
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    durability(&runtime, &nginx, dir.path(), rounds);
    restart(courier, &nginx, dir.path(), 3);
    memory(courier, &runtime, &nginx, dir.path());
}

fn urls(nginx: &courier_tests::Nginx, location: &str) -> Vec<String> {
    (0..TASKS)
        .map(|i| nginx.url(&format!("{location}f{i}")))
        .collect()
}

fn session_config(base: Configuration, dir: &Path) -> Configuration {
    let mut c = base;
    c.cleartext = CleartextPolicy::AllowAll;
    c.http_maximum_connections_per_host = TASKS;
    c.session_directory = Some(dir.to_path_buf());
    c
}

/// Downloads every URL at once in `config`'s session; the wall time.
async fn download_all(config: Configuration, urls: &[String]) -> Duration {
    super::tasks::complete_all(config, urls.len(), |session, i| {
        session
            .download_task(urls[i].as_str())
            .expect("task")
            .resume();
    })
    .await
}

fn durability(
    runtime: &tokio::runtime::Runtime,
    nginx: &courier_tests::Nginx,
    dir: &Path,
    rounds: usize,
) {
    println!(
        "# {TASKS} concurrent downloads of 10 MiB from nginx: background session (journaled) vs default session; {rounds} interleaved rounds"
    );
    let urls = urls(nginx, "/");
    let (mut bg, mut default, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..=rounds {
        let d = runtime.block_on(download_all(
            session_config(
                Configuration::default(),
                &dir.join(format!("default{round}")),
            ),
            &urls,
        ));
        let b = runtime.block_on(async {
            let state = dir.join(format!("service{round}"));
            let mut policy = Policy::default();
            policy.limits = Limits {
                max_total: TASKS,
                max_per_host: TASKS,
            };
            policy.minimum_throughput = None;
            let template = session_config(Configuration::default(), &state.join("unused"));
            let service = Service::start(&state.join("data"), &state.join("run"), template, policy)
                .await
                .expect("service");
            let mut config = session_config(Configuration::background("bench"), &state);
            config.session_directory = None;
            config.background_service = Some(service.socket().to_path_buf());
            let took = download_all(config, &urls).await;
            service.shutdown().await;
            took
        });
        let _ = std::fs::remove_dir_all(dir.join(format!("default{round}")));
        let _ = std::fs::remove_dir_all(dir.join(format!("service{round}")));
        if round == 0 {
            continue; // warm-up: files into the page cache
        }
        let (b, d) = (b.as_secs_f64(), d.as_secs_f64());
        println!(
            "round {round}: background {b:.3} s  default {d:.3} s  ratio {:.2}",
            b / d
        );
        bg.push(b);
        default.push(d);
        ratios.push(b / d);
    }
    let total = (TASKS * SIZE) as f64;
    let (mb, md, mr) = (median(&mut bg), median(&mut default), median(&mut ratios));
    println!(
        "background: median {mb:.3} s ({:.0} MB/s); default: median {md:.3} s ({:.0} MB/s); background/default wall-time ratio (median of rounds): {mr:.2}",
        total / mb / 1e6,
        total / md / 1e6
    );
}

/// `courier daemon` with its socket and state under `dir`.
fn daemon(courier: &Path, dir: &Path) -> Child {
    Command::new(courier)
        .args([
            "daemon",
            "--allow-http",
            "--max-connections-per-host",
            "100",
        ])
        .env("XDG_RUNTIME_DIR", dir.join("run"))
        .env("XDG_DATA_HOME", dir.join("data"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("courier daemon")
}

fn socket(dir: &Path) -> PathBuf {
    dir.join("run").join("courier").join(wire::SOCKET)
}

/// Connects to the daemon's socket as soon as it listens (20 s at most).
async fn connect(dir: &Path, events: bool) -> Connection<UnixStream> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(stream) = UnixStream::connect(socket(dir)).await {
            let mut c = Connection::new(stream);
            let hello = if events {
                c.hello("bench").await
            } else {
                c.hello_without_events("bench").await
            };
            if hello.is_ok() {
                return c;
            }
        }
        assert!(Instant::now() < deadline, "the daemon listens");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Creates one download per URL, resumed (`not_before_ms`: held back until then); their ids.
async fn create(c: &mut Connection<UnixStream>, urls: &[String], not_before_ms: Option<u64>) {
    let schedule = wire::schedule_for(&Configuration::default());
    for url in urls {
        let request = wire::request_record(&courier_engine::Request::get(url));
        let task = c
            .create_task(
                TaskKind::Download,
                request,
                schedule.clone(),
                wire::SessionSettings::default(),
            )
            .await
            .expect("create");
        c.send(&ClientMessage::Control {
            task,
            control: RemoteControl::Resume {
                priority: 0.5,
                not_before_ms,
            },
        })
        .await
        .expect("resume");
    }
}

/// Every task of the identifier, with bytes written so far.
async fn list(c: &mut Connection<UnixStream>) -> Vec<i64> {
    let tasks = c.list_tasks().await.expect("list");
    tasks.iter().map(|t| t.written).collect()
}

fn kill(child: &mut Child) {
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
}

fn restart(courier: &Path, nginx: &courier_tests::Nginx, dir: &Path, rounds: usize) {
    println!(
        "# restart after SIGKILL with {TASKS} downloads running (nginx at 512 KiB/s each): time until every transfer moves again; {rounds} rounds"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let urls = urls(nginx, "/trickle/");
    let mut times = Vec::new();
    for round in 0..rounds {
        let state = dir.join(format!("restart{round}"));
        let mut first = daemon(courier, &state);
        runtime.block_on(async {
            let mut c = connect(&state, false).await;
            create(&mut c, &urls, None).await;
            // Until every transfer has written something (a checkpoint or more on disk).
            let deadline = Instant::now() + Duration::from_secs(60);
            while list(&mut c).await.iter().any(|w| *w < 800_000) {
                assert!(Instant::now() < deadline, "every download runs");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        kill(&mut first);
        let started = Instant::now();
        let mut second = daemon(courier, &state);
        let took = runtime.block_on(async {
            let mut c = connect(&state, true).await;
            let mut moving = std::collections::HashSet::new();
            let deadline = Instant::now() + Duration::from_secs(60);
            while moving.len() < TASKS {
                assert!(Instant::now() < deadline, "every transfer moves again");
                if let ServiceMessage::Event { record, .. } = c.receive().await.expect("event")
                    && let StoredEvent::ResumedAt { offset, .. } = record.event
                    && offset > 0
                {
                    moving.insert(record.task);
                }
            }
            started.elapsed()
        });
        kill(&mut second);
        let _ = std::fs::remove_dir_all(&state);
        println!("round {round}: {:.0} ms", took.as_secs_f64() * 1000.0);
        times.push(took.as_secs_f64() * 1000.0);
    }
    println!(
        "restart to every transfer moving (each continuing at its checkpoint): median {:.0} ms for {TASKS} tasks",
        median(&mut times)
    );
}

/// The daemon's resident memory, in bytes.
fn rss_of(child: &Child) -> u64 {
    super::status_field(&child.id().to_string(), "VmRSS:") * 1024
}

fn memory(
    courier: &Path,
    runtime: &tokio::runtime::Runtime,
    nginx: &courier_tests::Nginx,
    dir: &Path,
) {
    const QUEUED: usize = 10_000;
    println!("# courier daemon with {QUEUED} queued tasks (resumed, held back an hour)");
    let state = dir.join("memory");
    let mut service = daemon(courier, &state);
    let url = nginx.url("/f0");
    let hour = wire::unix_ms(SystemTime::now() + Duration::from_secs(3600));
    let (before, after) = runtime.block_on(async {
        let mut c = connect(&state, false).await;
        // The identifier's session exists before the baseline.
        create(&mut c, std::slice::from_ref(&url), Some(hour)).await;
        list(&mut c).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = rss_of(&service);
        let urls = vec![url.clone(); QUEUED];
        create(&mut c, &urls, Some(hour)).await;
        assert_eq!(list(&mut c).await.len(), QUEUED + 1);
        tokio::time::sleep(Duration::from_millis(200)).await;
        (before, rss_of(&service))
    });
    let journal = std::fs::metadata(
        state
            .join("data")
            .join("courier")
            .join("background")
            .join(journal::FILE),
    )
    .map(|m| m.len())
    .unwrap_or(0);
    kill(&mut service);
    let _ = std::fs::remove_dir_all(&state);
    println!(
        "RSS before {:.1} MiB, after {:.1} MiB: {:.0} bytes per queued task; journal {:.1} MiB ({:.0} bytes per task)",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        after.saturating_sub(before) as f64 / QUEUED as f64,
        journal as f64 / 1048576.0,
        journal as f64 / (QUEUED + 1) as f64
    );
}
