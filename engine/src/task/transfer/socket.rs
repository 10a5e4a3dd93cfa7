//! A WebSocket task's transfer: the handshake sent as any request is (redirects, cookies,
//! challenges, trust, proxies), its answer checked, then the open socket's loop until a close or
//! a failure.
//!
//! The loop serves three sources at once: the server's frames (read only while the application
//! has room for another message and the task is not suspended), the application's commands (send,
//! ping, close), and the gate (cancel, the resource timeout). A close from either side waits at
//! most [`CLOSE_GRACE`] for the other side's close frame.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use courier_delegates::{CloseCode, Error, ErrorCode, Message, Response};
use courier_protocol_http::websocket::{
    self, CloseFrame, Frame, FrameError, Handshake, WebSocket, WireCloseCode,
};
use futures_util::task::AtomicWaker;
use futures_util::{SinkExt, Stream, StreamExt};
use tokio::time::Instant;

use super::timing::{halt_of, unless_stopped};
use super::{Halt, Head, Run, Target};
use crate::task::actor::TaskMsg;
use crate::task::download::Stopped;
use crate::task::web_socket::{CLOSE_GRACE, Command, PongHandler, SocketEnds};

/// How the open socket's loop ended.
enum Ended {
    /// Closed by a close handshake: the code and reason of the close that ended it.
    Closed(CloseCode, Option<bytes::Bytes>),
    /// The task was cancelled, or timed out.
    Halted(Halt),
    /// It failed; the code and reason of the close frame sent, if one was.
    Failed(Error, Option<CloseCode>),
}

impl Run {
    /// Runs a WebSocket task's transfer to its end.
    pub(super) async fn run_socket(
        mut self,
        target: Target,
        ends: SocketEnds,
    ) -> (Option<TaskMsg>, Option<Stopped>) {
        let shared = ends.shared.clone();
        let url = self.info.original_request().url_str().to_owned();
        let outcome = match target {
            Target::Http(head) => self.drive_socket(*head, ends).await,
            Target::Local | Target::Ftp => Err(Halt::Failed(Error::new(
                ErrorCode::UnsupportedUrl,
                "a WebSocket task needs a ws: or wss: URL",
            ))),
        };
        self.end_transaction();
        match outcome {
            Ok(()) => (Some(TaskMsg::Finished(None)), None),
            Err(Halt::Failed(e)) => {
                let e = if e.failing_url().is_none() {
                    e.with_url(&url)
                } else {
                    e
                };
                shared.end(e.clone());
                (Some(TaskMsg::Failed(e)), None)
            }
            Err(Halt::Interrupted) => {
                shared.end(Error::cancelled(&url));
                (None, None)
            }
        }
    }

    async fn drive_socket(&mut self, mut head: Head, ends: SocketEnds) -> Result<(), Halt> {
        let SocketEnds {
            shared,
            mut commands,
            received,
        } = ends;
        let handshake = Handshake::prepare(Arc::make_mut(&mut head.headers), &shared.protocols);
        let (mut parts, body) = self
            .send_following(&mut head, &mut None)
            .await?
            .into_parts();
        // A `101` has no body; dropping it frees the host's turn and lets hyper hand the
        // connection over.
        drop(body);
        let bad = |why: String| Halt::Failed(Error::new(ErrorCode::BadServerResponse, why));
        let protocol = handshake
            .check(parts.status, &parts.headers)
            .map_err(|e| bad(e.to_string()))?;
        let maximum = shared
            .maximum_message_size
            .load(std::sync::atomic::Ordering::Relaxed);
        let socket = unless_stopped(
            &mut self.gate,
            websocket::open(&mut parts.extensions, maximum),
        )
        .await?
        .map_err(|e| bad(e.to_string()))?;
        let response = Response::new(self.url.clone(), parts.status, parts.version, parts.headers);
        if self
            .actor
            .cast(TaskMsg::Opened(response, protocol))
            .is_err()
        {
            return Err(Halt::Interrupted);
        }

        let mut pongs: VecDeque<PongHandler> = VecDeque::new();
        let ended = self
            .exchange(socket, &mut commands, &received, &mut pongs)
            .await;
        // Nobody will answer the pings still out.
        for pong in pongs {
            pong(Some(Error::new(
                ErrorCode::NetworkConnectionLost,
                "the WebSocket closed before the pong",
            )));
        }
        match ended {
            Ended::Closed(code, reason) => {
                shared.set_closed(code, reason.clone());
                let _ = self.actor.cast(TaskMsg::Closed(code, reason));
                Ok(())
            }
            Ended::Halted(halt) => Err(halt),
            Ended::Failed(e, sent) => {
                if let Some(code) = sent {
                    shared.set_closed(code, None);
                    let _ = self.actor.cast(TaskMsg::Closed(code, None));
                }
                Err(Halt::Failed(e))
            }
        }
    }

    /// The open socket's loop. Its two halves work apart: a write under way (a large message to a
    /// slow reader) never stops the reads, or a server that echoes could wait on this side while
    /// this side waits on it.
    async fn exchange(
        &mut self,
        socket: WebSocket,
        commands: &mut tokio::sync::mpsc::UnboundedReceiver<Command>,
        received: &tokio::sync::mpsc::Sender<Message>,
        pongs: &mut VecDeque<PongHandler>,
    ) -> Ended {
        let lost = |why: String| Error::new(ErrorCode::NetworkConnectionLost, why);
        let (sink, stream) = socket.split();
        let mut stream = ReadWhenWoken::new(stream);
        // The write half, when no write holds it.
        let mut sink = Some(sink);
        // The write under way, which hands the write half back with its result.
        let mut writing: Option<Writing> = None;
        // What to do once it is done: answer a `send`.
        let mut reply: Option<(tokio::sync::oneshot::Sender<Result<(), Error>>, i64)> = None;
        // A received message waiting for room in the application's queue.
        let mut held: Option<Message> = None;
        // The close sent by this side, and when to stop waiting for the server's.
        let mut closing: Option<(CloseCode, Option<bytes::Bytes>, Instant)> = None;
        // The server's close, once it came.
        let mut server_closed: Option<(CloseCode, Option<bytes::Bytes>)> = None;
        let mut commands_open = true;
        let (mut bytes_in, mut bytes_out) = (0i64, 0i64);
        loop {
            let gate = self.gate.borrow();
            if gate.crash {
                panic!("injected transfer panic");
            }
            if gate.halted() {
                // Cancelled without a close code (URLSession's plain `cancel()`): the server is
                // told this side is going away, if it can be told at once.
                if let Some(mut sink) = sink.take() {
                    let going = Frame::Close(Some(CloseFrame {
                        code: WireCloseCode::Away,
                        reason: "".into(),
                    }));
                    let _ = tokio::time::timeout(GOING_AWAY, sink.send(going)).await;
                }
                return Ended::Halted(halt_of(&self.gate));
            }
            let reading = held.is_none() && !gate.paused;
            let deadline = closing.as_ref().map(|c| c.2);
            let taking =
                commands_open && writing.is_none() && closing.is_none() && server_closed.is_none();
            tokio::select! {
                changed = self.gate.changed() => {
                    if changed.is_err() {
                        return Ended::Halted(Halt::Interrupted);
                    }
                }
                permit = received.reserve(), if held.is_some() => {
                    // Nobody reads any more (every handle dropped): the message is dropped.
                    if let (Ok(permit), Some(message)) = (permit, held.take()) {
                        permit.send(message);
                    }
                }
                () = async {
                    match deadline {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {
                    // The other side never finished the close: the connection is dropped.
                    let (code, reason, _) = closing.take().expect("a deadline is a close's");
                    return Ended::Closed(code, reason);
                }
                (half, written) = async { writing.as_mut().expect("a write under way").await }, if writing.is_some() => {
                    writing = None;
                    sink = Some(half);
                    if let Some(ended) =
                        self.written(written, &mut reply, &mut bytes_out, &mut closing)
                    {
                        return ended;
                    }
                }
                command = commands.recv(), if taking => {
                    let Some(command) = command else {
                        commands_open = false;
                        continue;
                    };
                    let frame = match command {
                        Command::Send(message, tx) => {
                            reply = Some((tx, message.len() as i64));
                            match message {
                                Message::Text(text) => Frame::text(text),
                                Message::Binary(bytes) => Frame::Binary(bytes),
                            }
                        }
                        Command::Ping(pong) => {
                            pongs.push_back(pong);
                            Frame::Ping(bytes::Bytes::new())
                        }
                        Command::Close(code, reason) => {
                            let frame = CloseFrame {
                                code: WireCloseCode::from(code.code()),
                                reason: String::from_utf8_lossy(reason.as_deref().unwrap_or_default())
                                    .into_owned()
                                    .into(),
                            };
                            closing = Some((code, reason, Instant::now() + CLOSE_GRACE));
                            Frame::Close(Some(frame))
                        }
                    };
                    let mut half = sink.take().expect("no write under way");
                    let mut write: Writing = Box::pin(async move {
                        let written = half.send(frame).await;
                        (half, written)
                    });
                    // A small frame to a socket with room is written at once: answered in this
                    // turn rather than the loop's next one.
                    match std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await {
                        Poll::Ready((half, written)) => {
                            sink = Some(half);
                            if let Some(ended) =
                                self.written(written, &mut reply, &mut bytes_out, &mut closing)
                            {
                                return ended;
                            }
                        }
                        Poll::Pending => writing = Some(write),
                    }
                }
                frame = stream.next(), if reading => match frame {
                    Some(Ok(Frame::Text(text))) => {
                        bytes_in += text.len() as i64;
                        self.recorder.set_received(bytes_in);
                        held = deliver(received, Message::Text(text.as_str().to_owned()));
                    }
                    Some(Ok(Frame::Binary(bytes))) => {
                        bytes_in += bytes.len() as i64;
                        self.recorder.set_received(bytes_in);
                        held = deliver(received, Message::Binary(bytes));
                    }
                    Some(Ok(Frame::Pong(_))) => {
                        if let Some(pong) = pongs.pop_front() {
                            pong(None);
                        }
                    }
                    // Pings are answered by the framing layer.
                    Some(Ok(Frame::Ping(_) | Frame::Frame(_))) => {}
                    Some(Ok(Frame::Close(frame))) => {
                        let (code, reason) = match frame {
                            Some(f) => (
                                CloseCode::from_code(u16::from(f.code)),
                                (!f.reason.is_empty())
                                    .then(|| bytes::Bytes::copy_from_slice(f.reason.as_bytes())),
                            ),
                            None => (CloseCode::NoStatusReceived, None),
                        };
                        if closing.is_none() {
                            // The framing layer answers with the same code; the server then ends
                            // the connection.
                            server_closed = Some((code, reason.clone()));
                            closing = Some((code, reason, Instant::now() + CLOSE_GRACE));
                        }
                    }
                    Some(Err(FrameError::Capacity(e))) => {
                        if let Some(mut half) = sink.take() {
                            let too_big = Frame::Close(Some(CloseFrame {
                                code: WireCloseCode::Size,
                                reason: "".into(),
                            }));
                            let _ = tokio::time::timeout(CLOSE_GRACE, half.send(too_big)).await;
                        }
                        let e = Error::new(
                            ErrorCode::DataLengthExceedsMaximum,
                            format!("a WebSocket message is larger than the maximum message size: {e}"),
                        );
                        return Ended::Failed(e, Some(CloseCode::MessageTooBig));
                    }
                    None | Some(Err(FrameError::ConnectionClosed | FrameError::AlreadyClosed)) => {
                        return match (server_closed.take(), closing.take()) {
                            (Some((code, reason)), _) | (None, Some((code, reason, _))) => {
                                Ended::Closed(code, reason)
                            }
                            (None, None) => Ended::Failed(
                                lost("the WebSocket's connection ended without a close".into()),
                                None,
                            ),
                        };
                    }
                    Some(Err(e)) => {
                        return match (server_closed.take(), closing.take()) {
                            // The close handshake was under way: the connection's end completes it.
                            (Some((code, reason)), _) | (None, Some((code, reason, _))) => {
                                Ended::Closed(code, reason)
                            }
                            (None, None) => Ended::Failed(
                                lost(format!("the WebSocket failed: {e}")).with_source(e),
                                None,
                            ),
                        };
                    }
                },
            }
        }
    }

    /// A write's end: the `send` it answers is told, and the bytes sent counted. Returns how the
    /// loop ends when the write failed.
    fn written(
        &mut self,
        written: Result<(), FrameError>,
        reply: &mut Option<(tokio::sync::oneshot::Sender<Result<(), Error>>, i64)>,
        bytes_out: &mut i64,
        closing: &mut Option<(CloseCode, Option<bytes::Bytes>, Instant)>,
    ) -> Option<Ended> {
        let answer = match &written {
            Ok(()) => {
                if let Some((_, n)) = reply {
                    *bytes_out += *n;
                    self.recorder.set_sent(*bytes_out);
                }
                Ok(())
            }
            Err(e) => Err(send_error(e)),
        };
        if let Some((tx, _)) = reply.take() {
            let _ = tx.send(answer.clone());
        }
        let e = answer.err()?;
        // A close that could not be written: the connection is gone anyway.
        Some(match closing.take() {
            Some((code, reason, _)) => Ended::Closed(code, reason),
            None => Ended::Failed(e, None),
        })
    }
}

/// Hands a received message to the application's queue, or returns it to be held while the queue
/// is full. With every handle dropped (nobody reads any more), the message is dropped.
fn deliver(received: &tokio::sync::mpsc::Sender<Message>, message: Message) -> Option<Message> {
    match received.try_send(message) {
        Ok(()) | Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => None,
        Err(tokio::sync::mpsc::error::TrySendError::Full(message)) => Some(message),
    }
}

/// The read half, polled only after it asked to be: once it has woken the loop, or right after it
/// gave a frame (more may wait in its buffer).
///
/// `tokio::select!` polls every branch each time the loop wakes (for a send, a written frame, a
/// delivered message), and every poll of the stream is a read attempt before which tungstenite
/// zeroes its read buffer (`READ_SIZE` in `courier_protocol_http::websocket`), only to find
/// nothing. A waker of its own tells which wakes were the stream's.
struct ReadWhenWoken<S> {
    inner: S,
    woken: Arc<StreamWoken>,
}

/// Whether the read half may have something, and the loop's waker to pass its wake on to.
struct StreamWoken {
    ready: AtomicBool,
    task: AtomicWaker,
}

impl<S> ReadWhenWoken<S> {
    fn new(inner: S) -> Self {
        ReadWhenWoken {
            inner,
            woken: Arc::new(StreamWoken {
                ready: AtomicBool::new(true),
                task: AtomicWaker::new(),
            }),
        }
    }
}

impl Wake for StreamWoken {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ready.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl<S: Stream + Unpin> Stream for ReadWhenWoken<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        self.woken.task.register(cx.waker());
        if !self.woken.ready.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let waker = Waker::from(self.woken.clone());
        let polled = Pin::new(&mut self.inner).poll_next(&mut Context::from_waker(&waker));
        if polled.is_ready() {
            self.woken.ready.store(true, Ordering::Release);
        }
        polled
    }
}

/// A write under way: it hands the write half back with its result.
type Writing = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = (
                    futures_util::stream::SplitSink<WebSocket, Frame>,
                    Result<(), FrameError>,
                ),
            > + Send,
    >,
>;

/// How long a cancelled socket tries to tell the server it is going away.
const GOING_AWAY: std::time::Duration = std::time::Duration::from_millis(100);

/// The error of a send that failed.
fn send_error(e: &FrameError) -> Error {
    match e {
        FrameError::Capacity(why) => Error::new(
            ErrorCode::DataLengthExceedsMaximum,
            format!("the message is too large: {why}"),
        ),
        other => Error::new(
            ErrorCode::NetworkConnectionLost,
            format!("the WebSocket could not send: {other}"),
        ),
    }
}
