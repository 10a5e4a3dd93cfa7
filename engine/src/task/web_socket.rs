//! [`WebSocketTask`]: URLSessionWebSocketTask. A task like the others (an actor, the same state
//! machine, `did_complete` exactly once) whose transfer, once the handshake is accepted, keeps the
//! connection and exchanges messages with the application.
//!
//! The handle and the transfer share a `SocketEnds`: commands go to the transfer (send, ping,
//! close) through an unbounded channel, so `send` can be called before the socket is open (the
//! messages go once it is, as URLSession queues them); received messages come back through a
//! bounded one, so a reader that stops reading stops the socket's reads too (the server then waits
//! on TCP's flow control) instead of filling memory.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use courier_delegates::{CloseCode, Error, ErrorCode, Message, TaskInfo};
use tokio::sync::{mpsc, oneshot};

use super::{Progress, Task, TaskDelegateError};

/// The default `maximum_message_size`: 1 MiB, as URLSession's.
pub const DEFAULT_MAXIMUM_MESSAGE_SIZE: usize = 1 << 20;

/// Received messages held for the application before the socket stops reading.
const RECEIVED_AHEAD: usize = 16;

/// How long a close waits for the server's close frame before dropping the connection.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// A pong handler: called once with `None` when the pong came, or the error that ended the socket
/// first.
pub type PongHandler = Box<dyn FnOnce(Option<Error>) + Send + 'static>;

/// What the application asks of an open socket.
pub(crate) enum Command {
    Send(Message, oneshot::Sender<Result<(), Error>>),
    Ping(PongHandler),
    Close(CloseCode, Option<Bytes>),
}

/// What the handle and the transfer share.
pub(crate) struct Shared {
    pub(crate) protocols: Vec<String>,
    pub(crate) maximum_message_size: AtomicUsize,
    /// The code and reason once closed (`Invalid` and `None` until then).
    pub(crate) closed: Mutex<(CloseCode, Option<Bytes>)>,
    /// Why the socket ended, for calls made after it did.
    pub(crate) ended: Mutex<Option<Error>>,
}

/// The transfer's ends of the two channels, taken when the task starts.
pub(crate) struct SocketEnds {
    pub(crate) shared: Arc<Shared>,
    pub(crate) commands: mpsc::UnboundedReceiver<Command>,
    pub(crate) received: mpsc::Sender<Message>,
}

/// The handle's ends.
pub(crate) struct HandleEnds {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
    received: tokio::sync::Mutex<mpsc::Receiver<Message>>,
}

/// Makes the two ends of a new WebSocket task.
pub(crate) fn socket_ends(protocols: Vec<String>) -> (SocketEnds, HandleEnds) {
    let shared = Arc::new(Shared {
        protocols,
        maximum_message_size: AtomicUsize::new(DEFAULT_MAXIMUM_MESSAGE_SIZE),
        closed: Mutex::new((CloseCode::Invalid, None)),
        ended: Mutex::new(None),
    });
    let (command_tx, command_rx) = mpsc::unbounded_channel();
    let (received_tx, received_rx) = mpsc::channel(RECEIVED_AHEAD);
    let handle = HandleEnds {
        shared: shared.clone(),
        commands: command_tx,
        received: tokio::sync::Mutex::new(received_rx),
    };
    (
        SocketEnds {
            shared,
            commands: command_rx,
            received: received_tx,
        },
        handle,
    )
}

impl Shared {
    /// Records why the socket ended (the first reason stays).
    pub(crate) fn end(&self, error: Error) {
        let mut ended = self.ended.lock().unwrap_or_else(|p| p.into_inner());
        ended.get_or_insert(error);
    }

    pub(crate) fn set_closed(&self, code: CloseCode, reason: Option<Bytes>) {
        *self.closed.lock().unwrap_or_else(|p| p.into_inner()) = (code, reason);
    }
}

/// A WebSocket task (`URLSessionWebSocketTask`), made by
/// [`Session::web_socket_task`](crate::Session::web_socket_task). Resume it to connect; messages
/// sent before the handshake completes go once it has.
///
/// `ws://` URLs are cleartext and follow the session's cleartext policy; `wss://` uses the
/// session's TLS trust and its server-trust challenge. The handshake is a request like any other:
/// the session's cookies, credentials, challenges, extra headers and proxies apply (an `https`
/// proxy tunnel for `wss://`).
///
/// Its plain `cancel()` closes without a close handshake: the task completes with -999 and its
/// `close_code` stays [`CloseCode::Invalid`], as URLSession's; [`WebSocketTask::cancel_with`]
/// closes with a code.
///
/// Where URLSession's `send(_:completionHandler:)`, `receive(completionHandler:)` and
/// `sendPing(pongReceiveHandler:)` take completion handlers, `send` and `receive` here are async
/// functions; a ping keeps its handler, called once.
#[derive(Clone)]
pub struct WebSocketTask {
    task: Task,
    ends: Arc<HandleEnds>,
}

impl std::fmt::Debug for WebSocketTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("WebSocketTask")
            .field(self.task.info())
            .finish()
    }
}

impl WebSocketTask {
    pub(crate) fn new(task: Task, ends: HandleEnds) -> WebSocketTask {
        WebSocketTask {
            task,
            ends: Arc::new(ends),
        }
    }

    /// The task behind this handle.
    pub fn task(&self) -> &Task {
        &self.task
    }

    shared_handle_methods!();

    /// Closes with `code` and `reason` (at most 123 bytes): a close frame to the server, whose
    /// close frame is then awaited (5 s at most). The task then completes without an error.
    /// A code that may not be sent on the wire (0, 1005, 1006, 1015, or outside the ranges RFC 6455
    /// allows) is sent as 1000.
    pub fn cancel_with(&self, code: CloseCode, reason: Option<Bytes>) {
        let code = if code.may_be_sent() {
            code
        } else {
            CloseCode::NormalClosure
        };
        let reason = reason.map(|r| r.slice(..r.len().min(123)));
        if self
            .ends
            .commands
            .send(Command::Close(code, reason))
            .is_err()
        {
            return; // ended already
        }
        // A task never resumed has no transfer to read the command: close it as a cancel would.
        if self.task.info().state() == courier_delegates::TaskState::Suspended
            && !self.task.handles.resumed.load(Ordering::Acquire)
        {
            self.task.cancel();
        }
    }

    /// Sends `message`; returns once it has been written to the connection.
    ///
    /// # Errors
    /// The error that ended the socket, or one for a message over `maximum_message_size`.
    pub async fn send(&self, message: Message) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        if self.ends.commands.send(Command::Send(message, tx)).is_err() {
            return Err(self.ended());
        }
        rx.await.unwrap_or_else(|_| Err(self.ended()))
    }

    /// Receives the next message, waiting for it.
    ///
    /// # Errors
    /// Once the socket has ended (closed by either side, or failed) and the messages received
    /// before have been read: the task's error, or `NetworkConnectionLost` (-1005) after a close.
    pub async fn receive(&self) -> Result<Message, Error> {
        let mut received = self.ends.received.lock().await;
        received.recv().await.ok_or_else(|| self.ended())
    }

    /// Sends a ping; `pong` is called once, with `None` when the server's pong arrives or with
    /// the error that ended the socket first.
    pub fn send_ping(&self, pong: impl FnOnce(Option<Error>) + Send + 'static) {
        if let Err(mpsc::error::SendError(Command::Ping(pong))) =
            self.ends.commands.send(Command::Ping(Box::new(pong)))
        {
            pong(Some(self.ended()));
        }
    }

    /// The largest message (and frame) accepted, in bytes; default 1 MiB. A larger one from the
    /// server closes the socket with 1009 (message too big) and fails the task with
    /// `DataLengthExceedsMaximum` (-1103).
    pub fn maximum_message_size(&self) -> usize {
        self.ends
            .shared
            .maximum_message_size
            .load(Ordering::Relaxed)
    }

    /// Sets [`maximum_message_size`](Self::maximum_message_size); it applies when the socket
    /// opens, so set it before resuming the task.
    pub fn set_maximum_message_size(&self, bytes: usize) {
        self.ends
            .shared
            .maximum_message_size
            .store(bytes.max(1), Ordering::Relaxed);
    }

    /// The close code once closed ([`CloseCode::Invalid`] until then).
    pub fn close_code(&self) -> CloseCode {
        self.ends
            .shared
            .closed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
    }

    /// The close frame's reason once closed, if it had one.
    pub fn close_reason(&self) -> Option<Bytes> {
        self.ends
            .shared
            .closed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }

    fn ended(&self) -> Error {
        let ended = self
            .ends
            .shared
            .ended
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        ended
            .or_else(|| self.task.info().error())
            .unwrap_or_else(|| {
                Error::new(ErrorCode::NetworkConnectionLost, "the WebSocket is closed")
                    .with_url(self.task.info().original_request().url_str())
            })
    }
}

/// The handshake's request: `request` with its `ws:` or `wss:` URL as `http:` or `https:` (whose
/// rules then apply: the cleartext policy for `ws:`).
///
/// # Errors
/// `UnsupportedUrl` (-1002) for any other scheme, `BadUrl` for a URL that did not parse.
pub(crate) fn handshake_request(
    request: &courier_delegates::Request,
) -> Result<courier_delegates::Request, Error> {
    let text = request.url_str();
    let Some(url) = request.url() else {
        return Err(Error::new(ErrorCode::BadUrl, "bad URL").with_url(text));
    };
    let scheme = match url.scheme() {
        "ws" => "http",
        "wss" => "https",
        other => {
            return Err(Error::new(
                ErrorCode::UnsupportedUrl,
                format!("a WebSocket task needs a ws: or wss: URL, not {other:?}"),
            )
            .with_url(text));
        }
    };
    let mut http = url.clone();
    // Both are special schemes of the same kind: the change cannot fail.
    let _ = http.set_scheme(scheme);
    let mut handshake = request.clone();
    handshake.set_url(http);
    Ok(handshake)
}

/// A failure of the handshake as the task reports it: its URL back in the task's own scheme
/// (`ws:` for `http:`, `wss:` for `https:`), as URLSession names a WebSocket task's failing URL.
pub(crate) fn in_socket_terms(error: Error) -> Error {
    let socket = error
        .failing_url()
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|mut u| {
            let scheme = match u.scheme() {
                "http" => "ws",
                "https" => "wss",
                _ => return None,
            };
            u.set_scheme(scheme).ok()?;
            Some(u.to_string())
        });
    match socket {
        Some(url) => error.with_url(url),
        None => error,
    }
}

impl From<WebSocketTask> for Task {
    fn from(handle: WebSocketTask) -> Task {
        handle.task
    }
}
