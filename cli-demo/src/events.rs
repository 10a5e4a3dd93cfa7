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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use courier_engine::reexports::bytes::Bytes;
use courier_engine::{
    AuthChallengeDisposition, AuthenticationChallenge, AuthenticationMethod, BodyStream,
    CachedResponse, Callback, CloseCode, Credential, CredentialPersistence, DataDelegate,
    DownloadDelegate, DownloadTask, Error, Message, Reply, Request, Response, ResponseDisposition,
    SessionDelegate, TaskDelegate, TaskInfo, TaskKind, TaskMetrics, TaskState, leave_at_default,
    retry,
};
use courier_storage::write::{Existing, move_into_place};
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, watch};

use crate::cli::Options;
use crate::progress::Progress;
use crate::write_out::WriteOut;

mod callbacks;
mod in_order;
mod reports;
mod unread_stream;
mod verbose;

use reports::Dump;
pub(crate) use reports::Stdout;
use unread_stream::UnreadStream;

const COALESCE: Duration = Duration::from_millis(50);

/// A task's end, as the command needs it.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) task: u64,
    pub(crate) status: Option<u16>,
    pub(crate) error: Option<Error>,
    /// For a download: where its file was moved, or why it could not be.
    pub(crate) saved: Option<Result<PathBuf, String>>,
    /// The wait its response asked for (`Retry-After`), when its status says "not now".
    pub(crate) retry_after: Option<Duration>,
    /// Some of its body reached the output (of a task that may be tried again, `get --retry`).
    pub(crate) body_written: bool,
    /// Its `-w` line, left to the command under `--retry`: written once the task is not tried
    /// again ([`Finished::write_out`]), as curl writes one line for a transfer and its retries.
    pub(crate) write_out: Option<Bytes>,
    /// Following redirects: the `Location` of the redirect it ended with, which is not followed
    /// (not an `http:` or `https:` URL: curl fails such a redirect, URLSession delivers it).
    pub(crate) unfollowed: Option<String>,
}

impl Finished {
    /// Writes the task's `-w` line, if the command has it to write.
    pub(crate) fn write_out(&self) {
        if let Some(line) = &self.write_out {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(line).and_then(|()| stdout.flush());
        }
    }
}

/// The CLI's delegate.
pub(crate) struct CliDelegate {
    start: Instant,
    /// True when events are written (`--events`). Without them, the callbacks that only write
    /// events leave themselves at their default after their first call, and the session stops
    /// making the trip.
    logs: bool,
    /// `-v`: the events, as a person reads them, on stderr ([`verbose`]).
    verbose: bool,
    /// `--retry`: a response whose status says "not now" may be dropped.
    retrying: bool,
    inner: Mutex<Inner>,
    finished: mpsc::UnboundedSender<Finished>,
    invalid: watch::Sender<bool>,
    /// Set by `did_finish_events_for_background_session`.
    replayed: watch::Sender<bool>,
    /// Set by `did_open_with_protocol`: a WebSocket's messages are logged after it.
    opened: watch::Sender<bool>,
    /// Set when the body's output refused a write (a full disk, a closed pipe): the command
    /// stops its tasks and fails, as curl does (its exit 23), instead of reporting success.
    output_failed: watch::Sender<Option<String>>,
    progress: Arc<Progress>,
    /// The body of a streamed upload: handed out again for a resend while none of it was read.
    stream: Option<UnreadStream>,
    /// False with `--no-follow`: redirects are answered with none.
    follow_redirects: bool,
    /// `--user`: the credential challenges are answered with.
    credential: Option<Credential>,
    /// `-n`: each host's login, for challenges `--user` does not answer.
    netrc: Option<Arc<crate::netrc::Netrc>>,
    /// `--location-trusted`: `--user` answers challenges from any origin, not only the URL's.
    location_trusted: bool,
    /// `--insecure`: trust any server.
    insecure: bool,
    /// `--cert` and `--key`: the identity client-certificate challenges are answered with.
    identity: Option<Credential>,
    /// `--fail`: the body of an HTTP error status is not kept (like `curl --fail`).
    fail: bool,
    /// `--fail` or `--fail-with-body`: an HTTP error status fails the command (exit 22).
    fails_on_status: bool,
    /// `-I`: each response's head is written where bodies go.
    heads: bool,
    /// True while a `-J` download's suggested name waits to be looked at (`unchecked_names`):
    /// only then does `did_write_data` take the lock.
    checks_names: AtomicBool,
    /// `-w`: a line after each task, and what standard output holds besides.
    write_out: Option<(WriteOut, Stdout)>,
    /// `get -o FILE`: the file every body goes to (`-w`'s `%{filename_effective}`).
    body_file: Option<PathBuf>,
    /// `get -F` with a form too large to hold: a fresh stream of it for each send.
    form_stream: Option<Arc<crate::form::Form>>,
    /// `-D`: each response head is written (to `Inner::dump`).
    dumps: bool,
    /// A finished download that cannot be saved where it goes (a full disk, a directory in the
    /// way) is kept in the session's directory instead of being removed with the callback's end.
    /// Not in an ephemeral session, which keeps nothing on disk.
    keeps_unsaved: bool,
    /// `-R`: saved files take the response's `Last-Modified`.
    remote_time: bool,
    /// `--etag-save FILE`: each response's entity tag is written there.
    etag_save: Option<PathBuf>,
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
    /// Those of them whose suggested name was not looked at yet, with their handle: one whose
    /// name is taken is cancelled at its first bytes.
    unchecked_names: HashMap<u64, DownloadTask>,
    saved: HashMap<u64, Result<PathBuf, String>>,
    /// Tasks whose body is dropped: an HTTP error status under `--fail`.
    discarding: HashSet<u64>,
    /// Tasks tried again when their status says "not now" (`--retry`): such a body is not
    /// saved, nor written.
    retried_on_status: HashSet<u64>,
    /// Those of them whose body reached the output already: `get` cannot take it back.
    wrote_body: HashSet<u64>,
    /// Where a download with no destination of its own goes, named from its URL (`bg attach`).
    default_dir: Option<PathBuf>,
    /// Data tasks running at once whose bodies go out whole and in order (`get -j N`).
    in_order: Option<in_order::InOrder>,
    /// Each running task's metrics, kept for `-w` until its `did_complete`.
    metrics: HashMap<u64, TaskMetrics>,
    /// `-D`: where response heads go, and the tasks whose final head went there.
    dump: Option<Dump>,
    dumped: HashSet<u64>,
}

impl Inner {
    /// Writes `bytes` with `task`'s body: to the output, or held with it until its turn under
    /// `get -j` ([`in_order`]).
    fn with_body(&mut self, task: u64, bytes: &Bytes) -> std::io::Result<()> {
        match self.in_order.as_mut() {
            Some(in_order) => in_order.received(task, bytes, &mut self.body),
            None => self.body.write_all(bytes),
        }
    }

    /// `dir/name`, or numbered (`dir/a-2.bin`, `dir/a-3.bin`...) past the files this command's
    /// downloads were saved as.
    fn unsaved_name(&self, dir: &Path, name: &str) -> PathBuf {
        let mut taken: HashSet<PathBuf> = self
            .saved
            .values()
            .filter_map(|s| s.as_ref().ok().cloned())
            .collect();
        crate::download::unique(dir, name, &mut taken)
    }
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
            logs: events.is_some(),
            verbose: false,
            retrying: false,
            body_file: None,
            form_stream: None,
            inner: Mutex::new(Inner {
                seq: 0,
                events,
                body,
                pending: HashMap::new(),
                destinations: HashMap::new(),
                named_by_response: HashMap::new(),
                unchecked_names: HashMap::new(),
                saved: HashMap::new(),
                discarding: HashSet::new(),
                retried_on_status: HashSet::new(),
                wrote_body: HashSet::new(),
                default_dir: None,
                in_order: None,
                metrics: HashMap::new(),
                dump: None,
                dumped: HashSet::new(),
            }),
            finished,
            invalid,
            replayed: watch::Sender::new(false),
            opened: watch::Sender::new(false),
            output_failed: watch::Sender::new(None),
            progress,
            stream: None,
            follow_redirects: true,
            credential: None,
            netrc: None,
            location_trusted: false,
            insecure: false,
            identity: None,
            fail: false,
            fails_on_status: false,
            heads: false,
            checks_names: AtomicBool::new(false),
            write_out: None,
            dumps: false,
            keeps_unsaved: false,
            remote_time: false,
            etag_save: None,
        };
        (delegate, finished_rx, invalid_rx)
    }

    /// Waits (at most `limit`) until `did_open_with_protocol` was delivered. Messages come to the
    /// command on its runtime and the callbacks on the delegate's thread; URLSession delivers both
    /// on the delegate's queue, so the open always comes first, and the event log keeps that
    /// order.
    pub(crate) async fn opened(&self, limit: Duration) {
        let mut opened = self.opened.subscribe();
        let _ = tokio::time::timeout(limit, opened.wait_for(|open| *open)).await;
    }

    /// `did_receive_message`: a WebSocket task's message, as `courier ws` received it.
    pub(crate) fn message_received(&self, task: u64, message: &Message) {
        let mut inner = self.inner();
        let fields = json!({ "kind": message.kind_name(), "bytes": message.len() });
        self.emit(&mut inner, "did_receive_message", Some(task), fields);
    }

    /// `task`'s body goes to the output whole, after the bodies of the tasks given here before
    /// it, however their bytes interleave (`get -j N`: see [`in_order`]).
    pub(crate) fn write_in_order(&self, task: u64) {
        self.inner()
            .in_order
            .get_or_insert_with(Default::default)
            .add(task);
    }

    /// Why the body's output refused a write: `None` until it does. The command stops its tasks
    /// when it changes and fails once they are done (`common::output_refused`).
    pub(crate) fn output_failed(&self) -> watch::Receiver<Option<String>> {
        self.output_failed.subscribe()
    }

    /// Notes that writing (or flushing) the body failed; the first failure is the one reported.
    fn note_output_error(&self, result: std::io::Result<()>) {
        if let Err(e) = result {
            self.output_failed.send_if_modified(|failed| {
                let first = failed.is_none();
                if first {
                    *failed = Some(e.to_string());
                }
                first
            });
        }
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
        if self.verbose {
            for line in verbose::lines(event, task, &fields) {
                self.progress.println(&line);
            }
        }
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
    /// (server-trust challenges trust the certificate presented), `--cert` and `--key` (the
    /// identity client-certificate challenges are answered with) and `--fail` (an HTTP error
    /// status's body is neither written nor saved).
    ///
    /// # Errors
    /// A `--cert` or `--key` file that cannot be read, or is no identity (a usage error).
    pub(crate) fn apply(&mut self, options: &Options) -> Result<(), crate::Failure> {
        self.follow_redirects = !options.no_follow;
        self.set_credential_from(options.user.as_deref());
        self.netrc = options.netrc_logins.clone();
        self.location_trusted = options.location_trusted;
        self.insecure = options.insecure;
        self.fail = options.fail;
        self.fails_on_status = options.fails_on_status();
        self.heads = options.head;
        self.verbose = options.verbose;
        self.retrying = options.retry > 0;
        self.logs |= options.verbose;
        self.identity = crate::common::client_identity(options)?;
        self.keeps_unsaved = !crate::common::ephemeral(options);
        self.remote_time = options.remote_time;
        self.etag_save = options.etag_save.clone();
        Ok(())
    }

    /// The credential (`USER:PASS`) to answer challenges with.
    pub(crate) fn set_credential_from(&mut self, user: Option<&str>) {
        self.credential = user.map(|u| {
            let (name, pass) = crate::common::user_and_password(u);
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

    /// `task`'s file goes into `dir`, under the name its response suggests (`-J`); a name
    /// another download of this run took gets a number (`a-2.bin`, `a-3.bin`...), and one a file
    /// has already stops the download at its first bytes.
    pub(crate) fn set_destination_by_response(&self, task: &DownloadTask, dir: PathBuf) {
        let mut inner = self.inner();
        let id = task.info().id();
        inner.named_by_response.insert(id, dir);
        inner.unchecked_names.insert(id, task.clone());
        self.checks_names.store(true, Ordering::Release);
    }

    /// `task` is tried again if its status says "not now" (`--retry`): its body then is not the
    /// file (a download's is not saved, a data task's not written).
    pub(crate) fn set_retried_on_status(&self, task: u64) {
        self.inner().retried_on_status.insert(task);
    }

    /// Each send of a streamed upload gets a fresh stream of `form` (`get -F`'s large form).
    pub(crate) fn set_form_stream(&mut self, form: Arc<crate::form::Form>) {
        self.form_stream = Some(form);
    }

    /// Every body goes to the file `path` (`get -o`), which `-w` names.
    pub(crate) fn set_body_file(&mut self, path: PathBuf) {
        self.body_file = Some(path);
    }

    /// Downloads without a destination of their own go into `dir`, named from their URL
    /// (sanitised, never outside `dir`), as `bg attach` hands them over.
    pub(crate) fn set_default_dir(&self, dir: PathBuf) {
        self.inner().default_dir = Some(dir);
    }

    /// The body a streamed upload sends (given again for a resend only while none of it was
    /// read: [`UnreadStream`]).
    pub(crate) fn set_upload_stream(&mut self, stream: BodyStream) {
        self.stream = Some(UnreadStream::new(stream));
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

/// A response's head as curl's `-I` writes it: the status line, the header fields, a blank line.
fn head_text(response: &Response) -> String {
    let version = match response.version() {
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_3 => "HTTP/3",
        http::Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    };
    let status = response.status();
    // HTTP/2 and 3 carry no reason phrase; curl writes none for them either.
    let reason = match response.version() {
        http::Version::HTTP_2 | http::Version::HTTP_3 => None,
        _ => status.canonical_reason(),
    };
    let mut text = format!("{version} {}", status.as_u16());
    if let Some(reason) = reason {
        text.push(' ');
        text.push_str(reason);
    }
    text.push_str("\r\n");
    for (name, value) in response.headers() {
        text.push_str(&format!(
            "{name}: {}\r\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    text.push_str("\r\n");
    text
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
