//! The task actor: owns one task's transfer and applies its state machine.
//!
//! Every event, whether a control call relayed by the session or news from the transfer, goes through
//! [`TaskMachine::step`]: this file holds the messages, the actor and its dispatch; `effects.rs`
//! carries out what each step asks for, `start.rs` starts transfers, `inline.rs` polls a
//! completion-form task's transfer in the actor's own handler until a message comes, `delivery.rs`
//! hands data, progress and metrics over, and `conversion.rs` turns a data task into a download or
//! a stream task. Right after the terminal message (its transfer gone), the actor lets the task go
//! and joins its session's free actors (`session/actor/free.rs`); the session may give it its next
//! task ([`TaskMsg::Begin`]), each with a state of its own. News for a task that ended is dropped:
//! a free actor has none to apply it to, and a delegate's late answer carries the number of the run
//! it was asked in. A panic stops the actor, and its session hears of it through supervision.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use courier_delegates::{
    CachedResponse, Callback, Error, ErrorCode, Response, ResponseDisposition, ResumeData,
    TaskInfo, TaskKind, TaskMetrics, TaskRecorder, TaskState,
};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use smallvec::{SmallVec, smallvec};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tracing::Instrument;

use super::download::Stopped;
use super::local;
use super::request::build_request;
use super::transfer::host_queue::Turn;
use super::transfer::{
    DELEGATE_WINDOW, Destination, SharedMetrics, Target, Timeouts, Transfer, TransferArgs,
};
use super::upload::UploadBody;
use super::{Control, PartialSlot, SessionLink, TaskReport, Work, publish_state};
use crate::completion::{BodySender, Delivered, Gathered, Sink, Terminal};
use crate::context::SessionContext;
use crate::state::{Effect, Outcome, Phase, TaskEvent, TaskMachine};

mod conversion;
mod delivery;
mod effects;
mod inline;
mod start;

pub(crate) use inline::{ActorPost, Doorbell};

/// Messages a task actor handles.
pub(crate) enum TaskMsg {
    /// A control call from a handle, relayed by the session.
    Control(Control),
    /// The final response head arrived.
    Response(Response),
    /// Body bytes arrived; the permit holds their place in the delegate window.
    Data(Bytes, Option<OwnedSemaphorePermit>),
    /// A download's file holds `total` bytes now, of `expected` (-1 when unknown).
    Wrote { total: u64, expected: i64 },
    /// A download made from resume data continues at `offset` (0: it starts over).
    ResumedAt { offset: u64, expected: i64 },
    /// Request body bytes went out.
    Sent(u64),
    /// An upload made from resume data goes on at `offset`: the server holds that much already,
    /// and the task's count of bytes sent starts there (as a resumed download's count of bytes
    /// written starts at its offset). No callback: no bytes went out.
    SentBefore(u64),
    /// The body ended; a download's file is at the path.
    Finished(Option<PathBuf>),
    /// A completion-form task's whole answer in one message (the transfer gathered the body and
    /// counted its bytes): the same steps as `Response`, `Data` and `Finished` one by one.
    Whole(Response, Bytes),
    /// An informational (1xx) response arrived, for the delegate.
    Informational(Response),
    /// The host's network cannot be reached; the transfer waits for connectivity.
    WaitingForConnectivity,
    /// The transfer failed.
    Failed(Error),
    /// The transfer panicked (a bug, in Courier or a parser it uses): the actor fails with it, and
    /// the session completes the task as it does for any failed actor.
    TransferPanicked(String),
    /// The delegate answered `did_receive_response` for the actor's run with this number (an
    /// answer that comes after its task ended is dropped: the actor may run another by then).
    Disposition(u64, ResponseDisposition),
    /// A new part of a `multipart/x-mixed-replace` body: ask the delegate (`did_receive_response`)
    /// and answer on the channel.
    PartResponse(Response, oneshot::Sender<ResponseDisposition>),
    /// The body is complete and the URL cache may keep the response: ask the delegate
    /// (`will_cache_response`) and answer on the channel.
    OfferToCache(CachedResponse, oneshot::Sender<Option<CachedResponse>>),
    /// A WebSocket's handshake was accepted, with the subprotocol the server chose.
    Opened(Response, Option<String>),
    /// A WebSocket closed, with the code and reason of the close that ended it.
    Closed(courier_delegates::CloseCode, Option<Bytes>),
    /// News from a stream task's connection.
    Stream(StreamNews),
    /// The session's next task for this actor, which is free (its last task ended).
    Begin(Box<TaskArgs>),
}

/// What a stream task's transfer tells its actor.
pub(crate) enum StreamNews {
    /// The connection is open: the task is under way.
    Connected,
    /// The reading side closed (the end of the stream, or `close_read`).
    ReadClosed,
    /// The writing side closed.
    WriteClosed,
    /// The application took the connection (`capture_streams`).
    Captured,
}

/// What a task actor starts from.
pub(crate) struct TaskArgs {
    pub(crate) ctx: Arc<SessionContext>,
    pub(crate) recorder: TaskRecorder,
    pub(crate) terminal: Terminal,
    /// True when the task reports to the delegate (false for the completion form).
    pub(crate) callbacks: bool,
    pub(crate) work: Work,
    pub(crate) partial: PartialSlot,
    /// The session, told when the task becomes a download.
    pub(crate) session: Arc<dyn SessionLink>,
    /// Set when the session started the task itself (it stood in its host's line there); `None`:
    /// the actor resumes it as it starts, before its first message (it is spawned by a `resume()`).
    pub(crate) started: Option<Started>,
    /// For a task whose transfer may run in the actor's handler (`actor/inline.rs`): what the
    /// session rings as it relays a control call.
    pub(crate) doorbell: Option<Doorbell>,
}

/// A task its session started before spawning its actor ([`turn_before_start`]): the actor
/// starts its transfer at once, from where the session left its machine.
///
/// [`turn_before_start`]: super::transfer::turn_before_start
pub(crate) struct Started {
    /// The task's machine, which the session stepped to running.
    pub(crate) machine: TaskMachine,
    /// The turn the session took for the first request; `None`: the transfer takes its own.
    pub(crate) turn: Option<Turn>,
    /// When the task was resumed into its line, if it waited there: its resource timeout and its
    /// metrics count from then. (`None`: from its transfer's start, as for any task.)
    pub(crate) since: Option<std::time::Instant>,
}

pub(crate) struct TaskActor;

pub(crate) struct TaskActorState {
    ctx: Arc<SessionContext>,
    recorder: TaskRecorder,
    info: TaskInfo,
    terminal: Terminal,
    callbacks: bool,
    /// Where a streamed task's body goes (`Session::bytes`).
    stream: Option<BodySender>,
    /// What the task does; taken when the transfer starts.
    work: Option<Work>,
    download: bool,
    partial: PartialSlot,
    session: Arc<dyn SessionLink>,
    machine: TaskMachine,
    transfer: Option<Transfer>,
    /// The body of a completion-form task, gathered here.
    body: Gathered,
    /// A download's finished file, until it is handed over.
    file: Option<PathBuf>,
    /// Who asked for resume data with the cancel, if anyone.
    resume_waiter: Option<oneshot::Sender<Option<ResumeData>>>,
    /// The resume data a cancel produced, for the -999 error to carry.
    cancel_resume_data: Option<ResumeData>,
    /// The transfer's metrics and when it started, once it did.
    metrics: Option<(SharedMetrics, std::time::Instant)>,
    /// Download progress already reported.
    written: u64,
    sent: u64,
    span: tracing::Span,
    /// What `begin` does; taken there.
    begin: Option<Begin>,
    /// The actor's run this task is (see [`TaskActorSlot`]).
    run: u64,
    /// Rung by whoever sends this actor a message while its transfer runs in its handler.
    doorbell: Option<Doorbell>,
}

/// How a task begins on its actor (`TaskActorState::begin`).
enum Begin {
    /// Resume the task (its actor was spawned by a `resume()`).
    Resume,
    /// Start the transfer: the session resumed the task already ([`Started`]).
    Transfer {
        turn: Option<Turn>,
        since: Option<std::time::Instant>,
    },
}

/// What came with the event being applied, for the effects that need it.
enum Payload {
    None,
    Response(Response),
    Data(Bytes, Option<OwnedSemaphorePermit>),
    /// A completion-form body the transfer gathered, its bytes counted already.
    Gathered(Bytes),
    Wrote {
        total: u64,
        expected: i64,
    },
    ResumedAt {
        offset: u64,
        expected: i64,
    },
    Sent(u64),
}

/// What a task actor holds: the task it runs, if any. A task actor runs one task at a time; when
/// the task ends, the actor joins its session's free actors, and the session may give it its next
/// task (`TaskMsg::Begin`) instead of spawning another actor.
pub(crate) struct TaskActorSlot {
    task: Option<TaskActorState>,
    /// How many tasks this actor began: the number of the current one's run.
    runs: u64,
}

impl Actor for TaskActor {
    type Msg = TaskMsg;
    type State = TaskActorSlot;
    type Arguments = TaskArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<TaskMsg>,
        args: TaskArgs,
    ) -> Result<TaskActorSlot, ActorProcessingErr> {
        Ok(TaskActorSlot {
            task: Some(TaskActorState::from_args(args, 1)),
            runs: 1,
        })
    }

    async fn post_start(
        &self,
        me: ActorRef<TaskMsg>,
        slot: &mut TaskActorSlot,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(st) = &mut slot.task {
            // Boxed, here and in `handle`: `begin`'s future is 784 bytes (its `apply`'s, mostly).
            // Inline in `handle`, it made the handler's future 976 bytes, which ractor's message
            // loop holds twice, in a box every actor keeps as long as it lives: 2,384 bytes, 992
            // with `begin` boxed. A task begins once; its actor keeps the loop.
            Box::pin(st.begin(&me)).await;
            st.run_transfer_inline().await;
        }
        slot.free_if_ended(&me);
        Ok(())
    }

    async fn handle(
        &self,
        me: ActorRef<TaskMsg>,
        msg: TaskMsg,
        slot: &mut TaskActorSlot,
    ) -> Result<(), ActorProcessingErr> {
        match (msg, &mut slot.task) {
            (TaskMsg::Begin(args), None) => {
                slot.runs += 1;
                let st = slot
                    .task
                    .insert(TaskActorState::from_args(*args, slot.runs));
                // Boxed: see `post_start`.
                Box::pin(st.begin(&me)).await;
                st.run_transfer_inline().await;
            }
            (TaskMsg::Begin(_), Some(_)) => {
                // The session gives a task only to an actor that said it is free: never reached.
                // Were it, the actor fails, and the session completes the task with the error.
                return Err("a task was given to a task actor that was running another".into());
            }
            (msg, Some(st)) => {
                st.handle_msg(me.clone(), msg).await?;
                st.run_transfer_inline().await;
            }
            // News of a task that ended (from its transfer before it stopped, or a control call
            // relayed before the session heard of the end): the actor is free, nobody to tell.
            (_, None) => {}
        }
        slot.free_if_ended(&me);
        Ok(())
    }

    async fn post_stop(
        &self,
        _me: ActorRef<TaskMsg>,
        slot: &mut TaskActorSlot,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(st) = &mut slot.task {
            st.release_file();
        }
        Ok(())
    }
}

impl TaskActorSlot {
    /// Once the task completed (its terminal got the outcome, its transfer is gone): lets the task
    /// go and tells the session the actor is free; it stops instead when the session is gone.
    fn free_if_ended(&mut self, me: &ActorRef<TaskMsg>) {
        // The machine completes only with its `Complete` effect, which delivers the outcome and
        // waits for the transfer to be gone.
        let Some(mut st) = self
            .task
            .take_if(|st| st.machine.state() == TaskState::Completed)
        else {
            return;
        };
        st.release_file();
        let session = st.session.clone();
        drop(st);
        if !session.actor_free(me.clone()) {
            me.stop(None);
        }
    }
}

impl TaskActorState {
    /// Removes a finished download that was never handed over (the task was cancelled as it
    /// finished).
    fn release_file(&mut self) {
        if let Some(path) = self.file.take() {
            courier_storage::download::remove_partial(&path);
        }
    }

    /// The state of a task beginning on its actor's `run`-th run.
    fn from_args(args: TaskArgs, run: u64) -> TaskActorState {
        let info = args.recorder.info();
        let span = tracing::info_span!("task", session = args.ctx.id, task = info.id());
        let (machine, begin) = match args.started {
            Some(s) => (
                s.machine,
                Begin::Transfer {
                    turn: s.turn,
                    since: s.since,
                },
            ),
            None => (TaskMachine::new(), Begin::Resume),
        };
        TaskActorState {
            ctx: args.ctx,
            info,
            recorder: args.recorder,
            stream: args.terminal.stream_body(),
            terminal: args.terminal,
            callbacks: args.callbacks,
            download: args.work.is_download(),
            work: Some(args.work),
            partial: args.partial,
            session: args.session,
            machine,
            transfer: None,
            body: Gathered::default(),
            file: None,
            resume_waiter: None,
            cancel_resume_data: None,
            metrics: None,
            written: 0,
            sent: 0,
            span,
            begin: Some(begin),
            run,
            doorbell: args.doorbell,
        }
    }

    /// Polls a transfer the last step started to run in this handler, if it did
    /// (`actor/inline.rs`).
    async fn run_transfer_inline(&mut self) {
        if let Some(transfer) = &mut self.transfer {
            transfer.run_inline().await;
        }
    }

    async fn begin(&mut self, me: &ActorRef<TaskMsg>) {
        // In the actor's own Tokio task (`pre_start` runs in the session actor's), ahead of any
        // message: the same as a `Control::Resume` first in the mailbox.
        let span = self.span.clone();
        match self.begin.take() {
            Some(Begin::Resume) => {
                self.apply(me, TaskEvent::Resume, Payload::None)
                    .instrument(span)
                    .await;
            }
            Some(Begin::Transfer { turn, since }) => {
                // The session stepped the machine to running (and said so): its `StartTransfer`
                // is carried out here.
                let work = self.work.take().unwrap_or(Work::Data);
                if let Err(e) = self.start_transfer(me, work, turn, since) {
                    self.apply(me, TaskEvent::Failed(e), Payload::None)
                        .instrument(span)
                        .await;
                }
            }
            None => {}
        }
    }

    async fn handle_msg(
        &mut self,
        me: ActorRef<TaskMsg>,
        msg: TaskMsg,
    ) -> Result<(), ActorProcessingErr> {
        let st = self;
        let span = st.span.clone();
        // Boxed: ractor boxes each message's handling future, copying it whole, and with this
        // block inline it would be twice its size (its `select!` holds a second copy), past what
        // the allocator serves from its per-thread cache.
        Box::pin(
            async move {
                let msg = match msg {
                    TaskMsg::OfferToCache(proposed, answer) => {
                        st.offer_to_cache(proposed, answer);
                        return Ok(());
                    }
                    TaskMsg::PartResponse(response, answer) => {
                        st.ask_about_part(response, answer);
                        return Ok(());
                    }
                    TaskMsg::WaitingForConnectivity => {
                        st.tell(Callback::WaitingForConnectivity, |d, info| {
                            d.task_is_waiting_for_connectivity(info)
                        });
                        return Ok(());
                    }
                    TaskMsg::Closed(code, reason) => {
                        st.tell(Callback::WebSocketClose, move |d, info| {
                            d.did_close_with(info, code, reason.as_deref())
                        });
                        return Ok(());
                    }
                    TaskMsg::Stream(StreamNews::Connected) => {
                        // Like a WebSocket's open: no response callback; the task is under way.
                        st.apply(&me, TaskEvent::ResponseReceived, Payload::None)
                            .await;
                        st.apply(&me, TaskEvent::BodyAllowed, Payload::None).await;
                        return Ok(());
                    }
                    TaskMsg::Stream(news) => {
                        let callback = match news {
                            StreamNews::ReadClosed => Callback::ReadClosed,
                            StreamNews::WriteClosed => Callback::WriteClosed,
                            _ => Callback::BecomeStreams,
                        };
                        st.tell(callback, move |d, info| match callback {
                            Callback::ReadClosed => d.read_closed(info),
                            Callback::WriteClosed => d.write_closed(info),
                            _ => d.did_become_streams(info),
                        });
                        return Ok(());
                    }
                    TaskMsg::SentBefore(offset) => {
                        st.sent += offset;
                        return Ok(());
                    }
                    TaskMsg::Informational(response) => {
                        st.tell(Callback::InformationalResponse, move |d, info| {
                            d.did_receive_informational_response(info, &response)
                        });
                        return Ok(());
                    }
                    other => other,
                };
                let (event, payload) = match msg {
                    TaskMsg::OfferToCache(..)
                    | TaskMsg::PartResponse(..)
                    | TaskMsg::Informational(..)
                    | TaskMsg::SentBefore(..)
                    | TaskMsg::Closed(..)
                    | TaskMsg::Stream(..)
                    | TaskMsg::WaitingForConnectivity
                    | TaskMsg::Begin(..) => {
                        unreachable!("answered above")
                    }
                    TaskMsg::Control(Control::Resume) => (TaskEvent::Resume, Payload::None),
                    TaskMsg::Control(Control::Suspend) => (TaskEvent::Suspend, Payload::None),
                    TaskMsg::Control(Control::Cancel) => (TaskEvent::Cancel, Payload::None),
                    TaskMsg::Control(Control::CancelForResume(tx)) => {
                        if (st.download || st.info.kind() == TaskKind::Upload)
                            && !matches!(
                                st.machine.state(),
                                TaskState::Canceling | TaskState::Completed
                            )
                        {
                            st.resume_waiter = Some(tx);
                        } else {
                            let _ = tx.send(None);
                        }
                        (TaskEvent::Cancel, Payload::None)
                    }
                    TaskMsg::Control(Control::Crash) => panic!("injected task actor panic"),
                    TaskMsg::Control(Control::CrashTransfer) => {
                        if let Some(t) = &st.transfer {
                            t.crash();
                        }
                        return Ok(());
                    }
                    TaskMsg::TransferPanicked(why) => {
                        return Err(format!("its transfer panicked: {why}").into());
                    }
                    TaskMsg::Response(r) => (TaskEvent::ResponseReceived, Payload::Response(r)),
                    TaskMsg::Opened(response, protocol) => {
                        // No `did_receive_response` for a WebSocket (URLSession sends none): the head
                        // is recorded, the delegate hears `did_open_with_protocol`, and the socket's
                        // messages flow at once.
                        st.recorder.set_response(response);
                        st.apply(&me, TaskEvent::ResponseReceived, Payload::None)
                            .await;
                        st.tell(Callback::WebSocketOpen, move |d, info| {
                            d.did_open_with_protocol(info, protocol.as_deref())
                        });
                        (TaskEvent::BodyAllowed, Payload::None)
                    }
                    TaskMsg::Data(d, permit) => (TaskEvent::DataReceived, Payload::Data(d, permit)),
                    TaskMsg::Whole(response, body) => {
                        st.apply(
                            &me,
                            TaskEvent::ResponseReceived,
                            Payload::Response(response),
                        )
                        .await;
                        st.apply(&me, TaskEvent::DataReceived, Payload::Gathered(body))
                            .await;
                        (TaskEvent::Finished, Payload::None)
                    }
                    TaskMsg::Wrote { total, expected } => {
                        // The count of bytes on disk stays true even while cancelling, when the
                        // delegate hears no more progress.
                        if total > st.info.bytes_received() {
                            st.recorder.set_received(total as i64);
                        }
                        (TaskEvent::DataReceived, Payload::Wrote { total, expected })
                    }
                    TaskMsg::ResumedAt { offset, expected } => (
                        TaskEvent::DataReceived,
                        Payload::ResumedAt { offset, expected },
                    ),
                    TaskMsg::Sent(n) => (TaskEvent::BodySent, Payload::Sent(n)),
                    TaskMsg::Finished(file) => {
                        st.file = file;
                        (TaskEvent::Finished, Payload::None)
                    }
                    TaskMsg::Failed(e) => (TaskEvent::Failed(e), Payload::None),
                    TaskMsg::Disposition(run, _) if run != st.run => return Ok(()),
                    TaskMsg::Disposition(_, ResponseDisposition::Allow) => {
                        (TaskEvent::BodyAllowed, Payload::None)
                    }
                    TaskMsg::Disposition(_, ResponseDisposition::BecomeDownload)
                        if st.machine.phase() == Phase::AwaitingDisposition
                            && st.machine.state() != TaskState::Canceling =>
                    {
                        st.become_download();
                        (TaskEvent::BodyAllowed, Payload::None)
                    }
                    TaskMsg::Disposition(_, ResponseDisposition::BecomeStream)
                        if st.machine.phase() == Phase::AwaitingDisposition
                            && st.machine.state() != TaskState::Canceling
                            && st.info.response().is_some_and(|r| {
                                r.status() == http::StatusCode::SWITCHING_PROTOCOLS
                            }) =>
                    {
                        st.become_stream();
                        (TaskEvent::BodyAllowed, Payload::None)
                    }
                    TaskMsg::Disposition(..) => (TaskEvent::Cancel, Payload::None),
                };
                st.apply(&me, event, payload).await;
                Ok(())
            }
            .instrument(span),
        )
        .await
    }
}
