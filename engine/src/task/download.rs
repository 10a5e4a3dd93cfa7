//! Where a download's body goes: its partial file, written in large batches off the async workers,
//! checkpointed, and turned into resume data when the download stops part-way.
//!
//! The transfer owns a [`DownloadSink`] and feeds it the body as it arrives. Writes are pipelined:
//! while one batch is being written on a blocking thread, the next one fills. Every second (and when
//! the download stops) a checkpoint syncs the file and stores the resume record beside it, so that
//! even a task whose actor dies can be continued from what storage holds. A download among many
//! closes its file between writes: thousands at once then need a descriptor each (the socket), not
//! two.
//!
//! `batch` sizes the batches (a session's downloads share a budget). `records` turns what storage
//! keeps (request and response records, checkpoint records) into resume data and back.
//! `interrupted` finds the downloads of processes that died, for a later session to continue.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use courier_delegates::{Error, ErrorCode, Request, Response, ResumeData};
use courier_protocol_http::ReadPause;
use courier_protocol_http::range::{self, Validator};
use courier_storage::download::keep_for_resume;
use courier_storage::{
    Durability, PartialFile, RequestRecord, ResponseRecord, ResumeError, ResumeRecord,
    SessionDirectory,
};
use tokio::task::JoinHandle;
use tokio::time::Instant;

mod batch;
pub(crate) mod interrupted;
mod records;

use batch::{Batch, BatchShare, WRITE_BATCH};
pub use records::request_record;
use records::seal;
pub(crate) use records::{
    decode_resume_data, request_from_record, response_from_record, response_record,
    resume_data_from_storage, resume_data_of, resume_error,
};

use super::PartialSlot;
use super::actor::{ActorPost, TaskMsg};
use crate::context::SessionContext;

/// Longest time received bytes wait in memory before they are written.
const WRITE_DELAY: Duration = Duration::from_millis(100);
/// How long a write may stay in flight, uncollected, while no new bytes arrive.
const SETTLE_DELAY: Duration = Duration::from_millis(20);
/// Time between checkpoints (the resume record stored beside the file).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// The jobs a session's downloads run at once that add or replace entries in its directory
/// (creating a partial file, storing a checkpoint record): the kernel takes them one at a time on
/// the directory's lock anyway. Thousands of downloads starting together each took a blocking
/// thread for their file before: 10,000 at once spent 63% of their process's samples creating
/// files, a third of that spinning on that lock (`perf record`, `courier-bench --only concurrent`).
/// (The synced checkpoint of a download that stops does not wait for a turn; the periodic ones
/// have their own, [`CHECKPOINTS_AT_ONCE`].)
pub(crate) const DIRECTORY_JOBS_AT_ONCE: usize = 2;
/// The periodic checkpoints a session's downloads take at once (each opens its file, and holds its
/// record, until it has run). Apart from the [directory jobs](DIRECTORY_JOBS_AT_ONCE): Tokio's
/// semaphore hands a freed permit to the tasks waiting for one first, so while thousands of
/// downloads wait in line to create their files, a periodic checkpoint that only tries for a
/// directory job never gets one (3,000 downloads at once under `strace -c`: 6 periodic checkpoints
/// in 23 s).
pub(crate) const CHECKPOINTS_AT_ONCE: usize = 32;

/// How the body that is about to arrive relates to the bytes on disk.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Placement {
    /// A fresh download: the file is empty.
    Fresh,
    /// The server continues at the offset: append.
    Append,
    /// The partial data cannot be continued: empty the file and start over.
    StartOver,
}

/// A blocking write or checkpoint in flight, and what it gives back.
type Job = JoinHandle<(PartialFile, Batch, io::Result<Option<Vec<u8>>>)>;

/// A download's partial file and everything needed to describe it as resume data.
pub(crate) struct DownloadSink {
    ctx: Arc<SessionContext>,
    actor: ActorPost,
    url: String,
    /// The file, when no job holds it.
    file: Option<PartialFile>,
    path: PathBuf,
    name: String,
    job: Option<Job>,
    /// A checkpoint being taken beside the writes (its record, when it succeeded).
    background: Option<JoinHandle<Option<Vec<u8>>>>,
    pending: Batch,
    /// The memory of the last batch written, for the next (only while batches are full-size:
    /// with many downloads, one buffer each is the point).
    spare: Batch,
    share: BatchShare,
    /// The resume record, once the response is known to be resumable (its length and digest are
    /// filled in at each checkpoint).
    template: Option<ResumeRecord>,
    /// The record this task was made from, if any (boxed: a fresh download, the usual kind, then
    /// holds 8 bytes for it, not 352, for as long as it runs).
    from: Option<Box<ResumeRecord>>,
    original: RequestRecord,
    current: RequestRecord,
    expected: i64,
    /// Set once a write failed: the file then keeps exactly `written` bytes.
    broken: Option<io::ErrorKind>,
    written: u64,
    checkpointed: u64,
    last_write: Instant,
    last_checkpoint: Instant,
    /// The reads of the HTTP/2 connection the body comes over, held while a write is awaited.
    reads: Option<ReadPause>,
}

/// What a stopped transfer leaves, for the actor to finish with.
pub(crate) struct Stopped {
    /// Resume data, when the download (or the upload) can be continued.
    pub(crate) resume: Option<ResumeData>,
    /// A download's partial file (an upload has none: its server keeps what it received).
    pub(crate) path: Option<PathBuf>,
}

impl DownloadSink {
    /// Creates the partial file, or reopens the one `from` names after checking it.
    pub(crate) async fn open(
        ctx: Arc<SessionContext>,
        actor: ActorPost,
        info: &courier_delegates::TaskInfo,
        from: Option<Box<ResumeRecord>>,
        slot: &PartialSlot,
    ) -> Result<DownloadSink, Error> {
        let url = info.original_request().url_str().to_owned();
        let ctx2 = ctx.clone();
        let record = from.clone();
        let share = BatchShare::new(ctx.clone());
        let release = share.among_many();
        // Never closed, so never an error; waiting here is waiting for a few bounded disk jobs.
        let permit = ctx.directory_jobs.clone().acquire_owned().await.ok();
        let opened = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            // Read (or make) the key that seals resume data now, off the async workers.
            let _ = ctx2.storage.resume_key();
            let mut file = match &record {
                Some(r) => ctx2.storage.reopen_for_resume(r),
                None => ctx2.storage.create_partial().map_err(ResumeError::Io),
            }?;
            // Among many, the file is opened again by the first write, which may be long after.
            if release {
                file.release();
            }
            Ok(file)
        })
        .await
        .map_err(|e| {
            Error::new(ErrorCode::CannotCreateFile, e.to_string())
                .with_url(&url)
                .with_source(e)
        })?;
        let file = opened.map_err(|e| resume_error(e, from.is_some(), &url))?;
        slot.set(file.name());
        let now = Instant::now();
        Ok(DownloadSink {
            path: file.path().to_path_buf(),
            name: file.name(),
            written: file.len(),
            checkpointed: file.len(),
            file: Some(file),
            share,
            ctx,
            actor,
            url,
            job: None,
            background: None,
            // Grown as bytes come (a batch at most): reserved up front, a buffer per download
            // costs its full size in a process running thousands of slow ones.
            pending: Batch::default(),
            spare: Batch::default(),
            // Until a response says otherwise, the download can be continued as it could before.
            template: from.as_deref().cloned(),
            original: request_record(info.original_request()),
            current: request_record(&info.current_request()),
            from,
            expected: -1,
            broken: None,
            last_write: now,
            last_checkpoint: now,
            reads: None,
        })
    }

    /// Where the partial file is.
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The bytes on disk when the task started (0 for a fresh download).
    pub(crate) fn offset(&self) -> u64 {
        self.from.as_ref().map_or(0, |r| r.bytes_on_disk)
    }

    /// The bytes of the file so far: on disk, and waiting to be written.
    pub(crate) fn len(&self) -> u64 {
        self.written + self.pending.len() as u64
    }

    /// The validator to continue with, for a task made from resume data.
    pub(crate) fn validator(&self) -> Option<Validator> {
        self.from.as_ref().map(|r| Validator {
            etag: r.etag.clone(),
            last_modified: r.last_modified.clone(),
            length: r.expected_total,
        })
    }

    /// The response head is in: places the body and decides whether it can be resumed later.
    /// Returns the offset the body starts at and the expected total (-1 when unknown).
    pub(crate) async fn begin(
        &mut self,
        response: &Response,
        placement: Placement,
        total: Option<u64>,
    ) -> Result<(u64, i64), Error> {
        if matches!(placement, Placement::StartOver) && self.written > 0 {
            if let Some(h) = self.background.take() {
                let _ = h.await;
            }
            self.settle().await?;
            let mut file = self.file.take().expect("settled sink holds its file");
            let truncated = tokio::task::spawn_blocking(move || {
                let r = file.truncate();
                (file, r)
            })
            .await
            .map_err(|e| self.write_error(io::Error::other(e.to_string())))?;
            self.file = Some(truncated.0);
            truncated.1.map_err(|e| self.write_error(e))?;
            self.written = 0;
            self.checkpointed = 0;
        }
        let start = self.written;
        let length = response.expected_content_length();
        self.expected = match (placement, total, length) {
            (Placement::Append, Some(total), _) => total as i64,
            (_, _, Some(len)) => (start + len) as i64,
            _ => -1,
        };
        let method =
            http::Method::from_bytes(self.original.method.as_bytes()).unwrap_or(http::Method::GET);
        // A 206 that continues our bytes counts as the 200 it stands for.
        let status = if matches!(placement, Placement::Append) {
            http::StatusCode::OK
        } else {
            response.status()
        };
        self.template =
            range::resumable(&method, status, response.headers(), response.url().path()).map(|v| {
                ResumeRecord {
                    url: self.url.clone(),
                    original_request: self.original.clone(),
                    current_request: self.current.clone(),
                    bytes_on_disk: 0,
                    etag: v.etag,
                    last_modified: v.last_modified,
                    response: response_record(response),
                    partial_file: self.name.clone(),
                    tail_sha256: [0; 32],
                    expected_total: (self.expected >= 0).then_some(self.expected as u64),
                }
            });
        // A first checkpoint right away: from now on storage can describe this download (to a
        // process that restarts; a stop syncs).
        self.checkpoint(Durability::PageCache).await?;
        Ok((start, self.expected))
    }

    /// Takes body bytes; writes them once a batch is full or has waited long enough.
    pub(crate) async fn accept(&mut self, data: Bytes) -> Result<(), Error> {
        let batch = self.share.size();
        // A batch never grows past its size: what would overflow it goes into the next one.
        // (Written before the chunk is taken: until a write succeeds, every unwritten byte stays
        // in `pending`, in order, for `stop` and `fail` to save.)
        if !self.pending.is_empty() && self.pending.len() + data.len() > batch {
            self.write_pending().await?;
        }
        // Held as received while the download is among few (its batch is full-size); copied when
        // it is among many, whose memory the budget bounds.
        self.pending.push(data, batch, batch == WRITE_BATCH);
        if self.pending.len() >= batch || self.last_write.elapsed() >= WRITE_DELAY {
            self.write_pending().await?;
        }
        if self.template.is_some() && self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            self.checkpoint_beside().await?;
        }
        Ok(())
    }

    /// When the sink next wants to act without new bytes (write what waits, checkpoint).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let write = (!self.pending.is_empty()).then(|| self.last_write + WRITE_DELAY);
        // A write still in flight when the network goes quiet is collected (and reported) soon.
        let settle = self.job.is_some().then(|| self.last_write + SETTLE_DELAY);
        let unsaved =
            self.written > self.checkpointed || !self.pending.is_empty() || self.job.is_some();
        let checkpoint = match &self.background {
            // A checkpoint still syncing: look again shortly (the next one waits for it).
            Some(h) if !h.is_finished() => Some(Instant::now() + SETTLE_DELAY),
            _ => (self.template.is_some() && unsaved)
                .then(|| self.last_checkpoint + CHECKPOINT_EVERY),
        };
        [write, settle, checkpoint].into_iter().flatten().min()
    }

    /// Acts on [`DownloadSink::deadline`].
    pub(crate) async fn on_deadline(&mut self) -> Result<(), Error> {
        if !self.pending.is_empty() && self.last_write.elapsed() >= WRITE_DELAY {
            self.write_pending().await?;
        }
        if self.job.is_some() && self.last_write.elapsed() >= SETTLE_DELAY {
            self.settle().await?;
        }
        if self.template.is_some() && self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            self.checkpoint_beside().await?;
        }
        Ok(())
    }

    /// Writes everything received and checkpoints (the task is being suspended).
    pub(crate) async fn checkpoint_now(&mut self) -> Result<(), Error> {
        if self.template.is_some() {
            self.checkpoint(Durability::Synced).await?;
        } else {
            self.write_pending().await?;
            self.settle().await?;
        }
        Ok(())
    }

    /// The body ended: writes what is left and closes the file. Returns its path, or the sink
    /// back with the error when the last writes failed (then [`DownloadSink::fail`] applies).
    pub(crate) async fn finish(mut self: Box<Self>) -> Result<PathBuf, (Error, Box<DownloadSink>)> {
        // A checkpoint still running would store its record after the file is handed over.
        if let Some(h) = self.background.take() {
            let _ = h.await;
        }
        let written = async {
            self.write_pending().await?;
            self.settle().await
        }
        .await;
        match written {
            Ok(_) => {
                let file = self.file.take().expect("settled sink holds its file");
                Ok(file.finish())
            }
            Err(e) => Err((e, self)),
        }
    }

    /// The download stops part-way (a cancel, a failure): writes what arrived, checkpoints, and
    /// returns the resume data when the download can be continued. The partial file stays on disk.
    pub(crate) async fn stop(mut self: Box<Self>) -> Stopped {
        let flushed = async {
            self.write_pending().await?;
            self.settle().await
        }
        .await;
        if flushed.is_err() {
            // The failed batch is gone; the file still holds exactly `written` good bytes, and
            // those are what the resume data describes.
            self.pending.clear();
        }
        let resume = match self.template.is_some() {
            true => self
                .checkpoint(Durability::Synced)
                .await
                .ok()
                .flatten()
                .and_then(|blob| seal(&self.ctx.storage, blob)),
            false => None,
        };
        Stopped {
            resume,
            path: Some(self.path.clone()),
        }
    }

    /// The download failed: the error gains resume data when it can be continued; otherwise the
    /// partial file is removed.
    pub(crate) async fn fail(self: Box<Self>, error: Error) -> Error {
        let path = self.path.clone();
        match self.stop().await.resume {
            Some(data) => {
                keep_for_resume(&path);
                error.with_resume_data(data)
            }
            None => {
                courier_storage::download::remove_partial(&path);
                error
            }
        }
    }

    /// Hands the pending bytes to a blocking write (after the previous job is done).
    async fn write_pending(&mut self) -> Result<(), Error> {
        self.settle().await?;
        if let Some(kind) = self.broken {
            // After a failed write, nothing more is written: bytes after the lost batch would leave
            // a hole in the file.
            self.pending.clear();
            return Err(self.write_error(io::Error::from(kind)));
        }
        self.last_write = Instant::now();
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut file = self.file.take().expect("settled sink holds its file");
        // The next batch starts in the spare buffer, unless that is larger than a batch is now
        // (kept from when fewer downloads shared the budget).
        let mut next = std::mem::take(&mut self.spare);
        if next.capacity() > self.share.size() {
            next = Batch::default();
        }
        let batch = std::mem::replace(&mut self.pending, next);
        let release = self.share.among_many();
        self.job = Some(tokio::task::spawn_blocking(move || {
            let r = batch.write_to(&mut file).map(|()| None);
            if release {
                file.release();
            }
            (file, batch, r)
        }));
        Ok(())
    }

    /// The body comes over a connection whose reads wait for this download's disk (HTTP/2): while
    /// the download waits for a write, the connection reads nothing, so the bytes behind wait in
    /// the kernel rather than in the connection's buffers.
    pub(crate) fn read_over(&mut self, reads: Option<ReadPause>) {
        self.reads = reads;
    }

    /// Waits for the job in flight; reports the bytes it wrote.
    async fn settle(&mut self) -> Result<Option<Vec<u8>>, Error> {
        let Some(job) = self.job.take() else {
            return Ok(None);
        };
        // The wait is the disk's (bounded), never the network's or a delegate's: holding the
        // connection's reads for it stalls no stream for longer than a write.
        let held = match &self.reads {
            Some(reads) if !job.is_finished() => Some(reads.hold()),
            _ => None,
        };
        let joined = job.await;
        drop(held);
        let (file, mut buffer, result) =
            joined.map_err(|e| self.write_error(io::Error::other(e.to_string())))?;
        let len = file.len();
        self.file = Some(file);
        // The written batch's buffer is reused for the batch after next, while batches are
        // full-size (a slow download among thousands keeps one buffer, not two).
        buffer.clear();
        if buffer.capacity() > self.spare.capacity() && self.share.size() == WRITE_BATCH {
            self.spare = buffer;
        }
        if len != self.written {
            self.written = len;
            // Progress: the actor may be gone (stopping); then nobody listens.
            let _ = self.actor.cast(TaskMsg::Wrote {
                total: len,
                expected: self.expected,
            });
        }
        result.map_err(|e| {
            self.broken = Some(e.kind());
            self.write_error(e)
        })
    }

    /// Writes what waits and stores the resume record beside the file, both synced when
    /// `durability` asks for it. Returns the record.
    async fn checkpoint(&mut self, durability: Durability) -> Result<Option<Vec<u8>>, Error> {
        if let Some(h) = self.background.take() {
            let _ = h.await;
        }
        if self.broken.is_none() {
            self.write_pending().await?;
            self.settle().await?;
        }
        self.last_checkpoint = Instant::now();
        let Some(template) = self.template.clone() else {
            return Ok(None);
        };
        // A synced checkpoint (a stop) takes no turn: its syncs, a few milliseconds each, would
        // hold up every other download's, and thousands stop together when a session is
        // invalidated.
        let permit = match durability {
            Durability::PageCache => self.ctx.directory_jobs.clone().acquire_owned().await.ok(),
            Durability::Synced => None,
        };
        let mut file = self.file.take().expect("settled sink holds its file");
        let release = self.share.among_many();
        self.job = Some(tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let result = file.checkpoint(durability).and_then(|c| {
                let record = ResumeRecord {
                    bytes_on_disk: c.len,
                    tail_sha256: c.tail_sha256,
                    ..template
                };
                let blob = record.encode().map_err(io::Error::other)?;
                // Best effort: on a full disk the record cannot be stored, but the caller still
                // gets it in memory.
                let _ = file.store_checkpoint_record(&blob, durability);
                Ok(Some(blob))
            });
            if release {
                file.release();
            }
            (file, Batch::default(), result)
        }));
        let blob = self.settle().await?;
        self.checkpointed = self.written;
        Ok(blob)
    }

    /// Starts a checkpoint beside the writes, unless one is still running: the sync, often the
    /// slowest step of a download, then never holds up the network.
    async fn checkpoint_beside(&mut self) -> Result<(), Error> {
        if self.background.as_ref().is_some_and(|h| !h.is_finished()) {
            return Ok(());
        }
        if let Some(h) = self.background.take() {
            let _ = h.await;
        }
        // Thousands of downloads reach their checkpoints in the same second. Queued for the
        // blocking pool, each held a second handle on its file then (8,976 downloads at once
        // failed with "Too many open files"), and each still holds its record: a session runs a
        // few at once; one that finds none free waits for its next turn.
        let Ok(permit) = self.ctx.checkpoints.clone().try_acquire_owned() else {
            self.last_checkpoint = Instant::now();
            return Ok(());
        };
        self.write_pending().await?;
        self.settle().await?;
        self.last_checkpoint = Instant::now();
        let (Some(template), Some(file)) = (self.template.clone(), self.file.as_ref()) else {
            return Ok(());
        };
        let checkpointer = file.checkpointer();
        self.checkpointed = self.written;
        self.background = Some(tokio::task::spawn_blocking(move || {
            let _permit = permit;
            // Periodic: for a killed process, not a power loss (see `Durability::PageCache`); the
            // checkpoint taken when the download stops is synced.
            let c = checkpointer.run(Durability::PageCache).ok()?;
            let record = ResumeRecord {
                bytes_on_disk: c.len,
                tail_sha256: c.tail_sha256,
                ..template
            };
            let blob = record.encode().ok()?;
            let _ = checkpointer.store(&blob, Durability::PageCache);
            Some(blob)
        }));
        Ok(())
    }

    fn write_error(&self, e: io::Error) -> Error {
        Error::new(
            ErrorCode::CannotWriteToFile,
            format!("cannot write the download to disk: {e}"),
        )
        .with_url(&self.url)
        .with_source(e)
    }
}
