//! The transfer: one request and its response, run as a Tokio task beside the task actor (a
//! completion-form task's is polled by its actor instead, until the actor has a message to read:
//! `actor/inline.rs`; where the future is polled, and how it ends from there: `running.rs`).
//!
//! The body goes to memory (a data or upload task) or to a file (a download, through
//! [`DownloadSink`]); a request body comes from [`upload::prepare`], made anew for every send. A
//! download made from resume data asks to continue where it stopped and starts over when the
//! server's answer does not continue exactly there.
//!
//! The task actor owns it and steers it through a [`Gate`]: paused or not, body allowed or not. The
//! transfer moves the bytes itself and reports to the actor by message (response head, each chunk,
//! the end). It has two timers. The idle timeout, restarted by every arrival, runs only while the
//! transfer waits on the network: not while suspended, not while the delegate decides, not while
//! the application is slow to take the body. The resource timeout is wall-clock time from the start
//! (a timer beside the transfer raises the gate's `expired`), whatever the transfer waits for; only
//! time suspended does not count.
//!
//! A request to an HTTP/1.1 host first waits for its turn in the session's per-host queue
//! (`host_queue`), where a task of higher priority goes first. A transfer that starts in that line
//! waits there before the rest of its future is made (`Run::run_in_line`): thousands of tasks queued
//! for a host's few connections each hold a small future, not a whole exchange's.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use courier_delegates::{
    Callback, Error, ErrorCode, FetchType, ProxyType, Request, Response, TaskInfo, TaskRecorder,
    TransactionMetrics,
};
use courier_protocol_http::decode::{DecodeError, Decoder};
use courier_protocol_http::host_key::HostKey;
use courier_protocol_http::range::{self, Continuation};
use courier_protocol_http::redirect;
use courier_protocol_http::{ConnectionInfo, TransportError, TransportErrorKind, empty_body};
use courier_storage::ResumeRecord;
use futures_util::FutureExt;
use futures_util::future::Either;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tracing::Instrument;
use url::Url;

use super::PartialSlot;
use super::actor::{ActorPost, TaskMsg};
use super::auth::{self, Authenticator};
use super::download::{DownloadSink, Placement, Stopped};
use super::local::{self, LocalBody};
use super::pace::Pace;
use super::protocol::{self, ProtocolHandler};
use super::upload::{self, UploadBody};
use crate::context::SessionContext;

mod body;
mod caching;
mod drive;
mod expect;
mod failure;
mod first_turn;
mod follow;
mod ftp;
mod gate;
pub(crate) mod host_queue;
mod parts;
mod receive;
mod resumable;
mod running;
mod send;
mod socket;
mod stream;
mod timing;

use body::ResponseBody;
pub(crate) use failure::map_transport_error;
pub(crate) use first_turn::turn_before_start;
use gate::{Gate, GateReceiver, GateSender};
pub(crate) use resumable::{UploadResource, UploadResumption, decode_upload_resume_data};
use running::Running;
pub(crate) use timing::after;
use timing::{request_timed_out, resource_timer, unless_stopped};

/// Body bytes that may be on their way to a delegate at once. Past this, the transfer stops reading
/// until the delegate has taken some: a slow delegate slows the connection instead of filling memory.
pub(crate) const DELEGATE_WINDOW: usize = 1 << 20;

/// The timeouts of one transfer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    /// Idle: the longest wait for the network's next sign of life.
    pub(crate) idle: Duration,
    /// Resource: how long the transfer may take, from its start, whatever it waits for (the network,
    /// the delegate, the rate limit); time suspended does not count.
    pub(crate) resource: Duration,
}

/// The request line and headers, kept to send the request again (a resend starts over from here).
#[derive(Clone, Debug)]
pub(crate) struct Head {
    pub(crate) method: http::Method,
    pub(crate) uri: http::Uri,
    /// HTTP/1.1's `Host` field for `uri`, unless the request brings its own
    /// ([`wire_target`](crate::task::request::wire_target)).
    pub(crate) host: Option<http::HeaderValue>,
    /// Shared with the session's base fields until something changes them (`Arc::make_mut`): a
    /// request with no fields of its own, the usual case, copies none (two allocations and a
    /// field-by-field clone per request before; the wire's map is built from these in `send`).
    pub(crate) headers: Arc<http::HeaderMap>,
    /// Fields the request left out ([`Request::omit_header`](courier_delegates::Request)): the
    /// session adds none of them on the way (its jar's `Cookie`, its own `Expect`, `Priority`).
    /// `None`, the usual case, costs a request nothing to check.
    pub(crate) omitted: Option<Arc<[http::HeaderName]>>,
}

impl Head {
    /// Whether the request left the field `name` out.
    pub(crate) fn omits(&self, name: &http::HeaderName) -> bool {
        self.omitted.as_ref().is_some_and(|o| o.contains(name))
    }
}

/// What a transfer fetches.
pub(crate) enum Target {
    /// An HTTP(S) request.
    Http(Box<Head>),
    /// A `data:` or `file:` URL, served without the network.
    Local,
    /// An `ftp:` URL.
    Ftp,
}

/// Where the response body goes.
pub(crate) enum Destination {
    /// To the delegate (`window` bounds what is in flight to it) or the completion form's buffer.
    Memory { window: Option<Arc<Semaphore>> },
    /// To a file in the session directory; `from` when the task was made from resume data.
    File {
        from: Option<Box<ResumeRecord>>,
        slot: PartialSlot,
    },
    /// Nowhere: the connection becomes a WebSocket, whose messages go to the task's handle.
    Socket(Box<super::web_socket::SocketEnds>),
    /// Nowhere: the connection is a stream task's, read and written by its handle.
    Stream(Box<super::stream::StreamEnds>),
}

/// What a transfer starts from.
pub(crate) struct TransferArgs {
    pub(crate) ctx: Arc<SessionContext>,
    pub(crate) info: TaskInfo,
    pub(crate) recorder: TaskRecorder,
    pub(crate) callbacks: bool,
    pub(crate) target: Target,
    pub(crate) url: Url,
    pub(crate) body: Option<UploadBody>,
    pub(crate) timeouts: Timeouts,
    pub(crate) destination: Destination,
    /// The task actor, which the transfer reports to.
    pub(crate) actor: ActorPost,
    /// The turn with its host that the session took for the first request, before it started
    /// the task ([`turn_before_start`]).
    pub(crate) turn: Option<host_queue::Turn>,
    /// When the task began waiting for that turn: the first transaction's fetch start.
    pub(crate) since: Option<std::time::Instant>,
    /// For an upload task made from resume data: the upload resource it goes on at.
    pub(crate) resumed_upload: Option<UploadResource>,
}

/// A running transfer. Dropping it stops the transfer at once (no checkpoint).
pub(crate) struct Transfer {
    running: Running,
    gate: GateSender,
    /// Set when a data task becomes a download: the body then goes to a file, for the new task.
    /// Only a task that reports to a delegate can be asked to (`did_receive_response`).
    conversion: Option<Conversion>,
    /// Only when a delegate will read them.
    metrics: Option<SharedMetrics>,
}

/// The transactions of a transfer so far (one per request sent), shared with the task actor.
#[derive(Default)]
pub(crate) struct MetricsLog {
    pub(crate) redirects: u32,
    pub(crate) transactions: Vec<TransactionMetrics>,
}

/// A transfer's metrics, as the task actor reads them at completion.
pub(crate) type SharedMetrics = Arc<std::sync::Mutex<MetricsLog>>;

/// The new task a data task became.
enum Becoming {
    /// A download task, and its partial-file slot.
    Download(TaskInfo, PartialSlot),
    /// A stream task on the connection a `101` handed over, and its handle's commands.
    Stream(TaskInfo, TaskRecorder, Box<super::stream::StreamEnds>),
}

type Conversion = Arc<std::sync::Mutex<Option<Becoming>>>;

impl Transfer {
    /// Starts the transfer; it reports to `args.actor`.
    pub(crate) fn start(args: TransferArgs) -> Transfer {
        let (gate, gate_rx) = gate::channel(Gate::default());
        // The timer's future is made inside the spawned block, not here: captured, it would be
        // stored twice in the block (as captured and once pinned), 328 bytes more in every
        // transfer's Tokio task, copied in at the spawn and out as it ends.
        let timer_args = (gate.clone(), gate_rx.clone(), args.timeouts.resource);
        let conversion = args.callbacks.then(Conversion::default);
        let recording = args.callbacks && args.ctx.delegate_wants(&args.info, Callback::Metrics);
        let metrics = recording.then(SharedMetrics::default);
        let gathering = (!args.callbacks
            && matches!(args.destination, Destination::Memory { window: None }))
        .then(Gathering::default);
        // Only a gathering transfer runs in its actor's handler: it sends nothing until its end,
        // unless something comes up (a 1xx, a question for the delegate), which rings the bell.
        let actor = match gathering {
            Some(_) => args.actor,
            None => args.actor.without_doorbell(),
        };
        let doorbell = actor.doorbell().cloned();
        let mut run = Run {
            gathering,
            moved: send::Moved::default(),
            turn: None,
            queued: None,
            upgrade: None,
            resending: false,
            own_expect: OwnExpect::NotSent,
            offered: args.resumed_upload,
            cache_candidate: None,
            conversion: conversion.clone(),
            metrics: metrics.clone(),
            ctx: args.ctx,
            auth: None,
            info: args.info,
            recorder: args.recorder,
            callbacks: args.callbacks,
            url: args.url,
            idle: args.timeouts.idle,
            gate: gate_rx,
            actor: actor.clone(),
            sink: None,
            window: None,
            overridden: false,
        };
        let (target, body, destination) = (args.target, args.body, args.destination);
        let first_turn = match (&target, args.turn) {
            (Target::Http(_), Some(turn)) => Some(Ok(turn)),
            (Target::Http(head), None) => run.first_turn(head, body.as_ref(), &destination),
            (Target::Local | Target::Ftp, _) => None,
        };
        // Waiting for the turn counts as the first transaction's fetching (URLSession's
        // `fetchStartDate`); the clock is read only when someone records the metrics.
        let fetch_start = (first_turn.is_some() && run.metrics.is_some())
            .then(|| args.since.unwrap_or_else(std::time::Instant::now));
        // Boxed here, not inside the spawned block: the transfer's future is large (3,056 bytes
        // for HTTP; 800 for one that starts in its host's line), and a block that made it would be
        // as large again, moved into Tokio's task cell. Built in place in its box, it is never
        // copied; a named future holding it unboxed was tried, and its moves into the cell cost
        // more than the allocation they spared (callgrind, small GETs: 78,563 -> 80,557
        // instructions per request).
        let running = match (first_turn, target) {
            (Some(Err(line)), Target::Http(head)) => Either::Right(Box::into_pin(Box::write(
                Box::new_uninit(),
                run.run_in_line(head, body, destination, line, fetch_start),
            ))),
            (turn, target) => {
                if let Some(Ok(turn)) = turn {
                    run.queued = Some((turn, fetch_start));
                }
                Either::Left(Box::into_pin(Box::write(
                    Box::new_uninit(),
                    run.run(target, body, destination),
                )))
            }
        };
        let running = async move {
            // A panic in here (a decoder, a parser, a bug) must not leave the task running
            // forever: the actor hears of it and fails, and its session completes the task.
            let running = AssertUnwindSafe(running).catch_unwind();
            let timer = resource_timer(timer_args.0, timer_args.1, timer_args.2);
            // The resource timer runs in the same Tokio task (no task of its own to spawn for
            // every transfer); once it has raised the gate, only the transfer is polled.
            tokio::pin!(running, timer);
            let mut timing = true;
            let ended = loop {
                tokio::select! {
                    // The transfer first: on its fast path the timer is never polled again.
                    biased;
                    ended = &mut running => break ended,
                    () = &mut timer, if timing => timing = false,
                }
            };
            match ended {
                Ok((report, stopped)) => {
                    if let Some(msg) = report {
                        let _ = actor.cast_last(msg);
                    }
                    stopped
                }
                Err(panic) => {
                    let why = panic_message(panic.as_ref());
                    tracing::error!(panic = why, "the transfer panicked");
                    let _ = actor.cast_last(TaskMsg::TransferPanicked(why));
                    None
                }
            }
        }
        .instrument(tracing::Span::current());
        let running = match doorbell {
            Some(bell) => Running::Inline(Box::pin(running), bell),
            None => Running::Spawned(tokio::spawn(running)),
        };
        Transfer {
            running,
            gate,
            conversion,
            metrics,
        }
    }

    /// The transfer's metrics, filled in as it goes, when a delegate will read them.
    pub(crate) fn metrics(&self) -> Option<SharedMetrics> {
        self.metrics.clone()
    }

    /// The body (not released yet) goes to a file for the download task `info` instead.
    pub(crate) fn become_download(&self, info: TaskInfo, slot: PartialSlot) {
        self.convert(Becoming::Download(info, slot));
    }

    /// The connection (which answered `101`) becomes the stream task `info`'s, read and written
    /// through `ends`.
    pub(crate) fn become_stream(
        &self,
        info: TaskInfo,
        recorder: TaskRecorder,
        ends: super::stream::StreamEnds,
    ) {
        self.convert(Becoming::Stream(info, recorder, Box::new(ends)));
    }

    fn convert(&self, new: Becoming) {
        match &self.conversion {
            Some(c) => *c.lock().unwrap_or_else(|p| p.into_inner()) = Some(new),
            None => debug_assert!(false, "a task without a delegate was asked to convert"),
        }
    }

    pub(crate) fn pause(&self) {
        self.gate.send_modify(|g| g.paused = true);
    }

    pub(crate) fn resume(&self) {
        self.gate.send_modify(|g| g.paused = false);
    }

    /// Test hook: the transfer panics at its next wait on the network.
    #[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
    pub(crate) fn crash(&self) {
        self.gate.send_modify(|g| g.crash = true);
    }

    pub(crate) fn allow_body(&self) {
        self.gate.send_modify(|g| g.body_allowed = true);
    }
}

struct Run {
    conversion: Option<Conversion>,
    /// A response the URL cache may keep, with its body so far.
    cache_candidate: Option<Box<caching::Candidate>>,
    /// The metrics log, when someone reads it (see `Run::metrics`).
    metrics: Option<SharedMetrics>,
    ctx: Arc<SessionContext>,
    /// What the task's challenges have asked and answered: made at the first one (most transfers
    /// meet none, and it is large to carry in every transfer's future).
    auth: Option<Box<Authenticator>>,
    info: TaskInfo,
    recorder: TaskRecorder,
    callbacks: bool,
    url: Url,
    /// The idle timeout: the longest wait for the network's next sign of life.
    idle: Duration,
    gate: GateReceiver,
    actor: ActorPost,
    /// A download's file.
    sink: Option<Box<DownloadSink>>,
    /// The delegate window of a data or upload task.
    window: Option<Arc<Semaphore>>,
    /// The last response came over a connection whose server trust the application overrode.
    overridden: bool,
    /// A completion-form task's answer, gathered here and handed to the actor in one message
    /// (`TaskMsg::Whole`) instead of a message per step: nobody watches the steps of such a task.
    gathering: Option<Gathering>,
    /// What the current transaction moved, for its metrics.
    moved: send::Moved,
    /// The current exchange's turn with an HTTP/1.1 host while the request is sent; the response
    /// body then holds it until it has been read to its end (or dropped).
    turn: Option<host_queue::Turn>,
    /// The first request's turn with its HTTP/1.1 host, taken when the transfer started (or
    /// waited for, `Run::run_in_line`), with when the request began to wait for it when metrics
    /// are recorded (its fetch start).
    queued: Option<(host_queue::Turn, Option<std::time::Instant>)>,
    /// A `101` answer's connection, until the body is allowed (or a stream task takes it).
    upgrade: Option<hyper::upgrade::OnUpgrade>,
    /// The request body was made once already: the next send is a resend (a redirect, an
    /// authentication retry), which a streamed body must be handed over anew for.
    resending: bool,
    /// Courier's own `Expect: 100-continue` on the last send, or refused by the server.
    own_expect: OwnExpect,
    /// The resumable upload in flight (`resumable.rs`): offered to the server by the last send
    /// (or, for a task made from resume data, the one it goes on with), with where the server
    /// said the upload resource is, if it did. Kept while the upload is resumed; gone with the
    /// upload's final answer.
    offered: Option<resumable::UploadResource>,
}

/// Courier's own `Expect: 100-continue` (a large upload's, not one the request set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OwnExpect {
    /// The last send did not carry it.
    NotSent,
    /// The last send carried it.
    Sent,
    /// A server answered it with `417 Expectation Failed`: this transfer's sends go without.
    Refused,
}

/// What a gathering transfer holds until the body ends.
#[derive(Default)]
struct Gathering {
    response: Option<Response>,
    body: crate::completion::Gathered,
}

/// Why a transfer ended early.
enum Halt {
    /// It failed.
    Failed(Error),
    /// The actor asked it to stop, or went away.
    Interrupted,
}

impl From<Error> for Halt {
    fn from(e: Error) -> Halt {
        Halt::Failed(e)
    }
}

impl Run {
    /// Runs the transfer to its end: the message for the actor, and what a stop left behind.
    ///
    /// A function that returns a block, not an `async fn`: an `async fn` keeps its arguments
    /// twice in its future (as captured and as locals, rust-lang/rust#62958), and this future is
    /// allocated and moved for every request.
    #[allow(
        clippy::manual_async_fn,
        reason = "an `async fn` stores its arguments twice"
    )]
    fn run(
        mut self,
        target: Target,
        body: Option<UploadBody>,
        destination: Destination,
    ) -> impl Future<Output = (Option<TaskMsg>, Option<Stopped>)> + Send {
        async move {
            let destination = match destination {
                // Boxed: the kinds other than HTTP do not make every transfer's future larger (it is
                // allocated and moved for each of thousands of small requests).
                Destination::Socket(ends) => return Box::pin(self.run_socket(target, *ends)).await,
                Destination::Stream(ends) => return Box::pin(self.run_stream(*ends)).await,
                other => other,
            };
            if let Err(failed) = self.open(destination).await {
                return (Some(TaskMsg::Failed(failed)), None);
            }
            let outcome = match self.begin_when_due(target, body.as_ref()).await {
                Ok(Target::Http(head)) => self.drive(*head, body).await,
                Ok(Target::Local) => self.drive_local().await,
                Ok(Target::Ftp) => Box::pin(self.drive_ftp(body)).await,
                Err(halt) => Err(halt),
            };
            self.end(outcome).await
        }
    }

    /// [`Run::run`] for an HTTP/1.1 request that waits in its host's line (`line`, see
    /// [`Transfer::start`]; it began to wait at `fetch_start`, when metrics are recorded): the
    /// exchange's future (2.6 KB) is made only once the turn comes, so a task among thousands
    /// waiting for a host's few connections holds a small one meanwhile.
    #[allow(
        clippy::manual_async_fn,
        reason = "an `async fn` stores its arguments twice"
    )]
    fn run_in_line(
        mut self,
        head: Box<Head>,
        body: Option<UploadBody>,
        destination: Destination,
        line: host_queue::InLine,
        fetch_start: Option<std::time::Instant>,
    ) -> impl Future<Output = (Option<TaskMsg>, Option<Stopped>)> + Send {
        async move {
            if let Err(failed) = self.open(destination).await {
                return (Some(TaskMsg::Failed(failed)), None);
            }
            let outcome = match unless_stopped(&mut self.gate, line.turn()).await {
                Ok(turn) => {
                    self.queued = Some((turn, fetch_start));
                    Box::pin(self.drive(*head, body)).await
                }
                Err(halt) => Err(halt),
            };
            self.end(outcome).await
        }
    }

    /// Opens where the body goes: a download's file (created, or the one its resume data names).
    async fn open(&mut self, destination: Destination) -> Result<(), Error> {
        match destination {
            Destination::Memory { window } => self.window = window,
            Destination::File { from, slot } => {
                // Boxed: it would make every transfer's future larger.
                let opened = Box::pin(DownloadSink::open(
                    self.ctx.clone(),
                    self.actor.clone(),
                    &self.info,
                    from,
                    &slot,
                ))
                .await;
                self.sink = Some(Box::new(opened?));
            }
            Destination::Socket(_) | Destination::Stream(_) => {
                debug_assert!(
                    false,
                    "a socket or stream transfer opens its own connection"
                );
            }
        }
        Ok(())
    }

    /// The transfer's end, from how its exchange went: the message for the actor, and what a stop
    /// left behind (a download's partial file, and resume data when it can be continued).
    async fn end(&mut self, outcome: Result<(), Halt>) -> (Option<TaskMsg>, Option<Stopped>) {
        let outcome = outcome.map_err(|halt| match halt {
            Halt::Failed(e) if e.failing_url().is_none() => {
                Halt::Failed(e.with_url(self.url.as_str()))
            }
            other => other,
        });
        self.end_transaction();
        let sink = self.sink.take();
        // The download's steps are boxed: only downloads take them.
        match (outcome, sink) {
            (Ok(()), None) => match self.gathering.take() {
                Some(Gathering {
                    response: Some(response),
                    mut body,
                }) => (Some(TaskMsg::Whole(response, body.take())), None),
                _ => (Some(TaskMsg::Finished(None)), None),
            },
            // A download also tells a stopping actor where its file is, in case the end raced a
            // cancel: the actor then decides what becomes of the file.
            (Ok(()), Some(sink)) => {
                let path = sink.path().to_path_buf();
                match Box::pin(sink.finish()).await {
                    Ok(done) => (
                        Some(TaskMsg::Finished(Some(done))),
                        Some(Stopped {
                            resume: None,
                            path: Some(path),
                        }),
                    ),
                    // The last writes failed (a full disk): a failure like any other.
                    Err((e, sink)) => {
                        let e = Box::pin(sink.fail(e)).await;
                        let resume = e.resume_data().cloned();
                        let path = Some(path);
                        (Some(TaskMsg::Failed(e)), Some(Stopped { resume, path }))
                    }
                }
            }
            // An upload the server offered to resume can go on later: its error says how.
            (Err(Halt::Failed(e)), None) => match self.upload_resume_data() {
                Some(data) => (Some(TaskMsg::Failed(e.with_resume_data(data))), None),
                None => (Some(TaskMsg::Failed(e)), None),
            },
            (Err(Halt::Failed(e)), Some(sink)) => {
                let path = sink.path().to_path_buf();
                let e = Box::pin(sink.fail(e)).await;
                let resume = e.resume_data().cloned();
                let path = Some(path);
                (Some(TaskMsg::Failed(e)), Some(Stopped { resume, path }))
            }
            (Err(Halt::Interrupted), None) => match self.upload_resume_data() {
                Some(data) => (
                    None,
                    Some(Stopped {
                        resume: Some(data),
                        path: None,
                    }),
                ),
                None => (None, None),
            },
            (Err(Halt::Interrupted), Some(sink)) => (None, Some(Box::pin(sink.stop()).await)),
        }
    }
}

/// The message of a caught panic.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(s), _) => (*s).to_owned(),
        (_, Some(s)) => s.clone(),
        _ => "a panic without a message".to_owned(),
    }
}
