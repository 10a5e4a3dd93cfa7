//! The background service: one session per identifier, its tasks and their events journaled, and
//! the events handed to whichever application attaches to the identifier, replayed first.
//!
//! - A task exists once the journal holds it: `CreateTask` is answered only after the commit.
//! - An identifier's session is made with the settings its tasks were created under
//!   ([`wire::SessionSettings`], journaled with each task) on top of the service's own; a task
//!   made under other settings is refused while the identifier's tasks are unfinished.
//! - Every delegate event of an identifier's session is committed to the journal, then sent to
//!   the attached application, if any. A finished download's file moves into the service's
//!   `files/` directory and stays there until the application acknowledges the
//!   `FinishedDownloading` event (it may move the file during the callback; what is left is
//!   removed).
//! - An application that attaches gets every event not yet acknowledged, in order, then
//!   `FinishedEvents`, then live events. An event is gone once acknowledged; a completed task's
//!   record goes with its acknowledged completion, and so does every event of the task still
//!   journaled from before it (the newest progress report, journaled at the end in place of the
//!   last one, was only ever sent live). An attach waits until the application attached
//!   before it has gone and its last acknowledgements are carried out (a killed application leaves
//!   them in its socket).
//!
//! - After a restart, every task that had not completed goes on: a download from the resume data
//!   a clean stop (SIGTERM) journaled, or from the last checkpoint beside its partial file after a
//!   crash (`kill -9`), with `Range` + `If-Range`; an upload from the start.
//!
//! - Tasks run when the `scheduler`'s queue gives them their turn, and transient failures are
//!   retried there; `journaling` is the sessions' delegate, which journals every event and says
//!   whether an attempt's end is a completion or a retry.
//! - `connection` serves each application (handshake, replay, live events, its requests);
//!   `recovery` picks the journal's tasks up after a start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use courier_delegates::{Error, Request};
use courier_storage::journal::{EventRecord, Journal, JournalError, TaskKind};
use tokio::net::UnixListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::wire::{self, SessionSettings, WireError};
use crate::{Configuration, Session, Task, UploadBody};

mod connection;
mod journaling;
mod recovery;
mod scheduler;

pub use scheduler::{Policy, Throughput};

use journaling::Journaling;
use scheduler::Scheduler;

/// Live events of one identifier, beyond those a late subscriber reads from the journal.
const LIVE_BACKLOG: usize = 4096;

/// A running background service. Dropping it stops accepting connections; its sessions finish
/// their tasks.
pub struct Service {
    accept: JoinHandle<()>,
    /// The scheduler's driver.
    driver: JoinHandle<()>,
    socket: PathBuf,
    inner: Arc<Inner>,
}

struct Inner {
    journal: Arc<Journal>,
    /// Where handed-over files wait, and the identifiers' session directories.
    data_dir: PathBuf,
    /// The service's own settings, under every identifier's session (its directory set per
    /// identifier; each task's `SessionSettings` add to them).
    template: Configuration,
    sessions: Mutex<HashMap<String, Arc<Identifier>>>,
    scheduler: Arc<Scheduler>,
}

/// An event on its way to attached applications: journaled under `seq`, or (`seq` is `None`) a
/// progress report only sent live, which happened after event `after` was journaled.
#[derive(Clone, Debug)]
pub(crate) struct LiveEvent {
    pub(crate) seq: Option<u64>,
    pub(crate) after: u64,
    pub(crate) record: EventRecord,
}

impl LiveEvent {
    /// Whether an application whose replay went up to `replayed` still needs it: a journaled
    /// event after the replay, or a live-only one that happened after the replay's last event.
    fn is_after(&self, replayed: u64) -> bool {
        match self.seq {
            Some(seq) => seq > replayed,
            None => self.after >= replayed,
        }
    }
}

/// One identifier's session, and the channel its live events go out on.
struct Identifier {
    /// Its engine session, made for the first task's settings (see [`Identifier::engine_for`]).
    engine: Mutex<Option<Arc<Engine>>>,
    live: broadcast::Sender<LiveEvent>,
    /// The journal's task ids to the session's tasks, for control calls.
    tasks: Tasks,
    /// Held by the application attached for events, until its connection has ended and every
    /// request it sent has been carried out (see `connection::serve`).
    attached: Arc<tokio::sync::Mutex<()>>,
    /// Held while a task is created, from the choice of its engine session to its creation in it:
    /// two connections creating at once must not both find the identifier idle and each replace
    /// the session the other's task is being made in.
    creating: tokio::sync::Mutex<()>,
    /// What making an engine session takes: the service's settings with the identifier's
    /// directory, and what its delegate shares.
    template: Configuration,
    name: String,
    journal: Arc<Journal>,
    scheduler: Arc<Scheduler>,
    files: PathBuf,
}

/// An identifier's engine session, made with the settings of the tasks it runs.
struct Engine {
    /// What its tasks' applications added to the service's settings.
    settings: SessionSettings,
    session: Session,
    /// The session's task ids to the journal's.
    ids: Arc<Mutex<HashMap<u64, u64>>>,
    /// The journaling delegate, told when the service stops.
    delegate: Arc<Journaling>,
}

/// The journal's task ids to the session's tasks.
pub(crate) type Tasks = Arc<Mutex<HashMap<u64, Task>>>;

impl Identifier {
    /// The engine session, if a task has made one.
    fn engine(&self) -> Option<Arc<Engine>> {
        self.engine
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The engine session to run a task created under `settings` in: the one there is when it has
    /// those settings, else a new one with them when `idle` (no task of the identifier is
    /// unfinished; the old session goes once its last callbacks are out). An engine session
    /// cannot change its settings, and a task must not run under more than it was given (a
    /// cleartext host, a root, a credential), so a task that needs others while tasks run is
    /// refused.
    fn engine_for(&self, settings: &SessionSettings, idle: bool) -> Result<Arc<Engine>, String> {
        let mut engine = self.engine.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(current) = engine.as_ref() {
            if current.settings == *settings {
                return Ok(current.clone());
            }
            if !idle {
                return Err(format!(
                    "background session {:?} has unfinished tasks created with other settings \
                     (cleartext hosts, trusted roots, credentials, timeouts, rate or connection \
                     cap); create this task with the same ones, or when they are done, or under \
                     another identifier",
                    self.name
                ));
            }
        }
        let made = Arc::new(self.make_engine(settings.clone(), engine.as_deref())?);
        if let Some(old) = engine.replace(made.clone()) {
            old.session.finish_tasks_and_invalidate();
        }
        Ok(made)
    }

    /// A new engine session with `settings`, its delegate going on from `before`'s sequence.
    fn make_engine(
        &self,
        settings: SessionSettings,
        before: Option<&Engine>,
    ) -> Result<Engine, String> {
        let ids: Arc<Mutex<HashMap<u64, u64>>> = Arc::default();
        let delegate = Arc::new(Journaling::new(self, ids.clone(), settings.clone()));
        if let Some(before) = before {
            delegate.journaled(before.delegate.last_journaled());
        }
        let mut config = self.template.clone();
        settings.apply_to(&mut config);
        let session =
            Session::with_delegate(config, delegate.clone()).map_err(|e| e.to_string())?;
        Ok(Engine {
            settings,
            session,
            ids,
            delegate,
        })
    }
}

impl Engine {
    /// A new task in the session, as a journaled task of `kind` asks (suspended).
    fn create(&self, kind: &TaskKind, request: Request) -> Result<Task, crate::CreateTaskError> {
        match kind {
            TaskKind::Download => self
                .session
                .download_task(request)
                .map(|t| t.task().clone()),
            TaskKind::Upload { file } => self
                .session
                .upload_task(request, UploadBody::File(file.clone()))
                .map(|t| t.task().clone()),
        }
    }

    /// Files the session's task `created` as the journal's task `task` of `state`, both ways.
    fn adopt(&self, state: &Identifier, task: u64, created: Task) {
        self.ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(created.info().id(), task);
        state
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(task, created);
    }
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

/// A start failure, with what was being done.
fn failed<E: std::error::Error + Send + Sync + 'static>(what: &str, e: E) -> Error {
    Error::new(
        courier_delegates::ErrorCode::Unknown,
        format!("{what}: {e}"),
    )
    .with_source(e)
}

impl Service {
    /// Starts a service keeping its journal, sessions and files in `data_dir` and listening in
    /// `socket_dir` ([`wire::socket_dir`] in use). Every identifier's session has `template`'s
    /// settings; `policy` says how many transfers run at once, how failures are retried and how
    /// slow a transfer may be.
    ///
    /// # Errors
    /// The journal cannot be opened (another service holds it) or the socket cannot be made.
    pub async fn start(
        data_dir: &Path,
        socket_dir: &Path,
        template: Configuration,
        policy: Policy,
    ) -> Result<Service, Error> {
        let socket_dir = socket_dir.to_path_buf();
        Service::launch(
            data_dir,
            move || wire::listen(&socket_dir),
            template,
            policy,
        )
        .await
    }

    /// Like [`Service::start`], on a socket already listening (systemd's socket activation hands
    /// one over), taking connections from user `owner` only.
    ///
    /// # Errors
    /// The journal cannot be opened (another service holds it).
    pub async fn start_on(
        listener: UnixListener,
        owner: u32,
        data_dir: &Path,
        template: Configuration,
        policy: Policy,
    ) -> Result<Service, Error> {
        Service::launch(data_dir, move || Ok((listener, owner)), template, policy).await
    }

    /// Opens the journal, then listens: the journal's lock is what makes this the one service of
    /// the directory, so a second service never gets as far as replacing the first one's socket.
    async fn launch(
        data_dir: &Path,
        listen: impl FnOnce() -> std::io::Result<(UnixListener, u32)>,
        template: Configuration,
        policy: Policy,
    ) -> Result<Service, Error> {
        let journal = {
            let dir = data_dir.to_path_buf();
            tokio::task::spawn_blocking(move || Journal::open(&dir))
                .await
                .map_err(|e| failed("cannot open the journal", e))?
                .map_err(|e| failed("cannot start", e))?
        };
        let (listener, owner) = listen().map_err(|e| failed("cannot make the socket", e))?;
        let (scheduler, retries) = Scheduler::new(policy);
        let inner = Arc::new(Inner {
            journal: Arc::new(journal),
            data_dir: data_dir.to_path_buf(),
            template,
            sessions: Mutex::new(HashMap::new()),
            scheduler,
        });
        inner
            .recover()
            .await
            .map_err(|e| failed("cannot recover the journal's tasks", e))?;
        let driver = tokio::spawn(inner.clone().drive(retries));
        let socket = listener
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(Path::to_path_buf))
            .unwrap_or_default();
        let accept = tokio::spawn(connection::accept(listener, owner, inner.clone()));
        Ok(Service {
            accept,
            driver,
            socket,
            inner,
        })
    }

    /// The socket applications connect to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Stops cleanly (SIGTERM): every download still running is stopped with its resume data,
    /// which the journal keeps for the next start; every session is closed.
    pub async fn shutdown(self) {
        let mut this = self;
        // Connections (their tasks go with the accept loop's) and the scheduler first.
        this.accept.abort();
        this.driver.abort();
        let _ = (&mut this.accept).await;
        let _ = (&mut this.driver).await;
        let this = this;
        let sessions: Vec<(String, Arc<Identifier>)> = this
            .inner
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        for (identifier, s) in sessions {
            let engine = s.engine();
            if let Some(engine) = &engine {
                engine.delegate.set_stopping();
            }
            let tasks: Vec<(u64, Task)> = s
                .tasks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|(id, t)| (*id, t.clone()))
                .collect();
            for (id, task) in tasks {
                // A download keeps its partial file; an upload its server offered to resume, the
                // server's offset. Any other task starts over.
                let Some(data) = task.cancel_for_resume().await else {
                    continue;
                };
                let (identifier, data) = (identifier.clone(), data.as_bytes().to_vec());
                let kept = journaled(&this.inner.journal, move |j| {
                    j.modify_task(&identifier, id, |record| record.checkpoint = Some(data))
                })
                .await;
                if let Err(e) = kept {
                    tracing::error!(error = %e, "a task's resume data could not be journaled");
                }
            }
            if let Some(engine) = engine {
                engine.session.invalidate_and_cancel();
                engine.session.invalidated().await;
            }
        }
        // The journal closes when its last holder (a session's delegate thread finishing) lets
        // go: wait for that, a few seconds at most, so a new service can open it at once.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while Arc::strong_count(&this.inner.journal) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.accept.abort();
        self.driver.abort();
    }
}

/// Runs a journal call on a blocking thread (each one is a durable transaction).
async fn journaled<R: Send + 'static>(
    journal: &Arc<Journal>,
    call: impl FnOnce(&Journal) -> Result<R, JournalError> + Send + 'static,
) -> Result<R, WireError> {
    let journal = journal.clone();
    tokio::task::spawn_blocking(move || call(&journal))
        .await
        .map_err(|e| WireError::Io(std::io::Error::other(e)))?
        .map_err(|e| WireError::Io(std::io::Error::other(e)))
}

impl Inner {
    /// The session of `identifier`, if it has one.
    fn session_of(&self, identifier: &str) -> Option<Arc<Identifier>> {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(identifier)
            .cloned()
    }

    /// The session of `identifier`, made on first use.
    fn identifier(self: &Arc<Self>, identifier: &str) -> Result<Arc<Identifier>, WireError> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = sessions.get(identifier) {
            return Ok(s.clone());
        }
        let (live, _) = broadcast::channel(LIVE_BACKLOG);
        let files = self.data_dir.join("files");
        courier_storage::directory::create_private_dir_all(&files)?;
        let mut template = self.template.clone();
        template.session_directory = Some(
            self.data_dir
                .join("sessions")
                .join(courier_delegates::plain_file_name(identifier)),
        );
        // The journal names each task's partial file, and its lock keeps a second service out.
        template.directory_held_alone = true;
        let state = Arc::new(Identifier {
            engine: Mutex::default(),
            live,
            tasks: Tasks::default(),
            attached: Arc::default(),
            creating: tokio::sync::Mutex::default(),
            template,
            name: identifier.to_owned(),
            journal: self.journal.clone(),
            scheduler: self.scheduler.clone(),
            files,
        });
        sessions.insert(identifier.to_owned(), state.clone());
        Ok(state)
    }
}
