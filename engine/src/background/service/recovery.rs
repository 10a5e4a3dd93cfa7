//! After a start: the journal's tasks go on where they were.

use std::sync::Arc;

use courier_storage::journal::{
    EventRecord, StoredError, StoredEvent, TaskKind, TaskPhase, TaskRecord,
};

use super::super::wire::{SessionSettings, WireError};
use super::{Identifier, Inner, LiveEvent, journaled};
use crate::task::download::request_from_record;

impl Inner {
    /// After a start: every task the journal holds that had not completed goes on, a download from
    /// its resume data (kept at a clean stop) or its partial file's last checkpoint (after a
    /// crash), else from the start. A damaged task record is reported to the application as the
    /// task's failure, and removed.
    pub(super) async fn recover(self: &Arc<Self>) -> Result<(), WireError> {
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
                        let event = failure(
                            task,
                            courier_delegates::ErrorCode::CannotDecodeRawData,
                            format!("the journal's record of this task is damaged: {e}"),
                        );
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
    pub(super) async fn revive(
        &self,
        identifier: &str,
        state: &Identifier,
        task: u64,
        record: TaskRecord,
    ) -> Result<(), WireError> {
        let running = record.phase == TaskPhase::Running;
        let request = request_from_record(&record.request);
        // The unfinished tasks of an identifier were all made under the same settings (others
        // are refused while they run), so the first one revived makes the engine session for all.
        let settings = self.settings_of(identifier, task).await?;
        let engine = match state.engine_for(&settings, state.engine().is_none()) {
            Ok(engine) => engine,
            // It fails rather than run under settings it was not given.
            Err(why) => {
                let event = failure(
                    task,
                    courier_delegates::ErrorCode::Unknown,
                    format!("the task could not go on: {why}"),
                );
                let (id, sent) = (identifier.to_owned(), event.clone());
                let seq = journaled(&self.journal, move |j| j.complete_task(&id, &event)).await?;
                let _ = state.live.send(LiveEvent {
                    seq: Some(seq),
                    after: seq,
                    record: sent,
                });
                return Ok(());
            }
        };
        let session = engine.session.clone();
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
            (TaskKind::Download, Some(data)) => engine
                .session
                .download_task_with_resume_data(&data)
                .map(|t| t.task().clone()),
            // An upload its server offered to resume goes on from the server's offset; one whose
            // resume data can no longer serve (its file changed) starts over.
            (TaskKind::Upload { .. }, Some(data)) => match engine.session.resumed_upload(&data) {
                (original, Ok(upload)) => engine
                    .session
                    .upload_task_resumed(original, Ok(upload))
                    .map(|t| t.task().clone()),
                (_, Err(_)) => engine.create(&record.kind, request),
            },
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
                engine.delegate.journaled(seq);
                let _ = state.live.send(LiveEvent {
                    seq: Some(seq),
                    after: seq,
                    record: sent,
                });
                engine.create(&TaskKind::Download, request)
            }
            (kind, _) => engine.create(kind, request),
        };
        let created = created.map_err(|e| WireError::Io(std::io::Error::other(e)))?;
        engine.adopt(state, task, created.clone());
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

    /// The settings task `task` was created under.
    async fn settings_of(&self, identifier: &str, task: u64) -> Result<SessionSettings, WireError> {
        let id = identifier.to_owned();
        let blob = journaled(&self.journal, move |j| j.task_settings(&id, task)).await?;
        Ok(SessionSettings::from_journal(blob.as_deref()))
    }
}

/// Task `task`'s completion with the error `code` and `message`.
fn failure(task: u64, code: courier_delegates::ErrorCode, message: String) -> EventRecord {
    EventRecord {
        task,
        event: StoredEvent::Completed {
            error: Some(StoredError {
                code: code.number(),
                message,
                resume_data: None,
            }),
            response: None,
        },
    }
}
