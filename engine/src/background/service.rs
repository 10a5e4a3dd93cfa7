//! The background service: one session per identifier, its tasks and their events journaled, and
//! the events handed to whichever application attaches to the identifier, replayed first.
//!
//! - A task exists once the journal holds it: `CreateTask` is answered only after the commit.
//! - Every delegate event of an identifier's session is committed to the journal, then sent to
//!   the attached application, if any. A finished download's file moves into the service's
//!   `files/` directory and stays there until the application acknowledges the
//!   `FinishedDownloading` event (it may move the file during the callback; what is left is
//!   removed).
//! - An application that attaches gets every event not yet acknowledged, in order, then
//!   `FinishedEvents`, then live events. An event is gone once acknowledged; a completed task's
//!   record goes with its acknowledged completion.
//!
//! - After a restart, every task that had not completed goes on: a download from the resume data
//!   a clean stop (SIGTERM) journaled, or from the last checkpoint beside its partial file after a
//!   crash (`kill -9`), with `Range` + `If-Range`; an upload from the start.
//!
//! - Tasks run when the `scheduler`'s queue gives them their turn, and transient failures are
//!   retried there; `journaling` is the sessions' delegate, which journals every event and says
//!   whether an attempt's end is a completion or a retry.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use courier_delegates::{Error, Request};
use courier_storage::journal::{
    EventRecord, Journal, JournalError, StoredError, StoredEvent, TaskKind, TaskPhase, TaskRecord,
};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use super::wire::RemoteControl;
use super::wire::{
    self, ClientMessage, Connection, FrameDecoder, ServiceMessage, WireError, read_message,
    write_message,
};
use crate::task::download::request_from_record;
use crate::{Configuration, Session, Task, UploadBody};

mod journaling;
mod scheduler;

pub use scheduler::{Policy, Throughput};

use journaling::{Journaling, set_phase};
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
    /// The settings of every identifier's session (its directory set per identifier).
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
    session: Session,
    live: broadcast::Sender<LiveEvent>,
    /// The session's task ids to the journal's.
    ids: Arc<Mutex<HashMap<u64, u64>>>,
    /// The journal's task ids to the session's tasks, for control calls.
    tasks: Tasks,
    /// The journaling delegate, told when the service stops.
    delegate: Arc<Journaling>,
}

/// The journal's task ids to the session's tasks.
pub(crate) type Tasks = Arc<Mutex<HashMap<u64, Task>>>;

impl Identifier {
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

    /// Files the session's task `created` as the journal's task `task`, both ways.
    fn adopt(&self, task: u64, created: Task) {
        self.ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(created.id(), task);
        self.tasks
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
fn failed(what: &str, e: &dyn std::fmt::Display) -> Error {
    Error::new(
        courier_delegates::ErrorCode::Unknown,
        format!("{what}: {e}"),
    )
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
                .map_err(|e| failed("cannot open the journal", &e))?
                .map_err(|e| failed("cannot open the journal", &e))?
        };
        let (listener, owner) = listen().map_err(|e| failed("cannot make the socket", &e))?;
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
            .map_err(|e| failed("cannot recover the journal's tasks", &e))?;
        let driver = tokio::spawn(inner.clone().drive(retries));
        let socket = listener
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(Path::to_path_buf))
            .unwrap_or_default();
        let accept = tokio::spawn(accept(listener, owner, inner.clone()));
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
            s.delegate.set_stopping();
            let tasks: Vec<(u64, Task)> = s
                .tasks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|(id, t)| (*id, t.clone()))
                .collect();
            for (id, task) in tasks {
                let Some(download) = task.as_download() else {
                    continue; // an upload starts over anyway
                };
                let Some(data) = download.cancel_by_producing_resume_data().await else {
                    continue;
                };
                let (identifier, data) = (identifier.clone(), data.as_bytes().to_vec());
                let kept = journaled(&this.inner.journal, move |j| {
                    j.modify_task(&identifier, id, |record| record.checkpoint = Some(data))
                })
                .await;
                if let Err(e) = kept {
                    tracing::error!(error = %e, "a download's resume data could not be journaled");
                }
            }
            s.session.invalidate_and_cancel();
            s.session.invalidated().await;
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

/// Accepts connections and serves each; the connections end with this loop (when the service
/// stops).
async fn accept(listener: UnixListener, owner: u32, inner: Arc<Inner>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let inner = inner.clone();
                connections.spawn(async move {
                    if let Err(e) = serve(stream, owner, inner).await
                        && !matches!(e, WireError::Closed)
                    {
                        tracing::warn!(error = %e, "a background connection ended");
                    }
                });
            }
            Some(_) = connections.join_next() => {}
        }
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

/// One application's connection: checked, attached, replayed, then live.
async fn serve(stream: UnixStream, owner: u32, inner: Arc<Inner>) -> Result<(), WireError> {
    wire::check_peer(&stream, owner)?;
    let mut connection = Connection::new(stream);
    let (identifier, events) = connection.welcome().await?;
    let state = inner.identifier(&identifier)?;
    // Subscribe before reading the journal: nothing falls between the replay and the live events.
    let mut live = state.live.subscribe();
    if !events {
        return serve_requests(connection, inner, identifier, state).await;
    }
    // The tasks first, so the application knows what the events are about.
    for message in inner.task_list(&identifier).await? {
        connection.send(&message).await?;
    }
    let replay = {
        let id = identifier.clone();
        journaled(&inner.journal, move |j| j.events(&id)).await?
    };
    let mut replayed = 0;
    for (seq, record) in replay {
        match record {
            Ok(record) => {
                connection
                    .send(&ServiceMessage::Event { seq, record })
                    .await?
            }
            Err(e) => tracing::error!(seq, error = %e, "a damaged journal event is skipped"),
        }
        replayed = seq;
    }
    connection.send(&ServiceMessage::FinishedEvents).await?;

    let (stream, decoder) = connection.into_parts();
    let (mut reader, mut writer) = stream.into_split();
    let (requests, mut incoming) = mpsc::channel::<Result<ClientMessage, WireError>>(16);
    let reading = tokio::spawn(async move {
        let mut decoder: FrameDecoder = decoder;
        loop {
            let message = read_message::<ClientMessage, _>(&mut reader, &mut decoder).await;
            let end = message.is_err();
            if requests.send(message).await.is_err() || end {
                return;
            }
        }
    });
    // Every request the application sent is carried out, even when it has already gone (its
    // last `resume()` before it closed still counts); sending stops at the first failed write.
    let mut writable = true;
    let result = async {
        loop {
            tokio::select! {
                request = incoming.recv() => match request {
                    Some(Ok(ClientMessage::ListTasks)) => {
                        for message in inner.task_list(&identifier).await? {
                            writable = writable && write_message(&mut writer, &message).await.is_ok();
                        }
                        writable = writable
                            && write_message(&mut writer, &ServiceMessage::EndOfTasks).await.is_ok();
                    }
                    Some(Ok(request)) => {
                        let answer = inner.handle(&identifier, &state, request).await?;
                        if let Some(answer) = answer {
                            writable = writable && write_message(&mut writer, &answer).await.is_ok();
                        }
                    }
                    Some(Err(e)) => return Err(e),
                    None => return Err(WireError::Closed),
                },
                event = live.recv(), if writable => match event {
                    Ok(live) if live.is_after(replayed) => {
                        let event = ServiceMessage::Event { seq: live.seq.unwrap_or(0), record: live.record };
                        writable = write_message(&mut writer, &event).await.is_ok();
                    }
                    Ok(_) => {}
                    // Too far behind: the journal has every event; the application gets them at
                    // its next attach.
                    Err(broadcast::error::RecvError::Lagged(_)) => writable = false,
                    Err(broadcast::error::RecvError::Closed) => writable = false,
                },
            }
        }
    }
    .await;
    reading.abort();
    result
}

/// A connection that only creates, controls and lists tasks: the events wait for the application.
async fn serve_requests(
    mut connection: Connection<UnixStream>,
    inner: Arc<Inner>,
    identifier: String,
    state: Arc<Identifier>,
) -> Result<(), WireError> {
    loop {
        match connection.receive::<ClientMessage>().await? {
            ClientMessage::ListTasks => {
                for message in inner.task_list(&identifier).await? {
                    connection.send(&message).await?;
                }
                connection.send(&ServiceMessage::EndOfTasks).await?;
            }
            ClientMessage::Acknowledge { .. } => return Err(WireError::Unexpected),
            request => {
                if let Some(answer) = inner.handle(&identifier, &state, request).await? {
                    connection.send(&answer).await?;
                }
            }
        }
    }
}

impl Inner {
    /// After a start: every task the journal holds that had not completed goes on, a download from
    /// its resume data (kept at a clean stop) or its partial file's last checkpoint (after a
    /// crash), else from the start. A damaged task record is reported to the application as the
    /// task's failure, and removed.
    async fn recover(self: &Arc<Self>) -> Result<(), WireError> {
        let identifiers = journaled(&self.journal, |j| j.identifiers()).await?;
        for identifier in identifiers {
            let id = identifier.clone();
            let tasks = journaled(&self.journal, move |j| j.tasks(&id)).await?;
            if tasks
                .iter()
                .all(|(_, r)| r.as_ref().is_ok_and(|r| r.phase == TaskPhase::Completed))
            {
                continue;
            }
            let state = self.identifier(&identifier)?;
            for (task, record) in tasks {
                match record {
                    Ok(record) if record.phase == TaskPhase::Completed => {}
                    Ok(record) => self.revive(&identifier, &state, task, record).await?,
                    Err(e) => {
                        tracing::error!(task, error = %e, "a damaged journal task is skipped");
                        let event = EventRecord {
                            task,
                            event: StoredEvent::Completed {
                                error: Some(StoredError {
                                    code: courier_delegates::ErrorCode::CannotDecodeRawData
                                        .number(),
                                    message: format!(
                                        "the journal's record of this task is damaged: {e}"
                                    ),
                                    resume_data: None,
                                }),
                                response: None,
                            },
                        };
                        let id = identifier.clone();
                        journaled(&self.journal, move |j| {
                            j.append_event(&id, &event)?;
                            j.remove_task(&id, task)
                        })
                        .await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Makes task `task` of the journal run again in `state`'s session: a new transfer, from the
    /// resume data or partial file the last one left, waiting for its turn if the application had
    /// resumed it.
    async fn revive(
        &self,
        identifier: &str,
        state: &Identifier,
        task: u64,
        record: TaskRecord,
    ) -> Result<(), WireError> {
        let running = record.phase == TaskPhase::Running;
        let request = request_from_record(&record.request);
        let session = state.session.clone();
        let (checkpoint, partial) = (record.checkpoint.clone(), record.partial_file.clone());
        let resume = tokio::task::spawn_blocking(move || {
            checkpoint
                .map(crate::ResumeData::from_bytes)
                .or_else(|| partial.and_then(|name| session.resume_data_for_partial(&name)))
        })
        .await
        .ok()
        .flatten();
        let created = match (&record.kind, resume) {
            (TaskKind::Download, Some(data)) => state
                .session
                .download_task_with_resume_data(&data)
                .map(|t| t.task().clone()),
            (TaskKind::Download, None) if record.partial_file.is_some() => {
                // Its partial file is gone (or unreadable): it starts over, and says so.
                let (id, event) = (
                    identifier.to_owned(),
                    EventRecord {
                        task,
                        event: StoredEvent::ResumedAt {
                            offset: 0,
                            expected: -1,
                        },
                    },
                );
                let sent = event.clone();
                let seq = journaled(&self.journal, move |j| j.append_event(&id, &event)).await?;
                state.delegate.journaled(seq);
                let _ = state.live.send(LiveEvent {
                    seq: Some(seq),
                    after: seq,
                    record: sent,
                });
                state.create(&TaskKind::Download, request)
            }
            (kind, _) => state.create(kind, request),
        };
        let created = created.map_err(|e| WireError::Io(std::io::Error::other(e)))?;
        state.adopt(task, created.clone());
        // The resume data is used up; the partial file is noted again when it is written to.
        let id = identifier.to_owned();
        journaled(&self.journal, move |j| {
            j.modify_task(&id, task, |record| record.checkpoint = None)
        })
        .await?;
        // Queued (never resumed) and suspended tasks wait for the application, as before; the
        // others wait for their turn.
        if running {
            self.scheduler.enqueue(identifier, task, &record);
        }
        Ok(())
    }

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
        let ids: Arc<Mutex<HashMap<u64, u64>>> = Arc::default();
        let files = self.data_dir.join("files");
        courier_storage::directory::create_private_dir_all(&files)?;
        let tasks = Tasks::default();
        let delegate = Arc::new(Journaling::new(
            identifier.to_owned(),
            self.journal.clone(),
            live.clone(),
            ids.clone(),
            tasks.clone(),
            self.scheduler.clone(),
            files,
        ));
        let mut config = self.template.clone();
        config.session_directory = Some(
            self.data_dir
                .join("sessions")
                .join(courier_delegates::plain_file_name(identifier)),
        );
        let session = Session::with_delegate(config, delegate.clone())
            .map_err(|e| WireError::Io(std::io::Error::other(e)))?;
        let state = Arc::new(Identifier {
            session,
            live,
            ids,
            tasks,
            delegate,
        });
        sessions.insert(identifier.to_owned(), state.clone());
        Ok(state)
    }

    /// Answers one request of an attached application.
    async fn handle(
        &self,
        identifier: &str,
        state: &Identifier,
        request: ClientMessage,
    ) -> Result<Option<ServiceMessage>, WireError> {
        match request {
            ClientMessage::CreateTask {
                kind,
                request,
                description,
                schedule,
            } => {
                let record = TaskRecord {
                    kind: kind.clone(),
                    request: request.clone(),
                    // Created suspended, as every task is: the application resumes it.
                    phase: TaskPhase::Queued,
                    partial_file: None,
                    checkpoint: None,
                    description,
                    schedule,
                };
                let id = identifier.to_owned();
                let task = journaled(&self.journal, move |j| j.add_task(&id, &record)).await?;
                let request = request_from_record(&request);
                let created = state.create(&kind, request);
                let created = created.map_err(|e| WireError::Io(std::io::Error::other(e)))?;
                state.adopt(task, created);
                Ok(Some(ServiceMessage::TaskCreated { task }))
            }
            ClientMessage::CreateFromResumeData { data, schedule } => {
                let resume = crate::ResumeData::from_bytes(data.clone());
                let created = state
                    .session
                    .download_task_with_resume_data(&resume)
                    .map_err(|e| WireError::Io(std::io::Error::other(e)))?;
                let record = TaskRecord {
                    kind: TaskKind::Download,
                    request: crate::task::download::request_record(created.original_request()),
                    phase: TaskPhase::Queued,
                    partial_file: None,
                    // Until it runs, a restart continues from the same data.
                    checkpoint: Some(data),
                    description: String::new(),
                    schedule,
                };
                let (id, sent) = (identifier.to_owned(), record.clone());
                let task = journaled(&self.journal, move |j| j.add_task(&id, &record)).await?;
                state.adopt(task, created.task().clone());
                // The record first, so the application knows the request it continues.
                Ok(Some(ServiceMessage::Created { task, record: sent }))
            }
            ClientMessage::Invalidate => {
                self.invalidate(identifier, state).await;
                Ok(Some(ServiceMessage::Invalidated))
            }
            ClientMessage::Acknowledge { seq } => {
                let id = identifier.to_owned();
                journaled(&self.journal, move |j| {
                    let event = j.event(&id, seq)?;
                    j.acknowledge(&id, seq)?;
                    match event {
                        Some(Ok(EventRecord {
                            event: StoredEvent::FinishedDownloading { file },
                            ..
                        })) => {
                            // Handed over: what the application did not move goes.
                            let _ = std::fs::remove_file(file);
                        }
                        Some(Ok(EventRecord {
                            task,
                            event: StoredEvent::Completed { .. },
                        })) => j.remove_task(&id, task)?,
                        _ => {}
                    }
                    Ok(())
                })
                .await?;
                Ok(None)
            }
            ClientMessage::Control { task, control } => {
                Ok(self.control(identifier, state, task, control).await?)
            }
            // `Hello` again, or a request this service does not know yet.
            _ => Err(WireError::Unexpected),
        }
    }

    /// `identifier`'s tasks as `Task` messages (a damaged record is reported and left out).
    async fn task_list(&self, identifier: &str) -> Result<Vec<ServiceMessage>, WireError> {
        let id = identifier.to_owned();
        let tasks = journaled(&self.journal, move |j| j.tasks(&id)).await?;
        let running = self.session_of(identifier).map(|s| s.tasks.clone());
        // Bytes moved so far, from the transfer when it runs in this service's life.
        let progress = |task: u64| {
            let running = running.as_ref()?;
            let t = running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&task)?
                .clone();
            Some(match t.kind() {
                courier_delegates::TaskKind::Upload => (t.bytes_sent(), t.bytes_expected_to_send()),
                _ => (t.bytes_received(), t.bytes_expected_to_receive()),
            })
        };
        Ok(tasks
            .into_iter()
            .filter_map(|(task, record)| match record {
                Ok(record) => {
                    let (written, expected) = progress(task).unwrap_or((0, -1));
                    Some(ServiceMessage::Task {
                        task,
                        record,
                        written,
                        expected,
                    })
                }
                Err(e) => {
                    tracing::error!(task, error = %e, "a damaged journal task is skipped");
                    None
                }
            })
            .collect())
    }

    /// Carries out a control call on task `task` (nothing for a task that has completed).
    async fn control(
        &self,
        identifier: &str,
        state: &Identifier,
        task: u64,
        control: RemoteControl,
    ) -> Result<Option<ServiceMessage>, WireError> {
        let handle = state
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&task)
            .cloned();
        let Some(handle) = handle else {
            return Ok(match control {
                RemoteControl::CancelForResume => {
                    Some(ServiceMessage::ResumeData { task, data: None })
                }
                _ => None,
            });
        };
        let id = identifier.to_owned();
        match control {
            RemoteControl::Resume {
                priority,
                not_before_ms,
            } => {
                if self.scheduler.is_queued(identifier, task) {
                    return Ok(None); // already waiting or running
                }
                let record = journaled(&self.journal, move |j| {
                    j.modify_task(&id, task, |r| {
                        r.phase = TaskPhase::Running;
                        r.schedule.priority = priority;
                        r.schedule.not_before_ms = not_before_ms;
                    })?;
                    j.task(&id, task)
                })
                .await?;
                if let Some(Ok(record)) = record {
                    self.scheduler.enqueue(identifier, task, &record);
                }
                Ok(None)
            }
            RemoteControl::Suspend => {
                handle.suspend();
                self.scheduler.remove(identifier, task);
                journaled(&self.journal, move |j| {
                    set_phase(j, &id, task, TaskPhase::Suspended)
                })
                .await?;
                Ok(None)
            }
            RemoteControl::Cancel => {
                handle.cancel();
                Ok(None)
            }
            RemoteControl::CancelForResume => {
                let data = match handle.as_download() {
                    Some(download) => download
                        .cancel_by_producing_resume_data()
                        .await
                        .map(|d| d.as_bytes().to_vec()),
                    None => {
                        handle.cancel();
                        None
                    }
                };
                Ok(Some(ServiceMessage::ResumeData { task, data }))
            }
        }
    }

    /// `invalidate_and_cancel` for `identifier`: every task is cancelled (each `did_complete`
    /// -999 is journaled for the application), then the identifier's session goes; the next
    /// request for it makes a new one.
    async fn invalidate(&self, identifier: &str, state: &Identifier) {
        let tasks: Vec<Task> = state
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for task in tasks {
            task.cancel();
        }
        state.session.invalidate_and_cancel();
        state.session.invalidated().await;
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(identifier);
    }
}
