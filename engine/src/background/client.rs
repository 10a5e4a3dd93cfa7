//! The application side of a background session: a connection to the service, through which the
//! session creates and controls its tasks, and from which it delivers their events to the delegate.
//!
//! Creating a task is one round trip (the task's identifier is the service's, stable across
//! attaches), made on this thread over a blocking socket: it is local and quick. A reader thread
//! takes what the service sends: the identifier's tasks first (so every event names a task the
//! session knows), then the events, each delivered on the session's delegate queue and
//! acknowledged only once the delegate method returned. An application killed inside a callback
//! therefore gets that one event again at its next attach; no other event is delivered twice.

use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use courier_delegates::{
    DeliveryQueue, Error, ErrorCode, Request, ResumeData, TaskInfo, TaskKind, TaskRecorder,
    TaskState,
};
use courier_storage::journal::{self, EventRecord, StoredEvent, TaskRecord};
use tokio::sync::oneshot;

use super::wire::{
    self, ClientMessage, FrameDecoder, PROTOCOL_VERSION, RemoteControl, ServiceMessage, WireError,
};
use crate::CreateTaskError;
use crate::task::{Control, SessionLink, TaskReport};

/// A background session's connection to the service.
pub(crate) struct Client {
    identifier: String,
    /// Requests go out here, one at a time.
    writer: Mutex<UnixStream>,
    /// The service's answers to `CreateTask`, in order.
    created: Mutex<mpsc::Receiver<Result<u64, String>>>,
    /// The tasks this session knows, by the service's identifier.
    tasks: Mutex<HashMap<u64, (TaskInfo, TaskRecorder)>>,
    /// The session's delegate queue.
    queue: DeliveryQueue,
    /// Set when the session detaches: events still arriving are left for the next session.
    closed: std::sync::atomic::AtomicBool,
    /// Answers to `ListTasks`: the identifiers of the tasks the service holds now (the service
    /// carries requests out in order: once one arrives, every acknowledgement sent before it is
    /// committed).
    listed: Mutex<mpsc::Receiver<Vec<u64>>>,
    /// Told when the service goes away while the session is attached (the session becomes
    /// invalid with -997).
    on_lost: std::sync::OnceLock<Box<dyn Fn(Error) + Send + Sync>>,
    /// Who waits for a task's resume data (`cancel_by_producing_resume_data`).
    resume_answers: Mutex<HashMap<u64, oneshot::Sender<Option<ResumeData>>>>,
    /// The session's settings: its discretion and resource timeout go with each task's schedule,
    /// what else it changes with the task's [`wire::SessionSettings`].
    settings: crate::Configuration,
}

impl Client {
    /// Connects to the service at `socket` for `identifier`, starting one when none answers, and
    /// starts delivering its events on `queue`.
    ///
    /// # Errors
    /// No service answers (and none could be started), or it refused the handshake.
    pub(crate) fn connect(
        config: &crate::Configuration,
        identifier: &str,
        queue: DeliveryQueue,
    ) -> Result<Arc<Client>, Error> {
        let socket = config
            .background_service
            .clone()
            .unwrap_or_else(|| wire::socket_dir().join(wire::SOCKET));
        let stream = wire::connect_or_start(&socket, config.background_daemon.as_deref())
            .map_err(|why| Error::new(ErrorCode::CannotConnectToHost, why))?;
        let failed = |e: &dyn std::fmt::Display| {
            Error::new(ErrorCode::Unknown, format!("the background service: {e}"))
        };
        // A service that accepts but never answers (hung, or on a runtime this thread blocks)
        // fails the handshake instead of holding the application; writes are bounded the same
        // way throughout.
        let handshake = Some(Duration::from_secs(10));
        stream
            .set_read_timeout(handshake)
            .and_then(|()| stream.set_write_timeout(handshake))
            .map_err(|e| failed(&e))?;
        let mut reader = stream.try_clone().map_err(|e| failed(&e))?;
        let mut writer = stream;
        let mut decoder = FrameDecoder::default();
        wire::write_message_blocking(
            &mut writer,
            &ClientMessage::Hello {
                version: PROTOCOL_VERSION,
                identifier: identifier.to_owned(),
                events: true,
            },
        )
        .map_err(|e| failed(&e))?;
        let welcome =
            wire::read_message_blocking(&mut reader, &mut decoder).map_err(|e| match e {
                // The read timed out: a service that accepted and then said nothing.
                WireError::Io(io)
                    if matches!(
                        io.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    Error::new(
                        ErrorCode::TimedOut,
                        "the background service did not answer within 10 s (is it stopped?)",
                    )
                }
                e => failed(&e),
            })?;
        match wire::welcomed(welcome) {
            Ok(()) => {}
            // The reason alone, as the service gave it.
            Err(WireError::Refused(reason)) => return Err(failed(&reason)),
            Err(e @ WireError::InUse { .. }) => {
                return Err(Error::new(
                    ErrorCode::BackgroundSessionInUseByAnotherProcess,
                    e.to_string(),
                ));
            }
            Err(e) => return Err(failed(&e)),
        }
        // From here the reader waits for events as long as the session lives (it ends when the
        // connection closes).
        reader.set_read_timeout(None).map_err(|e| failed(&e))?;
        let (created_tx, created) = mpsc::channel();
        let (listed_tx, listed) = mpsc::channel();
        let client = Arc::new(Client {
            identifier: identifier.to_owned(),
            writer: Mutex::new(writer),
            created: Mutex::new(created),
            tasks: Mutex::new(HashMap::new()),
            queue: queue.clone(),
            closed: std::sync::atomic::AtomicBool::new(false),
            listed: Mutex::new(listed),
            resume_answers: Mutex::default(),
            on_lost: std::sync::OnceLock::new(),
            settings: config.clone(),
        });
        let reading = client.clone();
        std::thread::Builder::new()
            .name(format!("courier-background-{identifier}"))
            .spawn(move || reading.read_loop(reader, decoder, created_tx, listed_tx, queue))
            .map_err(|e| failed(&e))?;
        Ok(client)
    }

    /// Creates a task in the service (a download, or an upload of `file`) and waits for its
    /// identifier.
    ///
    /// # Errors
    /// The service went away, or did not answer.
    pub(crate) fn create(
        &self,
        kind: TaskKind,
        request: Request,
        file: Option<PathBuf>,
    ) -> Result<TaskInfo, CreateTaskError> {
        let record = crate::task::download::request_record(&request);
        let message = ClientMessage::CreateTask {
            kind: match file {
                Some(file) => journal::TaskKind::Upload { file },
                None => journal::TaskKind::Download,
            },
            request: record,
            description: String::new(),
            schedule: wire::schedule_for(&self.settings),
            settings: wire::SessionSettings::of(&self.settings),
        };
        let id = self.round_trip(&message)?;
        let (info, recorder) = TaskInfo::new(id, kind, request);
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, (info.clone(), recorder));
        Ok(info)
    }

    /// Creates a download in the service from resume data it produced (for a task of this
    /// background session) and waits for its identifier.
    ///
    /// # Errors
    /// The service went away, did not answer, or refused the data.
    pub(crate) fn create_from_resume_data(&self, data: &[u8]) -> Result<TaskInfo, CreateTaskError> {
        let message = ClientMessage::CreateFromResumeData {
            data: data.to_vec(),
            schedule: wire::schedule_for(&self.settings),
            settings: wire::SessionSettings::of(&self.settings),
        };
        let id = self.round_trip(&message)?;
        // The reader filed the task from the record that came with the answer.
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .map(|(info, _)| info.clone())
            .ok_or_else(|| CreateTaskError::Service("no record of the new task".into()))
    }

    /// Sends a creation and waits for the new task's identifier.
    fn round_trip(&self, message: &ClientMessage) -> Result<u64, CreateTaskError> {
        // One creation at a time: the answers come in the order of the requests.
        let created = self.created.lock().unwrap_or_else(|p| p.into_inner());
        self.send(message)
            .map_err(|e| CreateTaskError::Service(e.to_string()))?;
        created
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| CreateTaskError::Service("no answer to a new task".into()))?
            .map_err(CreateTaskError::Service)
    }

    /// `invalidate_and_cancel`: the service cancels every task of the identifier; their
    /// completions wait for the next session with it.
    pub(crate) fn invalidate(&self) {
        let _ = self.send(&ClientMessage::Invalidate);
    }

    /// Detaches from the service. Events already queued for the delegate are delivered and
    /// acknowledged first (the connection closes behind them, on the delegate queue); events
    /// arriving later are left, unacknowledged, for the next session with this identifier.
    pub(crate) fn close(self: &Arc<Self>) {
        use std::sync::atomic::Ordering;
        self.closed.store(true, Ordering::SeqCst);
        let shut = |client: Arc<Client>| {
            // A round trip first: the acknowledgements sent so far are committed once it returns,
            // so the next session with this identifier never gets them again.
            let listed = client.listed.lock().unwrap_or_else(|p| p.into_inner());
            if client.send(&ClientMessage::ListTasks).is_ok() {
                let _ = listed.recv_timeout(Duration::from_secs(2));
            }
            let writer = client.writer.lock().unwrap_or_else(|p| p.into_inner());
            let _ = writer.shutdown(std::net::Shutdown::Both);
        };
        let behind = self.clone();
        if !self.queue.push(move |_| shut(behind)) {
            shut(self.clone());
        }
    }

    /// Sets what happens when the service goes away while the session is attached.
    pub(crate) fn on_lost(&self, lost: impl Fn(Error) + Send + Sync + 'static) {
        let _ = self.on_lost.set(Box::new(lost));
    }

    fn send(&self, message: &ClientMessage) -> Result<(), WireError> {
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        wire::write_message_blocking(&mut *writer, message)
    }

    /// Takes what the service sends until it goes away.
    fn read_loop(
        self: Arc<Self>,
        mut reader: UnixStream,
        mut decoder: FrameDecoder,
        created: mpsc::Sender<Result<u64, String>>,
        listed: mpsc::Sender<Vec<u64>>,
        queue: DeliveryQueue,
    ) {
        // The tasks of the `ListTasks` answer being read. The service answers requests only once
        // its replay is over, so the tasks it describes before `FinishedEvents` (at the hello)
        // belong to no answer.
        let mut listing: Option<Vec<u64>> = None;
        loop {
            let message = match wire::read_message_blocking(&mut reader, &mut decoder) {
                Ok(m) => m,
                Err(e) => {
                    if !matches!(e, WireError::Closed) {
                        tracing::warn!(error = %e, "the background service's connection ended");
                    }
                    if !self.closed.load(std::sync::atomic::Ordering::SeqCst)
                        && let Some(lost) = self.on_lost.get()
                    {
                        lost(Error::new(
                            ErrorCode::BackgroundSessionWasDisconnected,
                            format!(
                                "the background service went away ({e}); the tasks go on when \
                                 it is back, for the next session with this identifier"
                            ),
                        ));
                    }
                    return;
                }
            };
            match message {
                ServiceMessage::Task { task, record, .. } => {
                    self.file_task(task, &record);
                    if let Some(listing) = listing.as_mut() {
                        listing.push(task);
                    }
                }
                ServiceMessage::Created { task, record } => {
                    self.file_task(task, &record);
                    let _ = created.send(Ok(task));
                }
                ServiceMessage::ResumeData { task, data } => {
                    let answer = self
                        .resume_answers
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&task);
                    if let Some(answer) = answer {
                        let _ = answer.send(data.map(ResumeData::from_bytes));
                    }
                }
                ServiceMessage::TaskCreated { task } => {
                    let _ = created.send(Ok(task));
                }
                // A creation the service refused (settings it cannot run beside the tasks it
                // runs).
                ServiceMessage::Refused { reason } => {
                    let _ = created.send(Err(reason));
                }
                ServiceMessage::EndOfTasks => {
                    let _ = listed.send(listing.as_mut().map(std::mem::take).unwrap_or_default());
                }
                // Before `FinishedEvents`, the replay.
                ServiceMessage::Event { seq, record } => {
                    self.deliver(&queue, seq, record, listing.is_none())
                }
                ServiceMessage::FinishedEvents => {
                    listing = Some(Vec::new());
                    let (identifier, client) = (self.identifier.clone(), self.clone());
                    queue.push(move |d| {
                        if !client.closed.load(std::sync::atomic::Ordering::SeqCst) {
                            d.did_finish_events_for_background_session(&identifier);
                        }
                    });
                }
                _ => {}
            }
        }
    }

    /// Files a task the service told of, so that its events have a task to be about and
    /// `all_tasks` hands it out.
    fn file_task(&self, task: u64, record: &TaskRecord) {
        let kind = match record.kind {
            journal::TaskKind::Download => TaskKind::Download,
            journal::TaskKind::Upload { .. } => TaskKind::Upload,
        };
        let request = crate::task::download::request_from_record(&record.request);
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        let (info, recorder) = tasks
            .entry(task)
            .or_insert_with(|| TaskInfo::new(task, kind, request));
        info.set_description(record.description.clone());
        info.set_priority(record.schedule.priority);
        recorder.set_state(match record.phase {
            journal::TaskPhase::Running => TaskState::Running,
            journal::TaskPhase::Completed => TaskState::Completed,
            journal::TaskPhase::Queued | journal::TaskPhase::Suspended => TaskState::Suspended,
        });
    }

    /// The identifier's tasks that have not completed: those the service holds now (this session
    /// created them, or an earlier life of the application did). A blocking round trip; when the
    /// service does not answer within 5 s, the tasks this session knows of that it has not seen
    /// complete.
    ///
    /// A task the session knows of may be one the service has since forgotten: one it described
    /// at the hello, or one only events named, whose completion an earlier life of the
    /// application acknowledged. The answer leaves those out.
    pub(crate) fn tasks(&self) -> Vec<TaskInfo> {
        let held: Option<std::collections::HashSet<u64>> = {
            let listed = self.listed.lock().unwrap_or_else(|p| p.into_inner());
            // An answer that came after an earlier call gave up on it is stale.
            while listed.try_recv().is_ok() {}
            self.send(&ClientMessage::ListTasks)
                .ok()
                .and_then(|()| listed.recv_timeout(Duration::from_secs(5)).ok())
                .map(|ids| ids.into_iter().collect())
        };
        let mut infos: Vec<TaskInfo> = self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(task, _)| held.as_ref().is_none_or(|held| held.contains(task)))
            .filter(|(_, (info, _))| info.state() != TaskState::Completed)
            .map(|(_, (info, _))| info.clone())
            .collect();
        infos.sort_by_key(TaskInfo::id);
        infos
    }

    /// Delivers one event on the delegate queue, then acknowledges it.
    fn deliver(
        self: &Arc<Self>,
        queue: &DeliveryQueue,
        seq: u64,
        record: EventRecord,
        replayed: bool,
    ) {
        let known = self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&record.task)
            .cloned();
        // A replayed event about a task the service no longer describes: its completion still
        // comes, under its identifier (its record was damaged, and only its failure is left to
        // report). Anything else about it is stale, news from before a completion an earlier life
        // of the application acknowledged (the service drops that history with the
        // acknowledgement; a journal an older service wrote may still hold a progress report):
        // acknowledged, not delivered, or it would file a task that never completes. (A live
        // event may come before a task this session creates is filed: it is not stale.)
        if replayed && known.is_none() && !matches!(record.event, StoredEvent::Completed { .. }) {
            if seq != 0
                && let Err(e) = self.send(&ClientMessage::Acknowledge { seq })
            {
                tracing::warn!(seq, error = %e, "a stale event could not be acknowledged");
            }
            return;
        }
        let (info, recorder) = known.unwrap_or_else(|| {
            let filed = TaskInfo::new(record.task, TaskKind::Download, Request::get(""));
            self.tasks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(record.task, filed.clone());
            filed
        });
        let client = self.clone();
        queue.push(move |d| {
            if client.closed.load(std::sync::atomic::Ordering::SeqCst) {
                return; // detached: the next session gets it
            }
            match record.event {
                StoredEvent::WroteData {
                    written,
                    total,
                    expected,
                } => {
                    recorder.set_received(total);
                    recorder.set_expected_to_receive(expected);
                    d.did_write_data(
                        &info,
                        courier_delegates::task::known(written).unwrap_or(0),
                        courier_delegates::task::known(total).unwrap_or(0),
                        courier_delegates::task::known(expected),
                    );
                }
                StoredEvent::ResumedAt { offset, expected } => {
                    recorder.set_received(offset);
                    d.did_resume_at_offset(
                        &info,
                        courier_delegates::task::known(offset).unwrap_or(0),
                        courier_delegates::task::known(expected),
                    );
                }
                StoredEvent::FinishedDownloading { file } => {
                    d.did_finish_downloading_to(&info, &file);
                }
                StoredEvent::Completed { error, response } => {
                    if let Some(response) = response
                        .as_ref()
                        .and_then(crate::task::download::response_from_record)
                    {
                        recorder.set_response(response);
                    }
                    let error = error.map(|e| {
                        let code = ErrorCode::from_number(e.code).unwrap_or(ErrorCode::Unknown);
                        let error =
                            Error::new(code, e.message).with_url(info.original_request().url_str());
                        match e.resume_data {
                            Some(data) => error.with_resume_data(ResumeData::from_bytes(data)),
                            None => error,
                        }
                    });
                    if let Some(e) = &error {
                        recorder.set_error(e.clone());
                    }
                    recorder.set_state(TaskState::Completed);
                    d.did_complete(&info, error.as_ref());
                }
            }
            // Handled: the service may forget it (a live-only progress report, seq 0, was never
            // kept).
            if seq == 0 {
                return;
            }
            if let Err(e) = client.send(&ClientMessage::Acknowledge { seq }) {
                tracing::warn!(seq, error = %e, "an event could not be acknowledged");
            }
        });
    }
}

/// What a background task's handles report through: control calls go to the service.
pub(crate) struct ClientLink(pub(crate) Arc<Client>);

impl SessionLink for ClientLink {
    fn report(&self, report: TaskReport) -> bool {
        let client = &self.0;
        let (task, control) = match report {
            TaskReport::Control(task, Control::Resume) => {
                // The priority and earliest begin date as the application set them until now.
                let info = client
                    .tasks
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&task)
                    .map(|(info, _)| info.clone());
                let (priority, not_before_ms) = info.map_or((0.5, None), |info| {
                    (
                        info.priority(),
                        info.earliest_begin_date().map(wire::unix_ms),
                    )
                });
                let resume = RemoteControl::Resume {
                    priority,
                    not_before_ms,
                };
                (task, resume)
            }
            TaskReport::Control(task, Control::Suspend) => (task, RemoteControl::Suspend),
            TaskReport::Control(task, Control::Cancel) => (task, RemoteControl::Cancel),
            TaskReport::Control(task, Control::CancelForResume(answer)) => {
                // Answered when the service's `ResumeData` arrives (or never, if it went away:
                // the sender drops with the client and the caller gets `None`).
                client
                    .resume_answers
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(task, answer);
                (task, RemoteControl::CancelForResume)
            }
            // A background task runs on without its handles, and nothing else crosses over.
            _ => return true,
        };
        client
            .send(&ClientMessage::Control { task, control })
            .is_ok()
    }
}
