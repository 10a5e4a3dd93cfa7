//! `TaskInfo`: the live, read-only view of one task that handles and delegate callbacks share.
//!
//! The engine's task actor is the only writer; it holds the [`TaskRecorder`] made together with the view.
//! Everything here is lock-light (atomics, short mutexes) because handles read it from any thread.

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::{Error, Request, Response};

/// A task's lifecycle state (`URLSessionTask.State`).
///
/// New tasks are `Suspended`; `resume()` makes them `Running`; `cancel()` makes them `Canceling`; they end
/// `Completed` once their one terminal message is out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaskState {
    /// Moving bytes, or waiting for the network.
    Running,
    /// Created and not yet resumed, or suspended: no traffic and no timers.
    Suspended,
    /// Cancelled; the terminal message is on its way.
    Canceling,
    /// The terminal message was sent. Nothing more happens to this task.
    Completed,
}

impl TaskState {
    /// The lower-case name the event stream uses (`running`).
    pub fn name(self) -> &'static str {
        match self {
            TaskState::Running => "running",
            TaskState::Suspended => "suspended",
            TaskState::Canceling => "canceling",
            TaskState::Completed => "completed",
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            TaskState::Running => 0,
            TaskState::Suspended => 1,
            TaskState::Canceling => 2,
            TaskState::Completed => 3,
        }
    }

    fn from_u8(v: u8) -> TaskState {
        match v {
            0 => TaskState::Running,
            1 => TaskState::Suspended,
            2 => TaskState::Canceling,
            _ => TaskState::Completed,
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What kind of task this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TaskKind {
    /// Moves a response body into memory (`URLSessionDataTask`).
    Data,
    /// Sends a body and moves the response body into memory (`URLSessionUploadTask`).
    Upload,
    /// Moves a response body into a file (`URLSessionDownloadTask`).
    Download,
    /// Exchanges messages over a WebSocket (`URLSessionWebSocketTask`).
    WebSocket,
    /// Reads and writes a TCP connection, with TLS started on demand (`URLSessionStreamTask`).
    Stream,
}

/// URLSession's priority hints.
pub mod priority {
    /// `URLSessionTask.defaultPriority`.
    pub const DEFAULT: f32 = 0.5;
    /// `URLSessionTask.lowPriority`.
    pub const LOW: f32 = 0.25;
    /// `URLSessionTask.highPriority`.
    pub const HIGH: f32 = 0.75;
}

/// The live view of one task: identifier, state, requests, response, counters and error.
///
/// Cheap to clone (one `Arc`); every clone sees the same task. Delegate callbacks receive it, and the
/// engine's task handles dereference to it.
#[derive(Clone)]
pub struct TaskInfo {
    shared: Arc<Shared>,
}

struct Shared {
    id: u64,
    kind: TaskKind,
    state: AtomicU8,
    priority_bits: AtomicU32,
    earliest_begin_date: Mutex<Option<std::time::SystemTime>>,
    description: Mutex<String>,
    original_request: Request,
    /// Set once it differs from the original (a redirect, a task made from resume data): most
    /// tasks never need a copy of their request. Boxed: inline, the empty slot took 272 of every
    /// task's 704 bytes here, suspended ones too.
    current_request: Mutex<Option<Box<Request>>>,
    response: Mutex<Option<Response>>,
    error: Mutex<Option<Error>>,
    bytes_received: AtomicI64,
    bytes_expected_to_receive: AtomicI64,
    bytes_sent: AtomicI64,
    bytes_expected_to_send: AtomicI64,
    /// `countOfBytesClientExpectsToSend` / `Receive`: the application's hints, -1 when not given.
    client_expects_to_send: AtomicI64,
    client_expects_to_receive: AtomicI64,
    /// The task's own delegate, from when one is attached (before the task is first resumed)
    /// until the task's completion is on its way.
    own: Mutex<Option<Arc<crate::queue::OwnDelegate>>>,
    /// True once a delegate was attached: a task has one at most once.
    attached: AtomicBool,
    /// `prefersIncrementalDelivery`.
    incremental: AtomicBool,
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it (the values are plain data).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl TaskInfo {
    /// A new suspended task and the recorder its owner writes through.
    pub fn new(id: u64, kind: TaskKind, request: Request) -> (TaskInfo, TaskRecorder) {
        let expected_to_send = request.body().map_or(0, |b| b.len() as i64);
        let shared = Arc::new(Shared {
            id,
            kind,
            state: AtomicU8::new(TaskState::Suspended.to_u8()),
            priority_bits: AtomicU32::new(priority::DEFAULT.to_bits()),
            earliest_begin_date: Mutex::new(None),
            description: Mutex::new(String::new()),
            current_request: Mutex::new(None),
            original_request: request,
            response: Mutex::new(None),
            error: Mutex::new(None),
            bytes_received: AtomicI64::new(0),
            bytes_expected_to_receive: AtomicI64::new(-1),
            bytes_sent: AtomicI64::new(0),
            bytes_expected_to_send: AtomicI64::new(expected_to_send),
            client_expects_to_send: AtomicI64::new(-1),
            client_expects_to_receive: AtomicI64::new(-1),
            own: Mutex::new(None),
            attached: AtomicBool::new(false),
            incremental: AtomicBool::new(true),
        });
        (
            TaskInfo {
                shared: shared.clone(),
            },
            TaskRecorder { shared },
        )
    }

    /// `taskIdentifier`: unique within the session, 1, 2, 3... in creation order.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The kind of task.
    pub fn kind(&self) -> TaskKind {
        self.shared.kind
    }

    /// The current state.
    pub fn state(&self) -> TaskState {
        TaskState::from_u8(self.shared.state.load(Ordering::Acquire))
    }

    /// `taskDescription`: a free label for the application.
    pub fn description(&self) -> String {
        lock(&self.shared.description).clone()
    }

    /// Sets the label.
    pub fn set_description(&self, description: impl Into<String>) {
        *lock(&self.shared.description) = description.into();
    }

    /// `prefersIncrementalDelivery` (true by default): whether a data task hands its body to
    /// `did_receive_data` as it arrives. False: the whole body once it is in, in one
    /// `did_receive_data`, before `will_cache_response` and the metrics (a task that stops early
    /// gets what came, before its completion). Set it before `resume()`.
    pub fn prefers_incremental_delivery(&self) -> bool {
        self.shared.incremental.load(Ordering::Relaxed)
    }

    /// Sets [`TaskInfo::prefers_incremental_delivery`].
    pub fn set_prefers_incremental_delivery(&self, incremental: bool) {
        self.shared
            .incremental
            .store(incremental, Ordering::Relaxed);
    }

    /// The priority hint, 0.0 to 1.0 (default 0.5).
    pub fn priority(&self) -> f32 {
        f32::from_bits(self.shared.priority_bits.load(Ordering::Relaxed))
    }

    /// Sets the priority hint, clamped to 0.0..=1.0.
    pub fn set_priority(&self, priority: f32) {
        let p = if priority.is_nan() {
            priority::DEFAULT
        } else {
            priority.clamp(0.0, 1.0)
        };
        self.shared
            .priority_bits
            .store(p.to_bits(), Ordering::Relaxed);
    }

    /// `earliestBeginDate`: the task does not start before this moment. Set it before the task is
    /// first resumed.
    ///
    /// Honoured by background sessions, whose service holds the task in its queue until then
    /// (also across restarts); a default session starts the task when it is resumed.
    pub fn earliest_begin_date(&self) -> Option<std::time::SystemTime> {
        *lock(&self.shared.earliest_begin_date)
    }

    /// Sets the earliest begin date (`None`: as soon as resumed).
    pub fn set_earliest_begin_date(&self, date: Option<std::time::SystemTime>) {
        *lock(&self.shared.earliest_begin_date) = date;
    }

    /// `countOfBytesClientExpectsToSend`: the application's best guess at an upper bound of the
    /// body bytes this task will send (`None`, URLSession's -1, when it gave none). A hint, never a
    /// limit: an upload's progress total uses it while the body's own length is unknown (a
    /// stream).
    pub fn count_of_bytes_client_expects_to_send(&self) -> Option<u64> {
        known(self.shared.client_expects_to_send.load(Ordering::Relaxed))
    }

    /// Sets the send hint (`None`: no guess).
    pub fn set_count_of_bytes_client_expects_to_send(&self, bytes: Option<u64>) {
        self.shared
            .client_expects_to_send
            .store(unknown_as_minus_one(bytes), Ordering::Relaxed);
    }

    /// `countOfBytesClientExpectsToReceive`: the application's best guess at an upper bound of the
    /// body bytes this task will receive (`None` when it gave none). A hint, never a limit:
    /// the task's progress total uses it while the server has not said (no `Content-Length`).
    pub fn count_of_bytes_client_expects_to_receive(&self) -> Option<u64> {
        known(
            self.shared
                .client_expects_to_receive
                .load(Ordering::Relaxed),
        )
    }

    /// Sets the receive hint (`None`: no guess).
    pub fn set_count_of_bytes_client_expects_to_receive(&self, bytes: Option<u64>) {
        self.shared
            .client_expects_to_receive
            .store(unknown_as_minus_one(bytes), Ordering::Relaxed);
    }

    /// The task's own delegate (URLSession's `task.delegate`), when one was attached: it hears the
    /// task's messages first, and the session's delegate those it leaves at their default. Held
    /// until the task completes, as URLSession holds it; `None` from then on.
    pub fn delegate(&self) -> Option<Arc<dyn crate::TaskLevelDelegate>> {
        self.own().map(|own| own.delegate.clone())
    }

    /// The task's own delegate with its bookkeeping.
    pub(crate) fn own(&self) -> Option<Arc<crate::queue::OwnDelegate>> {
        if !self.shared.attached.load(Ordering::Acquire) {
            return None; // the common case, without a lock
        }
        lock(&self.shared.own).clone()
    }

    /// Attaches `own`; false when the task had one already.
    pub(crate) fn attach(&self, own: crate::queue::OwnDelegate) -> bool {
        let mut slot = lock(&self.shared.own);
        if self.shared.attached.swap(true, Ordering::AcqRel) {
            return false;
        }
        *slot = Some(Arc::new(own));
        true
    }

    /// The request as the task was created with it.
    pub fn original_request(&self) -> &Request {
        &self.shared.original_request
    }

    /// The request being sent now (changes on redirects).
    pub fn current_request(&self) -> Request {
        lock(&self.shared.current_request)
            .as_deref()
            .cloned()
            .unwrap_or_else(|| self.shared.original_request.clone())
    }

    /// The latest response; the final one once the task has completed.
    pub fn response(&self) -> Option<Response> {
        lock(&self.shared.response).clone()
    }

    /// The error the task completed with; `None` while running and after success.
    pub fn error(&self) -> Option<Error> {
        lock(&self.shared.error).clone()
    }

    /// `countOfBytesReceived`: body bytes received.
    pub fn bytes_received(&self) -> u64 {
        known(self.shared.bytes_received.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// `countOfBytesExpectedToReceive`: the Content-Length; `None` when unknown (URLSession's
    /// -1, `NSURLSessionTransferSizeUnknown`).
    pub fn bytes_expected_to_receive(&self) -> Option<u64> {
        known(
            self.shared
                .bytes_expected_to_receive
                .load(Ordering::Relaxed),
        )
    }

    /// `countOfBytesSent`: body bytes sent.
    pub fn bytes_sent(&self) -> u64 {
        known(self.shared.bytes_sent.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// `countOfBytesExpectedToSend`: the body length (0 without a body); `None` when unknown (a
    /// stream; URLSession's -1).
    pub fn bytes_expected_to_send(&self) -> Option<u64> {
        known(self.shared.bytes_expected_to_send.load(Ordering::Relaxed))
    }
}

impl fmt::Debug for TaskInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskInfo")
            .field("id", &self.id())
            .field("kind", &self.kind())
            .field("state", &self.state())
            .field("url", &self.shared.original_request.url_str())
            .finish()
    }
}

/// The write side of a [`TaskInfo`], held by the task's owner (the engine's task actor).
#[derive(Clone)]
pub struct TaskRecorder {
    shared: Arc<Shared>,
}

impl TaskRecorder {
    /// Publishes a new state.
    pub fn set_state(&self, state: TaskState) {
        self.shared.state.store(state.to_u8(), Ordering::Release);
    }

    /// Publishes the response and its expected length.
    pub fn set_response(&self, response: Response) {
        self.shared.bytes_expected_to_receive.store(
            unknown_as_minus_one(response.expected_content_length()),
            Ordering::Relaxed,
        );
        *lock(&self.shared.response) = Some(response);
    }

    /// Publishes the request being sent now.
    pub fn set_current_request(&self, request: Request) {
        *lock(&self.shared.current_request) = Some(Box::new(request));
    }

    /// Publishes the error the task completed with.
    pub fn set_error(&self, error: Error) {
        *lock(&self.shared.error) = Some(error);
    }

    /// Adds received body bytes.
    pub fn add_received(&self, n: usize) {
        self.shared
            .bytes_received
            .fetch_add(n as i64, Ordering::Relaxed);
    }

    /// Sets the count of body bytes received (a resumed download starts at its offset).
    pub fn set_received(&self, n: i64) {
        self.shared.bytes_received.store(n, Ordering::Relaxed);
    }

    /// Sets the expected count of body bytes to receive (-1 when unknown).
    pub fn set_expected_to_receive(&self, n: i64) {
        self.shared
            .bytes_expected_to_receive
            .store(n, Ordering::Relaxed);
    }

    /// Sets the expected count of body bytes to send (-1 when unknown, as for a stream).
    pub fn set_expected_to_send(&self, n: i64) {
        self.shared
            .bytes_expected_to_send
            .store(n, Ordering::Relaxed);
    }

    /// Sets the count of body bytes sent: for a writer that keeps the total itself (a stream
    /// task's transfer).
    pub fn set_sent(&self, n: i64) {
        self.shared.bytes_sent.store(n, Ordering::Relaxed);
    }

    /// Adds `n` to the count of body bytes sent: for a writer that counts chunk by chunk as they
    /// go out (a request body). A task has one writer of the count, never two.
    pub fn add_sent(&self, n: u64) {
        self.shared
            .bytes_sent
            .fetch_add(i64::try_from(n).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    /// Lets the task's own delegate go: the task's completion is on its way (queued messages
    /// hold it until they have run).
    pub fn release_delegate(&self) {
        if self.shared.attached.load(Ordering::Acquire) {
            lock(&self.shared.own).take();
        }
    }

    /// The view this recorder writes to.
    pub fn info(&self) -> TaskInfo {
        TaskInfo {
            shared: self.shared.clone(),
        }
    }
}

/// A count kept with URLSession's -1 for "unknown", as Rust gives it: `None` for -1 (or any
/// negative), the count otherwise.
pub fn known(count: i64) -> Option<u64> {
    u64::try_from(count).ok()
}

/// The other way: a count for URLSession's -1 convention (the CLI's JSON events keep it).
pub fn unknown_as_minus_one(count: Option<u64>) -> i64 {
    count.and_then(|n| i64::try_from(n).ok()).unwrap_or(-1)
}
