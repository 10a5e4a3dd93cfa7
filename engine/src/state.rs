//! The task state machine: a pure function from (state, event) to (state, effects).
//!
//! The task actor feeds it every event (a control call from a handle, news from the transfer) and
//! carries out the effects it returns; the machine itself does no I/O, so property tests drive it
//! directly. Three guarantees live here rather than in the actor:
//! - exactly one [`Effect::Complete`] per task, and it is the last effect the machine ever emits;
//! - `Completed` absorbs every event;
//! - `resume`, `suspend` and `cancel` on a cancelling or completed task do nothing (spec 0.10).

use courier_delegates::TaskState;
use smallvec::{SmallVec, smallvec};

/// The effects of one step, in order: at most four, kept inline (a task takes several steps per
/// request, and none of them allocates).
pub(crate) type Effects<E> = SmallVec<[Effect<E>; 4]>;

/// Where the transfer is, below the public state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Phase {
    /// Never resumed: nothing was sent.
    NotStarted,
    /// The request is out; waiting for the response head.
    AwaitingResponse,
    /// The response head is in; waiting for the delegate's disposition.
    AwaitingDisposition,
    /// Receiving the body.
    Receiving,
}

/// What happened to a task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TaskEvent<E> {
    /// `resume()` was called.
    Resume,
    /// `suspend()` was called.
    Suspend,
    /// `cancel()` was called, or the delegate answered the response with cancel.
    Cancel,
    /// The final response head arrived.
    ResponseReceived,
    /// The delegate allowed the body.
    BodyAllowed,
    /// Body bytes arrived (or, for a download, were written, or it resumed at an offset).
    DataReceived,
    /// Request body bytes went out.
    BodySent,
    /// The body ended normally.
    Finished,
    /// The transfer failed.
    Failed(E),
    /// The transfer stopped after a cancel.
    TransferStopped,
}

/// Why a task completed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome<E> {
    /// The transfer finished (whatever the HTTP status).
    Finished,
    /// The transfer failed.
    Failed(E),
    /// The task was cancelled.
    Cancelled,
}

/// What the actor must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Effect<E> {
    /// Publish a state change (and tell the delegate).
    StateChanged {
        /// The state before.
        from: TaskState,
        /// The state after.
        to: TaskState,
    },
    /// Send the request.
    StartTransfer,
    /// Stop reading; stop the timers.
    PauseTransfer,
    /// Go on reading where the transfer paused.
    ContinueTransfer,
    /// Stop the transfer for good; report [`TaskEvent::TransferStopped`] when it has stopped.
    StopTransfer,
    /// Hand the response to the delegate and wait for its disposition.
    AskDisposition,
    /// Let the body flow.
    ReleaseBody,
    /// Hand the bytes that arrived to the delegate (or the buffer of a completion-form task); for a
    /// download, report its progress.
    DeliverData,
    /// Report request body progress (`did_send_body_data`).
    ReportSent,
    /// The body is complete: hand over what was gathered (a download's file goes to
    /// `did_finish_downloading_to`). Comes right before the change to `Completed`.
    HandOver,
    /// Deliver the terminal message. Always the last effect of the task.
    Complete(Outcome<E>),
}

/// A task's state machine: the public state and the transfer phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TaskMachine {
    state: TaskState,
    phase: Phase,
}

impl Default for TaskMachine {
    fn default() -> TaskMachine {
        TaskMachine::new()
    }
}

impl TaskMachine {
    /// A new task: suspended, not started.
    pub(crate) fn new() -> TaskMachine {
        TaskMachine {
            state: TaskState::Suspended,
            phase: Phase::NotStarted,
        }
    }

    /// The public state.
    pub(crate) fn state(&self) -> TaskState {
        self.state
    }

    /// The transfer phase.
    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// True once the task was resumed at least once (the property tests check it).
    #[cfg(test)]
    pub(crate) fn was_started(&self) -> bool {
        self.phase != Phase::NotStarted
    }

    /// Applies `event`: the next machine and the effects to carry out, in order.
    pub(crate) fn step<E>(self, event: TaskEvent<E>) -> (TaskMachine, Effects<E>) {
        use Effect as F;
        use TaskEvent as Ev;
        use TaskState::{Canceling, Completed, Running, Suspended};

        let TaskMachine { state, phase } = self;
        let to = |state, phase| TaskMachine { state, phase };
        let complete = |from: TaskState, phase, outcome| {
            (
                to(Completed, phase),
                smallvec![
                    F::StateChanged {
                        from,
                        to: Completed,
                    },
                    F::Complete(outcome),
                ],
            )
        };

        match (state, event) {
            (Completed, _) => (self, Effects::new()),

            (Canceling, Ev::TransferStopped) => complete(Canceling, phase, Outcome::Cancelled),
            // Resume, suspend and cancel are no-ops while cancelling; news from a transfer being
            // stopped is dropped (the stop's own report follows).
            (Canceling, _) => (self, Effects::new()),

            (Running, Ev::Resume) | (Suspended, Ev::Suspend) => (self, Effects::new()),
            (Suspended, Ev::Resume) => {
                let (phase, effect) = match phase {
                    Phase::NotStarted => (Phase::AwaitingResponse, F::StartTransfer),
                    started => (started, F::ContinueTransfer),
                };
                (
                    to(Running, phase),
                    smallvec![
                        F::StateChanged {
                            from: Suspended,
                            to: Running,
                        },
                        effect,
                    ],
                )
            }
            (Running, Ev::Suspend) => (
                to(Suspended, phase),
                smallvec![
                    F::StateChanged {
                        from: Running,
                        to: Suspended,
                    },
                    F::PauseTransfer,
                ],
            ),

            (from, Ev::Cancel) if phase == Phase::NotStarted => (
                to(Completed, phase),
                smallvec![
                    F::StateChanged {
                        from,
                        to: Canceling,
                    },
                    F::StateChanged {
                        from: Canceling,
                        to: Completed,
                    },
                    F::Complete(Outcome::Cancelled),
                ],
            ),
            (from, Ev::Cancel) => (
                to(Canceling, phase),
                smallvec![
                    F::StateChanged {
                        from,
                        to: Canceling,
                    },
                    F::StopTransfer,
                ],
            ),

            (s, Ev::ResponseReceived) if phase == Phase::AwaitingResponse => (
                to(s, Phase::AwaitingDisposition),
                smallvec![F::AskDisposition],
            ),
            (s, Ev::BodyAllowed) if phase == Phase::AwaitingDisposition => {
                (to(s, Phase::Receiving), smallvec![F::ReleaseBody])
            }
            (_, Ev::DataReceived) if phase == Phase::Receiving => (self, smallvec![F::DeliverData]),
            (_, Ev::BodySent) if phase != Phase::NotStarted => (self, smallvec![F::ReportSent]),
            (from, Ev::Finished) if phase == Phase::Receiving => {
                let (machine, mut effects) = complete(from, phase, Outcome::Finished);
                effects.insert(0, F::HandOver);
                (machine, effects)
            }
            (from, Ev::Failed(e)) => complete(from, phase, Outcome::Failed(e)),

            // Anything else is news that does not fit the phase (a stale message): ignored.
            (_, _) => (self, Effects::new()),
        }
    }
}

#[cfg(test)]
mod tests;
