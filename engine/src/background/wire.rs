//! The local protocol between a background session (the application side) and the background
//! service.
//!
//! - **Where**: a Unix socket, [`SOCKET`], in a directory readable by the user only
//!   ([`socket_dir`]: `$XDG_RUNTIME_DIR/courier/`, else `courier/run` in the user's data directory).
//! - **Who**: the service checks the peer's user id (`SO_PEERCRED`) on every connection against the
//!   owner of that directory, and refuses anyone else before reading a byte.
//! - **What**: frames of a little-endian `u32` length, then a message in the storage codec's
//!   versioned, checked envelope; at most [`MAX_FRAME`] bytes. The decoder tells "need more" from
//!   "invalid" and never buffers past the limit.
//! - **Handshake**: the client's first message is [`ClientMessage::Hello`] with its
//!   [`PROTOCOL_VERSION`] and the identifier it attaches to; the service answers
//!   [`ServiceMessage::Welcome`], or [`ServiceMessage::Refused`] with the reason (another protocol
//!   version) and closes. A connection sees only the identifier it attached to.

use std::io;
use std::path::{Path, PathBuf};

use bytes::{Buf, BytesMut};
use courier_storage::codec::{self, CodecError};
use courier_storage::journal::{EventRecord, Schedule, TaskKind, TaskRecord};
use courier_storage::resume::RequestRecord;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

/// A request as [`ClientMessage::CreateTask`] carries it (and the journal keeps it).
pub use crate::task::download::request_record;

/// The protocol version this build speaks (and the only one it accepts).
pub const PROTOCOL_VERSION: u16 = 1;

/// The largest frame either side sends or accepts.
pub const MAX_FRAME: usize = 16 << 20;

/// The socket's name in [`socket_dir`].
pub const SOCKET: &str = "service.sock";

/// What an application says to the service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ClientMessage {
    /// The first message: the protocol version, and the background session's identifier.
    Hello {
        /// [`PROTOCOL_VERSION`] of the client.
        version: u16,
        /// The identifier this connection attaches to.
        identifier: String,
        /// True for an application session, which takes the identifier's events; false for a
        /// connection that only creates, controls and lists tasks (`courier bg download`), so that
        /// the events wait for the application.
        events: bool,
    },
    /// A new task in this identifier's session.
    CreateTask {
        /// Download, or upload from a file.
        kind: TaskKind,
        /// Its request.
        request: RequestRecord,
        /// The application's description.
        description: String,
        /// Its priority, discretion, creation time and resource timeout (the earliest begin date
        /// comes with the first `Resume`).
        schedule: Schedule,
    },
    /// The application handled event `seq`.
    Acknowledge {
        /// The event's sequence number.
        seq: u64,
    },
    /// `resume()`, `suspend()` or `cancel()` on a task.
    Control {
        /// The task.
        task: u64,
        /// What to do.
        control: RemoteControl,
    },
    /// Every task of the identifier, as `Task` messages, then `EndOfTasks`.
    ListTasks,
    /// A download from resume data that this service produced (URLSession's
    /// `downloadTask(withResumeData:)`); answered with `Created`.
    CreateFromResumeData {
        /// The resume data.
        data: Vec<u8>,
        /// As for `CreateTask`.
        schedule: Schedule,
    },
    /// Cancels every task of the identifier (their completions wait for the next attach) and
    /// closes its session; answered with `Invalidated`.
    Invalidate,
}

/// A control call on a background task.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum RemoteControl {
    /// `resume()`, with the task's priority and earliest begin date as they are now (both may be
    /// set after the task was created).
    Resume {
        /// 0.0 to 1.0.
        priority: f32,
        /// Milliseconds since the Unix epoch.
        not_before_ms: Option<u64>,
    },
    /// `suspend()`.
    Suspend,
    /// `cancel()`.
    Cancel,
    /// `cancel(byProducingResumeData:)`: answered with [`ServiceMessage::ResumeData`].
    CancelForResume,
}

impl RemoteControl {
    /// `resume()` with the default priority and no earliest begin date.
    pub const RESUME: RemoteControl = RemoteControl::Resume {
        priority: courier_delegates::priority::DEFAULT,
        not_before_ms: None,
    };
}

/// A new task's schedule under `config`: the session's discretion and resource timeout, the
/// default priority, created now.
pub fn schedule_for(config: &crate::Configuration) -> Schedule {
    Schedule {
        priority: courier_delegates::priority::DEFAULT,
        discretionary: config.is_discretionary,
        not_before_ms: None,
        created_ms: unix_ms(std::time::SystemTime::now()),
        resource_timeout_ms: u64::try_from(config.timeout_for_resource.as_millis())
            .unwrap_or(u64::MAX),
        retries: 0,
    }
}

/// Milliseconds since the Unix epoch, as schedules count time.
pub fn unix_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What the service says to an application.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ServiceMessage {
    /// The handshake succeeded.
    Welcome {
        /// [`PROTOCOL_VERSION`] of the service.
        version: u16,
    },
    /// The handshake failed; the connection closes.
    Refused {
        /// Why, for the application's error.
        reason: String,
    },
    /// The task was journaled under this id.
    TaskCreated {
        /// The task's identifier, stable across attaches.
        task: u64,
    },
    /// An event for the application's delegate.
    Event {
        /// Its sequence number (acknowledge it once handled); 0 for a progress report the journal
        /// does not keep, which needs no acknowledgement.
        seq: u64,
        /// The event.
        record: EventRecord,
    },
    /// Every event journaled before this attach was sent: `did_finish_events_for_background_session`.
    FinishedEvents,
    /// A task as the journal holds it: sent first at every attach (so the application knows the
    /// tasks its events are about), and in answer to `ListTasks`.
    Task {
        /// Its identifier.
        task: u64,
        /// Its record.
        record: TaskRecord,
        /// Bytes received (downloads) or sent (uploads) so far; 0 before it ran.
        written: i64,
        /// Bytes expected, or -1 when unknown.
        expected: i64,
    },
    /// The end of a `ListTasks` answer.
    EndOfTasks,
    /// The answer to [`RemoteControl::CancelForResume`]: resume data for the service's partial
    /// file (give it back to a task of the same background session), or none.
    ResumeData {
        /// The task.
        task: u64,
        /// The encoded resume data.
        data: Option<Vec<u8>>,
    },
    /// A task made from resume data was journaled under this id, with this record.
    Created {
        /// The task's identifier.
        task: u64,
        /// Its record (the request the resume data continues).
        record: TaskRecord,
    },
    /// The identifier's tasks were cancelled and its session closed (`courier bg invalidate`);
    /// their completions wait for the next attach.
    Invalidated,
}

/// Why the protocol failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum WireError {
    /// Reading or writing the socket failed.
    Io(io::Error),
    /// The peer closed the connection.
    Closed,
    /// A frame announced more than [`MAX_FRAME`] bytes.
    TooLarge(usize),
    /// A frame's message does not decode.
    Malformed(CodecError),
    /// The peer speaks another protocol version.
    Version {
        /// Ours.
        ours: u16,
        /// Theirs.
        theirs: u16,
    },
    /// The service refused the handshake, for this reason.
    Refused(String),
    /// The peer runs as another user.
    OtherUser {
        /// The peer's user id.
        peer: u32,
    },
    /// The first message was not a `Hello` (or the answer not a `Welcome`).
    Unexpected,
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Io(e) => write!(f, "the background service's socket failed: {e}"),
            WireError::Closed => f.write_str("the background service closed the connection"),
            WireError::TooLarge(n) => {
                write!(
                    f,
                    "a message of {n} bytes, more than the {MAX_FRAME} allowed"
                )
            }
            WireError::Malformed(e) => write!(f, "a message that does not decode: {e}"),
            WireError::Version { ours, theirs } => write!(
                f,
                "the other side speaks protocol version {theirs}; this build speaks {ours} \
                 (run the `courier` of the same version as the application)"
            ),
            WireError::Refused(why) => write!(f, "the background service refused: {why}"),
            WireError::OtherUser { peer } => {
                write!(
                    f,
                    "a connection from user id {peer}, not the service's user"
                )
            }
            WireError::Unexpected => f.write_str("the handshake went out of order"),
        }
    }
}

impl std::error::Error for WireError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WireError::Io(e) => Some(e),
            WireError::Malformed(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for WireError {
    fn from(e: io::Error) -> WireError {
        match e.kind() {
            io::ErrorKind::UnexpectedEof => WireError::Closed,
            _ => WireError::Io(e),
        }
    }
}

/// One message as a frame.
///
/// # Errors
/// [`WireError::TooLarge`] for a message past [`MAX_FRAME`].
pub fn encode_frame<T: Serialize>(message: &T) -> Result<Vec<u8>, WireError> {
    let payload = codec::encode(message).map_err(WireError::Malformed)?;
    if payload.len() > MAX_FRAME {
        return Err(WireError::TooLarge(payload.len()));
    }
    let mut frame = Vec::with_capacity(4 + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&payload);
    Ok(frame)
}

/// Splits bytes as they arrive into messages.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: BytesMut,
}

impl FrameDecoder {
    /// Adds bytes read from the socket.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message, `None` when more bytes are needed.
    ///
    /// # Errors
    /// A frame past [`MAX_FRAME`] (checked from its length, before its bytes are buffered), or a
    /// message that does not decode. The connection is of no further use.
    pub fn next_message<T: DeserializeOwned>(&mut self) -> Result<Option<T>, WireError> {
        let Some(head) = self.buf.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        if len > MAX_FRAME {
            return Err(WireError::TooLarge(len));
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        self.buf.advance(4);
        let payload = self.buf.split_to(len);
        codec::decode(&payload)
            .map(Some)
            .map_err(WireError::Malformed)
    }
}

/// One side of a connection: reads and writes whole messages.
#[derive(Debug)]
pub struct Connection<S> {
    stream: S,
    decoder: FrameDecoder,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Wraps a connected stream.
    pub fn new(stream: S) -> Connection<S> {
        Connection {
            stream,
            decoder: FrameDecoder::default(),
        }
    }

    /// Sends one message.
    ///
    /// # Errors
    /// The message is too large, or the socket failed.
    pub async fn send<T: Serialize>(&mut self, message: &T) -> Result<(), WireError> {
        write_message(&mut self.stream, message).await
    }

    /// Receives the next message.
    ///
    /// # Errors
    /// [`WireError::Closed`] when the peer closed the connection; a bad frame; the socket failed.
    pub async fn receive<T: DeserializeOwned>(&mut self) -> Result<T, WireError> {
        read_message(&mut self.stream, &mut self.decoder).await
    }

    /// The stream, and what was read past the last message, to read and write separately.
    pub fn into_parts(self) -> (S, FrameDecoder) {
        (self.stream, self.decoder)
    }

    /// The application's side of the handshake: attaches to `identifier`, and takes its events.
    ///
    /// # Errors
    /// The service refused (another version), or went away.
    pub async fn hello(&mut self, identifier: &str) -> Result<(), WireError> {
        self.greet(identifier, true).await
    }

    /// As [`Connection::hello`] for a connection that only creates, controls and lists tasks: the
    /// identifier's events are not sent to it, and wait for the application.
    ///
    /// # Errors
    /// The service refused (another version), or went away.
    pub async fn hello_without_events(&mut self, identifier: &str) -> Result<(), WireError> {
        self.greet(identifier, false).await
    }

    async fn greet(&mut self, identifier: &str, events: bool) -> Result<(), WireError> {
        self.send(&ClientMessage::Hello {
            version: PROTOCOL_VERSION,
            identifier: identifier.to_owned(),
            events,
        })
        .await?;
        match self.receive::<ServiceMessage>().await? {
            ServiceMessage::Welcome { version } if version == PROTOCOL_VERSION => Ok(()),
            ServiceMessage::Welcome { version } => Err(WireError::Version {
                ours: PROTOCOL_VERSION,
                theirs: version,
            }),
            ServiceMessage::Refused { reason } => Err(WireError::Refused(reason)),
            _ => Err(WireError::Unexpected),
        }
    }

    /// The service's side of the handshake, after the peer's user was checked: the identifier
    /// the client attaches to, and whether it takes its events. A client of another protocol
    /// version is told why, then refused.
    ///
    /// # Errors
    /// Another version ([`WireError::Version`]), another first message, or a failed socket.
    pub async fn welcome(&mut self) -> Result<(String, bool), WireError> {
        match self.receive::<ClientMessage>().await? {
            ClientMessage::Hello {
                version,
                identifier,
                events,
            } if version == PROTOCOL_VERSION => {
                self.send(&ServiceMessage::Welcome {
                    version: PROTOCOL_VERSION,
                })
                .await?;
                Ok((identifier, events))
            }
            ClientMessage::Hello { version, .. } => {
                let error = WireError::Version {
                    ours: PROTOCOL_VERSION,
                    theirs: version,
                };
                let _ = self
                    .send(&ServiceMessage::Refused {
                        reason: error.to_string(),
                    })
                    .await;
                Err(error)
            }
            _ => Err(WireError::Unexpected),
        }
    }
}

/// Writes one message to `writer`.
///
/// # Errors
/// The message is too large, or the write failed.
pub async fn write_message<T: Serialize, W: AsyncWrite + Unpin>(
    writer: &mut W,
    message: &T,
) -> Result<(), WireError> {
    let frame = encode_frame(message)?;
    writer.write_all(&frame).await?;
    writer.flush().await?;
    Ok(())
}

/// Reads the next message from `reader`, through `decoder` (which keeps what was read past it).
///
/// # Errors
/// [`WireError::Closed`] when the peer closed the connection; a bad frame; the read failed.
pub async fn read_message<T: DeserializeOwned, R: AsyncRead + Unpin>(
    reader: &mut R,
    decoder: &mut FrameDecoder,
) -> Result<T, WireError> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(message) = decoder.next_message()? {
            return Ok(message);
        }
        let n = reader.read(&mut chunk).await?;
        if n == 0 {
            return Err(WireError::Closed);
        }
        decoder.push(&chunk[..n]);
    }
}

/// [`write_message`] on a blocking socket (an application session's thread).
///
/// # Errors
/// The message is too large, or the write failed.
pub fn write_message_blocking<T: Serialize>(
    writer: &mut impl std::io::Write,
    message: &T,
) -> Result<(), WireError> {
    let frame = encode_frame(message)?;
    writer.write_all(&frame)?;
    writer.flush()?;
    Ok(())
}

/// [`read_message`] on a blocking socket (an application session's reader thread).
///
/// # Errors
/// [`WireError::Closed`] when the peer closed the connection; a bad frame; the read failed.
pub fn read_message_blocking<T: DeserializeOwned>(
    reader: &mut impl std::io::Read,
    decoder: &mut FrameDecoder,
) -> Result<T, WireError> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(message) = decoder.next_message()? {
            return Ok(message);
        }
        let n = reader.read(&mut chunk)?;
        if n == 0 {
            return Err(WireError::Closed);
        }
        decoder.push(&chunk[..n]);
    }
}

/// Connects to the service at `socket`, starting one when none answers: `program daemon`, where
/// `program` is the one given ([`Configuration::background_daemon`]), else the one
/// `COURIER_DAEMON` names, else the `courier` beside this program, else `courier` on `PATH`; then
/// waits a few seconds for it. The service runs in a process group of its own, so the signals
/// that stop the application (Ctrl-C in a terminal) leave it running. A blocking call (it is local
/// and quick).
///
/// [`Configuration::background_daemon`]: crate::Configuration::background_daemon
///
/// # Errors
/// No service answers and none could be started: the message says how to start one.
pub fn connect_or_start(
    socket: &Path,
    program: Option<&Path>,
) -> Result<std::os::unix::net::UnixStream, String> {
    use std::os::unix::net::UnixStream as Blocking;
    use std::os::unix::process::CommandExt;
    if let Ok(stream) = Blocking::connect(socket) {
        return Ok(stream);
    }
    let program = program
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("COURIER_DAEMON").map(PathBuf::from))
        .or_else(|| {
            let beside = std::env::current_exe().ok()?.with_file_name("courier");
            beside.is_file().then_some(beside)
        })
        .unwrap_or_else(|| PathBuf::from("courier"));
    let how = "start it with `courier daemon` (or a systemd user unit), or name its program in \
               COURIER_DAEMON";
    let spawned = std::process::Command::new(&program)
        .arg("daemon")
        // A process group of its own: the Ctrl-C that stops the application in a terminal must
        // not stop the service that carries its transfers on.
        .process_group(0)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if spawned.is_err() {
        return Err(format!(
            "no background service answers at {}: {how}",
            socket.display()
        ));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        if let Ok(stream) = Blocking::connect(socket) {
            return Ok(stream);
        }
        if std::time::Instant::now() >= deadline {
            return Err(format!(
                "no background service answers at {} (one was started, but did not answer): {how}",
                socket.display()
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Where the service's socket lives: `$XDG_RUNTIME_DIR/courier/`, else `courier/run` in the user's
/// data directory (never a shared temporary directory).
pub fn socket_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(runtime) => PathBuf::from(runtime).join("courier"),
        None => courier_storage::SessionDirectory::data_dir()
            .join("courier")
            .join("run"),
    }
}

/// The service's listener: the socket in `dir` (made readable by the user only), replacing a socket
/// a dead service left, and the user id connections must come from (the directory's owner).
///
/// # Errors
/// The directory or the socket cannot be made.
pub fn listen(dir: &Path) -> io::Result<(UnixListener, u32)> {
    courier_storage::directory::create_private_dir_all(dir)?;
    let owner = owner_of(dir)?;
    let path = dir.join(SOCKET);
    if std::fs::symlink_metadata(&path).is_ok_and(|m| !m.is_dir()) {
        // A socket left by a service that died; one alive would hold the journal, not only this.
        std::fs::remove_file(&path)?;
    }
    Ok((UnixListener::bind(&path)?, owner))
}

/// Takes over a socket already listening (systemd's socket activation), and the user id
/// connections must come from: the owner of the socket's directory, as [`listen`] gives.
///
/// # Errors
/// The socket has no path (abstract or unnamed), or it cannot be made non-blocking.
pub fn adopt(listener: std::os::unix::net::UnixListener) -> io::Result<(UnixListener, u32)> {
    let path = listener
        .local_addr()?
        .as_pathname()
        .map(Path::to_path_buf)
        .ok_or_else(|| io::Error::other("the socket handed over has no path"))?;
    let owner = owner_of(path.parent().unwrap_or(Path::new("/")))?;
    listener.set_nonblocking(true)?;
    Ok((UnixListener::from_std(listener)?, owner))
}

/// Accepts the connection only from `owner` (checked with `SO_PEERCRED` before anything is read).
///
/// # Errors
/// [`WireError::OtherUser`] for another user; the credentials cannot be read.
pub fn check_peer(stream: &UnixStream, owner: u32) -> Result<(), WireError> {
    let peer = stream.peer_cred()?.uid();
    if peer == owner {
        Ok(())
    } else {
        Err(WireError::OtherUser { peer })
    }
}

/// The user id that owns `path`.
fn owner_of(path: &Path) -> io::Result<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Ok(std::fs::metadata(path)?.uid())
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Err(io::Error::other("background sessions need a Unix system"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use courier_storage::journal::StoredEvent;
    use proptest::prelude::*;

    fn event(seq: u64) -> ServiceMessage {
        ServiceMessage::Event {
            seq,
            record: EventRecord {
                task: 3,
                event: StoredEvent::WroteData {
                    written: 10,
                    total: 10 * seq as i64,
                    expected: -1,
                },
            },
        }
    }

    #[tokio::test]
    async fn messages_cross_a_socket_after_the_handshake() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut app, mut service) = (Connection::new(a), Connection::new(b));
        let serving = tokio::spawn(async move {
            let identifier = service.welcome().await.unwrap();
            for seq in 1..=3 {
                service.send(&event(seq)).await.unwrap();
            }
            service.send(&ServiceMessage::FinishedEvents).await.unwrap();
            identifier
        });
        app.hello("com.example.sync").await.unwrap();
        for seq in 1..=3 {
            assert_eq!(app.receive::<ServiceMessage>().await.unwrap(), event(seq));
        }
        assert_eq!(
            app.receive::<ServiceMessage>().await.unwrap(),
            ServiceMessage::FinishedEvents
        );
        assert_eq!(
            serving.await.unwrap(),
            ("com.example.sync".to_owned(), true)
        );
        assert!(matches!(
            app.receive::<ServiceMessage>().await,
            Err(WireError::Closed)
        ));
    }

    #[tokio::test]
    async fn another_protocol_version_is_refused_with_the_reason() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut app, mut service) = (Connection::new(a), Connection::new(b));
        let serving = tokio::spawn(async move { service.welcome().await });
        app.send(&ClientMessage::Hello {
            version: PROTOCOL_VERSION + 1,
            identifier: "x".into(),
            events: true,
        })
        .await
        .unwrap();
        match app.receive::<ServiceMessage>().await.unwrap() {
            ServiceMessage::Refused { reason } => {
                assert!(reason.contains("protocol version 2"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            serving.await.unwrap(),
            Err(WireError::Version { ours: 1, theirs: 2 })
        ));
    }

    #[tokio::test]
    async fn the_socket_is_private_and_its_owner_is_the_only_peer_accepted() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("courier");
        let (listener, owner) = listen(&dir).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        let client = UnixStream::connect(dir.join(SOCKET)).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        check_peer(&server, owner).unwrap();
        assert!(matches!(
            check_peer(&server, owner.wrapping_add(1)),
            Err(WireError::OtherUser { .. })
        ));
        drop((client, listener));
        // A socket left behind by a dead service is replaced.
        let (_again, _) = listen(&dir).unwrap();
    }

    /// Another user cannot reach the socket: run as root (as CI is), a child process that drops to
    /// `nobody` cannot even open it for writing (the directory refuses it before `SO_PEERCRED`
    /// would, which `the_socket_is_private_...` checks).
    #[tokio::test]
    async fn a_process_of_another_user_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("courier");
        let (_listener, owner) = listen(&dir).unwrap();
        if owner != 0 {
            eprintln!("skipped: dropping to another user needs root");
            return;
        }
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            // The tempdir itself is 0700 as well; let the other user reach `dir`'s parent, so that
            // only the service's own directory stands in its way.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            let as_nobody = |path: &Path| {
                std::process::Command::new("sh")
                    .arg("-c")
                    .arg(format!("test -w '{}'", path.display()))
                    .uid(65534)
                    .gid(65534)
                    .status()
                    .unwrap()
                    .success()
            };
            // The check works: a file that anyone may write, beside the directory, is writable.
            let open = root.path().join("anyone");
            std::fs::write(&open, b"").unwrap();
            std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o666)).unwrap();
            assert!(as_nobody(&open), "the other user's process runs");
            assert!(
                !as_nobody(&dir.join(SOCKET)),
                "another user reached the socket"
            );
        }
    }

    proptest! {
        /// Any bytes in any pieces: messages, "need more", or an error; never a panic, never a
        /// buffer past one frame.
        #[test]
        fn arbitrary_bytes_never_panic_the_decoder(
            bytes in proptest::collection::vec(any::<u8>(), 0..2048),
            cut in 0usize..2048,
        ) {
            let mut d = FrameDecoder::default();
            let cut = cut.min(bytes.len());
            d.push(&bytes[..cut]);
            let _ = d.next_message::<ServiceMessage>();
            d.push(&bytes[cut..]);
            while let Ok(Some(_)) = d.next_message::<ServiceMessage>() {}
        }

        /// Frames split anywhere decode to the same messages; a length past the limit is refused
        /// from its four bytes alone.
        #[test]
        fn frames_split_anywhere_decode_whole(
            seqs in proptest::collection::vec(1u64..1000, 1..8),
            cuts in proptest::collection::vec(0usize..4096, 0..6),
        ) {
            let messages: Vec<ServiceMessage> = seqs.iter().map(|s| event(*s)).collect();
            let mut bytes = Vec::new();
            for m in &messages {
                bytes.extend_from_slice(&encode_frame(m).unwrap());
            }
            let mut cuts = cuts;
            cuts.push(bytes.len());
            cuts.sort_unstable();
            let mut d = FrameDecoder::default();
            let (mut at, mut out) = (0, Vec::new());
            for cut in cuts {
                let cut = cut.min(bytes.len()).max(at);
                d.push(&bytes[at..cut]);
                at = cut;
                while let Some(m) = d.next_message::<ServiceMessage>().unwrap() {
                    out.push(m);
                }
            }
            prop_assert_eq!(out, messages);
            let mut d = FrameDecoder::default();
            d.push(&((MAX_FRAME as u32) + 1).to_le_bytes());
            prop_assert!(matches!(d.next_message::<ServiceMessage>(), Err(WireError::TooLarge(_))));
        }
    }
}
