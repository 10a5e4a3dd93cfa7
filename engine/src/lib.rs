//! Courier: URLSession's model of transfers, for Rust.
//!
//! A [`Session`] owns tasks; a task moves one request's bytes; a delegate hears every step. Sessions and
//! tasks are actors (ractor), each task's lifecycle a pure state machine.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use courier_engine::{Configuration, Session};
//!
//! let session = Session::new(Configuration::default())?;
//! let (body, response) = session.data("https://example.com/").await?;
//! println!("{} bytes, status {}", body.len(), response.status());
//! # Ok(()) }
//! ```
//!
//! Where things are:
//! - [`session`]: [`Session`], the handle applications hold, and the session actor behind it, which
//!   owns the tasks, supervises their actors and carries out invalidation.
//! - [`task`]: the task handles ([`Task`], and [`DataTask`], [`UploadTask`], [`DownloadTask`]
//!   that share its methods; [`WebSocketTask`], which keeps its connection as a WebSocket; and
//!   [`StreamTask`], a TCP connection with STARTTLS), the task actor with its transfer, and where
//!   bodies go (a download's partial file, checkpoints and resume data) and come from (an upload's
//!   bytes, file or stream).
//! - `state`: the task state machine, `(state, event) -> (state, effects)`, with no I/O (internal;
//!   its property tests live beside it).
//! - [`configuration`]: [`Configuration`], a session's settings and their defaults.
//! - [`background`]: background sessions' other side: the service (journal, replay, crash
//!   recovery), its queue and retries, and the wire protocol an application's session speaks to it.
//! - `context`, `stores`, `completion`: what the session and its tasks share, in neutral modules
//!   (`task` never imports `session`; it reports to it through one narrow type, `TaskReport`):
//!   the session context; the cookie jar, URL cache and credential store with their background
//!   saver; a task's one terminal message, delivered (as an error) even if every holder drops it.
//! - `SEMANTICS.md` beside this crate: the guarantees (ordering, exactly one terminal message,
//!   invalidation) on one page.
//!
//! The vocabulary (delegate traits, [`Request`], [`Response`], [`Error`], [`TaskInfo`], and
//! [`retry`]'s rules for trying a failed task again) comes from `courier-delegates` and is
//! re-exported here.

pub mod background;
mod completion;
pub mod configuration;
mod context;
pub mod session;
pub(crate) mod state;
pub mod stores;
pub mod task;

pub use configuration::{
    CleartextPolicy, Configuration, CookieAcceptPolicy, IpVersion, Proxy, SessionKind, TlsVersion,
};
pub use courier_delegates::{
    AuthChallengeDisposition, AuthenticationChallenge, AuthenticationMethod, BodyStream,
    CachePolicy, CachedResponse, Callback, CloseCode, Credential, CredentialPersistence,
    DataDelegate, DelayedRequestDisposition, Delegate, DownloadDelegate, Error, ErrorCode,
    FetchType, Message, ProtectionSpace, ProxyType, Reply, Request, Response, ResponseDisposition,
    ResumeData, ServerTrust, SessionDelegate, TaskDelegate, TaskInfo, TaskKind, TaskLevelDelegate,
    TaskMetrics, TaskState, TransactionMetrics, leave_at_default, plain_file_name, priority, retry,
};
pub use session::{CreateTaskError, Session, identity_from_pem};
pub use stores::{Cookie, CookieRefusal, CookieStorage, CredentialStorage, StoreChoice, UrlCache};
pub use task::{
    Answer, AnswerFuture, AnswerStream, ByteStream, CapturedStream, DataTask, DownloadTask,
    DownloadedFile, InterruptedDownload, Progress, ProtocolHandler, SessionProgress, StreamTask,
    Task, TaskDelegateError, TaskFuture, TaskHandle, UploadBody, UploadTask, WebSocketTask,
};

/// Re-exports of the crates whose types appear in Courier's API.
pub mod reexports {
    pub use bytes;
    pub use http;
    pub use url;
}

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeExamples;
