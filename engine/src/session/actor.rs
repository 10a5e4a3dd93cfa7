//! The session actor: owns the session's tasks, supervises their actors, and invalidates.
//!
//! A task is only an entry here until its first `resume()`; its actor is spawned then, linked to this
//! one, so a queue of many waiting tasks costs little. A resumed task whose host has no turn free
//! (every connection the configuration allows it is busy) waits in its host's line here, still
//! without an actor: its actor is spawned, with the turn, when the turn comes (`actor/line.rs`).
//! Control calls from handles come through here in order, and are relayed to the task's actor once
//! it exists. When a task ends, its actor joins the session's free actors (`actor/free.rs`), and the
//! session gives it its next task, which spares the spawn, the links and the stop of an actor per
//! task. Every running task still has an actor of its own, linked to this one. When a task actor
//! stops before its task ended (a panic, a failure), this actor hears of it through supervision and
//! delivers the task's terminal message, with an error. Invalidation waits until every started task
//! has ended and every task actor has stopped, then queues `did_become_invalid` as the delegate's
//! last callback (`actor/ending.rs`, with the tasks that end without an actor).

use std::sync::Arc;

use courier_delegates::{TaskInfo, TaskRecorder, TaskState};
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::sync::watch;
use tracing::Instrument;

use crate::completion::Terminal;
use crate::context::SessionContext;
use crate::task::actor::{Doorbell, Started, TaskActor, TaskArgs, TaskMsg};
use crate::task::download::resume_data_of;
use crate::task::id_map::IdMap;
use crate::task::transfer::host_queue::Turn;
use crate::task::{Control, PartialSlot, SessionLink, TaskReport, Work, complete_orphan};

mod ending;
mod free;
mod line;

use free::FreeActors;
use line::Held;

/// Messages a session actor handles.
pub(crate) enum SessionMsg {
    /// A new task (suspended, not yet resumed).
    Register {
        recorder: TaskRecorder,
        terminal: Terminal,
        callbacks: bool,
        work: Work,
        /// A download's partial-file slot (shared with its handles), an empty one otherwise.
        partial: PartialSlot,
        /// Start it now, as if `resume()` came right after (the completion forms).
        resume: bool,
    },
    /// News from the task side: a handle's control call or last drop, a conversion.
    Task(TaskReport),
    /// `all_tasks()`.
    AllTasks(RpcReplyPort<Vec<TaskInfo>>),
    /// Test hook: how many tasks the session holds an entry for.
    #[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
    CountEntries(RpcReplyPort<usize>),
    /// Test hook: how many task actors are running.
    #[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
    CountActors(RpcReplyPort<usize>),
    /// `finish_tasks_and_invalidate()` (`cancel: false`) or `invalidate_and_cancel()`.
    Invalidate { cancel: bool },
    /// A background session lost its service: it becomes invalid with this error (-997,
    /// `backgroundSessionWasDisconnected`); its tasks go on in the service for the next session.
    Disconnected(courier_delegates::Error),
    /// A task waiting in its host's line here has its turn: the task's id, its place's number.
    Turn(u64, u64, Turn),
    /// The first of the tasks waiting in their hosts' lines may have run out of its resource
    /// timeout.
    LineDeadline,
}

/// The link a task actor reports through: the session's address, which (unlike a handle's link)
/// does not keep the session from invalidating itself, and its free actors.
struct ActorLink {
    session: ActorRef<SessionMsg>,
    free: Arc<FreeActors>,
}

impl SessionLink for ActorLink {
    fn report(&self, report: TaskReport) -> bool {
        self.session.cast(SessionMsg::Task(report)).is_ok()
    }

    fn actor_free(&self, actor: ActorRef<TaskMsg>) -> bool {
        match self.free.join(actor) {
            Ok(()) => true,
            Err(actor) => self.report(TaskReport::ActorFree(actor)),
        }
    }
}

pub(crate) struct SessionArgs {
    pub(crate) ctx: Arc<SessionContext>,
    pub(crate) invalid_tx: watch::Sender<bool>,
}

pub(crate) struct SessionActor;

/// Why an ended task is forgotten, should its terminal message be pending after all (it never is:
/// a task actor is free only once its task completed).
const ENDED: &str = "its actor was freed before it completed";

/// One task, as the session knows it.
struct Entry {
    recorder: TaskRecorder,
    terminal: Terminal,
    callbacks: bool,
    /// What the task does, until its actor takes it.
    work: Option<Work>,
    /// A download's partial file, for resume data should its actor die.
    partial: PartialSlot,
    /// The task's actor, from its first `resume()` until it stops (from its turn, for a task that
    /// waited in its host's line).
    actor: Option<ActorRef<TaskMsg>>,
    /// Rung after each control call relayed to the actor: a completion-form task's actor may be
    /// polling its transfer instead of reading messages (`task/actor/inline.rs`).
    doorbell: Option<Doorbell>,
    /// A task resumed into its host's line: what this actor keeps of it until its actor takes
    /// over. Boxed: only waiting tasks have one, and every entry would carry its room otherwise.
    held: Option<Box<Held>>,
}

impl Entry {
    /// Resumed at least once: it has an actor, or its machine is kept here.
    fn started(&self) -> bool {
        self.actor.is_some() || self.held.is_some()
    }

    /// The task's URL, as its errors name it.
    fn url(&self) -> String {
        self.recorder.info().original_request().url_str().to_owned()
    }
}

pub(crate) struct SessionState {
    ctx: Arc<SessionContext>,
    tasks: IdMap<u64, Entry>,
    by_actor: IdMap<ActorId, u64>,
    /// Task actors whose task ended, kept for the next tasks; the session still holds the entries
    /// of their ended tasks (`by_actor` names them) until it forgets them.
    free: Arc<FreeActors>,
    /// Task actors told to stop (free ones, once invalidation began), until they have.
    stopping: IdMap<ActorId, ()>,
    /// Set once invalidation was asked for.
    invalidating: bool,
    /// Set once every task has stopped and invalidation is being finished.
    finishing: bool,
    /// Why the session became invalid, when something else than the application ended it.
    invalid_error: Option<courier_delegates::Error>,
    invalid_tx: watch::Sender<bool>,
    /// Set while a timer will look at the lines' waiters (`SessionMsg::LineDeadline`).
    line_timer: bool,
    /// The number of the next place taken in a host's line.
    next_place: u64,
    /// What every task actor reports through (one for all of them).
    link: Arc<dyn SessionLink>,
    span: tracing::Span,
}

impl Actor for SessionActor {
    type Msg = SessionMsg;
    type State = SessionState;
    type Arguments = SessionArgs;

    async fn pre_start(
        &self,
        me: ActorRef<SessionMsg>,
        args: SessionArgs,
    ) -> Result<SessionState, ActorProcessingErr> {
        let span = tracing::info_span!("session", session = args.ctx.id);
        let free = Arc::new(FreeActors::default());
        Ok(SessionState {
            ctx: args.ctx,
            tasks: IdMap::default(),
            by_actor: IdMap::default(),
            free: free.clone(),
            stopping: IdMap::default(),
            invalidating: false,
            finishing: false,
            invalid_error: None,
            invalid_tx: args.invalid_tx,
            line_timer: false,
            next_place: 0,
            link: Arc::new(ActorLink { session: me, free }),
            span,
        })
    }

    async fn handle(
        &self,
        me: ActorRef<SessionMsg>,
        msg: SessionMsg,
        st: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        let span = st.span.clone();
        async move {
            match msg {
                SessionMsg::Register {
                    recorder,
                    terminal,
                    callbacks,
                    work,
                    partial,
                    resume,
                } => {
                    let id = recorder.info().id();
                    st.tasks.insert(
                        id,
                        Entry {
                            recorder,
                            terminal,
                            callbacks,
                            work: Some(work),
                            partial,
                            actor: None,
                            doorbell: None,
                            held: None,
                        },
                    );
                    if st.invalidating {
                        // Created while invalidation was being asked for: it can never run.
                        st.cancel_unstarted(id);
                    } else if resume {
                        // A new actor's spawn is boxed within (`spawn`).
                        st.spawn_and_resume(&me, id).await;
                    }
                }
                SessionMsg::Task(TaskReport::Control(id, control)) => {
                    st.control(&me, id, control).await
                }
                SessionMsg::Task(TaskReport::ActorFree(actor)) => st.actor_free(actor),
                SessionMsg::Task(TaskReport::HandlesDropped(id)) => {
                    // Nobody can resume it any more: it would wait for invalidation to be
                    // cancelled, and hold its entry (and its delegate callbacks) until then.
                    if st.tasks.get(&id).is_some_and(|e| !e.started()) {
                        st.cancel_unstarted(id);
                    }
                }
                SessionMsg::CountEntries(reply) => {
                    st.forget_ended();
                    let _ = reply.send(st.tasks.len());
                }
                SessionMsg::CountActors(reply) => {
                    st.forget_ended();
                    let _ = reply.send(st.by_actor.len());
                }
                SessionMsg::AllTasks(reply) => {
                    // The entries of ended tasks that wait to be forgotten are completed: left out.
                    let tasks = st
                        .tasks
                        .values()
                        .filter(|e| {
                            let state = e.recorder.info().state();
                            state == TaskState::Running
                                || (state == TaskState::Suspended && e.started())
                        })
                        .map(|e| e.recorder.info())
                        .collect();
                    let _ = reply.send(tasks);
                }
                SessionMsg::Task(TaskReport::Became {
                    old,
                    recorder,
                    terminal,
                    partial,
                }) => {
                    match st.tasks.remove(&old) {
                        Some(Entry {
                            actor: Some(actor),
                            callbacks,
                            ..
                        }) => {
                            let id = recorder.info().id();
                            st.by_actor.insert(actor.get_id(), id);
                            st.tasks.insert(
                                id,
                                Entry {
                                    recorder,
                                    terminal,
                                    callbacks,
                                    work: None,
                                    partial,
                                    actor: Some(actor),
                                    doorbell: None,
                                    held: None,
                                },
                            );
                        }
                        // The actor stopped before this news arrived (supervision comes first):
                        // if it failed, the new task is complete only once completed here.
                        _ => complete_orphan(
                            &st.ctx,
                            &terminal,
                            &partial,
                            "stopped right after becoming a download",
                        ),
                    }
                }
                SessionMsg::Turn(id, place, turn) => {
                    st.take_turn(&me, id, place, turn).await;
                }
                SessionMsg::LineDeadline => {
                    st.line_timer = false;
                    st.expire_in_line();
                    st.watch_line(&me);
                }
                SessionMsg::Disconnected(error) => {
                    st.invalidate();
                    st.invalid_error.get_or_insert(error);
                }
                SessionMsg::Invalidate { cancel } => {
                    st.invalidate();
                    if cancel {
                        let ids: Vec<u64> = st.tasks.keys().copied().collect();
                        for id in ids {
                            st.control(&me, id, Control::Cancel).await;
                        }
                    }
                }
            }
            st.finish_invalidation_if_done(&me);
            Ok(())
        }
        .instrument(span)
        .await
    }

    async fn post_stop(
        &self,
        _me: ActorRef<SessionMsg>,
        st: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        // Stopped some other way than by invalidation (which stops them first): the free task
        // actors go with the session.
        for actor in st.free.close() {
            actor.stop(None);
        }
        Ok(())
    }

    // The default stops this actor when any child stops; a session outlives its tasks.
    async fn handle_supervisor_evt(
        &self,
        me: ActorRef<SessionMsg>,
        evt: SupervisionEvent,
        st: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                st.task_actor_stopped(
                    cell.get_id(),
                    reason.as_deref().unwrap_or("stopped before completing"),
                );
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                tracing::error!(parent: &st.span, error = %err, "task actor failed");
                st.task_actor_stopped(cell.get_id(), &err.to_string());
            }
            _ => {}
        }
        st.finish_invalidation_if_done(&me);
        Ok(())
    }
}

impl SessionState {
    async fn control(&mut self, me: &ActorRef<SessionMsg>, id: u64, control: Control) {
        let Some(entry) = self.tasks.get(&id) else {
            return; // completed and gone: every control is a no-op now
        };
        if let Some(actor) = &entry.actor {
            let _ = actor.cast(TaskMsg::Control(control));
            if let Some(bell) = &entry.doorbell {
                bell.ring();
            }
            return;
        }
        match control {
            // One waiting in its host's line runs already.
            Control::Resume if entry.in_line() => {}
            Control::Resume => self.spawn_and_resume(me, id).await,
            Control::Suspend if entry.in_line() => self.suspend_in_line(id),
            Control::Cancel => self.cancel_unstarted(id),
            Control::CancelForResume(tx) => {
                // A task made from resume data and never started can hand that data back as is.
                let data = match entry.work.as_ref() {
                    Some(Work::Download {
                        resume: Some(Ok(record)),
                    }) => resume_data_of(&self.ctx.storage, record),
                    Some(Work::ResumedUpload(Ok(upload))) => Some(upload.data.clone()),
                    _ => None,
                };
                let _ = tx.send(data);
                self.cancel_unstarted(id);
            }
            // Suspending a task that never ran changes nothing.
            Control::Suspend | Control::Crash | Control::CrashTransfer => {}
        }
    }

    /// Gives a task that has no actor one: a free actor if there is one (no wait), else a new one;
    /// `started`: the session resumed the task itself.
    async fn spawn(&mut self, me: &ActorRef<SessionMsg>, id: u64, started: Option<Started>) {
        let Some(args) = self.give_to_free_actor(id, started) else {
            return;
        };
        // Boxed, and only here: ractor's spawn future is most of the size of every future that
        // awaits it, and the session's handler moves its future a few times per message. Boxed at
        // every start instead, a small request paid for a 1,600-byte allocation (beyond glibc's
        // per-thread cache) that a free actor never needs.
        Box::pin(self.spawn_actor(me, id, args)).await
    }

    /// Gives the task `id` to a free actor, if there is one; returns what a new actor needs when
    /// there is none (`None`: given, or the task is gone).
    fn give_to_free_actor(&mut self, id: u64, started: Option<Started>) -> Option<TaskArgs> {
        if !self.tasks.contains_key(&id) {
            return None;
        }
        // A free actor takes the task if there is one: an actor spawned, linked and stopped per
        // task cost 2.4 µs of the 12 µs a task cost over hyper-util's client (BENCHMARKS.md).
        let free = self.free.take();
        if let Some(actor) = &free {
            // Its last task ended: the session forgets it now.
            self.forget_task_of(actor.get_id(), ENDED);
        }
        let entry = self.tasks.get_mut(&id)?;
        let args = TaskArgs {
            ctx: self.ctx.clone(),
            recorder: entry.recorder.clone(),
            terminal: entry.terminal.clone(),
            callbacks: entry.callbacks,
            work: entry.work.take().unwrap_or(Work::Data),
            partial: entry.partial.clone(),
            session: self.link.clone(),
            // Without `started`, the actor resumes itself as it starts (before any message): no
            // message for it.
            started,
            // Only a task that reports to no delegate may have its transfer polled by its actor.
            doorbell: (!entry.callbacks).then(Doorbell::default),
        };
        entry.doorbell.clone_from(&args.doorbell);
        let Some(actor) = free else {
            return Some(args);
        };
        match actor.cast(TaskMsg::Begin(Box::new(args))) {
            Ok(()) => {
                self.by_actor.insert(actor.get_id(), id);
                entry.actor = Some(actor);
                None
            }
            // Stopped meanwhile (its supervision event is on its way): the task's arguments
            // come back with the error, and a new actor takes them.
            Err(ractor::MessagingErr::SendErr(TaskMsg::Begin(back))) => Some(*back),
            Err(_) => {
                self.spawn_failed(id, "its task actor is gone");
                None
            }
        }
    }

    /// Spawns a new actor, linked to the session, for the task `id`.
    async fn spawn_actor(&mut self, me: &ActorRef<SessionMsg>, id: u64, args: TaskArgs) {
        match TaskActor::spawn_linked(None, TaskActor, args, me.get_cell()).await {
            Ok((actor, _)) => {
                self.by_actor.insert(actor.get_id(), id);
                if let Some(entry) = self.tasks.get_mut(&id) {
                    entry.actor = Some(actor);
                }
            }
            Err(e) => self.spawn_failed(id, &e.to_string()),
        }
    }

    /// The task `id` could not get an actor: it completes with the reason.
    fn spawn_failed(&mut self, id: u64, why: &str) {
        let (ctx, entry) = (self.ctx.clone(), self.tasks.remove(&id));
        if let Some(entry) = entry {
            complete_orphan(&ctx, &entry.terminal, &entry.partial, why);
        }
    }

    /// A task actor's task ended and the free actors had no room for it (full, or closed once
    /// invalidating): the session forgets the task and stops the actor.
    fn actor_free(&mut self, actor: ActorRef<TaskMsg>) {
        self.forget_task_of(actor.get_id(), ENDED);
        self.stopping.insert(actor.get_id(), ());
        actor.stop(None);
    }

    /// Forgets the ended tasks of the free actors (which stay free).
    fn forget_ended(&mut self) {
        for actor in self.free.ids() {
            self.forget_task_of(actor, ENDED);
        }
    }

    /// A task actor stopped: the session no longer counts on it, and forgets its task, if any.
    fn task_actor_stopped(&mut self, actor: ActorId, why: &str) {
        if self.stopping.remove(&actor).is_none() {
            // Stopped without being told (rare): it may have been free.
            self.free.remove(actor);
        }
        self.forget_task_of(actor, why);
    }

    /// Forgets the task `actor` ran, delivering its terminal message with `why` if it had none.
    fn forget_task_of(&mut self, actor: ActorId, why: &str) {
        let Some(id) = self.by_actor.remove(&actor) else {
            return;
        };
        if let Some(entry) = self.tasks.remove(&id) {
            // A task actor is freed only after its terminal message; one that stopped while
            // running its task failed: then the session delivers it, so no task is ever lost.
            complete_orphan(&self.ctx, &entry.terminal, &entry.partial, why);
        }
    }
}
