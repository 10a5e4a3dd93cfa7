//! `Recorder`: a delegate that writes down every callback, in order, for tests to check.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use courier_engine::reexports::bytes::Bytes;
use courier_engine::{
    AuthChallengeDisposition, AuthenticationChallenge, BodyStream, CachedResponse, Credential,
    DataDelegate, DownloadDelegate, Error, ErrorCode, Reply, Request, Response,
    ResponseDisposition, ResumeData, SessionDelegate, TaskDelegate, TaskInfo, TaskMetrics,
    TaskState,
};

use crate::sha256_hex;

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

/// One transaction of a task's metrics, as a [`Recorder`] keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    /// The request's URL.
    pub url: String,
    /// The response's status.
    pub status: Option<u16>,
    /// `http/1.1` or `h2`.
    pub protocol: Option<&'static str>,
    /// Whether the connection had carried a request before.
    pub reused: bool,
    /// Whether the timings that exist come in order (fetch, request, response start, end).
    pub ordered: bool,
    /// Everything the delegate received for it.
    pub full: courier_engine::TransactionMetrics,
}

/// A delegate that records every callback. Optionally answers responses with a fixed disposition.
#[derive(Default)]
pub struct Recorder {
    events: Mutex<Vec<Event>>,
    body: Mutex<Vec<u8>>,
    disposition: Option<ResponseDisposition>,
    resume_data: Mutex<HashMap<u64, ResumeData>>,
    errors: Mutex<HashMap<u64, Error>>,
    /// The body handed out by `need_new_body_stream`, if any.
    stream_body: Option<Bytes>,
    /// How redirects are answered: follow as proposed (`None`), or this.
    redirects: Option<RedirectAnswer>,
    /// Answers to challenges, in order; default handling once they run out.
    challenges: Mutex<std::collections::VecDeque<AuthChallengeDisposition>>,
    /// How server-trust challenges are answered.
    server_trust: TrustAnswer,
    /// Answer `will_cache_response` with none.
    refuse_caching: bool,
    /// The client identity given when a server asks for one.
    identity: Option<(Vec<Vec<u8>>, Vec<u8>)>,
    /// Keep the replies to `did_receive_response` unanswered (until the recorder is dropped).
    held: Option<Mutex<Vec<Reply<ResponseDisposition>>>>,
}

/// How a [`Recorder`] answers server-trust challenges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TrustAnswer {
    /// Default handling: standard verification.
    #[default]
    Default,
    /// Trust whatever the server presents (as a delegate pinning a key or trusting a private CA).
    TrustAll,
    /// Refuse every server.
    Refuse,
    /// Cancel the challenge.
    Cancel,
}

/// How a [`Recorder`] answers `will_perform_http_redirection`.
#[derive(Clone, Debug)]
pub enum RedirectAnswer {
    /// Refuse: the redirect becomes the final response.
    Refuse,
    /// Follow, adding this header to the proposed request.
    AddHeader(&'static str, &'static str),
}

impl Recorder {
    /// A recorder that allows every response.
    pub fn new() -> Recorder {
        Recorder::default()
    }

    /// A recorder that answers every response with `d`.
    pub fn answering(d: ResponseDisposition) -> Recorder {
        Recorder {
            disposition: Some(d),
            ..Recorder::default()
        }
    }

    /// A recorder that answers `need_new_body_stream` with a fresh stream over `body` each time.
    pub fn streaming(body: impl Into<Bytes>) -> Recorder {
        Recorder {
            stream_body: Some(body.into()),
            ..Recorder::default()
        }
    }

    /// A recorder that answers every redirect with `answer`.
    pub fn redirecting(answer: RedirectAnswer) -> Recorder {
        Recorder {
            redirects: Some(answer),
            ..Recorder::default()
        }
    }

    /// A recorder that answers challenges with `answers`, in order, then with default handling.
    pub fn challenged(answers: impl IntoIterator<Item = AuthChallengeDisposition>) -> Recorder {
        Recorder {
            challenges: Mutex::new(answers.into_iter().collect()),
            ..Recorder::default()
        }
    }

    /// A recorder that answers client-certificate challenges with this identity (chain, key).
    pub fn with_identity(identity: (Vec<Vec<u8>>, Vec<u8>)) -> Recorder {
        Recorder {
            identity: Some(identity),
            ..Recorder::default()
        }
    }

    /// A recorder that never answers `did_receive_response`: it keeps the replies.
    pub fn holding_responses() -> Recorder {
        Recorder {
            held: Some(Mutex::default()),
            ..Recorder::default()
        }
    }

    /// A recorder that keeps every response out of the URL cache.
    pub fn refusing_cache() -> Recorder {
        Recorder {
            refuse_caching: true,
            ..Recorder::default()
        }
    }

    /// A recorder that answers server-trust challenges with `answer`.
    pub fn with_server_trust(answer: TrustAnswer) -> Recorder {
        Recorder {
            server_trust: answer,
            ..Recorder::default()
        }
    }

    /// The resume data task `id`'s error carried, if any.
    pub fn resume_data(&self, id: u64) -> Option<ResumeData> {
        self.resume_data.lock().expect("resume").get(&id).cloned()
    }

    /// The error task `id` completed with, if any.
    pub fn error(&self, id: u64) -> Option<Error> {
        self.errors.lock().expect("errors").get(&id).cloned()
    }

    fn push(&self, e: Event) {
        self.events.lock().expect("events").push(e);
    }

    /// Everything recorded so far.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().expect("events").clone()
    }

    /// All body bytes received, in arrival order (across tasks).
    pub fn body(&self) -> Vec<u8> {
        self.body.lock().expect("body").clone()
    }

    /// Waits until `pred` holds for the events, and returns them.
    ///
    /// Polls without blocking the thread, so it can run on the runtime the session uses.
    ///
    /// # Panics
    /// When `timeout` passes first: the test fails there, with the events seen so far, instead of
    /// at a later assertion on what never came.
    pub async fn wait_for(&self, timeout: Duration, pred: impl Fn(&[Event]) -> bool) -> Vec<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            let events = self.events();
            if pred(&events) {
                return events;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for an event; events so far: {events:#?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Waits (up to `timeout`) until some download has written at least `bytes` bytes.
    pub async fn wait_written(&self, timeout: Duration, bytes: i64) -> Vec<Event> {
        self.wait_for(timeout, |e| {
            e.iter()
                .any(|e| matches!(e, Event::Wrote { total, .. } if *total >= bytes))
        })
        .await
    }

    /// Waits (up to `timeout`) for `did_become_invalid`.
    pub async fn wait_invalid(&self, timeout: Duration) -> Vec<Event> {
        self.wait_for(timeout, |e| e.contains(&Event::Invalid))
            .await
    }

    /// Waits (up to `timeout`, then panics) for task `id`'s `did_complete` and returns its error
    /// code.
    pub async fn wait_complete(&self, id: u64, timeout: Duration) -> Option<Option<ErrorCode>> {
        let events = self
            .wait_for(timeout, |e| {
                e.iter()
                    .any(|e| matches!(e, Event::Complete { task, .. } if *task == id))
            })
            .await;
        events.iter().find_map(|e| match e {
            Event::Complete { task, error, .. } if *task == id => Some(*error),
            _ => None,
        })
    }
}

impl SessionDelegate for Recorder {
    fn did_receive_challenge(
        &self,
        challenge: &AuthenticationChallenge,
        reply: Reply<AuthChallengeDisposition>,
    ) {
        self.push(Event::SessionChallenge {
            method: challenge.protection_space.method.name(),
            host: challenge.protection_space.host.clone(),
            chain_len: challenge.server_trust.as_ref().map_or(0, |t| t.chain.len()),
        });
        if challenge.protection_space.method
            == courier_engine::AuthenticationMethod::ClientCertificate
        {
            let answer = match &self.identity {
                Some((chain, key)) => AuthChallengeDisposition::UseCredential(Some(
                    Credential::identity(chain.clone(), key.clone()),
                )),
                None => AuthChallengeDisposition::PerformDefaultHandling,
            };
            return reply.send(answer);
        }
        reply.send(match (self.server_trust, &challenge.server_trust) {
            (TrustAnswer::TrustAll, Some(trust)) => {
                AuthChallengeDisposition::UseCredential(Some(Credential::trusting(trust)))
            }
            (TrustAnswer::Refuse, _) => AuthChallengeDisposition::UseCredential(None),
            (TrustAnswer::Cancel, _) => AuthChallengeDisposition::CancelAuthenticationChallenge,
            _ => AuthChallengeDisposition::PerformDefaultHandling,
        });
    }

    fn did_finish_events_for_background_session(&self, _identifier: &str) {
        self.push(Event::BackgroundEventsDelivered);
    }

    fn did_become_invalid(&self, _error: Option<&Error>) {
        self.push(Event::Invalid);
    }
}

impl TaskDelegate for Recorder {
    fn read_closed(&self, task: &TaskInfo) {
        self.push(Event::ReadClosed { task: task.id() });
    }

    fn write_closed(&self, task: &TaskInfo) {
        self.push(Event::WriteClosed { task: task.id() });
    }

    fn did_become_streams(&self, task: &TaskInfo) {
        self.push(Event::BecameStreams { task: task.id() });
    }

    fn did_open_with_protocol(&self, task: &TaskInfo, protocol: Option<&str>) {
        self.push(Event::Opened {
            task: task.id(),
            protocol: protocol.map(str::to_owned),
        });
    }

    fn did_close_with(
        &self,
        task: &TaskInfo,
        code: courier_engine::CloseCode,
        reason: Option<&[u8]>,
    ) {
        self.push(Event::Closed {
            task: task.id(),
            code: code.code(),
            reason: reason.map(|r| String::from_utf8_lossy(r).into_owned()),
        });
    }

    fn did_change_state(&self, task: &TaskInfo, from: TaskState, to: TaskState) {
        self.push(Event::State {
            task: task.id(),
            from,
            to,
        });
    }

    fn will_perform_http_redirection(
        &self,
        task: &TaskInfo,
        response: &Response,
        new_request: &Request,
        reply: Reply<Option<Request>>,
    ) {
        self.push(Event::Redirect {
            task: task.id(),
            status: response.status().as_u16(),
            location: new_request.url_str().to_owned(),
            method: new_request.method().to_string(),
        });
        reply.send(match &self.redirects {
            None => Some(new_request.clone()),
            Some(RedirectAnswer::Refuse) => None,
            Some(RedirectAnswer::AddHeader(name, value)) => Some(new_request.clone().with_header(
                courier_engine::reexports::http::HeaderName::from_static(name),
                courier_engine::reexports::http::HeaderValue::from_static(value),
            )),
        });
    }

    fn did_receive_challenge(
        &self,
        task: &TaskInfo,
        challenge: &AuthenticationChallenge,
        reply: Reply<AuthChallengeDisposition>,
    ) {
        self.push(Event::Challenge {
            task: task.id(),
            method: challenge.protection_space.method.name(),
            realm: challenge.protection_space.realm.clone(),
            previous_failure_count: challenge.previous_failure_count,
            proposed: challenge.proposed_credential.is_some(),
        });
        let answer = self
            .challenges
            .lock()
            .expect("challenges")
            .pop_front()
            .unwrap_or(AuthChallengeDisposition::PerformDefaultHandling);
        reply.send(answer);
    }

    fn did_create_task(&self, task: &TaskInfo) {
        self.push(Event::Created { task: task.id() });
    }

    fn task_is_waiting_for_connectivity(&self, task: &TaskInfo) {
        self.push(Event::WaitingForConnectivity { task: task.id() });
    }

    fn did_receive_informational_response(&self, task: &TaskInfo, response: &Response) {
        self.push(Event::Informational {
            task: task.id(),
            status: response.status().as_u16(),
            link: response
                .headers()
                .get("link")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        });
    }

    fn need_new_body_stream(&self, task: &TaskInfo, reply: Reply<Option<BodyStream>>) {
        self.push(Event::NeedBody { task: task.id() });
        let stream = self
            .stream_body
            .clone()
            .map(|b| Box::pin(std::io::Cursor::new(b)) as BodyStream);
        reply.send(stream);
    }

    fn did_send_body_data(&self, task: &TaskInfo, _sent: u64, total: u64, expected: Option<u64>) {
        self.push(Event::Sent {
            task: task.id(),
            total: total as i64,
            expected: minus_one(expected),
        });
    }

    fn did_finish_collecting_metrics(&self, task: &TaskInfo, metrics: &TaskMetrics) {
        let transactions = metrics
            .transactions
            .iter()
            .map(|t| {
                // Timings are complete when each step that happened comes in order.
                let ordered = t.request_start.is_some_and(|r| r >= t.fetch_start)
                    && match (t.request_start, t.response_start, t.response_end) {
                        (Some(a), Some(b), Some(c)) => a <= b && b <= c,
                        (_, None, _) => true,
                        _ => false,
                    };
                Transaction {
                    url: t.url.clone(),
                    status: t.status,
                    protocol: t.protocol,
                    reused: t.reused_connection,
                    ordered,
                    full: t.clone(),
                }
            })
            .collect();
        self.push(Event::Metrics {
            task: task.id(),
            redirect_count: metrics.redirect_count,
            transactions,
        });
    }

    fn did_complete(&self, task: &TaskInfo, error: Option<&Error>) {
        if let Some(e) = error {
            self.errors
                .lock()
                .expect("errors")
                .insert(task.id(), e.clone());
            if let Some(data) = e.resume_data() {
                self.resume_data
                    .lock()
                    .expect("resume")
                    .insert(task.id(), data.clone());
            }
        }
        self.push(Event::Complete {
            task: task.id(),
            error: error.map(|e| e.code()),
            failing_url: error.and_then(|e| e.failing_url().map(str::to_owned)),
        });
    }
}

impl DataDelegate for Recorder {
    fn did_become_stream_task(&self, task: &TaskInfo, stream_task: &TaskInfo) {
        self.push(Event::BecameStreamTask {
            task: task.id(),
            stream: stream_task.id(),
        });
    }

    fn did_receive_response(
        &self,
        task: &TaskInfo,
        response: &Response,
        reply: Reply<ResponseDisposition>,
    ) {
        self.push(Event::Response {
            task: task.id(),
            status: response.status().as_u16(),
        });
        if let Some(held) = &self.held {
            held.lock().expect("held").push(reply);
            return;
        }
        reply.send(self.disposition.unwrap_or(ResponseDisposition::Allow));
    }

    fn will_cache_response(
        &self,
        task: &TaskInfo,
        proposed: &CachedResponse,
        reply: Reply<Option<CachedResponse>>,
    ) {
        self.push(Event::WillCache {
            task: task.id(),
            bytes: proposed.data.len(),
        });
        reply.send((!self.refuse_caching).then(|| proposed.clone()));
    }

    fn did_become_download_task(&self, task: &TaskInfo, download_task: &TaskInfo) {
        self.push(Event::BecameDownload {
            task: task.id(),
            download: download_task.id(),
        });
    }

    fn did_receive_data(&self, task: &TaskInfo, data: &Bytes) {
        self.body.lock().expect("body").extend_from_slice(data);
        self.push(Event::Data {
            task: task.id(),
            bytes: data.len(),
        });
    }
}

impl DownloadDelegate for Recorder {
    fn did_write_data(&self, task: &TaskInfo, written: u64, total: u64, expected: Option<u64>) {
        self.push(Event::Wrote {
            task: task.id(),
            written: written as i64,
            total: total as i64,
            expected: minus_one(expected),
        });
    }

    fn did_resume_at_offset(&self, task: &TaskInfo, offset: u64, expected: Option<u64>) {
        self.push(Event::Resumed {
            task: task.id(),
            offset: offset as i64,
            expected: minus_one(expected),
        });
    }

    fn did_finish_downloading_to(&self, task: &TaskInfo, location: &Path) {
        let bytes = std::fs::read(location).unwrap_or_default();
        self.push(Event::Finished {
            task: task.id(),
            size: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
        });
    }
}

/// Checks the stream invariants every session must keep: per task at most one `did_complete` and
/// nothing after it; `did_become_invalid` at most once and last; states chain. Returns the first
/// violation found.
pub fn check_invariants(events: &[Event]) -> Result<(), String> {
    let mut completed: HashMap<u64, usize> = HashMap::new();
    let mut state: HashMap<u64, TaskState> = HashMap::new();
    let mut written: HashMap<u64, i64> = HashMap::new();
    for (i, e) in events.iter().enumerate() {
        if events[..i].contains(&Event::Invalid) {
            return Err(format!("event {i} {e:?} after did_become_invalid"));
        }
        if let Some(t) = e.task()
            && let Some(at) = completed.get(&t)
        {
            return Err(format!(
                "event {i} {e:?} after task {t}'s did_complete at {at}"
            ));
        }
        match e {
            Event::State { task, from, to } => {
                let cur = state.get(task).copied().unwrap_or(TaskState::Suspended);
                if cur != *from {
                    return Err(format!(
                        "event {i}: task {task} went from {from:?} but was {cur:?}"
                    ));
                }
                state.insert(*task, *to);
            }
            Event::Complete { task, .. } => {
                completed.insert(*task, i);
            }
            Event::Wrote { task, total, .. } => {
                let last = written.entry(*task).or_insert(0);
                if *total <= *last {
                    return Err(format!(
                        "event {i}: task {task}'s total written went from {last} to {total}"
                    ));
                }
                *last = *total;
            }
            Event::Resumed { task, offset, .. } => {
                written.insert(*task, *offset);
            }
            _ => {}
        }
    }
    Ok(())
}

/// An expected total as the events keep it: URLSession's -1 when unknown (as the CLI's stream).
fn minus_one(expected: Option<u64>) -> i64 {
    expected.map_or(-1, |n| n as i64)
}
