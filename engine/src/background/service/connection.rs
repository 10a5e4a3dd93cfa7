//! An application's connection to the service: checked, attached, replayed, then live; and the
//! requests it makes (create, control, list, invalidate).

use std::sync::Arc;

use courier_storage::journal::{EventRecord, StoredEvent, TaskKind, TaskPhase, TaskRecord};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc};

use super::super::wire::{
    self, ClientMessage, Connection, FrameDecoder, RemoteControl, ServiceMessage, SessionSettings,
    WireError, read_message, write_message,
};
use super::journaling::set_phase;
use super::{Engine, Identifier, Inner, journaled};
use crate::Task;
use crate::task::download::request_from_record;

/// How long an attaching application waits for the one attached before it to go, before it is
/// turned away as a second one. Well inside the 10 s a client gives the handshake; long enough
/// for a killed application's connection to be read to its end on a busy machine.
const PREVIOUS_ATTACHMENT: std::time::Duration = std::time::Duration::from_secs(5);

/// Accepts connections and serves each; the connections end with this loop (when the service
/// stops).
pub(super) async fn accept(listener: UnixListener, owner: u32, inner: Arc<Inner>) {
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

/// One application's connection: checked, attached, replayed, then live.
async fn serve(stream: UnixStream, owner: u32, inner: Arc<Inner>) -> Result<(), WireError> {
    wire::check_peer(&stream, owner)?;
    let mut connection = Connection::new(stream);
    let (identifier, events) = connection.greeting().await?;
    let state = match inner.identifier(&identifier) {
        Ok(state) => state,
        Err(e) => {
            let _ = connection.refuse(e.to_string()).await;
            return Err(e);
        }
    };
    if !events {
        connection.welcome().await?;
        return serve_requests(connection, inner, identifier, state).await;
    }
    // The application attached before may have died a moment ago with acknowledgements still in
    // its socket: they are carried out before this one's replay is read, or it would get those
    // events again. That connection ends as soon as it has read them. One that stays attached is
    // another application on the same identifier: this one is turned away, as URLSession allows
    // one session per background identifier, since both would be handed each finished download
    // and the second to move it would find it gone.
    let Ok(_attached) =
        tokio::time::timeout(PREVIOUS_ATTACHMENT, state.attached.clone().lock_owned()).await
    else {
        tracing::warn!(
            identifier,
            "another application is attached to this identifier"
        );
        return connection.send(&ServiceMessage::InUse { identifier }).await;
    };
    connection.welcome().await?;
    // Subscribe before reading the journal: nothing falls between the replay and the live events.
    let mut live = state.live.subscribe();
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
    /// Answers one request of an attached application.
    pub(super) async fn handle(
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
                settings,
            } => {
                let _creating = state.creating.lock().await;
                let settings = settings.under(&self.template);
                let engine = match self.engine_for(identifier, state, &settings).await? {
                    Ok(engine) => engine,
                    Err(reason) => return Ok(Some(ServiceMessage::Refused { reason })),
                };
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
                let task = self.add_task(identifier, record, &settings).await?;
                let request = request_from_record(&request);
                let created = engine.create(&kind, request);
                let created = created.map_err(|e| WireError::Io(std::io::Error::other(e)))?;
                engine.adopt(state, task, created);
                Ok(Some(ServiceMessage::TaskCreated { task }))
            }
            ClientMessage::CreateFromResumeData {
                data,
                schedule,
                settings,
            } => {
                let _creating = state.creating.lock().await;
                let settings = settings.under(&self.template);
                let engine = match self.engine_for(identifier, state, &settings).await? {
                    Ok(engine) => engine,
                    Err(reason) => return Ok(Some(ServiceMessage::Refused { reason })),
                };
                let resume = crate::ResumeData::from_bytes(data.clone());
                let created = engine
                    .session
                    .download_task_with_resume_data(&resume)
                    .map_err(|e| WireError::Io(std::io::Error::other(e)))?;
                let record = TaskRecord {
                    kind: TaskKind::Download,
                    request: crate::task::download::request_record(
                        created.info().original_request(),
                    ),
                    phase: TaskPhase::Queued,
                    partial_file: None,
                    // Until it runs, a restart continues from the same data.
                    checkpoint: Some(data),
                    description: String::new(),
                    schedule,
                };
                let sent = record.clone();
                let task = self.add_task(identifier, record, &settings).await?;
                engine.adopt(state, task, created.task().clone());
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
                        })) => {
                            // What the journal still holds about the task from before its
                            // completion is history the application has had: the newest
                            // progress report, journaled at the end in place of the last one
                            // while it went live only, was never sent with its number.
                            for (earlier, record) in j.events(&id)? {
                                if earlier < seq && record.is_ok_and(|r| r.task == task) {
                                    j.acknowledge(&id, earlier)?;
                                }
                            }
                            j.remove_task(&id, task)?
                        }
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
            Some(match t.info().kind() {
                courier_delegates::TaskKind::Upload => {
                    (t.info().bytes_sent(), t.info().bytes_expected_to_send())
                }
                _ => (
                    t.info().bytes_received(),
                    t.info().bytes_expected_to_receive(),
                ),
            })
        };
        Ok(tasks
            .into_iter()
            .filter_map(|(task, record)| match record {
                Ok(record) => {
                    let (written, expected) = progress(task).unwrap_or((0, None));
                    // The wire keeps URLSession's counts (-1 for unknown).
                    let (written, expected) = (
                        written as i64,
                        courier_delegates::task::unknown_as_minus_one(expected),
                    );
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
        if let Some(engine) = state.engine() {
            engine.session.invalidate_and_cancel();
            engine.session.invalidated().await;
        }
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(identifier);
    }

    /// The engine session of `state` to run a task created under `settings` in
    /// ([`Identifier::engine_for`]), or why there is none: whether the identifier is idle is read
    /// from the journal (every task completed) only when the session there is does not do.
    async fn engine_for(
        &self,
        identifier: &str,
        state: &Identifier,
        settings: &SessionSettings,
    ) -> Result<Result<Arc<Engine>, String>, WireError> {
        if let Some(engine) = state.engine().filter(|e| e.settings == *settings) {
            return Ok(Ok(engine));
        }
        let id = identifier.to_owned();
        let idle = journaled(&self.journal, move |j| {
            Ok(j.tasks(&id)?
                .iter()
                .all(|(_, r)| r.as_ref().is_ok_and(|r| r.phase == TaskPhase::Completed)))
        })
        .await?;
        Ok(state.engine_for(settings, idle))
    }

    /// Journals a new task of `identifier`, with the settings it was created under; its id.
    async fn add_task(
        &self,
        identifier: &str,
        record: TaskRecord,
        settings: &SessionSettings,
    ) -> Result<u64, WireError> {
        let (id, kept) = (
            identifier.to_owned(),
            settings.to_journal().map_err(WireError::Malformed)?,
        );
        journaled(&self.journal, move |j| {
            j.add_task_with_settings(&id, &record, &kept)
        })
        .await
    }
}
