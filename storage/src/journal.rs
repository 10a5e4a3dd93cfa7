//! The background service's journal: every background task and every delegate event not yet
//! acknowledged by the application, in an embedded database (redb), durable before the service
//! acknowledges anything.
//!
//! The journal is the truth: a task exists once its record is committed, an event once it is
//! committed, and an acknowledged event is deleted. Each call is one write transaction, committed
//! with redb's immediate durability (fsync before the call returns), so a `kill -9` at any moment
//! leaves the journal as it was after the last call that returned. Records are values of the one
//! codec ([`crate::codec`]: bincode 2 in a checked, versioned envelope); a record that does not
//! decode is reported for its key, and the others are read as usual.
//!
//! Identifiers are isolated: every key starts with the background session's identifier, and every
//! read is of one identifier's range.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};
use crate::resume::RequestRecord;

/// Tasks, by (identifier, task id).
const TASKS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("tasks");
/// Events not yet acknowledged, by (identifier, sequence number).
const EVENTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("events");
/// The session settings each task was created under, by (identifier, task id): a blob the engine
/// encodes, absent for a task created under the service's own settings (and for tasks journaled
/// before the table existed).
const TASK_SETTINGS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("task_settings");
/// Counters: the last task id and the last event sequence number given out, per identifier.
const COUNTERS: TableDefinition<(&str, &str), u64> = TableDefinition::new("counters");

/// The journal's file in the service's directory.
pub const FILE: &str = "journal.redb";

/// What a background task does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskKind {
    /// A download to a file the service keeps until it is handed over.
    Download,
    /// An upload of this file (restarted from the beginning after a service restart).
    Upload {
        /// The file to send.
        file: PathBuf,
    },
}

/// Where a background task is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskPhase {
    /// Waiting for its turn (or for the application to resume it).
    Queued,
    /// Moving bytes.
    Running,
    /// Suspended by the application.
    Suspended,
    /// Completed; its `did_complete` event is in the journal until acknowledged.
    Completed,
}

/// A background task, as the journal keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// What it does.
    pub kind: TaskKind,
    /// The request it was created with.
    pub request: RequestRecord,
    /// Where it is.
    pub phase: TaskPhase,
    /// Its partial file in the service's session directory, once it has one.
    pub partial_file: Option<String>,
    /// The latest checkpoint of its download (an encoded resume record), to continue from after a
    /// restart.
    pub checkpoint: Option<Vec<u8>>,
    /// The application's description of the task.
    pub description: String,
    /// When and how it runs.
    pub schedule: Schedule,
}

/// When and how a background task runs: what the service's queue orders it by, and how long its
/// retries may go on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// 0.0 to 1.0, higher first (URLSession's `priority`).
    pub priority: f32,
    /// Runs only when nothing else waits (URLSession's `isDiscretionary`).
    pub discretionary: bool,
    /// Not before this moment, in milliseconds since the Unix epoch: the earliest begin date, or
    /// when a retry is due.
    pub not_before_ms: Option<u64>,
    /// When the task was created, in milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// How long the task may take in all, retries included (`timeoutIntervalForResource`).
    pub resource_timeout_ms: u64,
    /// How many attempts failed and were retried so far.
    pub retries: u32,
}

/// An error as an event carries it: URLSession's code and the message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredError {
    /// The error code's number (-1001, -999...).
    pub code: i32,
    /// The message.
    pub message: String,
    /// Resume data, when the download can be continued.
    pub resume_data: Option<Vec<u8>>,
}

/// A delegate event waiting for the application.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoredEvent {
    /// `did_write_data`.
    WroteData {
        /// Bytes in this call.
        written: i64,
        /// Bytes written so far.
        total: i64,
        /// Bytes expected (-1 when unknown).
        expected: i64,
    },
    /// `did_resume_at_offset`.
    ResumedAt {
        /// Where the download continues.
        offset: i64,
        /// Bytes expected (-1 when unknown).
        expected: i64,
    },
    /// `did_finish_downloading_to`: the file the service keeps until this event is acknowledged.
    FinishedDownloading {
        /// The file, in the service's directory.
        file: PathBuf,
    },
    /// `did_complete`.
    Completed {
        /// The error, if the task failed.
        error: Option<StoredError>,
        /// The final response's head, if one came.
        response: Option<crate::resume::ResponseRecord>,
    },
}

/// An event with the task it is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    /// The task.
    pub task: u64,
    /// What happened.
    pub event: StoredEvent,
}

/// Why the journal failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum JournalError {
    /// The database cannot be opened or created (the file is damaged, the directory unusable).
    Open(redb::DatabaseError),
    /// Another process holds the database at this path: one service per journal.
    InUse(PathBuf),
    /// A read or a write failed.
    Storage(redb::Error),
    /// A record could not be encoded (a bug).
    Encode(CodecError),
}

impl std::fmt::Display for JournalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JournalError::Open(e) => write!(f, "cannot open the journal: {e}"),
            JournalError::InUse(path) => write!(
                f,
                "the journal {} is in use by another courier service",
                path.display()
            ),
            JournalError::Storage(e) => write!(f, "the journal failed: {e}"),
            JournalError::Encode(e) => write!(f, "cannot encode a journal record: {e}"),
        }
    }
}

impl std::error::Error for JournalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JournalError::Open(e) => Some(e),
            JournalError::InUse(_) => None,
            JournalError::Storage(e) => Some(e),
            JournalError::Encode(e) => Some(e),
        }
    }
}

/// Any redb failure of a read or write.
fn storage(e: impl Into<redb::Error>) -> JournalError {
    JournalError::Storage(e.into())
}

/// A record read back: decoded, or the reason it could not be (the others are unaffected).
pub type Read<T> = (u64, Result<T, CodecError>);

/// The journal of a background service.
pub struct Journal {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("path", &self.path).finish()
    }
}

impl Journal {
    /// Opens the journal in `dir` (created, readable by the user only, if it is not there).
    ///
    /// # Errors
    /// The directory or the database cannot be created or opened: another process holds it, or
    /// the file is not a journal.
    pub fn open(dir: &Path) -> Result<Journal, JournalError> {
        crate::directory::create_private_dir_all(dir)
            .map_err(|e| JournalError::Open(redb::DatabaseError::Storage(e.into())))?;
        let path = dir.join(FILE);
        let db = Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => JournalError::InUse(path.clone()),
            e => JournalError::Open(e),
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
        }
        // Every table exists from the start, so reads never meet a missing one.
        let tx = db.begin_write().map_err(storage)?;
        tx.open_table(TASKS).map_err(storage)?;
        tx.open_table(EVENTS).map_err(storage)?;
        tx.open_table(COUNTERS).map_err(storage)?;
        tx.open_table(TASK_SETTINGS).map_err(storage)?;
        tx.commit().map_err(storage)?;
        Ok(Journal { db, path })
    }

    /// Adds a task to `identifier`'s session; returns its id (1, 2, 3... per identifier, never
    /// reused).
    ///
    /// # Errors
    /// The write failed; nothing was added.
    pub fn add_task(&self, identifier: &str, record: &TaskRecord) -> Result<u64, JournalError> {
        self.add_task_with_settings(identifier, record, &[])
    }

    /// [`Journal::add_task`], with the session settings the task was created under (`settings`, an
    /// opaque blob; empty for none), kept with it in the same transaction until it is removed.
    ///
    /// # Errors
    /// The write failed; nothing was added.
    pub fn add_task_with_settings(
        &self,
        identifier: &str,
        record: &TaskRecord,
        settings: &[u8],
    ) -> Result<u64, JournalError> {
        let blob = codec::encode(record).map_err(JournalError::Encode)?;
        let tx = self.db.begin_write().map_err(storage)?;
        let id = {
            let mut counters = tx.open_table(COUNTERS).map_err(storage)?;
            let id = counters
                .get((identifier, "task"))
                .map_err(storage)?
                .map_or(0, |v| v.value())
                + 1;
            counters.insert((identifier, "task"), id).map_err(storage)?;
            let mut tasks = tx.open_table(TASKS).map_err(storage)?;
            tasks
                .insert((identifier, id), blob.as_slice())
                .map_err(storage)?;
            if !settings.is_empty() {
                tx.open_table(TASK_SETTINGS)
                    .map_err(storage)?
                    .insert((identifier, id), settings)
                    .map_err(storage)?;
            }
            id
        };
        tx.commit().map_err(storage)?;
        Ok(id)
    }

    /// Changes task `id`'s record with `change`, read and written in one transaction: two changes
    /// made at once (a phase, a partial file) never undo each other. Returns false when the journal
    /// does not hold the task, or its record does not decode (it is left as it is).
    ///
    /// # Errors
    /// The write failed; nothing changed.
    pub fn modify_task(
        &self,
        identifier: &str,
        id: u64,
        change: impl FnOnce(&mut TaskRecord),
    ) -> Result<bool, JournalError> {
        let tx = self.db.begin_write().map_err(storage)?;
        let changed = {
            let mut tasks = tx.open_table(TASKS).map_err(storage)?;
            let current = tasks
                .get((identifier, id))
                .map_err(storage)?
                .map(|v| codec::decode::<TaskRecord>(v.value()));
            match current {
                Some(Ok(mut record)) => {
                    change(&mut record);
                    let blob = codec::encode(&record).map_err(JournalError::Encode)?;
                    tasks
                        .insert((identifier, id), blob.as_slice())
                        .map_err(storage)?;
                    true
                }
                _ => false,
            }
        };
        tx.commit().map_err(storage)?;
        Ok(changed)
    }

    /// Removes task `id` (once its last event is acknowledged).
    ///
    /// # Errors
    /// The write failed.
    pub fn remove_task(&self, identifier: &str, id: u64) -> Result<(), JournalError> {
        let tx = self.db.begin_write().map_err(storage)?;
        for table in [TASKS, TASK_SETTINGS] {
            tx.open_table(table)
                .map_err(storage)?
                .remove((identifier, id))
                .map_err(storage)?;
        }
        tx.commit().map_err(storage)
    }

    /// The session settings task `id` was created under ([`Journal::add_task_with_settings`]), if
    /// any.
    ///
    /// # Errors
    /// The read failed.
    pub fn task_settings(
        &self,
        identifier: &str,
        id: u64,
    ) -> Result<Option<Vec<u8>>, JournalError> {
        let tx = self.db.begin_read().map_err(storage)?;
        let table = tx.open_table(TASK_SETTINGS).map_err(storage)?;
        let found = table.get((identifier, id)).map_err(storage)?;
        Ok(found.map(|v| v.value().to_vec()))
    }

    /// Task `id` of `identifier`, if the journal holds it.
    ///
    /// # Errors
    /// The read failed.
    pub fn task(
        &self,
        identifier: &str,
        id: u64,
    ) -> Result<Option<Result<TaskRecord, CodecError>>, JournalError> {
        let tx = self.db.begin_read().map_err(storage)?;
        let table = tx.open_table(TASKS).map_err(storage)?;
        let found = table.get((identifier, id)).map_err(storage)?;
        Ok(found.map(|v| codec::decode(v.value())))
    }

    /// `identifier`'s tasks, by id; a record that does not decode comes with its error.
    ///
    /// # Errors
    /// The read failed.
    pub fn tasks(&self, identifier: &str) -> Result<Vec<Read<TaskRecord>>, JournalError> {
        self.read_range(TASKS, identifier)
    }

    /// Appends an event for `identifier`'s application; returns its sequence number (1, 2, 3...
    /// per identifier, in the order events happened).
    ///
    /// # Errors
    /// The write failed; the event was not added.
    pub fn append_event(&self, identifier: &str, event: &EventRecord) -> Result<u64, JournalError> {
        self.append(identifier, event, None, redb::Durability::Immediate)
    }

    /// Appends a progress event (`did_write_data`) in place of `replaces`, the same task's previous
    /// one if the application has not acknowledged it: the newest report says all the older one
    /// did. Committed without waiting for the disk (a crash may lose it, never the events before
    /// it: redb makes a lazy commit durable with the next durable one), since losing a progress
    /// report loses nothing the next `did_resume_at_offset` does not tell again.
    ///
    /// # Errors
    /// The write failed; the event was not added.
    pub fn append_progress(
        &self,
        identifier: &str,
        event: &EventRecord,
        replaces: Option<u64>,
    ) -> Result<u64, JournalError> {
        self.append(identifier, event, replaces, redb::Durability::None)
    }

    /// Marks task `event.task` completed and appends its completion event, in one transaction: a
    /// crash never leaves a task completed without the event that tells the application so.
    ///
    /// # Errors
    /// The write failed; nothing changed.
    pub fn complete_task(
        &self,
        identifier: &str,
        event: &EventRecord,
    ) -> Result<u64, JournalError> {
        self.append_with(identifier, event, None, redb::Durability::Immediate, |tx| {
            let mut tasks = tx.open_table(TASKS).map_err(storage)?;
            let current = tasks
                .get((identifier, event.task))
                .map_err(storage)?
                .map(|v| codec::decode::<TaskRecord>(v.value()));
            if let Some(Ok(mut record)) = current {
                record.phase = TaskPhase::Completed;
                let blob = codec::encode(&record).map_err(JournalError::Encode)?;
                tasks
                    .insert((identifier, event.task), blob.as_slice())
                    .map_err(storage)?;
            }
            Ok(())
        })
    }

    fn append(
        &self,
        identifier: &str,
        event: &EventRecord,
        replaces: Option<u64>,
        durability: redb::Durability,
    ) -> Result<u64, JournalError> {
        self.append_with(identifier, event, replaces, durability, |_| Ok(()))
    }

    /// Appends `event` (in place of `replaces`) after `also` wrote in the same transaction.
    fn append_with(
        &self,
        identifier: &str,
        event: &EventRecord,
        replaces: Option<u64>,
        durability: redb::Durability,
        also: impl FnOnce(&redb::WriteTransaction) -> Result<(), JournalError>,
    ) -> Result<u64, JournalError> {
        let blob = codec::encode(event).map_err(JournalError::Encode)?;
        let mut tx = self.db.begin_write().map_err(storage)?;
        tx.set_durability(durability).map_err(storage)?;
        also(&tx)?;
        let seq = {
            let mut counters = tx.open_table(COUNTERS).map_err(storage)?;
            let seq = counters
                .get((identifier, "event"))
                .map_err(storage)?
                .map_or(0, |v| v.value())
                + 1;
            counters
                .insert((identifier, "event"), seq)
                .map_err(storage)?;
            let mut events = tx.open_table(EVENTS).map_err(storage)?;
            if let Some(old) = replaces {
                events.remove((identifier, old)).map_err(storage)?;
            }
            events
                .insert((identifier, seq), blob.as_slice())
                .map_err(storage)?;
            seq
        };
        tx.commit().map_err(storage)?;
        Ok(seq)
    }

    /// `identifier`'s events not yet acknowledged, in order.
    ///
    /// # Errors
    /// The read failed.
    pub fn events(&self, identifier: &str) -> Result<Vec<Read<EventRecord>>, JournalError> {
        self.read_range(EVENTS, identifier)
    }

    /// `identifier`'s event `seq`, if it is still in the journal.
    ///
    /// # Errors
    /// The read failed.
    pub fn event(
        &self,
        identifier: &str,
        seq: u64,
    ) -> Result<Option<Result<EventRecord, CodecError>>, JournalError> {
        let tx = self.db.begin_read().map_err(storage)?;
        let table = tx.open_table(EVENTS).map_err(storage)?;
        let found = table.get((identifier, seq)).map_err(storage)?;
        Ok(found.map(|v| codec::decode(v.value())))
    }

    /// The application handled event `seq`: it is deleted, and never delivered again.
    ///
    /// # Errors
    /// The write failed; the event stays.
    pub fn acknowledge(&self, identifier: &str, seq: u64) -> Result<(), JournalError> {
        let tx = self.db.begin_write().map_err(storage)?;
        tx.open_table(EVENTS)
            .map_err(storage)?
            .remove((identifier, seq))
            .map_err(storage)?;
        tx.commit().map_err(storage)
    }

    /// Every identifier with a task or an event in the journal.
    ///
    /// # Errors
    /// The read failed.
    pub fn identifiers(&self) -> Result<Vec<String>, JournalError> {
        let tx = self.db.begin_read().map_err(storage)?;
        let mut out = std::collections::BTreeSet::new();
        for table in [TASKS, EVENTS] {
            for entry in tx
                .open_table(table)
                .map_err(storage)?
                .iter()
                .map_err(storage)?
            {
                let (key, _) = entry.map_err(storage)?;
                out.insert(key.value().0.to_owned());
            }
        }
        Ok(out.into_iter().collect())
    }

    fn read_range<T: serde::de::DeserializeOwned>(
        &self,
        table: TableDefinition<(&str, u64), &[u8]>,
        identifier: &str,
    ) -> Result<Vec<Read<T>>, JournalError> {
        let tx = self.db.begin_read().map_err(storage)?;
        let table = tx.open_table(table).map_err(storage)?;
        let mut out = Vec::new();
        for entry in table
            .range((identifier, 0)..=(identifier, u64::MAX))
            .map_err(storage)?
        {
            let (key, value) = entry.map_err(storage)?;
            let (_, n) = key.value();
            out.push((n, codec::decode::<T>(value.value())));
        }
        Ok(out)
    }

    /// Test hook: stores raw bytes as task `id`'s record, as a damaged disk would.
    #[doc(hidden)]
    pub fn put_raw_task(
        &self,
        identifier: &str,
        id: u64,
        bytes: &[u8],
    ) -> Result<(), JournalError> {
        let tx = self.db.begin_write().map_err(storage)?;
        tx.open_table(TASKS)
            .map_err(storage)?
            .insert((identifier, id), bytes)
            .map_err(storage)?;
        tx.commit().map_err(storage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(url: &str) -> TaskRecord {
        TaskRecord {
            kind: TaskKind::Download,
            request: RequestRecord {
                method: "GET".into(),
                url: url.into(),
                headers: vec![("accept".into(), b"*/*".to_vec())],
            },
            phase: TaskPhase::Queued,
            partial_file: None,
            checkpoint: None,
            description: String::new(),
            schedule: Schedule {
                priority: 0.5,
                discretionary: false,
                not_before_ms: None,
                created_ms: 0,
                resource_timeout_ms: 1000,
                retries: 0,
            },
        }
    }

    fn wrote(task: u64, total: i64) -> EventRecord {
        EventRecord {
            task,
            event: StoredEvent::WroteData {
                written: 1,
                total,
                expected: -1,
            },
        }
    }

    #[test]
    fn tasks_and_events_outlive_the_process_and_identifiers_stay_apart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let j = Journal::open(dir.path()).unwrap();
            assert_eq!(j.add_task("a", &task("https://a.test/1")).unwrap(), 1);
            assert_eq!(j.add_task("a", &task("https://a.test/2")).unwrap(), 2);
            assert_eq!(j.add_task("b", &task("https://b.test/1")).unwrap(), 1);
            let run = |r: &mut TaskRecord| {
                r.phase = TaskPhase::Running;
                r.partial_file = Some("download-x.part".into());
            };
            assert!(j.modify_task("a", 2, run).unwrap());
            assert!(!j.modify_task("a", 9, run).unwrap(), "no such task");
            for total in 1..=3 {
                j.append_event("a", &wrote(2, total)).unwrap();
            }
            j.append_event("b", &wrote(1, 7)).unwrap();
        }
        // Reopened, as after a restart: everything committed is there.
        let j = Journal::open(dir.path()).unwrap();
        let a = j.tasks("a").unwrap();
        assert_eq!(a.len(), 2);
        let (id, second) = &a[1];
        assert_eq!(*id, 2);
        let second = second.as_ref().unwrap();
        assert_eq!(second.phase, TaskPhase::Running);
        assert_eq!(second.partial_file.as_deref(), Some("download-x.part"));
        let events = j.events("a").unwrap();
        let seqs: Vec<u64> = events.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, [1, 2, 3]);
        assert_eq!(j.events("b").unwrap().len(), 1, "b sees only its own");
        assert_eq!(j.identifiers().unwrap(), ["a", "b"]);
        // Acknowledged events go; numbering goes on where it was.
        j.acknowledge("a", 1).unwrap();
        j.acknowledge("a", 2).unwrap();
        assert_eq!(j.events("a").unwrap().len(), 1);
        assert_eq!(j.append_event("a", &wrote(2, 4)).unwrap(), 4);
        j.remove_task("a", 1).unwrap();
        assert_eq!(
            j.add_task("a", &task("https://a.test/3")).unwrap(),
            3,
            "ids are never reused"
        );
        // A task's settings are kept beside it, per identifier, and go with it.
        let with = j
            .add_task_with_settings("a", &task("http://a.test/4"), b"settings")
            .unwrap();
        assert_eq!(
            j.task_settings("a", with).unwrap().as_deref(),
            Some(&b"settings"[..])
        );
        assert_eq!(j.task_settings("b", with).unwrap(), None);
        assert_eq!(j.task_settings("a", 3).unwrap(), None, "none given");
        j.remove_task("a", with).unwrap();
        assert_eq!(j.task_settings("a", with).unwrap(), None);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn progress_replaces_progress_and_a_completion_marks_the_task() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let id = j.add_task("app", &task("https://example.com/a")).unwrap();
        let first = j.append_progress("app", &wrote(id, 10), None).unwrap();
        let second = j
            .append_progress("app", &wrote(id, 20), Some(first))
            .unwrap();
        let events: Vec<u64> = j
            .events("app")
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(
            events,
            [second],
            "the newest report stands for the older one"
        );
        let done = EventRecord {
            task: id,
            event: StoredEvent::Completed {
                error: None,
                response: None,
            },
        };
        let seq = j.complete_task("app", &done).unwrap();
        let (_, record) = j.tasks("app").unwrap().remove(0);
        assert_eq!(record.unwrap().phase, TaskPhase::Completed);
        assert_eq!(j.event("app", seq).unwrap().unwrap().unwrap(), done);
        drop(j);
        // Lazy commits become durable with the next durable one.
        let j = Journal::open(dir.path()).unwrap();
        assert_eq!(j.events("app").unwrap().len(), 2);
    }

    #[test]
    fn a_damaged_record_is_reported_and_the_others_read() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        j.add_task("a", &task("https://a.test/1")).unwrap();
        j.add_task("a", &task("https://a.test/2")).unwrap();
        j.add_task("a", &task("https://a.test/3")).unwrap();
        j.put_raw_task("a", 2, b"CRSD but not really").unwrap();
        let read = j.tasks("a").unwrap();
        assert_eq!(read.len(), 3);
        assert!(read[0].1.is_ok() && read[2].1.is_ok());
        assert!(read[1].1.is_err(), "task 2 is reported as damaged");
    }

    #[test]
    fn a_second_service_cannot_open_a_journal_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Journal::open(dir.path()).unwrap();
        match Journal::open(dir.path()) {
            Err(e @ JournalError::InUse(_)) => {
                assert!(
                    e.to_string().contains("in use by another courier service"),
                    "{e}"
                );
            }
            other => panic!("a second open: {other:?}"),
        }
    }

    /// Not a test on its own: the process `killed_mid_write_the_journal_is_whole` runs and kills.
    /// It appends events to the journal named by `COURIER_JOURNAL_CHILD` until it is killed.
    #[test]
    #[ignore = "run by killed_mid_write_the_journal_is_whole"]
    fn journal_writer_child() {
        let Some(dir) = std::env::var_os("COURIER_JOURNAL_CHILD") else {
            return;
        };
        let j = Journal::open(Path::new(&dir)).unwrap();
        let id = j.add_task("crash", &task("https://a.test/big")).unwrap();
        for total in 1.. {
            j.append_event("crash", &wrote(id, total)).unwrap();
            if total == 50 {
                println!("ready");
                use std::io::Write;
                let _ = std::io::stdout().flush();
            }
        }
    }

    /// `kill -9` of a process in the middle of appending: the journal reopens with every event it
    /// committed, numbered without a gap, each whole.
    #[test]
    fn killed_mid_write_the_journal_is_whole() {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "journal::tests::journal_writer_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("COURIER_JOURNAL_CHILD", dir.path())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = lines.any(|l| l.is_ok_and(|l| l.contains("ready")));
        assert!(ready, "the writer started");
        std::thread::sleep(std::time::Duration::from_millis(30));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let events = j.events("crash").unwrap();
        assert!(events.len() >= 50, "{} events", events.len());
        for (i, (seq, event)) in events.iter().enumerate() {
            assert_eq!(*seq, i as u64 + 1, "no gap");
            assert_eq!(
                event.as_ref().unwrap(),
                &wrote(1, i as i64 + 1),
                "each whole"
            );
        }
        // And it goes on from there.
        let next = j.append_event("crash", &wrote(1, 0)).unwrap();
        assert_eq!(next, events.len() as u64 + 1);
    }
}
