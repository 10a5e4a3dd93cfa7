//! The event stream: a delegate that writes every callback as one JSON line (`--events`), writes
//! data and upload tasks' bodies to their output, moves finished downloads to their destination and
//! drives the progress bars.
//!
//! Lines carry `seq`, `ms` (since the session was created), `event` and `task`. Consecutive
//! `did_receive_data`, `did_write_data` and `did_send_body_data` events of a task are coalesced to
//! at most one of each per 50 ms, and what is still pending is always written before that task's
//! next other event (so the last one carries the final totals).

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use courier_engine::reexports::bytes::Bytes;
use courier_engine::{
    AuthChallengeDisposition, AuthenticationChallenge, BodyStream, CachedResponse, CloseCode,
    Credential, CredentialPersistence, DataDelegate, DownloadDelegate, Error, Message, Reply,
    Request, Response, ResponseDisposition, SessionDelegate, TaskDelegate, TaskInfo, TaskKind,
    TaskMetrics, TaskState,
};
use courier_storage::write::{Existing, move_into_place};
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, watch};

use crate::cli::Options;
use crate::progress::Progress;

const COALESCE: Duration = Duration::from_millis(50);

/// A task's end, as the command needs it.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) task: u64,
    pub(crate) status: Option<u16>,
    pub(crate) error: Option<Error>,
    /// For a download: where its file was moved, or why it could not be.
    pub(crate) saved: Option<Result<PathBuf, String>>,
}

/// The CLI's delegate.
pub(crate) struct CliDelegate {
    start: Instant,
    inner: Mutex<Inner>,
    finished: mpsc::UnboundedSender<Finished>,
    invalid: watch::Sender<bool>,
    /// Set by `did_finish_events_for_background_session`.
    replayed: watch::Sender<bool>,
    progress: Arc<Progress>,
    /// The body of a streamed upload, handed out once.
    stream: Mutex<Option<BodyStream>>,
    /// False with `--no-follow`: redirects are answered with none.
    follow_redirects: bool,
    /// `--user`: the credential challenges are answered with.
    credential: Option<Credential>,
    /// `--location-trusted`: `--user` answers challenges from any origin, not only the URL's.
    location_trusted: bool,
    /// `--insecure`: trust any server.
    insecure: bool,
    /// `--fail`: the body of an HTTP error status is not kept (like `curl --fail`).
    fail: bool,
}

/// The progress callbacks that are coalesced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Flow {
    Received,
    Written,
    Sent,
}

/// Progress not yet written for one task and flow.
#[derive(Clone, Copy, Debug)]
struct Pending {
    bytes: i64,
    total: i64,
    expected: i64,
    last: Instant,
}

struct Inner {
    seq: u64,
    events: Option<Box<dyn Write + Send>>,
    body: Box<dyn Write + Send>,
    pending: HashMap<(u64, Flow), Pending>,
    /// Where each download's file goes.
    destinations: HashMap<u64, PathBuf>,
    /// Downloads named from their response (`-J`), and the directory they go to.
    named_by_response: HashMap<u64, PathBuf>,
    saved: HashMap<u64, Result<PathBuf, String>>,
    /// Tasks whose body is dropped: an HTTP error status under `--fail`.
    discarding: HashSet<u64>,
    /// Where a download with no destination of its own goes, named from its URL (`bg attach`).
    default_dir: Option<PathBuf>,
}

impl CliDelegate {
    pub(crate) fn new(
        events: Option<Box<dyn Write + Send>>,
        body: Box<dyn Write + Send>,
        progress: Arc<Progress>,
    ) -> (
        CliDelegate,
        mpsc::UnboundedReceiver<Finished>,
        watch::Receiver<bool>,
    ) {
        let (finished, finished_rx) = mpsc::unbounded_channel();
        let (invalid, invalid_rx) = watch::channel(false);
        let delegate = CliDelegate {
            start: Instant::now(),
            inner: Mutex::new(Inner {
                seq: 0,
                events,
                body,
                pending: HashMap::new(),
                destinations: HashMap::new(),
                named_by_response: HashMap::new(),
                saved: HashMap::new(),
                discarding: HashSet::new(),
                default_dir: None,
            }),
            finished,
            invalid,
            replayed: watch::Sender::new(false),
            progress,
            stream: Mutex::new(None),
            follow_redirects: true,
            credential: None,
            location_trusted: false,
            insecure: false,
            fail: false,
        };
        (delegate, finished_rx, invalid_rx)
    }

    /// `did_receive_message`: a WebSocket task's message, as `courier ws` received it.
    pub(crate) fn message_received(&self, task: u64, message: &Message) {
        let mut inner = self.inner();
        let fields = json!({ "kind": message.kind_name(), "bytes": message.len() });
        self.emit(&mut inner, "did_receive_message", Some(task), fields);
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes one event line; `fields` are added after the common ones.
    fn emit(&self, inner: &mut Inner, event: &str, task: Option<u64>, fields: Value) {
        if let Some(t) = task {
            self.flush_data(inner, t);
        }
        self.write(inner, event, task, fields);
    }

    fn write(&self, inner: &mut Inner, event: &str, task: Option<u64>, fields: Value) {
        let Some(out) = inner.events.as_mut() else {
            return;
        };
        inner.seq += 1;
        let mut line = Map::new();
        line.insert("seq".into(), json!(inner.seq));
        line.insert(
            "ms".into(),
            json!(self.start.elapsed().as_secs_f64() * 1000.0),
        );
        line.insert("event".into(), json!(event));
        if let Some(t) = task {
            line.insert("task".into(), json!(t));
        }
        if let Value::Object(extra) = fields {
            line.extend(extra);
        }
        let _ = writeln!(out, "{}", Value::Object(line));
        let _ = out.flush();
    }

    /// Writes the progress still pending for `task`.
    fn flush_data(&self, inner: &mut Inner, task: u64) {
        for flow in [Flow::Received, Flow::Written, Flow::Sent] {
            self.flush_flow(inner, task, flow);
        }
    }

    fn flush_flow(&self, inner: &mut Inner, task: u64, flow: Flow) {
        let Some(p) = inner.pending.get_mut(&(task, flow)) else {
            return;
        };
        p.last = Instant::now();
        if p.bytes == 0 {
            return;
        }
        let p = std::mem::replace(&mut p.bytes, 0);
        let Pending {
            total, expected, ..
        } = inner.pending[&(task, flow)];
        let (event, fields) = match flow {
            Flow::Received => ("did_receive_data", json!({ "bytes": p })),
            Flow::Written => (
                "did_write_data",
                json!({
                    "bytes_written": p,
                    "total_bytes_written": total,
                    "total_bytes_expected_to_write": expected,
                }),
            ),
            Flow::Sent => (
                "did_send_body_data",
                json!({
                    "bytes_sent": p,
                    "total_bytes_sent": total,
                    "total_bytes_expected_to_send": expected,
                }),
            ),
        };
        self.write(inner, event, Some(task), fields);
    }

    /// Adds progress; writes it when the flow's last line is 50 ms old.
    fn progress(&self, task: u64, flow: Flow, bytes: i64, total: i64, expected: i64) {
        let mut inner = self.inner();
        let now = Instant::now();
        let long_ago = now.checked_sub(COALESCE).unwrap_or(now);
        let entry = inner.pending.entry((task, flow)).or_insert(Pending {
            bytes: 0,
            total: 0,
            expected: -1,
            last: long_ago,
        });
        entry.bytes += bytes;
        entry.total = total;
        entry.expected = expected;
        if now.duration_since(entry.last) >= COALESCE {
            self.flush_flow(&mut inner, task, flow);
        }
    }

    /// Takes the options that decide the delegate's answers: `--no-follow` (redirects answered with
    /// none), `--user` (the credential challenges of the URL's origin are answered with, or of any
    /// origin with `--location-trusted`; once refused, the 401 is delivered), `--insecure`
    /// (server-trust challenges trust the certificate presented) and `--fail` (an HTTP error
    /// status's body is neither written nor saved).
    pub(crate) fn apply(&mut self, options: &Options) {
        self.follow_redirects = !options.no_follow;
        self.set_credential_from(options.user.as_deref());
        self.location_trusted = options.location_trusted;
        self.insecure = options.insecure;
        self.fail = options.fail;
    }

    /// The credential (`USER:PASS`) to answer challenges with.
    pub(crate) fn set_credential_from(&mut self, user: Option<&str>) {
        self.credential = user.map(|u| {
            let (name, pass) = u.split_once(':').unwrap_or((u, ""));
            Credential::password(name, pass, CredentialPersistence::ForSession)
        });
    }

    /// Under `--fail`, whether this response's body is to be dropped.
    fn discards(&self, status: u16) -> bool {
        self.fail && status >= 400
    }

    /// Writes a `did_receive_challenge` line: a session-level one without `task`.
    fn emit_challenge(
        &self,
        task: Option<u64>,
        challenge: &AuthenticationChallenge,
        disposition: &AuthChallengeDisposition,
    ) {
        let space = &challenge.protection_space;
        let mut inner = self.inner();
        self.emit(
            &mut inner,
            "did_receive_challenge",
            task,
            json!({
                "scope": if task.is_some() { "task" } else { "session" },
                "method": space.method.name(),
                "host": space.host,
                "port": space.port,
                "realm": space.realm,
                "proxy_type": space.proxy_type.map(|t| t.name()),
                "previous_failure_count": challenge.previous_failure_count,
                "disposition": disposition.name(),
            }),
        );
    }

    /// Where task `task`'s downloaded file is to be moved.
    pub(crate) fn set_destination(&self, task: u64, path: PathBuf) {
        self.inner().destinations.insert(task, path);
    }

    /// Task `task`'s file goes into `dir`, under the name its response suggests (`-J`); a name
    /// another download of this run took gets a `-2`, `-3`... suffix.
    pub(crate) fn set_destination_by_response(&self, task: u64, dir: PathBuf) {
        self.inner().named_by_response.insert(task, dir);
    }

    /// Downloads without a destination of their own go into `dir`, named from their URL
    /// (sanitised, never outside `dir`), as `bg attach` hands them over.
    pub(crate) fn set_default_dir(&self, dir: PathBuf) {
        self.inner().default_dir = Some(dir);
    }

    /// The body a streamed upload sends (given out once: a resend gets none).
    pub(crate) fn set_upload_stream(&self, stream: BodyStream) {
        *self.stream.lock().unwrap_or_else(|p| p.into_inner()) = Some(stream);
    }

    /// Becomes true once a background session's replay was delivered.
    pub(crate) fn replayed(&self) -> watch::Receiver<bool> {
        self.replayed.subscribe()
    }

    /// The progress bars.
    pub(crate) fn bars(&self) -> &Progress {
        &self.progress
    }
}

/// An error as the event stream writes it.
pub(crate) fn error_json(error: Option<&Error>) -> Value {
    match error {
        None => Value::Null,
        Some(e) => json!({
            "code": e.code().name(),
            "number": e.code().number(),
            "message": e.message(),
            "resume_data": e.resume_data().is_some(),
        }),
    }
}

fn headers_json(response: &Response) -> Value {
    let mut map: Map<String, Value> = Map::new();
    for name in response.headers().keys() {
        let joined = response
            .headers()
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        map.insert(name.as_str().to_owned(), json!(joined));
    }
    Value::Object(map)
}

impl SessionDelegate for CliDelegate {
    fn did_receive_challenge(
        &self,
        challenge: &AuthenticationChallenge,
        reply: Reply<AuthChallengeDisposition>,
    ) {
        let disposition = match (&challenge.server_trust, self.insecure) {
            (Some(trust), true) => {
                AuthChallengeDisposition::UseCredential(Some(Credential::trusting(trust)))
            }
            _ => AuthChallengeDisposition::PerformDefaultHandling,
        };
        self.emit_challenge(None, challenge, &disposition);
        reply.send(disposition);
    }

    fn did_finish_events_for_background_session(&self, identifier: &str) {
        let mut inner = self.inner();
        self.emit(
            &mut inner,
            "did_finish_events_for_background_session",
            None,
            json!({ "identifier": identifier }),
        );
        drop(inner);
        self.replayed.send_replace(true);
    }

    fn did_become_invalid(&self, error: Option<&Error>) {
        let mut inner = self.inner();
        let mut tasks: Vec<u64> = inner.pending.keys().map(|(t, _)| *t).collect();
        tasks.sort_unstable();
        tasks.dedup();
        for t in tasks {
            self.flush_data(&mut inner, t);
        }
        self.emit(
            &mut inner,
            "did_become_invalid",
            None,
            json!({ "error": error_json(error) }),
        );
        let _ = inner.body.flush();
        drop(inner);
        self.invalid.send_replace(true);
    }
}

impl TaskDelegate for CliDelegate {
    fn did_open_with_protocol(&self, task: &TaskInfo, protocol: Option<&str>) {
        let mut inner = self.inner();
        let fields = json!({ "protocol": protocol });
        self.emit(
            &mut inner,
            "did_open_with_protocol",
            Some(task.id()),
            fields,
        );
    }

    fn read_closed(&self, task: &TaskInfo) {
        let mut inner = self.inner();
        self.emit(&mut inner, "read_closed", Some(task.id()), json!({}));
    }

    fn write_closed(&self, task: &TaskInfo) {
        let mut inner = self.inner();
        self.emit(&mut inner, "write_closed", Some(task.id()), json!({}));
    }

    fn did_close_with(&self, task: &TaskInfo, code: CloseCode, reason: Option<&[u8]>) {
        let mut inner = self.inner();
        let reason = reason.map(String::from_utf8_lossy);
        let fields = json!({ "code": code.code(), "reason": reason });
        self.emit(&mut inner, "did_close_with", Some(task.id()), fields);
    }

    fn did_change_state(&self, task: &TaskInfo, from: TaskState, to: TaskState) {
        let mut inner = self.inner();
        self.emit(
            &mut inner,
            "state",
            Some(task.id()),
            json!({ "from": from.name(), "to": to.name() }),
        );
    }

    fn did_receive_challenge(
        &self,
        task: &TaskInfo,
        challenge: &AuthenticationChallenge,
        reply: Reply<AuthChallengeDisposition>,
    ) {
        let space = &challenge.protection_space;
        let own_origin = task.original_request().url().is_some_and(|url| {
            url.scheme() == space.protocol
                && url
                    .host_str()
                    .is_some_and(|h| h.eq_ignore_ascii_case(&space.host))
                && url.port_or_known_default() == Some(space.port)
        });
        let disposition = match &self.credential {
            // A proxy's challenge: `--user` is the server's; the proxy's credentials come from
            // its URL (`-x http://user:pass@host:port`), through default handling.
            Some(_) if space.is_proxy() => AuthChallengeDisposition::PerformDefaultHandling,
            // Another origin, reached by a redirect: `--user` is not for it (curl's rule, after
            // CVE-2018-1000007); default handling uses only what belongs to that origin.
            Some(_) if !own_origin && !self.location_trusted => {
                AuthChallengeDisposition::PerformDefaultHandling
            }
            // The server refused it once: do not insist, deliver the 401.
            Some(_) if challenge.previous_failure_count > 0 => {
                AuthChallengeDisposition::UseCredential(None)
            }
            Some(c) => AuthChallengeDisposition::UseCredential(Some(c.clone())),
            None => AuthChallengeDisposition::PerformDefaultHandling,
        };
        self.emit_challenge(Some(task.id()), challenge, &disposition);
        reply.send(disposition);
    }

    fn will_perform_http_redirection(
        &self,
        task: &TaskInfo,
        response: &Response,
        new_request: &Request,
        reply: Reply<Option<Request>>,
    ) {
        let mut inner = self.inner();
        self.emit(
            &mut inner,
            "will_perform_http_redirection",
            Some(task.id()),
            json!({
                "status": response.status().as_u16(),
                "location": new_request.url_str(),
                "method": new_request.method().as_str(),
            }),
        );
        drop(inner);
        reply.send(self.follow_redirects.then(|| new_request.clone()));
    }

    fn need_new_body_stream(&self, task: &TaskInfo, reply: Reply<Option<BodyStream>>) {
        let stream = self.stream.lock().unwrap_or_else(|p| p.into_inner()).take();
        let mut inner = self.inner();
        self.emit(
            &mut inner,
            "need_new_body_stream",
            Some(task.id()),
            json!({ "offset": 0 }),
        );
        drop(inner);
        if stream.is_none() {
            self.progress
                .println("courier: the upload must be sent again, but its stream was read already");
        }
        reply.send(stream);
    }

    fn did_send_body_data(&self, task: &TaskInfo, sent: u64, total: u64, expected: Option<u64>) {
        // The event stream keeps URLSession's -1 for an unknown total.
        let (sent, total, expected) =
            (sent as i64, total as i64, expected.map_or(-1, |n| n as i64));
        self.progress.set(task.id(), total, expected);
        self.progress(task.id(), Flow::Sent, sent, total, expected);
    }

    fn did_finish_collecting_metrics(&self, task: &TaskInfo, metrics: &TaskMetrics) {
        // Instants as milliseconds since the session was created, like every line's `ms`;
        // durations in milliseconds.
        let at = |i: Option<std::time::Instant>| {
            i.map(|i| i.saturating_duration_since(self.start).as_secs_f64() * 1000.0)
        };
        let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
        let transactions: Vec<Value> = metrics
            .transactions
            .iter()
            .map(|t| {
                json!({
                    "url": t.url,
                    "fetch_type": t.fetch_type.name(),
                    "protocol": t.protocol,
                    "reused_connection": t.reused_connection,
                    "fetch_start_ms": at(Some(t.fetch_start)),
                    "domain_lookup_ms": ms(t.domain_lookup),
                    "connect_ms": ms(t.connect),
                    "secure_connection_ms": ms(t.secure_connection),
                    "request_start_ms": at(t.request_start),
                    "request_end_ms": at(t.request_end),
                    "response_start_ms": at(t.response_start),
                    "response_end_ms": at(t.response_end),
                    "status": t.status,
                    "request_header_bytes_sent": t.request_header_bytes_sent,
                    "request_body_bytes_sent": t.request_body_bytes_sent,
                    "response_header_bytes_received": t.response_header_bytes_received,
                    "response_body_bytes_received": t.response_body_bytes_received,
                    "response_body_bytes_after_decoding": t.response_body_bytes_after_decoding,
                    "local_address": t.local_address.map(|a| a.to_string()),
                    "remote_address": t.remote_address.map(|a| a.to_string()),
                    "tls_protocol_version": t.tls_protocol_version,
                    "tls_cipher_suite": t.tls_cipher_suite,
                    "proxy_connection": t.proxy_connection,
                })
            })
            .collect();
        let mut inner = self.inner();
        self.emit(
            &mut inner,
            "did_finish_collecting_metrics",
            Some(task.id()),
            json!({ "redirect_count": metrics.redirect_count, "transactions": transactions }),
        );
    }

    fn did_complete(&self, task: &TaskInfo, error: Option<&Error>) {
        let status = task.response().map(|r| r.status().as_u16());
        self.progress.finish(task.id());
        let mut inner = self.inner();
        let saved = inner.saved.remove(&task.id());
        self.emit(
            &mut inner,
            "did_complete",
            Some(task.id()),
            json!({ "error": error_json(error), "status": status }),
        );
        let _ = inner.body.flush();
        drop(inner);
        let _ = self.finished.send(Finished {
            task: task.id(),
            status,
            error: error.cloned(),
            saved,
        });
    }
}

impl DownloadDelegate for CliDelegate {
    fn did_write_data(&self, task: &TaskInfo, written: u64, total: u64, expected: Option<u64>) {
        let (written, total) = (written as i64, total as i64);
        let expected = expected.map_or(-1, |n| n as i64);
        self.progress.set(task.id(), total, expected);
        self.progress(task.id(), Flow::Written, written, total, expected);
    }

    fn did_resume_at_offset(&self, task: &TaskInfo, offset: u64, expected: Option<u64>) {
        let (offset, expected) = (offset as i64, expected.map_or(-1, |n| n as i64));
        self.progress.restart_at(task.id(), offset, expected);
        let mut inner = self.inner();
        self.emit(
            &mut inner,
            "did_resume_at_offset",
            Some(task.id()),
            json!({ "offset": offset, "expected_total_bytes": expected }),
        );
    }

    fn did_finish_downloading_to(&self, task: &TaskInfo, location: &Path) {
        let mut inner = self.inner();
        self.emit(
            &mut inner,
            "did_finish_downloading_to",
            Some(task.id()),
            json!({ "path": location.to_string_lossy() }),
        );
        if task
            .response()
            .is_some_and(|r| self.discards(r.status().as_u16()))
        {
            // `--fail`: an error page is not saved; the engine removes the file.
            return;
        }
        let mut existing = Existing::Replace;
        if let (Some(dir), Some(response)) = (
            inner.named_by_response.get(&task.id()).cloned(),
            task.response(),
        ) {
            // A name the server chose never replaces a file (curl's -J, CVE-2020-8177).
            existing = Existing::Keep;
            let mut taken: HashSet<PathBuf> = inner
                .saved
                .values()
                .filter_map(|s| s.as_ref().ok().cloned())
                .collect();
            let to = crate::download::unique(&dir, &response.suggested_filename(), &mut taken);
            inner.destinations.insert(task.id(), to);
        }
        if !inner.destinations.contains_key(&task.id())
            && let Some(dir) = inner.default_dir.clone()
        {
            let mut taken: HashSet<PathBuf> = inner
                .saved
                .values()
                .filter_map(|s| s.as_ref().ok().cloned())
                .collect();
            let name = crate::download::file_name_for(task.original_request().url_str());
            let to = crate::download::unique(&dir, &name, &mut taken);
            inner.destinations.insert(task.id(), to);
        }
        // The file is removed when this returns: move it to its destination now.
        if let Some(to) = inner.destinations.get(&task.id()).cloned() {
            let moved = move_into_place(location, &to, existing)
                .map(|()| to.clone())
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => format!(
                        "refusing to overwrite {}, which exists (the name came from the server)",
                        to.display()
                    ),
                    _ => format!("cannot save {}: {e}", to.display()),
                });
            inner.saved.insert(task.id(), moved);
        }
    }
}

impl DataDelegate for CliDelegate {
    fn did_receive_response(
        &self,
        task: &TaskInfo,
        response: &Response,
        reply: Reply<ResponseDisposition>,
    ) {
        let disposition = ResponseDisposition::Allow;
        let mut inner = self.inner();
        self.emit(
            &mut inner,
            "did_receive_response",
            Some(task.id()),
            json!({
                "status": response.status().as_u16(),
                "url": response.url().as_str(),
                "headers": headers_json(response),
                "expected_content_length": response.expected_content_length(),
                "disposition": disposition.name(),
            }),
        );
        if self.discards(response.status().as_u16()) {
            inner.discarding.insert(task.id());
        }
        drop(inner);
        reply.send(disposition);
    }

    fn will_cache_response(
        &self,
        task: &TaskInfo,
        proposed: &CachedResponse,
        reply: Reply<Option<CachedResponse>>,
    ) {
        let mut inner = self.inner();
        self.emit(
            &mut inner,
            "will_cache_response",
            Some(task.id()),
            json!({ "stored": true }),
        );
        drop(inner);
        reply.send(Some(proposed.clone()));
    }

    fn did_become_download_task(&self, task: &TaskInfo, download_task: &TaskInfo) {
        let mut inner = self.inner();
        self.emit(
            &mut inner,
            "did_become_download_task",
            Some(task.id()),
            json!({ "download_task": download_task.id() }),
        );
    }

    fn did_become_stream_task(&self, task: &TaskInfo, stream_task: &TaskInfo) {
        let mut inner = self.inner();
        let fields = json!({ "stream_task": stream_task.id() });
        self.emit(
            &mut inner,
            "did_become_stream_task",
            Some(task.id()),
            fields,
        );
    }

    fn did_receive_data(&self, task: &TaskInfo, data: &Bytes) {
        let mut inner = self.inner();
        if !inner.discarding.contains(&task.id()) && inner.body.write_all(data).is_err() {
            tracing::warn!("cannot write the body to its output");
        }
        drop(inner);
        if task.kind() == TaskKind::Data {
            // An upload's bar shows what it sent, not its response.
            self.progress.set(
                task.id(),
                task.bytes_received() as i64,
                task.bytes_expected_to_receive().map_or(-1, |n| n as i64),
            );
        }
        let n = data.len() as i64;
        self.progress(task.id(), Flow::Received, n, 0, -1);
    }
}
