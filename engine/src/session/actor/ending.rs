//! How a session ends what has no actor: a task that never got one (cancelled, or failed while it
//! waited in its host's line) completes through its state machine here; and last the session
//! itself, whose invalidation closes its free task actors, waits for every task actor to stop, then
//! queues `did_become_invalid` after the tasks' own delegates have heard their last.

use std::time::Instant;

use courier_delegates::{Callback, Error, TaskMetrics, TaskState};
use ractor::ActorRef;

use super::{Entry, SessionMsg, SessionState};
use crate::state::{Effect, Outcome, TaskEvent, TaskMachine};
use crate::task::publish_state;

impl SessionState {
    /// Cancels a task that has no actor: the state machine completes it on the spot.
    pub(super) fn cancel_unstarted(&mut self, id: u64) {
        if let Some(entry) = self.tasks.remove(&id) {
            self.complete_without_actor(entry, TaskEvent::Cancel);
        }
    }

    /// Completes a task that has no actor (never resumed, or resumed into its host's line) with
    /// `event`, a cancel or a failure: its machine (the session's, or a new one) is stepped until
    /// it completes, and the task's terminal gets the outcome.
    pub(super) fn complete_without_actor(&self, entry: Entry, event: TaskEvent<Error>) {
        let (mut machine, resumed_at) = match &entry.held {
            Some(held) => (held.machine, Some(held.resumed_at)),
            None => (TaskMachine::new(), None),
        };
        let mut next = Some(event);
        while let Some(event) = next.take() {
            let (stepped, effects) = machine.step(event);
            machine = stepped;
            for effect in effects {
                match effect {
                    Effect::StateChanged { from, to } => {
                        if to == TaskState::Completed
                            && let Some(at) = resumed_at
                        {
                            self.metrics_without_transfer(&entry, at);
                        }
                        publish_state(&self.ctx, &entry.recorder, entry.callbacks, from, to);
                    }
                    Effect::Complete(outcome) => {
                        entry.terminal.deliver(Err(match outcome {
                            Outcome::Failed(e) => e,
                            Outcome::Cancelled | Outcome::Finished => Error::cancelled(entry.url()),
                        }));
                    }
                    // No transfer runs: it has stopped already.
                    Effect::StopTransfer => next = Some(TaskEvent::TransferStopped),
                    // A task that never started has nothing else to undo.
                    _ => {}
                }
            }
        }
    }

    /// The metrics of a task that ended in its host's line (no request sent), for a delegate that
    /// reads them, as its actor would have delivered them.
    fn metrics_without_transfer(&self, entry: &Entry, resumed_at: Instant) {
        let info = entry.recorder.info();
        let Some(queue) = self
            .ctx
            .delivery(&info)
            .filter(|q| entry.callbacks && q.wants_task(&info, Callback::Metrics))
        else {
            return;
        };
        let metrics = TaskMetrics {
            task_start: resumed_at,
            task_duration: resumed_at.elapsed(),
            redirect_count: 0,
            transactions: Vec::new(),
        };
        let task = info.clone();
        queue.push_task(&info, Callback::Metrics, move |d| {
            d.did_finish_collecting_metrics(&task, &metrics)
        });
    }

    /// Invalidation begins: no task actor joins the free ones any more, and those free now stop.
    pub(super) fn invalidate(&mut self) {
        self.invalidating = true;
        for actor in self.free.close() {
            self.actor_free(actor);
        }
    }

    /// Once invalidation was asked for and no task actor is left, cancels the never-resumed tasks,
    /// queues `did_become_invalid` last and stops.
    pub(super) fn finish_invalidation_if_done(&mut self, me: &ActorRef<SessionMsg>) {
        if !self.invalidating || self.finishing {
            return;
        }
        if self.tasks.values().any(Entry::started) {
            return;
        }
        // Every child stops before the session says it is invalid: the free task actors too
        // (told to stop as invalidation began, or as each said it was free after that).
        if !self.stopping.is_empty() {
            return;
        }
        let ids: Vec<u64> = self.tasks.keys().copied().collect();
        for id in ids {
            self.cancel_unstarted(id);
        }
        self.finishing = true;
        // The stores' last writes land before the session says it is invalid.
        let (queue, invalid_tx) = (self.ctx.queue.clone(), self.invalid_tx.clone());
        let tasks_queue = self.ctx.tasks_queue.get().cloned();
        let error = self.invalid_error.take();
        let ctx = self.ctx.clone();
        let span = self.span.clone();
        tokio::spawn(async move {
            ctx.stores_written().await;
            drop(ctx);
            // The session is invalid once the delegates heard their last: first the queue of its
            // tasks' own delegates ends (dropping them), then the session's delegate gets
            // `did_become_invalid`. (A queue that ended another way, or a callback that
            // panicked, drops its sender: nothing waits forever for it.)
            if let Some(queue) = &tasks_queue {
                let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                if queue.push_last(move |_| drop(tx)) {
                    let _ = rx.await;
                }
            }
            if let Some(queue) = &queue {
                let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                if queue.push_last(move |d| {
                    d.did_become_invalid(error.as_ref());
                    drop(tx);
                }) {
                    let _ = rx.await;
                }
            }
            tracing::debug!(parent: &span, "session invalidated");
            invalid_tx.send_replace(true);
        });
        me.stop(Some("invalidated".into()));
    }
}
