//! The vocabulary an application speaks with Courier's engine.
//!
//! Nothing here does I/O. Where things are:
//! - [`delegate`]: the delegate traits ([`SessionDelegate`], [`TaskDelegate`], [`DataDelegate`],
//!   [`DownloadDelegate`]), the [`Delegate`] bundle a session holds and the [`TaskLevelDelegate`]
//!   one a task may carry of its own. Every method is optional, with URLSession's default.
//! - [`challenge`]: authentication challenges, protection spaces, credentials and the dispositions
//!   that answer them.
//! - [`reply`]: [`Reply`], the completion handler of callbacks that need an answer, and the answers
//!   ([`ResponseDisposition`]).
//! - [`task`]: [`TaskInfo`], the live read-only view of a task that handles and callbacks share, and
//!   [`TaskState`].
//! - [`request`]: [`Request`] and [`Response`].
//! - [`resume_data`]: [`ResumeData`], the opaque blob a stopped download continues from.
//! - [`error`]: [`Error`] and [`ErrorCode`] (Darwin's `NSURLErrorDomain` names and numbers).
//! - [`metrics`]: [`TaskMetrics`], one [`TransactionMetrics`] per request a task sent.
//! - [`web_socket`]: a WebSocket task's [`Message`] and [`CloseCode`].
//! - [`retry`]: when a failed task is worth trying again (its error or its status), and how long to
//!   wait (the server's `Retry-After`, else a doubling backoff).
//! - [`queue`]: [`DeliveryQueue`], the serial queue that hands callbacks to the application one at a
//!   time, in order; its thread's channel (`queue/thread.rs`) wakes that thread once per turn of the
//!   runtime, not once per callback.

pub mod challenge;
pub mod delegate;
pub mod error;
pub mod metrics;
pub mod queue;
pub mod reply;
pub mod request;
pub mod resume_data;
pub mod retry;
pub mod task;
pub mod web_socket;

pub use challenge::{
    AuthChallengeDisposition, AuthenticationChallenge, AuthenticationMethod, Credential,
    CredentialPersistence, ProtectionSpace, ProxyType, ServerTrust,
};
pub use delegate::{
    BodyStream, DataDelegate, Delegate, DownloadDelegate, SessionDelegate, TaskDelegate,
    TaskLevelDelegate,
};
pub use error::{Error, ErrorCode};
pub use metrics::{FetchType, TaskMetrics, TransactionMetrics};
pub use queue::{Callback, DeliveryQueue, leave_at_default};
pub use reply::{DelayedRequestDisposition, Reply, ResponseDisposition};
pub use request::{CachePolicy, CachedResponse, Request, Response, plain_file_name};
pub use resume_data::ResumeData;
pub use task::{TaskInfo, TaskKind, TaskRecorder, TaskState, priority};
pub use web_socket::{CloseCode, Message};
