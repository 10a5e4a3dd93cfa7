//! Tasks: the handles an application holds ([`Task`] and its three kinds) and what the task actor and
//! its session share to publish state changes and deliver the one terminal message.
//!
//! - `actor`: the task actor, which owns the transfer and applies the state machine.
//! - `transfer`: the transfer itself (request, response head, body), run beside the actor.
//! - `request`: what goes on the wire, built from a request and the configuration.
//! - `download`: where a download's body goes: the partial file, its checkpoints, resume data.
//! - `auth`: answering HTTP authentication challenges, and the session's credential store.
//! - `local`: `data:` and `file:` URLs, served without the network.
//! - `upload`: where an upload's body comes from: bytes, a file, or a stream from the delegate.
//! - `file_reader`: a file read ahead on a thread, for uploads and `file:` URLs.
//! - `byte_stream`: [`ByteStream`], a data task's body read as it arrives (`Session::bytes`).
//! - `future`: [`TaskFuture`], what the completion forms return: the result, and the task's handle.
//! - `protocol`: [`ProtocolHandler`], application code that answers requests instead of the network.
//! - `progress`: [`Progress`] and [`SessionProgress`], read from the counters, for progress bars.
//! - `web_socket`: [`WebSocketTask`], a task that keeps its connection as a WebSocket.
//! - `stream`: [`StreamTask`], a TCP connection read and written by the application, with STARTTLS.

/// The methods every kind of task handle shares, each through the handle's `task()`: written once
/// for [`DataTask`], [`UploadTask`], [`DownloadTask`], [`WebSocketTask`] and [`StreamTask`].
macro_rules! shared_handle_methods {
    () => {
        /// The read-only view of the task: identifier, state, requests, response, counters, error
        /// ([`Task::info`]).
        pub fn info(&self) -> &TaskInfo {
            self.task().info()
        }

        /// Starts the task, or continues it after a suspend ([`Task::resume`]).
        pub fn resume(&self) {
            self.task().resume()
        }

        /// Pauses the task ([`Task::suspend`]).
        pub fn suspend(&self) {
            self.task().suspend()
        }

        /// Cancels the task: it completes with -999 ([`Task::cancel`]).
        pub fn cancel(&self) {
            self.task().cancel()
        }

        /// The task's progress ([`Task::progress`]).
        pub fn progress(&self) -> Progress {
            self.task().progress()
        }

        /// Gives the task a delegate of its own, before it is resumed ([`Task::set_delegate`]).
        ///
        /// # Errors
        /// As [`Task::set_delegate`].
        pub fn set_delegate(
            &self,
            delegate: Arc<dyn courier_delegates::TaskLevelDelegate>,
        ) -> Result<(), TaskDelegateError> {
            self.task().set_delegate(delegate)
        }
    };
}

pub(crate) mod actor;
pub(crate) mod auth;
pub(crate) mod byte_stream;
pub(crate) mod download;
pub(crate) mod file_reader;
pub mod future;
pub(crate) mod id_map;
pub(crate) mod local;
pub(crate) mod pace;
pub mod progress;
pub mod protocol;
pub(crate) mod request;
pub mod stream;
pub(crate) mod transfer;
pub(crate) mod upload;
pub mod web_socket;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use courier_delegates::{
    Callback, Error, ErrorCode, ResumeData, TaskInfo, TaskRecorder, TaskState,
};
use courier_storage::ResumeRecord;
use tokio::sync::oneshot;

use crate::completion::Terminal;
use crate::context::SessionContext;
pub use byte_stream::ByteStream;
pub use download::interrupted::InterruptedDownload;
pub use future::{TaskFuture, TaskHandle};
pub use progress::{Progress, SessionProgress};
pub use protocol::{Answer, AnswerFuture, AnswerStream, ProtocolHandler};
pub use stream::{CapturedStream, StreamTask};
pub use upload::UploadBody;
pub use web_socket::WebSocketTask;

/// A control call from a task handle.
pub(crate) enum Control {
    Resume,
    Suspend,
    Cancel,
    /// `cancel_by_producing_resume_data`: cancel, and answer with resume data when the download
    /// can be continued.
    CancelForResume(oneshot::Sender<Option<ResumeData>>),
    /// Test hook: make the task actor panic.
    #[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
    Crash,
    /// Test hook: make the transfer (what moves the task's bytes) panic.
    #[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
    CrashTransfer,
}

/// What the task side tells its session: the one message type that goes from `task` to `session`.
pub(crate) enum TaskReport {
    /// A control call from a handle.
    Control(u64, Control),
    /// The last handle of a task that was never resumed was dropped.
    HandlesDropped(u64),
    /// A task actor's task ended and the session's free actors had no room for it (full, or closed
    /// by invalidation): the session forgets the task and stops the actor.
    ActorFree(ractor::ActorRef<actor::TaskMsg>),
    /// The data task `old` became another task (a download, a stream), carried on by the same
    /// actor.
    Became {
        old: u64,
        recorder: TaskRecorder,
        terminal: Terminal,
        partial: PartialSlot,
    },
}

/// How the task side reaches its session. The session implements it twice: for task handles
/// (holding the link keeps the session from invalidating itself) and for task actors (it does not).
pub(crate) trait SessionLink: Send + Sync + 'static {
    /// Sends `report` to the session; false when the session is gone (it has completed every task
    /// already, so nothing is lost).
    fn report(&self, report: TaskReport) -> bool;

    /// Says that `actor`'s task ended and the actor is free for the session's next task; false
    /// when the session is gone (the actor stops then).
    fn actor_free(&self, actor: ractor::ActorRef<actor::TaskMsg>) -> bool {
        self.report(TaskReport::ActorFree(actor))
    }

    /// The queue a task's own delegate is attached to.
    fn own_delegate_queue(&self) -> Result<courier_delegates::DeliveryQueue, TaskDelegateError> {
        Err(TaskDelegateError::Background)
    }
}

/// Why a task cannot take a delegate of its own ([`Task::set_delegate`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskDelegateError {
    /// The task was resumed or cancelled already: URLSession requires the delegate before
    /// `resume()` (swift-corelibs-foundation stops the program otherwise), so that no message
    /// goes to one delegate and the next to another.
    AlreadyStarted,
    /// The task has a delegate of its own already.
    AlreadySet,
    /// Tasks of a background session report to the session's delegate only: their messages may
    /// arrive in another process, long after this object is gone.
    Background,
    /// The delegate's queue could not be started (the system is out of threads).
    Queue(String),
}

impl std::fmt::Display for TaskDelegateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TaskDelegateError::AlreadyStarted => {
                f.write_str("a task's delegate is set before the task is resumed or cancelled")
            }
            TaskDelegateError::AlreadySet => f.write_str("the task has a delegate already"),
            TaskDelegateError::Background => {
                f.write_str("background sessions' tasks report to the session's delegate only")
            }
            TaskDelegateError::Queue(why) => write!(f, "cannot start the delegate queue: {why}"),
        }
    }
}

impl std::error::Error for TaskDelegateError {}

/// What a task does with its request.
pub(crate) enum Work {
    /// Load the body into memory (a data task).
    Data,
    /// Send `UploadBody`, load the response body into memory.
    Upload(UploadBody),
    /// Go on with an upload from its resume data (decoded and checked, or why not), then load
    /// the response body into memory.
    ResumedUpload(Result<Box<transfer::UploadResumption>, Error>),
    /// Load the body into a file; `resume` when made from resume data (decoded, or why not).
    Download {
        resume: Option<Result<Box<ResumeRecord>, Error>>,
    },
    /// A WebSocket: the transfer's ends of the channels to the task's handle.
    WebSocket(Box<web_socket::SocketEnds>),
    /// A stream task: the transfer's end of the handle's commands.
    Stream(Box<stream::StreamEnds>),
}

impl Work {
    pub(crate) fn is_download(&self) -> bool {
        matches!(self, Work::Download { .. })
    }
}

/// The name of a download's partial file in the session directory, once it has one: written by the
/// transfer, read by the session to build resume data for a task whose actor died. Other tasks get
/// an empty slot, which costs nothing.
#[derive(Clone, Default)]
pub(crate) struct PartialSlot(Option<Arc<Mutex<Option<String>>>>);

impl PartialSlot {
    /// A slot for a download task.
    pub(crate) fn for_download() -> PartialSlot {
        PartialSlot(Some(Arc::default()))
    }

    pub(crate) fn set(&self, name: String) {
        if let Some(slot) = &self.0 {
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(name);
        }
    }

    pub(crate) fn get(&self) -> Option<String> {
        let slot = self.0.as_ref()?;
        slot.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Publishes a state change, and tells the delegate when the task reports to one.
pub(crate) fn publish_state(
    ctx: &SessionContext,
    recorder: &TaskRecorder,
    callbacks: bool,
    from: TaskState,
    to: TaskState,
) {
    recorder.set_state(to);
    if to == TaskState::Completed {
        ctx.tally.completed(recorder.info().id());
    }
    if !callbacks {
        return;
    }
    let task = recorder.info();
    if let Some(queue) = ctx.delivery(&task)
        && queue.wants_task(&task, Callback::ChangeState)
    {
        let info = task.clone();
        queue.push_task(&task, Callback::ChangeState, move |d| {
            d.did_change_state(&info, from, to)
        });
    }
}

/// Completes a task whose actor is gone (failed, panicked or was killed) without having completed it.
/// A download gets resume data from the last checkpoint its transfer stored, when there is one.
pub(crate) fn complete_orphan(
    ctx: &SessionContext,
    terminal: &Terminal,
    partial: &PartialSlot,
    why: &str,
) {
    if !terminal.is_pending() {
        return;
    }
    let mut error = Error::new(
        ErrorCode::Unknown,
        format!("the task's actor failed: {why}"),
    );
    if let Some(name) = partial.get() {
        match download::resume_data_from_storage(&ctx.storage, &name) {
            Some(data) => error = error.with_resume_data(data),
            None => {
                if let Ok(path) = ctx.storage.resolve(&name) {
                    courier_storage::download::remove_partial(&path);
                }
            }
        }
    }
    terminal.abandon(error);
}

/// A task (`URLSessionTask`): what every kind of task can do. [`DataTask`], [`UploadTask`] and
/// [`DownloadTask`] have the same methods (`resume`, `suspend`, `cancel`, `info`) and convert
/// into it. URLSession's task classes inherit from `URLSessionTask`; Rust has no inheritance, and
/// a `Deref` chain standing in for it would hide which type a method comes from, so each handle
/// carries the shared methods itself.
///
/// Created suspended; nothing goes on the wire until [`Task::resume`]. Handles are cheap clones of
/// one task. [`Task::info`] is the read-only view (identifier, state, requests, response, counters,
/// error) that delegate callbacks receive too.
///
/// `resume`, `suspend` and `cancel` return at once, like URLSession's; the state they cause is
/// published when the task's actor has applied them (microseconds later), and the delegate hears of
/// it through `did_change_state`.
///
/// A task that is never resumed is cancelled (it completes with -999) once its last handle is
/// dropped, so an abandoned task is not kept by its session until invalidation; a resumed task runs
/// on without handles, as URLSession's do.
#[derive(Clone)]
pub struct Task {
    info: TaskInfo,
    handles: Arc<Handles>,
}

/// What every handle of one task shares. Keeps the session from invalidating itself on drop while a
/// task handle is still held, and tells it when the last handle of a never-resumed task is gone.
struct Handles {
    id: u64,
    session: Arc<dyn SessionLink>,
    /// A download's partial-file slot, shared with its session's entry.
    partial: PartialSlot,
    resumed: AtomicBool,
}

impl Drop for Handles {
    fn drop(&mut self) {
        if !self.resumed.load(Ordering::Acquire) {
            self.session.report(TaskReport::HandlesDropped(self.id));
        }
    }
}

impl Task {
    /// The first handle of a new task.
    pub(crate) fn new(info: TaskInfo, session: Arc<dyn SessionLink>, partial: PartialSlot) -> Task {
        Task::with_handles(info, session, partial, false)
    }

    /// A handle to a task that was resumed already (`Session::all_tasks`).
    pub(crate) fn resumed(
        info: TaskInfo,
        session: Arc<dyn SessionLink>,
        partial: PartialSlot,
    ) -> Task {
        Task::with_handles(info, session, partial, true)
    }

    fn with_handles(
        info: TaskInfo,
        session: Arc<dyn SessionLink>,
        partial: PartialSlot,
        resumed: bool,
    ) -> Task {
        Task {
            handles: Arc::new(Handles {
                id: info.id(),
                session,
                partial,
                resumed: AtomicBool::new(resumed),
            }),
            info,
        }
    }

    /// A download's partial file in the session directory, once it has one (the background
    /// service journals it, to continue the download after its own restart).
    pub(crate) fn partial_file(&self) -> Option<String> {
        self.handles.partial.get()
    }

    fn control(&self, control: Control) {
        // A session that has gone away has completed every task already: nothing left to control.
        self.handles
            .session
            .report(TaskReport::Control(self.info.id(), control));
    }

    /// Cancels the task, answered with the data to go on with it later when it has some (a
    /// download's, an upload's).
    pub(crate) async fn cancel_for_resume(&self) -> Option<ResumeData> {
        let (tx, rx) = oneshot::channel();
        self.control(Control::CancelForResume(tx));
        rx.await.ok().flatten()
    }

    /// Starts the task, or continues it after [`Task::suspend`]. Does nothing on a cancelling or
    /// completed task.
    pub fn resume(&self) {
        self.handles.resumed.store(true, Ordering::Release);
        self.control(Control::Resume);
    }

    /// Pauses the task: no bytes are read and no timers run until it is resumed; the same transfer
    /// then continues.
    ///
    /// Over HTTP/1.1 the server's bytes then wait in the kernel and TCP stops the server. Over
    /// HTTP/2 the connection is shared and goes on serving the other tasks on it, so the server
    /// may still send what the stream's flow-control window allows (up to 32 MiB), which waits
    /// in memory until the task is resumed. A download to be paused for long can be cancelled
    /// with resume data instead ([`DownloadTask::cancel_by_producing_resume_data`]).
    pub fn suspend(&self) {
        self.control(Control::Suspend);
    }

    /// Cancels the task: it completes with [`ErrorCode::Cancelled`] (-999), even if it was never
    /// resumed. Does nothing on a cancelling or completed task. A download's partial file is removed;
    /// see [`DownloadTask::cancel_by_producing_resume_data`] to keep it.
    pub fn cancel(&self) {
        self.control(Control::Cancel);
    }

    /// The read-only view of the task.
    pub fn info(&self) -> &TaskInfo {
        &self.info
    }

    /// Gives the task a delegate of its own (URLSession's `task.delegate`, iOS 15): it hears this
    /// task's messages first, and what it leaves at a method's default goes on to the session's
    /// delegate (see [`TaskLevelDelegate`](courier_delegates::TaskLevelDelegate)). Its callbacks
    /// run on the session's delegate queue, in order with the session's (in a session without a
    /// delegate, on a queue started for its tasks' delegates). It is dropped once the session
    /// is invalidated and the task's handles are gone.
    ///
    /// # Errors
    /// Set it before the task is first resumed or cancelled
    /// ([`TaskDelegateError::AlreadyStarted`]), once ([`TaskDelegateError::AlreadySet`]), and not
    /// on a background session's task ([`TaskDelegateError::Background`]).
    pub fn set_delegate(
        &self,
        delegate: Arc<dyn courier_delegates::TaskLevelDelegate>,
    ) -> Result<(), TaskDelegateError> {
        if self.handles.resumed.load(Ordering::Acquire) || self.info.state() != TaskState::Suspended
        {
            return Err(TaskDelegateError::AlreadyStarted);
        }
        let queue = self.handles.session.own_delegate_queue()?;
        if queue.attach(&self.info, delegate) {
            Ok(())
        } else {
            Err(TaskDelegateError::AlreadySet)
        }
    }

    /// The task's progress (URLSession's `task.progress`): units done and in all, fraction,
    /// throughput, time left, and the controls, to bind to a progress bar.
    pub fn progress(&self) -> Progress {
        Progress::of(self.clone())
    }

    /// This task as a [`DownloadTask`], if it is one (for instance the task a data task became,
    /// found through [`Session::all_tasks`](crate::Session::all_tasks)).
    pub fn as_download(&self) -> Option<DownloadTask> {
        (self.info.kind() == courier_delegates::TaskKind::Download)
            .then(|| DownloadTask::new(self.clone()))
    }

    /// Test hook: makes the task's actor panic, as a bug in it would. The session completes the
    /// task with an error (and a download with resume data) and goes on.
    #[cfg(feature = "test-hooks")]
    pub fn inject_actor_panic(&self) {
        self.control(Control::Crash);
    }

    /// Test hook: makes the task's transfer (what moves its bytes) panic, as a bug in a decoder or
    /// a parser would. The session completes the task with an error (and a download
    /// with resume data from its last checkpoint).
    #[cfg(feature = "test-hooks")]
    pub fn inject_transfer_panic(&self) {
        self.control(Control::CrashTransfer);
    }
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Task").field(&self.info).finish()
    }
}

macro_rules! task_kind {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $name(Task);

        impl $name {
            pub(crate) fn new(task: Task) -> $name {
                $name(task)
            }

            /// The task as a plain [`Task`], the handle every kind shares.
            pub fn task(&self) -> &Task {
                &self.0
            }

            shared_handle_methods!();
        }

        impl From<$name> for Task {
            fn from(handle: $name) -> Task {
                handle.0
            }
        }

    };
}

task_kind! {
    /// A data task (`URLSessionDataTask`): loads a URL's body into memory, handing it to the
    /// delegate's `did_receive_data` as it arrives. Made by [`Session::data_task`](crate::Session::data_task).
    DataTask
}

task_kind! {
    /// An upload task (`URLSessionUploadTask`): sends a body (bytes, a file, or a stream the delegate
    /// provides), reporting `did_send_body_data`, then receives the response like a data task. Made
    /// by [`Session::upload_task`](crate::Session::upload_task) or, to go on with a stopped upload,
    /// [`Session::upload_task_with_resume_data`](crate::Session::upload_task_with_resume_data).
    UploadTask
}

impl UploadTask {
    /// Cancels the upload and returns the data to go on with it later, or `None` when it cannot
    /// be: URLSession's `cancel(byProducingResumeData:)` for uploads (iOS 17). An upload can be
    /// gone on with when its server offered to resume it (the IETF resumable-upload draft: a
    /// `104` naming an upload resource of the request's origin, for a body of 64 KiB or more) and
    /// its body can be read again (a file, unchanged; bytes up to 16 MiB, which the resume data
    /// then holds).
    ///
    /// The task completes with -999, and that error carries the same resume data. An upload
    /// that fails with a resumable error (a lost connection, past the resumptions the task makes
    /// on its own) carries resume data too ([`Error::resume_data`]). On a task that already
    /// completed, or is being cancelled, returns `None`.
    ///
    /// URLSession takes a completion handler; here the answer is awaited.
    pub async fn cancel_by_producing_resume_data(&self) -> Option<ResumeData> {
        self.0.cancel_for_resume().await
    }
}

task_kind! {
    /// A download task (`URLSessionDownloadTask`): loads a URL's body into a file in the session
    /// directory, reporting `did_write_data`, then hands the file to `did_finish_downloading_to`.
    /// Made by [`Session::download_task`](crate::Session::download_task) or, to continue a stopped
    /// download, [`Session::download_task_with_resume_data`](crate::Session::download_task_with_resume_data).
    DownloadTask
}

impl DownloadTask {
    /// Cancels the download and returns the data to continue it later, or `None` when it cannot
    /// be continued (URLSession's rules: a `GET` whose response carried a strong `ETag` or a
    /// `Last-Modified`, a server that did not refuse byte ranges, the partial file present).
    ///
    /// The partial file stays in the session directory for the resumed task. The task completes
    /// with -999, and that error carries the same resume data. On a task that already completed,
    /// or is being cancelled, returns `None`.
    ///
    /// URLSession takes a completion handler; here the answer is awaited.
    pub async fn cancel_by_producing_resume_data(&self) -> Option<ResumeData> {
        self.0.cancel_for_resume().await
    }
}

/// A downloaded file, owned by the caller of [`Session::download`](crate::Session::download).
///
/// The file is removed when this guard is dropped, unless [`DownloadedFile::persist`] moved it
/// somewhere else first: URLSession's "the file is removed when the handler returns", with Rust's
/// ownership instead of a callback.
#[derive(Debug)]
pub struct DownloadedFile {
    path: Option<PathBuf>,
    /// Keeps an ephemeral session's directory (and so the file) alive while the guard lives.
    _session: Arc<SessionContext>,
}

impl DownloadedFile {
    pub(crate) fn new(path: PathBuf, session: Arc<SessionContext>) -> DownloadedFile {
        DownloadedFile {
            path: Some(path),
            _session: session,
        }
    }

    /// Where the file is now (inside the session directory).
    pub fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }

    /// Moves the file to `to` and keeps it there, as an ordinary file (0644), replacing what is at
    /// `to`. Falls back to copying (aside, then renamed) when `to` is on another file system. A link
    /// at `to` is replaced, never written through.
    ///
    /// # Errors
    /// The file cannot be moved or copied; it stays where it was, and the guard still removes it.
    pub fn persist(mut self, to: impl AsRef<Path>) -> std::io::Result<PathBuf> {
        let to = to.as_ref();
        let from = self.path.clone().unwrap_or_default();
        courier_storage::write::move_into_place(
            &from,
            to,
            courier_storage::write::Existing::Replace,
        )?;
        self.path = None;
        Ok(to.to_path_buf())
    }
}

impl Drop for DownloadedFile {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}
