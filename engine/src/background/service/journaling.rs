//! The delegate of an identifier's session in the service: every event is committed to the
//! journal, then sent live; and where an attempt ends, the choice between a completion and a retry.
//!
//! Callbacks run on the session's delivery thread, where a durable write may block.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use courier_delegates::{
    AuthChallengeDisposition, AuthenticationChallenge, DataDelegate, DownloadDelegate, Error,
    Reply, SessionDelegate, TaskDelegate, TaskInfo, retry,
};
use courier_storage::journal::{
    EventRecord, Journal, JournalError, StoredError, StoredEvent, TaskPhase,
};
use tokio::sync::broadcast;

use super::super::wire::SessionSettings;
use super::scheduler::{Retry, Scheduler};
use super::{Identifier, LiveEvent, Tasks};

/// How often a task's progress is journaled (the reports between go live only).
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sets task `id`'s phase in the journal (nothing when the task is gone).
pub(super) fn set_phase(
    j: &Journal,
    identifier: &str,
    id: u64,
    phase: TaskPhase,
) -> Result<(), JournalError> {
    j.modify_task(identifier, id, |record| record.phase = phase)
        .map(|_| ())
}

/// An error as the journal keeps it.
pub(super) fn stored_error(e: &Error) -> StoredError {
    StoredError {
        code: e.code().number(),
        message: e.message().to_owned(),
        resume_data: e.resume_data().map(|d| d.as_bytes().to_vec()),
    }
}

/// The journaling delegate of an identifier's engine session.
pub(super) struct Journaling {
    pub(super) identifier: String,
    pub(super) journal: Arc<Journal>,
    pub(super) live: broadcast::Sender<LiveEvent>,
    /// The session's task ids to the journal's.
    pub(super) ids: Arc<Mutex<HashMap<u64, u64>>>,
    /// The tasks, to read a download's partial file name.
    pub(super) tasks: Tasks,
    pub(super) scheduler: Arc<Scheduler>,
    /// Tasks whose partial file the journal knows.
    pub(super) noted_partial: Mutex<HashSet<u64>>,
    /// Each task's journaled progress event (replaced by the next one), when it was written, and
    /// the newest report sent live only since.
    progress: Mutex<HashMap<u64, Progress>>,
    /// The newest sequence number journaled, which live-only progress reports come after.
    last_seq: std::sync::atomic::AtomicU64,
    /// Tasks the service stopped itself to run again later (too slow, or the service stopping):
    /// their cancellation is not a completion.
    pub(super) stopped: Mutex<HashSet<u64>>,
    /// Set when the service stops: every cancel that keeps resume data is not a completion.
    pub(super) stopping: AtomicBool,
    /// Downloads whose answer was a transient status (503...): the body is not the file asked
    /// for; the attempt is retried after this wait.
    retry_status: Mutex<HashMap<u64, Duration>>,
    pub(super) files: PathBuf,
    /// What the tasks' applications added to the service's settings; its delegate answers
    /// (trust in any server, a credential) are given here.
    settings: SessionSettings,
}

impl Journaling {
    /// The delegate of a new engine session of `state`'s, filing its tasks in `ids`, under
    /// `settings`.
    pub(super) fn new(
        state: &Identifier,
        ids: Arc<Mutex<HashMap<u64, u64>>>,
        settings: SessionSettings,
    ) -> Journaling {
        Journaling {
            identifier: state.name.clone(),
            journal: state.journal.clone(),
            live: state.live.clone(),
            ids,
            tasks: state.tasks.clone(),
            scheduler: state.scheduler.clone(),
            noted_partial: Mutex::default(),
            progress: Mutex::default(),
            last_seq: std::sync::atomic::AtomicU64::new(0),
            stopped: Mutex::default(),
            stopping: AtomicBool::new(false),
            retry_status: Mutex::default(),
            files: state.files.clone(),
            settings,
        }
    }

    fn journal_id(&self, task: &TaskInfo) -> Option<u64> {
        lock(&self.ids).get(&task.id()).copied()
    }

    /// Journals a download's partial file the first time it writes, so that a restarted service
    /// continues from the checkpoint stored beside it.
    fn note_partial(&self, id: u64) {
        if !lock(&self.noted_partial).insert(id) {
            return;
        }
        let name = lock(&self.tasks)
            .get(&id)
            .and_then(crate::Task::partial_file);
        let Some(name) = name else { return };
        // One transaction: a phase set meanwhile (a suspend) is never written back over.
        let noted = self.journal.modify_task(&self.identifier, id, |record| {
            record.partial_file = Some(name)
        });
        if let Err(e) = noted {
            tracing::error!(error = %e, "a partial file could not be journaled");
        }
    }

    /// Notes that event `seq` was journaled (live-only reports come after it).
    pub(super) fn journaled(&self, seq: u64) {
        self.last_seq.fetch_max(seq, Ordering::SeqCst);
    }

    /// The newest sequence number journaled (a new engine session's delegate goes on from it).
    pub(super) fn last_journaled(&self) -> u64 {
        self.last_seq.load(Ordering::SeqCst)
    }

    /// Sends an event to attached applications.
    fn send_live(&self, seq: Option<u64>, record: EventRecord) {
        let after = self.last_seq.load(Ordering::SeqCst);
        let _ = self.live.send(LiveEvent { seq, after, record });
    }

    /// Journals an event, then sends it live. A progress report is journaled at most every
    /// [`PROGRESS_EVERY`] per task (in place of the task's previous one, without waiting for the
    /// disk); the others go live only: the next attach needs the newest, not each.
    fn record(&self, id: u64, event: StoredEvent) {
        let record = EventRecord { task: id, event };
        let appended = if matches!(record.event, StoredEvent::WroteData { .. }) {
            let mut progress = lock(&self.progress);
            if let Some(p) = progress.get_mut(&id)
                && p.at.elapsed() < PROGRESS_EVERY
            {
                p.unsaved = Some(record.clone());
                drop(progress);
                self.send_live(None, record);
                return;
            }
            let previous = progress.get(&id).map(|p| p.seq);
            let seq = self
                .journal
                .append_progress(&self.identifier, &record, previous);
            if let Ok(seq) = seq {
                let at = std::time::Instant::now();
                let unsaved = None;
                progress.insert(id, Progress { seq, at, unsaved });
            }
            seq
        } else {
            // The newest progress report goes in first, in place of the journaled one: a replay
            // shows the task's true total before its next event (its file, its completion).
            let newest = lock(&self.progress).remove(&id);
            if let Some(Progress {
                seq,
                unsaved: Some(latest),
                ..
            }) = newest
            {
                match self
                    .journal
                    .append_progress(&self.identifier, &latest, Some(seq))
                {
                    Ok(seq) => self.journaled(seq),
                    Err(e) => {
                        tracing::error!(error = %e, "a progress event could not be journaled")
                    }
                }
            }
            self.journal.append_event(&self.identifier, &record)
        };
        match appended {
            Ok(seq) => {
                self.journaled(seq);
                self.send_live(Some(seq), record);
            }
            Err(e) => tracing::error!(error = %e, "an event could not be journaled"),
        }
    }

    /// How long to wait before trying task `id` again after a transient failure (the server's
    /// `asked` wait, else the backoff), or `None` when its time is up or its record is gone.
    fn retry_delay(&self, id: u64, asked: Option<Duration>) -> Option<Duration> {
        let record = match self.journal.task(&self.identifier, id) {
            Ok(Some(Ok(record))) => record,
            _ => return None,
        };
        self.scheduler
            .retry_delay(&record.schedule, SystemTime::now(), asked)
    }

    /// The file a finished download waits in until the application has it.
    fn kept_file(&self, id: u64) -> PathBuf {
        self.files.join(format!(
            "{}-{id}.download",
            courier_delegates::plain_file_name(&self.identifier)
        ))
    }
}

/// A task's progress as the journal holds it.
struct Progress {
    /// The journaled progress event.
    seq: u64,
    /// When it was journaled.
    at: std::time::Instant,
    /// A newer report, sent live only (less than [`PROGRESS_EVERY`] after it).
    unsaved: Option<EventRecord>,
}

impl SessionDelegate for Journaling {
    fn did_receive_challenge(
        &self,
        challenge: &AuthenticationChallenge,
        reply: Reply<AuthChallengeDisposition>,
    ) {
        reply.send(self.settings.answer(challenge, None));
    }
}
impl DataDelegate for Journaling {}

impl TaskDelegate for Journaling {
    fn did_receive_challenge(
        &self,
        task: &TaskInfo,
        challenge: &AuthenticationChallenge,
        reply: Reply<AuthChallengeDisposition>,
    ) {
        reply.send(
            self.settings
                .answer(challenge, task.original_request().url()),
        );
    }

    fn did_complete(&self, task: &TaskInfo, error: Option<&Error>) {
        let Some(id) = self.journal_id(task) else {
            return;
        };
        lock(&self.ids).remove(&task.id());
        let stopped_here = lock(&self.stopped).remove(&id);
        if (stopped_here && error.is_some())
            || (self.stopping.load(Ordering::SeqCst) && error.is_some_and(Error::is_cancelled))
        {
            // Stopped by the service itself: the task goes on later (or at its next start). A
            // task that finished just before the stop completes as usual (and is not retried:
            // its record says completed).
            return;
        }
        self.scheduler.remove(&self.identifier, id);
        // A transient failure is tried again while the task's time lasts.
        let retry = match (lock(&self.retry_status).remove(&id), error) {
            (Some(wait), _) => Some(wait),
            (None, Some(e)) if retry::is_transient_error(e.code()) => self.retry_delay(id, None),
            (None, None) if task.kind() == courier_delegates::TaskKind::Upload => task
                .response()
                .filter(|r| retry::is_transient_status(r.status()))
                .and_then(|r| {
                    let asked = retry::retry_after(r.headers(), SystemTime::now());
                    self.retry_delay(id, asked)
                }),
            _ => None,
        };
        if let Some(delay) = retry {
            tracing::info!(task = id, ?delay, error = ?error.map(Error::code), "retrying");
            lock(&self.noted_partial).remove(&id);
            self.scheduler.retry(Retry {
                identifier: self.identifier.clone(),
                task: id,
                checkpoint: error
                    .and_then(Error::resume_data)
                    .map(|d| d.as_bytes().to_vec()),
                delay,
            });
            return;
        }
        let record = EventRecord {
            task: id,
            event: StoredEvent::Completed {
                error: error.map(stored_error),
                response: task
                    .response()
                    .map(|r| crate::task::download::response_record(&r)),
            },
        };
        lock(&self.progress).remove(&id);
        match self.journal.complete_task(&self.identifier, &record) {
            Ok(seq) => {
                self.journaled(seq);
                self.send_live(Some(seq), record);
            }
            Err(e) => tracing::error!(error = %e, "a completion could not be journaled"),
        }
    }
}

impl DownloadDelegate for Journaling {
    fn did_write_data(&self, task: &TaskInfo, written: u64, total: u64, expected: Option<u64>) {
        // The journal keeps URLSession's counts (-1 for unknown).
        let (written, total, expected) = (
            written as i64,
            total as i64,
            courier_delegates::task::unknown_as_minus_one(expected),
        );
        let Some(id) = self.journal_id(task) else {
            return;
        };
        self.note_partial(id);
        self.record(
            id,
            StoredEvent::WroteData {
                written,
                total,
                expected,
            },
        );
    }

    fn did_resume_at_offset(&self, task: &TaskInfo, offset: u64, expected: Option<u64>) {
        let (offset, expected) = (
            offset as i64,
            courier_delegates::task::unknown_as_minus_one(expected),
        );
        if let Some(id) = self.journal_id(task) {
            self.record(id, StoredEvent::ResumedAt { offset, expected });
        }
    }

    fn did_finish_downloading_to(&self, task: &TaskInfo, location: &Path) {
        let Some(id) = self.journal_id(task) else {
            return;
        };
        // "Try again later" from the server is not the file: while the task's time lasts, the
        // body goes and the download is tried again.
        let transient = task
            .response()
            .filter(|r| retry::is_transient_status(r.status()));
        if let Some(response) = transient {
            let asked = retry::retry_after(response.headers(), SystemTime::now());
            if let Some(delay) = self.retry_delay(id, asked) {
                lock(&self.retry_status).insert(id, delay);
                return; // the engine removes the file it offered
            }
        }
        // The file stays with the service until the application has it.
        let kept = self.kept_file(id);
        match std::fs::rename(location, &kept) {
            Ok(()) => self.record(id, StoredEvent::FinishedDownloading { file: kept }),
            Err(e) => tracing::error!(error = %e, "a finished download could not be kept"),
        }
    }
}

impl Journaling {
    /// Marks task `id` as stopped by the service (its cancellation is not a completion).
    pub(super) fn stopping_task(&self, id: u64) {
        lock(&self.stopped).insert(id);
    }

    /// Whether the service is stopping.
    pub(super) fn set_stopping(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }
}
