//! The delegate traits: what an application can hear from, and answer to, a session.
//!
//! Every method has URLSession's default behaviour, so an implementation writes only what it needs. A
//! delegate implements all three traits (empty `impl` blocks for the ones it does not care about) and is
//! then a [`Delegate`]. Methods run on the session's delivery queue, one at a time, in order; they
//! should return quickly and hand long work elsewhere (a slow callback holds back the session's other
//! callbacks, and slows the body delivery of its task).

use bytes::Bytes;

use crate::{Error, Reply, Response, ResponseDisposition, TaskInfo, TaskState};

/// Session-level messages (`URLSessionDelegate`).
pub trait SessionDelegate: Send + Sync + 'static {
    /// The last message of a session: it was invalidated and every task has completed. `error` is
    /// `None` after an explicit invalidation. The session drops its delegate right after this returns.
    fn did_become_invalid(&self, error: Option<&Error>) {
        let _ = error;
    }
}

/// Messages common to every task (`URLSessionTaskDelegate`).
pub trait TaskDelegate: Send + Sync + 'static {
    /// The task's state changed (Courier's addition: URLSession exposes this through key-value
    /// observation of `state`). Comes before the message that caused it is delivered; the change to
    /// `Completed` comes right before [`TaskDelegate::did_complete`].
    fn did_change_state(&self, task: &TaskInfo, from: TaskState, to: TaskState) {
        let _ = (task, from, to);
    }

    /// The task's terminal message, sent exactly once per task, even for a task cancelled before it
    /// was resumed. `error` is `None` on success; HTTP error statuses are successes.
    fn did_complete(&self, task: &TaskInfo, error: Option<&Error>) {
        let _ = (task, error);
    }
}

/// Messages of data tasks (`URLSessionDataDelegate`).
pub trait DataDelegate: Send + Sync + 'static {
    /// The final response's head arrived. Body delivery waits until `reply` is answered; the default
    /// (also sent when `reply` is dropped unanswered) is [`ResponseDisposition::Allow`].
    fn did_receive_response(
        &self,
        task: &TaskInfo,
        response: &Response,
        reply: Reply<ResponseDisposition>,
    ) {
        let _ = (task, response);
        reply.send(ResponseDisposition::Allow);
    }

    /// Body bytes arrived, in order. Called zero or more times after `did_receive_response`.
    fn did_receive_data(&self, task: &TaskInfo, data: &Bytes) {
        let _ = (task, data);
    }
}

/// A complete delegate: every protocol a session may call. Implemented for any type that implements the
/// three traits.
pub trait Delegate: SessionDelegate + TaskDelegate + DataDelegate {}

impl<T: SessionDelegate + TaskDelegate + DataDelegate> Delegate for T {}
