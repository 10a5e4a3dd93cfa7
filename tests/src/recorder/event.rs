//! `Event`: one delegate callback as the recorder writes it down.

use super::*;

/// One delegate callback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// `did_change_state`.
    State {
        /// Task identifier.
        task: u64,
        /// Old state.
        from: TaskState,
        /// New state.
        to: TaskState,
    },
    /// `did_receive_response`.
    Response {
        /// Task identifier.
        task: u64,
        /// HTTP status.
        status: u16,
    },
    /// `did_become_download_task`.
    BecameDownload {
        /// The data task.
        task: u64,
        /// The download task it became.
        download: u64,
    },
    /// `will_cache_response`.
    WillCache {
        /// Task identifier.
        task: u64,
        /// Body bytes proposed for the cache.
        bytes: usize,
    },
    /// `did_receive_data`.
    Data {
        /// Task identifier.
        task: u64,
        /// Bytes in this call.
        bytes: usize,
    },
    /// `did_write_data`.
    Wrote {
        /// Task identifier.
        task: u64,
        /// Bytes in this call.
        written: i64,
        /// Total bytes written.
        total: i64,
        /// Total expected (-1 unknown).
        expected: i64,
    },
    /// `did_resume_at_offset`.
    Resumed {
        /// Task identifier.
        task: u64,
        /// Offset the download continues at.
        offset: i64,
        /// Total expected (-1 unknown).
        expected: i64,
    },
    /// `did_finish_downloading_to`, with the file's size and SHA-256 (read during the callback).
    Finished {
        /// Task identifier.
        task: u64,
        /// The file's size.
        size: u64,
        /// The file's SHA-256, hex.
        sha256: String,
    },
    /// `need_new_body_stream`.
    NeedBody {
        /// Task identifier.
        task: u64,
    },
    /// `did_create_task`.
    Created {
        /// Task identifier.
        task: u64,
    },
    /// `task_is_waiting_for_connectivity`.
    WaitingForConnectivity {
        /// Task identifier.
        task: u64,
    },
    /// `did_receive_informational_response`.
    Informational {
        /// Task identifier.
        task: u64,
        /// Its status (1xx).
        status: u16,
        /// Its `Link` header, if any (103 Early Hints).
        link: Option<String>,
    },
    /// `did_open_with_protocol`.
    Opened {
        /// Task identifier.
        task: u64,
        /// The subprotocol the server chose.
        protocol: Option<String>,
    },
    /// `did_close_with`.
    Closed {
        /// Task identifier.
        task: u64,
        /// The close code's number.
        code: u16,
        /// The reason, as text.
        reason: Option<String>,
    },
    /// `read_closed`.
    ReadClosed {
        /// Task identifier.
        task: u64,
    },
    /// `write_closed`.
    WriteClosed {
        /// Task identifier.
        task: u64,
    },
    /// `did_become_stream_task`.
    BecameStreamTask {
        /// The data task.
        task: u64,
        /// The stream task it became.
        stream: u64,
    },
    /// `did_become_streams`.
    BecameStreams {
        /// Task identifier.
        task: u64,
    },
    /// `did_send_body_data`.
    Sent {
        /// Task identifier.
        task: u64,
        /// Total bytes sent.
        total: i64,
        /// Total expected (-1 unknown).
        expected: i64,
    },
    /// `did_receive_challenge`.
    Challenge {
        /// Task identifier.
        task: u64,
        /// The method's name (`http_basic`, `http_digest`).
        method: &'static str,
        /// The realm.
        realm: Option<String>,
        /// How many attempts came before.
        previous_failure_count: u32,
        /// Whether a credential was proposed.
        proposed: bool,
    },
    /// `will_perform_http_redirection`.
    Redirect {
        /// Task identifier.
        task: u64,
        /// The redirect's status.
        status: u16,
        /// The proposed request's URL.
        location: String,
        /// The proposed request's method.
        method: String,
    },
    /// `did_finish_collecting_metrics`.
    Metrics {
        /// Task identifier.
        task: u64,
        /// Redirects followed.
        redirect_count: u32,
        /// One per request.
        transactions: Vec<Transaction>,
    },
    /// `did_complete`.
    Complete {
        /// Task identifier.
        task: u64,
        /// The error's code, if any.
        error: Option<ErrorCode>,
        /// The error's failing URL, if any.
        failing_url: Option<String>,
    },
    /// A session-level challenge (server trust, client certificate).
    SessionChallenge {
        /// The method's name (`server_trust`, `client_certificate`).
        method: &'static str,
        /// The host.
        host: String,
        /// Certificates the server presented.
        chain_len: usize,
    },
    /// `did_become_invalid`.
    Invalid,
    /// `did_finish_events_for_background_session`.
    BackgroundEventsDelivered,
}

impl Event {
    /// The callback's short name (`state`, `response`, `data`, `wrote`...).
    pub fn name(&self) -> &'static str {
        match self {
            Event::State { .. } => "state",
            Event::Response { .. } => "response",
            Event::Data { .. } => "data",
            Event::Wrote { .. } => "wrote",
            Event::Resumed { .. } => "resumed",
            Event::Finished { .. } => "finished",
            Event::NeedBody { .. } => "need_body",
            Event::Informational { .. } => "informational",
            Event::WaitingForConnectivity { .. } => "waiting_for_connectivity",
            Event::Created { .. } => "created",
            Event::Opened { .. } => "opened",
            Event::ReadClosed { .. } => "read_closed",
            Event::WriteClosed { .. } => "write_closed",
            Event::BecameStreams { .. } => "became_streams",
            Event::BecameStreamTask { .. } => "became_stream_task",
            Event::Closed { .. } => "closed",
            Event::Sent { .. } => "sent",
            Event::Redirect { .. } => "redirect",
            Event::Challenge { .. } => "challenge",
            Event::BecameDownload { .. } => "became_download",
            Event::Metrics { .. } => "metrics",
            Event::WillCache { .. } => "will_cache",
            Event::Complete { .. } => "complete",
            Event::SessionChallenge { .. } => "session_challenge",
            Event::Invalid => "invalid",
            Event::BackgroundEventsDelivered => "did_finish_events_for_background_session",
        }
    }

    /// The task the event is about (`None` for session events).
    pub fn task(&self) -> Option<u64> {
        match self {
            Event::State { task, .. }
            | Event::Response { task, .. }
            | Event::Data { task, .. }
            | Event::Wrote { task, .. }
            | Event::Resumed { task, .. }
            | Event::Finished { task, .. }
            | Event::NeedBody { task }
            | Event::Informational { task, .. }
            | Event::WaitingForConnectivity { task }
            | Event::Created { task }
            | Event::Opened { task, .. }
            | Event::ReadClosed { task }
            | Event::WriteClosed { task }
            | Event::BecameStreams { task }
            | Event::BecameStreamTask { task, .. }
            | Event::Closed { task, .. }
            | Event::Sent { task, .. }
            | Event::Redirect { task, .. }
            | Event::Challenge { task, .. }
            | Event::BecameDownload { task, .. }
            | Event::Metrics { task, .. }
            | Event::WillCache { task, .. }
            | Event::Complete { task, .. } => Some(*task),
            Event::Invalid | Event::SessionChallenge { .. } | Event::BackgroundEventsDelivered => {
                None
            }
        }
    }
}
