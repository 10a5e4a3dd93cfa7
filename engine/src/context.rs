//! `SessionContext`: what a session and all its tasks share (configuration, connection pool,
//! delegate queue, session directory, stores). A neutral module: the session builds it, tasks read
//! it, and neither reaches into the other for it.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};

use courier_delegates::{DeliveryQueue, TaskInfo};
use courier_protocol_http::Transport;
use courier_storage::SessionDirectory;

use crate::Configuration;
use crate::stores::{CookieStorage, CredentialStorage, UrlCache};

/// What a session and all its task actors share.
pub(crate) struct SessionContext {
    /// Unique in the process; names the session in traces.
    pub(crate) id: u64,
    /// The session's own copy of its configuration.
    pub(crate) config: Configuration,
    /// The fields every request starts from.
    pub(crate) base_headers: crate::task::request::BaseHeaders,
    /// The session's connection pool.
    pub(crate) transport: Transport,
    /// The delegate's serial queue, when the session has a delegate.
    pub(crate) queue: Option<DeliveryQueue>,
    /// Where the session writes files (created on first use).
    pub(crate) storage: Arc<SessionDirectory>,
    /// Credentials that servers accepted or the application seeded, per protection space.
    pub(crate) credentials: Option<Arc<CredentialStorage>>,
    /// Cookies that responses set.
    pub(crate) cookies: Option<Arc<CookieStorage>>,
    /// Responses kept for reuse.
    pub(crate) url_cache: Option<Arc<UrlCache>>,
    /// The next task identifier (tasks are numbered 1, 2, 3... per session).
    pub(crate) next_task_id: AtomicU64,
    /// The session's tasks, as its progress counts them.
    pub(crate) tally: Arc<crate::task::progress::TaskTally>,
    /// In a session without a delegate, the queue that tasks' own delegates are served on,
    /// started when the first one is attached.
    pub(crate) tasks_queue: OnceLock<DeliveryQueue>,
    /// HTTP/1.1 requests waiting for a turn with their host, highest priority first.
    pub(crate) host_queue: crate::task::transfer::host_queue::HostQueue,
    /// Stream tasks that data tasks became, until the application adopts their handles
    /// (`Session::adopt_stream_task`) or they complete.
    pub(crate) adoptable: std::sync::Mutex<std::collections::HashMap<u64, crate::task::StreamTask>>,
    /// Downloads writing a file now, which share the write-batch budget.
    pub(crate) open_downloads: std::sync::atomic::AtomicUsize,
    /// Downloads' jobs that add or replace entries in the session's directory, a few at once
    /// (see [`DIRECTORY_JOBS_AT_ONCE`](crate::task::download::DIRECTORY_JOBS_AT_ONCE)).
    pub(crate) directory_jobs: Arc<tokio::sync::Semaphore>,
    /// Periodic download checkpoints that may wait or run at once.
    pub(crate) checkpoints: Arc<tokio::sync::Semaphore>,
}

/// The session-level delegate of a session that has none, behind the queue its tasks' own
/// delegates are served on: every method at its default.
struct NoDelegate;
impl courier_delegates::SessionDelegate for NoDelegate {}
impl courier_delegates::TaskDelegate for NoDelegate {}
impl courier_delegates::DataDelegate for NoDelegate {}
impl courier_delegates::DownloadDelegate for NoDelegate {}

impl SessionContext {
    /// Waits until what the session's stores changed is on disk.
    pub(crate) async fn stores_written(&self) {
        if let Some(c) = &self.cookies {
            c.written().await;
        }
        if let Some(c) = &self.credentials {
            c.written().await;
        }
        if let Some(c) = &self.url_cache {
            c.written().await;
        }
    }
}

impl SessionContext {
    /// True when a task's response waits for the delegate's disposition (`did_receive_response`):
    /// a task that reports to a delegate implementing it, unless it is a download (whose body goes
    /// to its file). Otherwise the body is allowed at once, as URLSession's default answer: the
    /// transfer decides with this whether to wait to be told, and the task actor, later, whether to
    /// ask. The answer only ever turns from true to false (the queue learns that the delegate leaves
    /// the method alone), so a transfer that did not wait is never asked about; one that waits is
    /// always released by the actor, asked or not.
    pub(crate) fn asks_disposition(
        &self,
        task: &TaskInfo,
        callbacks: bool,
        download: bool,
    ) -> bool {
        callbacks
            && !download
            && self.delegate_wants(task, courier_delegates::Callback::ReceiveResponse)
    }

    /// Whether the delegate `task` reports to implements `callback` (as far as its queue knows):
    /// what a transfer reads before it makes a trip to the actor, or a record, for it.
    pub(crate) fn delegate_wants(
        &self,
        task: &TaskInfo,
        callback: courier_delegates::Callback,
    ) -> bool {
        self.delivery(task)
            .is_some_and(|q| q.wants_task(task, callback))
    }

    /// The queue a task's own delegate is attached to: the session delegate's, or in a session
    /// without one, a queue of its own, started on first use (what a task's delegate leaves at its
    /// default then gets the default behaviour, as with no delegate at all).
    pub(crate) fn own_delegate_queue(&self) -> std::io::Result<DeliveryQueue> {
        if let Some(queue) = self.queue.as_ref().or(self.tasks_queue.get()) {
            return Ok(queue.clone());
        }
        let started = DeliveryQueue::start(Arc::new(NoDelegate), &format!("{}-tasks", self.id))?;
        // Another thread may have started one meanwhile: the spare ends as its sender drops.
        Ok(self.tasks_queue.get_or_init(|| started).clone())
    }

    /// The queue `task`'s messages go through: the one its own delegate was attached to, else the
    /// session delegate's; `None` when neither exists.
    pub(crate) fn delivery(&self, task: &TaskInfo) -> Option<DeliveryQueue> {
        DeliveryQueue::for_task(self.queue.as_ref(), task)
    }
}

impl std::fmt::Debug for SessionContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionContext")
            .field("id", &self.id)
            .field("storage", &self.storage)
            .finish_non_exhaustive()
    }
}
