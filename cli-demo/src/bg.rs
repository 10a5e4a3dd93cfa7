//! `courier bg ...`: background sessions from the command line (`shared/spec/cli.md`, "Background
//! sessions"). `download`, `upload`, `list` and `cancel` talk to the service over a connection that
//! takes no events, so the events wait for `attach`, which is an application session like any
//! other: it receives the replay through the delegate (acknowledging each event once handled), then
//! `did_finish_events_for_background_session`.

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use courier_engine::background::wire::{
    self, ClientMessage, Connection, RemoteControl, ServiceMessage,
};
use courier_engine::{Configuration, Session};
use courier_storage::journal::{TaskKind, TaskPhase};
use courier_storage::resume::RequestRecord;
use serde_json::json;
use tokio::net::UnixStream;

use crate::cli::{BgCommand, BgSchedule, Options};
use crate::common::events_output;
use crate::events::CliDelegate;
use crate::progress::Progress;
use crate::request::request;
use crate::{ExitCode, Failure};

/// Runs one `courier bg` command.
pub(crate) async fn run(command: BgCommand, options: &Options) -> Result<ExitCode, Failure> {
    if options.cert.is_some()
        && matches!(
            command,
            BgCommand::Download { .. } | BgCommand::Upload { .. }
        )
    {
        // The service answers a background task's challenges, and keeps no private keys.
        return Err(Failure::usage(
            "background tasks do not take --cert: the service keeps no client keys".into(),
        ));
    }
    match command {
        BgCommand::Download { id, urls, schedule } => {
            let urls = crate::common::urls(urls, options)?;
            let mut service = connect(&id).await?;
            for url in urls {
                let record = record_of(&url, options)?;
                let task =
                    create(&mut service, TaskKind::Download, record, schedule, options).await?;
                show!("{task} {}", crate::common::shown_url(&url));
            }
            settled(&mut service).await?;
            Ok(ExitCode::Success)
        }
        BgCommand::Upload {
            id,
            file,
            url,
            schedule,
        } => {
            let file = std::fs::canonicalize(&file)
                .map_err(|e| Failure::usage(format!("{}: {e}", file.display())))?;
            let mut record = record_of(&url, options)?;
            if options.method.is_none() {
                record.method = "PUT".into();
            }
            let mut service = connect(&id).await?;
            let kind = TaskKind::Upload { file };
            let task = create(&mut service, kind, record, schedule, options).await?;
            show!("{task} {}", crate::common::shown_url(&url));
            settled(&mut service).await?;
            Ok(ExitCode::Success)
        }
        BgCommand::List { id, json } => {
            let mut service = connect(&id).await?;
            let mut out = io::stdout().lock();
            for listed in answered(service.list_tasks()).await? {
                let (task, written, expected) = (listed.task, listed.written, listed.expected);
                let state = match listed.record.phase {
                    TaskPhase::Queued => "suspended",
                    TaskPhase::Running => "running",
                    TaskPhase::Suspended => "suspended",
                    TaskPhase::Completed => "completed",
                };
                let url = crate::common::shown_url(&listed.record.request.url);
                let line = if json {
                    // Why a running task may not be moving: the attempts that failed and were
                    // retried, and the moment it may run next (its begin date, or its retry's),
                    // in milliseconds since the Unix epoch. URLSession tells an application
                    // nothing of a background task's retries; a script can see them here.
                    let schedule = &listed.record.schedule;
                    json!({
                        "task": task,
                        "state": state,
                        "written": written,
                        "expected": expected,
                        "url": url,
                        "retries": schedule.retries,
                        "not_before_ms": schedule.not_before_ms,
                    })
                    .to_string()
                } else {
                    format!("{task} {state} {written} {expected} {url}")
                };
                let _ = writeln!(out, "{line}");
            }
            Ok(ExitCode::Success)
        }
        BgCommand::Cancel { id, tasks } => {
            let mut service = connect(&id).await?;
            for &task in &tasks {
                answered(service.send(&ClientMessage::Control {
                    task,
                    control: RemoteControl::Cancel,
                }))
                .await?;
            }
            // A round trip: every control was carried out before the command ends. A task the
            // identifier does not have (a mistyped number, one already handed over) is said.
            let known: std::collections::HashSet<u64> = answered(service.list_tasks())
                .await?
                .iter()
                .map(|t| t.task)
                .collect();
            let mut code = ExitCode::Success;
            for task in tasks.iter().filter(|t| !known.contains(t)) {
                say!("courier: {id} has no task {task}");
                code = ExitCode::TaskFailed;
            }
            Ok(code)
        }
        BgCommand::Attach { id, output, follow } => attach(&id, output, follow, options).await,
        BgCommand::Invalidate { id } => {
            let mut service = connect(&id).await?;
            answered(service.send(&ClientMessage::Invalidate)).await?;
            // Cancelling is quick: the confirmation is waited for as any answer is.
            answered(async {
                loop {
                    if let ServiceMessage::Invalidated = service.receive().await? {
                        return Ok(());
                    }
                }
            })
            .await?;
            Ok(ExitCode::Success)
        }
    }
}

/// `courier bg attach`: the replay (and with `--follow`, live events until every task of the
/// identifier has completed), finished downloads moved into the output directory.
async fn attach(
    id: &str,
    output: Option<PathBuf>,
    follow: bool,
    options: &Options,
) -> Result<ExitCode, Failure> {
    let dir = match output {
        Some(dir) => dir,
        None => std::env::current_dir()?,
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| Failure::usage(format!("cannot create {}: {e}", dir.display())))?;
    let bars = Arc::new(Progress::new(true));
    let (mut delegate, mut finished, mut invalid) =
        CliDelegate::new(events_output(options)?, Box::new(io::sink()), bars.clone());
    delegate.apply(options)?;
    delegate.set_default_dir(dir);
    let delegate = Arc::new(delegate);
    let mut replayed = delegate.replayed();
    let session = Session::with_delegate(Configuration::background(id), delegate.clone())?;
    let ctrl_c = crate::common::stop_requested();
    tokio::pin!(ctrl_c);
    let mut results = Vec::new();
    // The service going away ends the session (did_become_invalid with -997): so does the command.
    let lost = |invalid: &tokio::sync::watch::Receiver<bool>| *invalid.borrow();
    tokio::select! {
        r = replayed.wait_for(|done| *done) => { r.map_err(|_| Failure::usage("the session ended".into()))?; }
        _ = invalid.wait_for(|gone| *gone) => return Ok(service_lost(id)),
        _ = &mut ctrl_c => return Ok(ExitCode::Interrupted),
    }
    if follow {
        // Every task still to complete (as a relaunched application finds them, through the
        // session's `all_tasks`): its completion is awaited live.
        let mut waiting: std::collections::HashSet<u64> = session
            .all_tasks()
            .await
            .iter()
            .map(|t| t.info().id())
            .collect();
        let retries = say_retries(id, &bars);
        tokio::pin!(retries);
        let mut saying = true;
        while !waiting.is_empty() {
            tokio::select! {
                () = &mut retries, if saying => saying = false,
                done = finished.recv() => match done {
                    Some(f) => {
                        waiting.remove(&f.task);
                        results.push(f);
                    }
                    None => break,
                },
                _ = invalid.wait_for(|gone| *gone) => return Ok(service_lost(id)),
                _ = &mut ctrl_c => return Ok(ExitCode::Interrupted),
            }
        }
    }
    if lost(&invalid) {
        return Ok(service_lost(id));
    }
    while let Ok(f) = finished.try_recv() {
        results.push(f);
    }
    // The stream ends as every session's does, with did_become_invalid; the service keeps what
    // arrives after, for the next attach.
    crate::common::finish(&session, &mut invalid).await;
    drop(session);
    // Each failure said on stderr, as every command says it: a task's error, or a finished
    // download that could not be moved into the output directory.
    let mut code = crate::common::report(&results, options);
    for f in &results {
        if let Some(Err(why)) = &f.saved {
            say!("courier: task {}: {why}", f.task);
            code = ExitCode::TaskFailed;
        }
    }
    Ok(code)
}

/// How often `bg attach --follow` asks the service about its tasks' retries.
const RETRIES_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Says, above the progress bars, each attempt of a task of `id` that the service retries, as
/// `--retry` says a foreground one's: without it, a task retried against a host that is down
/// shows nothing at all (URLSession tells an application nothing of a background task's retries,
/// so no event carries them; the service's listing does). Gives up quietly if the service cannot
/// be asked: its going away is the session's to report.
async fn say_retries(id: &str, bars: &Progress) {
    let Ok(mut service) = connect(id).await else {
        return;
    };
    let mut seen = std::collections::HashMap::new();
    let mut tick = tokio::time::interval(RETRIES_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Ok(listed) = answered(service.list_tasks()).await else {
            return;
        };
        let now = wire::unix_ms(SystemTime::now());
        for t in listed {
            let retries = t.record.schedule.retries;
            if retries > seen.insert(t.task, retries).unwrap_or(0) {
                let wait = t
                    .record
                    .schedule
                    .not_before_ms
                    .unwrap_or(now)
                    .saturating_sub(now);
                bars.println(&format!(
                    "courier: task {} ({}): attempt {retries} failed; the service tries again in \
                     {:.1} s",
                    t.task,
                    crate::common::shown_url(&t.record.request.url),
                    wait as f64 / 1000.0,
                ));
            }
        }
    }
}

/// Says that the service went away during `bg attach` (the session's `did_become_invalid` with
/// -997, which only `--events` shows) and how to go on: exit 1, as for a failed task.
fn service_lost(id: &str) -> ExitCode {
    say!(
        "courier: the background service went away; the tasks of {id} go on once it runs again \
         (`courier bg attach --id {id}` starts it)"
    );
    ExitCode::TaskFailed
}

/// A connection to the user's service for `id` that takes no events (starting the service when
/// none answers).
async fn connect(id: &str) -> Result<Connection<UnixStream>, Failure> {
    let socket = wire::socket_dir().join(wire::SOCKET);
    let stream = tokio::task::spawn_blocking(move || wire::connect_or_start(&socket, None))
        .await
        .map_err(|e| Failure::usage(e.to_string()))?
        .map_err(Failure::usage)?;
    stream.set_nonblocking(true)?;
    let mut service = Connection::new(UnixStream::from_std(stream)?);
    answered(service.hello_without_events(id)).await?;
    Ok(service)
}

/// What the options add to the service's settings, for each task: the configuration's
/// (`--allow-http`, `--cacert`, timeouts, `--limit-rate`, `--max-connections-per-host`), and the
/// answers this command's delegate would give (`--insecure`, `--user`, `--location-trusted`),
/// which the service gives in its place.
fn settings_of(options: &Options) -> Result<wire::SessionSettings, Failure> {
    let mut settings = wire::SessionSettings::of(&crate::common::configuration(options)?);
    settings.trust_any_server = options.insecure;
    settings.credential = options.user.as_deref().map(|u| {
        let (user, password) = crate::common::user_and_password(u);
        (user.to_owned(), password.to_owned())
    });
    settings.credential_for_any_origin = options.location_trusted;
    Ok(settings)
}

/// Creates a task, resumes it (with its priority and earliest begin date, as URLSession's
/// `resume()` takes them from the task), and returns its identifier (the service's).
async fn create(
    service: &mut Connection<UnixStream>,
    kind: TaskKind,
    request: RequestRecord,
    when: BgSchedule,
    options: &Options,
) -> Result<u64, Failure> {
    let mut schedule = wire::schedule_for(&crate::common::configuration(options)?);
    schedule.discretionary |= when.discretionary;
    schedule.priority = when.priority.unwrap_or(schedule.priority);
    let not_before_ms = match when.begin_after {
        Some(delay) => Some(
            SystemTime::now()
                .checked_add(delay)
                .map(wire::unix_ms)
                .ok_or_else(|| Failure::usage("--begin-after: too far in the future".into()))?,
        ),
        None => None,
    };
    let priority = schedule.priority;
    let settings = settings_of(options)?;
    let task = answered(service.create_task(kind, request, schedule, settings)).await?;
    answered(service.send(&ClientMessage::Control {
        task,
        control: RemoteControl::Resume {
            priority,
            not_before_ms,
        },
    }))
    .await?;
    Ok(task)
}

/// Waits until the service has handled every message this command sent. It handles a connection's
/// messages in order, so once it has answered a listing, each `Resume` sent before is journaled
/// and its task queued or running. Without the wait the command could exit first, and a `bg list`
/// right after it would show a task it had just resumed as suspended (a CI run saw this).
async fn settled(service: &mut Connection<UnixStream>) -> Result<(), Failure> {
    answered(service.list_tasks()).await?;
    Ok(())
}

/// The longest the service may take to answer one request. It answers in milliseconds: one that
/// does not (stopped, wedged) is reported instead of waited for forever.
const ANSWER: std::time::Duration = std::time::Duration::from_secs(30);

/// `exchange`'s answer, or the failure of a service that gave none within [`ANSWER`].
async fn answered<T>(
    exchange: impl std::future::Future<Output = Result<T, wire::WireError>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(ANSWER, exchange).await {
        Ok(answer) => Ok(answer?),
        Err(_) => Err(Failure::from(format!(
            "the background service did not answer within {} s (is it stopped?)",
            ANSWER.as_secs()
        ))),
    }
}

/// The request the options describe for `url`, as the journal keeps it.
fn record_of(url: &str, options: &Options) -> Result<RequestRecord, Failure> {
    let r = request(url, options)?;
    if !r
        .url()
        .is_some_and(|u| matches!(u.scheme(), "http" | "https"))
    {
        return Err(Failure::usage(format!(
            "{url}: background sessions take http and https URLs only"
        )));
    }
    Ok(wire::request_record(&r))
}
