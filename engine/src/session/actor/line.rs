//! A session's tasks waiting in their hosts' lines: a resumed HTTP/1.1 task whose host has no turn
//! free waits here as an entry (its state machine kept in a [`Held`]), and its actor is spawned with
//! the turn when the turn comes. Suspending it takes it out of the line; its resource timeout runs
//! on one timer per session.

use std::time::Instant;

use courier_delegates::{Error, ErrorCode};
use ractor::ActorRef;

use super::{Entry, SessionMsg, SessionState};
use crate::state::{Effect, TaskEvent, TaskMachine};
use crate::task::actor::Started;
use crate::task::publish_state;
use crate::task::transfer::host_queue::{Call, Turn};
use crate::task::transfer::turn_before_start;

/// What the session keeps of a task it resumed into its host's line, until the task's actor
/// takes over (or the task ends there).
pub(super) struct Held {
    /// The task's state machine: running while it waits, suspended if it left the line so.
    pub(super) machine: TaskMachine,
    /// When the task was first resumed: its metrics' start.
    pub(super) resumed_at: Instant,
    /// Its place in the line; `None` once it left it (suspended).
    in_line: Option<Place>,
}

/// A place in a host's line.
#[derive(Clone, Copy)]
struct Place {
    /// Since when the task waits there.
    since: Instant,
    /// The place's number: a turn handed to a place the task left (suspended, then resumed to the
    /// back of the line) is not its.
    number: u64,
}

impl Entry {
    /// Whether the task waits in its host's line.
    pub(super) fn in_line(&self) -> bool {
        self.in_line_since().is_some()
    }

    /// Since when it waits in its host's line, if it does.
    fn in_line_since(&self) -> Option<Instant> {
        self.held.as_ref()?.in_line.map(|p| p.since)
    }
}

impl SessionState {
    /// Resumes a task that has no actor: takes its first turn with its host, or stands it in the
    /// host's line until the turn comes ([`turn_before_start`]), then spawns its actor.
    pub(super) async fn spawn_and_resume(&mut self, me: &ActorRef<SessionMsg>, id: u64) {
        let Some(entry) = self.tasks.get_mut(&id) else {
            return;
        };
        let info = entry.recorder.info();
        let line = entry
            .work
            .as_ref()
            .and_then(|work| turn_before_start(&self.ctx, &info, work));
        if line.is_none() && entry.held.is_none() {
            // The usual start: the actor resumes the task itself.
            return self.spawn(me, id, None).await;
        }
        // Resumed here, and said so now; the actor takes the machine over.
        let (machine, resumed_at) = match entry.held.take() {
            Some(held) => (held.machine, Some(held.resumed_at)),
            None => (TaskMachine::new(), None),
        };
        let (machine, effects) = machine.step::<Error>(TaskEvent::Resume);
        for effect in effects {
            if let Effect::StateChanged { from, to } = effect {
                publish_state(&self.ctx, &entry.recorder, entry.callbacks, from, to);
            }
        }
        // A task that starts at once starts its clocks as its transfer does (no clock read here).
        let started = |turn| Started {
            machine,
            turn,
            since: None,
        };
        let Some(host) = line else {
            // Suspended from its line, and it takes no turn first now (its host was found to
            // speak HTTP/2 meanwhile, say): its transfer decides as it starts.
            return self.spawn(me, id, Some(started(None))).await;
        };
        let place = self.next_place;
        let call = || -> Call {
            let me = me.clone();
            // A session that stopped gives the turn back: it goes on to the next.
            Box::new(
                move |turn| match me.cast(SessionMsg::Turn(id, place, turn)) {
                    Ok(()) => None,
                    Err(ractor::MessagingErr::SendErr(SessionMsg::Turn(_, _, turn))) => Some(turn),
                    // Not sent, and the message with its turn dropped (which hands it on).
                    Err(_) => None,
                },
            )
        };
        match self
            .ctx
            .host_queue
            .try_turn_or_call(&host, info.priority(), call)
        {
            Some(turn) => self.spawn(me, id, Some(started(Some(turn)))).await,
            None => {
                let now = Instant::now();
                entry.held = Some(Box::new(Held {
                    machine,
                    resumed_at: resumed_at.unwrap_or(now),
                    in_line: Some(Place {
                        since: now,
                        number: place,
                    }),
                }));
                self.next_place += 1;
                self.watch_line(me);
            }
        }
    }
    /// Suspends a task waiting in its host's line: it leaves the line (a turn handed to its place
    /// later goes on), and a `resume()` stands it at the back of the line.
    pub(super) fn suspend_in_line(&mut self, id: u64) {
        let Some(entry) = self.tasks.get_mut(&id) else {
            return;
        };
        let Some(held) = entry.held.as_mut() else {
            return;
        };
        held.in_line = None;
        let (machine, effects) = held.machine.step::<Error>(TaskEvent::Suspend);
        held.machine = machine;
        for effect in effects {
            if let Effect::StateChanged { from, to } = effect {
                publish_state(&self.ctx, &entry.recorder, entry.callbacks, from, to);
            }
        }
    }
    /// Makes sure a timer looks at the lines' waiters when the first of them runs out of its
    /// resource timeout (every task of a session has the same). One timer at a time: when it
    /// fires, it looks for the next.
    pub(super) fn watch_line(&mut self, me: &ActorRef<SessionMsg>) {
        if self.line_timer {
            return;
        }
        let Some(first) = self.tasks.values().filter_map(Entry::in_line_since).min() else {
            return;
        };
        // A timeout past what an instant can hold never runs out.
        let Some(deadline) = first.checked_add(self.ctx.config.timeout_for_resource) else {
            return;
        };
        self.line_timer = true;
        let me = me.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(deadline.into()).await;
            let _ = me.cast(SessionMsg::LineDeadline);
        });
    }
    /// Fails the tasks that waited in their hosts' lines for their whole resource timeout (-1001),
    /// as their transfer's timer would have.
    pub(super) fn expire_in_line(&mut self) {
        let budget = self.ctx.config.timeout_for_resource;
        let expired: Vec<u64> = self
            .tasks
            .iter()
            .filter(|(_, e)| {
                e.in_line_since()
                    .is_some_and(|since| since.elapsed() >= budget)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(entry) = self.tasks.remove(&id) {
                let error = Error::new(ErrorCode::TimedOut, "the resource timeout expired")
                    .with_url(entry.url());
                self.complete_without_actor(entry, TaskEvent::Failed(error));
            }
        }
    }

    /// A task waiting at `place` in its host's line has its `turn`: its actor is spawned with it.
    pub(super) async fn take_turn(
        &mut self,
        me: &ActorRef<SessionMsg>,
        id: u64,
        place: u64,
        turn: Turn,
    ) {
        let held = self
            .tasks
            .get_mut(&id)
            .filter(|e| {
                e.held
                    .as_ref()
                    .and_then(|h| h.in_line)
                    .is_some_and(|p| p.number == place)
            })
            .and_then(|e| e.held.take());
        match held {
            Some(held) => {
                let started = Started {
                    machine: held.machine,
                    turn: Some(turn),
                    since: held.in_line.map(|p| p.since),
                };
                self.spawn(me, id, Some(started)).await;
            }
            // It left the line meanwhile (suspended, cancelled, timed out): the turn goes on to
            // the next.
            None => drop(turn),
        }
    }
}
