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

use courier_storage::codec::CodecError;
use courier_storage::journal::{EventRecord, Schedule, TaskKind, TaskRecord};
use courier_storage::resume::RequestRecord;
use serde::{Deserialize, Serialize};

/// A request as [`ClientMessage::CreateTask`] carries it (and the journal keeps it).
pub use crate::task::download::request_record;

/// The protocol version this build speaks (and the only one it accepts).
pub const PROTOCOL_VERSION: u16 = 4;

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
        /// What the application's configuration adds to the service's (cleartext hosts, roots,
        /// timeouts): the task runs under them.
        settings: SessionSettings,
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
        /// As for `CreateTask`.
        settings: SessionSettings,
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

/// Whether the service's answer to a `Hello` lets the connection go on: a `Welcome` in this
/// build's protocol version. Every client reads the answer through this.
///
/// # Errors
/// A `Welcome` in another version (a service of another build, which would misread what
/// follows), a refusal with its reason, or any other message.
pub fn welcomed(answer: ServiceMessage) -> Result<(), WireError> {
    match answer {
        ServiceMessage::Welcome { version } if version == PROTOCOL_VERSION => Ok(()),
        ServiceMessage::Welcome { version } => Err(WireError::Version {
            ours: PROTOCOL_VERSION,
            theirs: version,
        }),
        ServiceMessage::Refused { reason } => Err(WireError::Refused(reason)),
        ServiceMessage::InUse { identifier } => Err(WireError::InUse { identifier }),
        _ => Err(WireError::Unexpected),
    }
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
    /// The handshake failed, and the connection closes; or a task's creation was refused (the
    /// connection goes on).
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
    /// The handshake failed: another application is attached to the identifier and takes its
    /// events (URLSession's -996, one session per background identifier at a time).
    InUse {
        /// The identifier.
        identifier: String,
    },
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
    /// The service refused the handshake or a task's creation, for this reason.
    Refused(String),
    /// Another application is attached to the identifier ([`ServiceMessage::InUse`]).
    InUse {
        /// The identifier.
        identifier: String,
    },
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
            WireError::InUse { identifier } => write!(
                f,
                "another application is attached to the background session {identifier:?} \
                 (one at a time)"
            ),
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

mod frame;
mod settings;
mod socket;

pub use frame::{
    Connection, FrameDecoder, ListedTask, encode_frame, read_message, read_message_blocking,
    write_message, write_message_blocking,
};
pub use settings::SessionSettings;
pub use socket::{adopt, check_peer, connect_or_start, listen, socket_dir};
