//! [`StreamTask`]: URLSessionStreamTask. A task like the others (an actor, the same state
//! machine, `did_complete` exactly once) whose transfer is a TCP connection the application reads
//! and writes, on which TLS can be started (STARTTLS) and stopped, and which it can take over
//! ([`StreamTask::capture_streams`]).
//!
//! The handle sends commands to the transfer; reads and writes run at the same time (a netcat
//! reads while it writes), while starting or stopping TLS and capturing the stream wait until no
//! read or write is under way.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use courier_delegates::{Error, ErrorCode, TaskInfo};
use courier_protocol_http::stream::RawStream;
use tokio::sync::{mpsc, oneshot};

use super::{Progress, Task, TaskDelegateError};

/// What the application asks of the connection.
pub(crate) enum Command {
    Read {
        min: usize,
        max: usize,
        timeout: Duration,
        reply: oneshot::Sender<Result<(Bytes, bool), Error>>,
    },
    Write {
        data: Bytes,
        timeout: Duration,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    CloseRead,
    CloseWrite,
    StartSecure(oneshot::Sender<Result<(), Error>>),
    StopSecure(oneshot::Sender<Result<(), Error>>),
    Capture(oneshot::Sender<Result<CapturedStream, Error>>),
}

/// The transfer's end of the command channel.
pub(crate) struct StreamEnds {
    pub(crate) commands: mpsc::UnboundedReceiver<Command>,
}

/// Makes both ends of a new stream task's channel.
pub(crate) fn stream_ends() -> (StreamEnds, mpsc::UnboundedSender<Command>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (StreamEnds { commands: rx }, tx)
}

/// A stream task's connection, handed to the application by [`StreamTask::capture_streams`]:
/// a Tokio stream, readable and writable (TLS included, if it was started).
#[derive(Debug)]
pub struct CapturedStream(pub(crate) RawStream);

impl CapturedStream {
    /// True when TLS runs on it.
    pub fn is_secure(&self) -> bool {
        self.0.is_secure()
    }
}

impl tokio::io::AsyncRead for CapturedStream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for CapturedStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// A stream task (`URLSessionStreamTask`), made by
/// [`Session::stream_task`](crate::Session::stream_task). Resume it to connect; calls made before
/// the connection is open wait for it.
///
/// A raw TCP stream is not a URL load: the session's cleartext policy does not apply to it. The
/// session's proxy carries it (an explicit one, or the environment's `ALL_PROXY`): a `CONNECT`
/// tunnel through an HTTP proxy, the connection itself through SOCKS5. TLS, when started, uses
/// the session's trust (extra roots, or its delegate's server-trust challenge). URLSession's
/// completion handlers are async functions here.
#[derive(Clone)]
pub struct StreamTask {
    task: Task,
    commands: Arc<mpsc::UnboundedSender<Command>>,
}

impl std::fmt::Debug for StreamTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StreamTask").field(self.task.info()).finish()
    }
}

impl StreamTask {
    pub(crate) fn new(task: Task, commands: mpsc::UnboundedSender<Command>) -> StreamTask {
        StreamTask {
            task,
            commands: Arc::new(commands),
        }
    }

    /// The task behind this handle.
    pub fn task(&self) -> &Task {
        &self.task
    }

    shared_handle_methods!();

    /// Reads at least `min` and at most `max` bytes, waiting at most `timeout` for them: the bytes
    /// and whether the end of the stream was reached (`readData(ofMinLength:maxLength:timeout:)`).
    /// At the end of the stream, fewer than `min` bytes (maybe none) come back with `true`.
    ///
    /// A read dropped before it resolves takes nothing, unless its bytes were already on their way
    /// to it: keep a read awaited (a reading task of its own, say) rather than racing it in a
    /// `select!` that may drop it.
    ///
    /// # Errors
    /// `TimedOut` (-1001) when `min` bytes did not come in time (the bytes read so far are kept
    /// for the next read); the error that ended the task.
    pub async fn read(
        &self,
        min: usize,
        max: usize,
        timeout: Duration,
    ) -> Result<(Bytes, bool), Error> {
        let (reply, rx) = oneshot::channel();
        let max = max.max(1);
        self.ask(
            Command::Read {
                min: min.min(max),
                max,
                timeout,
                reply,
            },
            rx,
        )
        .await
    }

    /// Writes `data` whole, waiting at most `timeout` (`write(_:timeout:)`).
    ///
    /// # Errors
    /// `TimedOut` when it could not be written in time; the error that ended the task, or one for
    /// a writing side already closed.
    pub async fn write(&self, data: impl Into<Bytes>, timeout: Duration) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        let data = data.into();
        self.ask(
            Command::Write {
                data,
                timeout,
                reply,
            },
            rx,
        )
        .await
    }

    /// Closes the reading side (`closeRead()`); the delegate hears `read_closed`.
    pub fn close_read(&self) {
        let _ = self.commands.send(Command::CloseRead);
    }

    /// Closes the writing side (`closeWrite()`): the server reads the end of the stream. Once both
    /// sides are closed, the task completes.
    pub fn close_write(&self) {
        let _ = self.commands.send(Command::CloseWrite);
    }

    /// Starts TLS on the connection, once the reads and writes asked for before are done
    /// (`startSecureConnection()`): the server's certificate for the task's host is checked as
    /// the session checks any (a server-trust challenge to its delegate, if it has one).
    ///
    /// # Errors
    /// The handshake failed or the certificate was refused (the task then fails with it too).
    pub async fn start_secure_connection(&self) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        self.ask(Command::StartSecure(reply), rx).await
    }

    /// Stops TLS (`stopSecureConnection()`): TLS's close_notify is sent and the connection goes
    /// on in cleartext.
    ///
    /// # Errors
    /// The close_notify could not be written.
    pub async fn stop_secure_connection(&self) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        self.ask(Command::StopSecure(reply), rx).await
    }

    /// Hands the connection to the application (`captureStreams()`), once the reads and writes
    /// asked for before are done: the delegate hears `did_become_streams`, and the task completes
    /// without an error. Bytes already read but not yet returned by `read` are lost to it, as
    /// URLSession's are.
    ///
    /// # Errors
    /// The task ended before.
    pub async fn capture_streams(&self) -> Result<CapturedStream, Error> {
        let (reply, rx) = oneshot::channel();
        self.ask(Command::Capture(reply), rx).await
    }

    async fn ask<T>(
        &self,
        command: Command,
        rx: oneshot::Receiver<Result<T, Error>>,
    ) -> Result<T, Error> {
        if self.commands.send(command).is_err() {
            return Err(self.ended());
        }
        rx.await.unwrap_or_else(|_| Err(self.ended()))
    }

    fn ended(&self) -> Error {
        self.task.info().error().unwrap_or_else(|| {
            Error::new(
                ErrorCode::NetworkConnectionLost,
                "the stream task has ended",
            )
            .with_url(self.task.info().original_request().url_str())
        })
    }
}

impl From<StreamTask> for Task {
    fn from(handle: StreamTask) -> Task {
        handle.task
    }
}
