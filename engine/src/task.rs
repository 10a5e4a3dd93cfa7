//! Tasks: the handle an application holds ([`DataTask`]) and what the task actor and its session share
//! to publish state changes and deliver the one terminal message.
//!
//! - `actor`: the task actor, which owns the transfer and applies the state machine.
//! - `transfer`: the transfer itself (request, response head, body), run beside the actor.

pub(crate) mod actor;
pub(crate) mod transfer;

use std::ops::Deref;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use courier_delegates::{Error, ErrorCode, Response, TaskInfo, TaskRecorder, TaskState};
use tokio::sync::oneshot;

use crate::session::{SessionContext, SessionCore, SessionMsg};

/// A control call from a task handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Control {
    Resume,
    Suspend,
    Cancel,
    /// Test hook: make the task actor panic.
    #[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
    Crash,
}

/// Where a task's terminal message goes.
pub(crate) enum Sink {
    /// To the session's delegate (`did_complete`), after the task's other callbacks.
    Delegate,
    /// To the caller awaiting the completion form (`Session::data`); no delegate callbacks.
    Await(oneshot::Sender<Result<(Bytes, Response), Error>>),
    /// Nowhere: a delegate-style task in a session without a delegate.
    Silent,
}

/// The task's terminal message, taken exactly once by whoever completes the task: its actor, or the
/// session when the actor died first.
#[derive(Clone)]
pub(crate) struct Terminal(Arc<Mutex<Option<Sink>>>);

impl Terminal {
    pub(crate) fn new(sink: Sink) -> Terminal {
        Terminal(Arc::new(Mutex::new(Some(sink))))
    }

    fn take(&self) -> Option<Sink> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// True while nobody has delivered the terminal message yet.
    pub(crate) fn is_pending(&self) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).is_some()
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
    if callbacks && let Some(queue) = &ctx.queue {
        let info = recorder.info();
        queue.push(move |d| d.did_change_state(&info, from, to));
    }
}

/// Delivers the terminal message, once. Returns false when it had been delivered already.
pub(crate) fn deliver_terminal(
    ctx: &SessionContext,
    recorder: &TaskRecorder,
    terminal: &Terminal,
    result: Result<Bytes, Error>,
) -> bool {
    let Some(sink) = terminal.take() else {
        return false;
    };
    let info = recorder.info();
    if let Err(e) = &result {
        recorder.set_error(e.clone());
    }
    tracing::debug!(task = info.id(), error = ?result.as_ref().err().map(|e| e.code()), "task completed");
    match sink {
        Sink::Delegate => {
            if let Some(queue) = &ctx.queue {
                let error = result.err();
                queue.push(move |d| d.did_complete(&info, error.as_ref()));
            }
        }
        Sink::Await(tx) => {
            let answer = result.and_then(|body| match info.response() {
                Some(response) => Ok((body, response)),
                None => Err(Error::new(ErrorCode::BadServerResponse, "no response")
                    .with_url(info.original_request().url_str())),
            });
            // The caller may have stopped waiting (its future was dropped): nothing to do then.
            let _ = tx.send(answer);
        }
        Sink::Silent => {}
    }
    true
}

/// Completes a task whose actor is gone (failed, panicked or was killed) without having completed it.
pub(crate) fn complete_orphan(
    ctx: &SessionContext,
    recorder: &TaskRecorder,
    terminal: &Terminal,
    callbacks: bool,
    why: &str,
) {
    if !terminal.is_pending() {
        return;
    }
    let info = recorder.info();
    let from = info.state();
    if from != TaskState::Completed {
        publish_state(ctx, recorder, callbacks, from, TaskState::Completed);
    }
    let error = Error::new(
        ErrorCode::Unknown,
        format!("the task's actor failed: {why}"),
    )
    .with_url(info.original_request().url_str());
    deliver_terminal(ctx, recorder, terminal, Err(error));
}

/// A data task (`URLSessionDataTask`): loads a URL's body into memory.
///
/// Created suspended by [`Session::data_task`](crate::Session::data_task); nothing goes on the wire
/// until [`DataTask::resume`]. Handles are cheap clones of one task. A `DataTask` dereferences to its
/// [`TaskInfo`], the read-only view (identifier, state, requests, response, counters, error) that
/// delegate callbacks receive too.
///
/// `resume`, `suspend` and `cancel` return at once, like URLSession's; the state they cause is
/// published when the task's actor has applied them (microseconds later), and the delegate hears of
/// it through `did_change_state`.
#[derive(Clone)]
pub struct DataTask {
    info: TaskInfo,
    /// Keeps the session from invalidating itself on drop while a task handle is still held.
    session: Arc<SessionCore>,
}

impl DataTask {
    pub(crate) fn new(info: TaskInfo, session: Arc<SessionCore>) -> DataTask {
        DataTask { info, session }
    }

    fn control(&self, control: Control) {
        // A session that has gone away has completed every task already: nothing left to control.
        let _ = self
            .session
            .actor
            .cast(SessionMsg::Control(self.info.id(), control));
    }

    /// Starts the task, or continues it after [`DataTask::suspend`]. Does nothing on a cancelling
    /// or completed task.
    pub fn resume(&self) {
        self.control(Control::Resume);
    }

    /// Pauses the task: no bytes are read and no timers run until it is resumed; the same transfer
    /// then continues.
    pub fn suspend(&self) {
        self.control(Control::Suspend);
    }

    /// Cancels the task: it completes with [`ErrorCode::Cancelled`] (-999), even if it was never
    /// resumed. Does nothing on a cancelling or completed task.
    pub fn cancel(&self) {
        self.control(Control::Cancel);
    }

    /// The read-only view of the task.
    pub fn info(&self) -> &TaskInfo {
        &self.info
    }

    /// Test hook: makes the task's actor panic, as a bug in it would. The session completes the
    /// task with an error and goes on.
    #[cfg(feature = "test-hooks")]
    pub fn inject_actor_panic(&self) {
        self.control(Control::Crash);
    }
}

impl Deref for DataTask {
    type Target = TaskInfo;

    fn deref(&self) -> &TaskInfo {
        &self.info
    }
}

impl std::fmt::Debug for DataTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DataTask").field(&self.info).finish()
    }
}
