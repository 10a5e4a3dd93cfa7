//! The event stream: a delegate that writes every callback as one JSON line (`--events`), and
//! writes data tasks' bodies to their output.
//!
//! Lines carry `seq`, `ms` (since the session was created), `event` and `task`. Consecutive
//! `did_receive_data` events of a task are coalesced to at most one per 50 ms, and the bytes still
//! pending are always written before that task's next other event.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use courier_engine::reexports::bytes::Bytes;
use courier_engine::{
    DataDelegate, Error, Reply, Response, ResponseDisposition, SessionDelegate, TaskDelegate,
    TaskInfo, TaskState,
};
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, watch};

const COALESCE: Duration = Duration::from_millis(50);

/// A task's end, as the command needs it.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) task: u64,
    pub(crate) status: Option<u16>,
    pub(crate) error: Option<Error>,
}

/// The CLI's delegate.
pub(crate) struct CliDelegate {
    start: Instant,
    inner: Mutex<Inner>,
    finished: mpsc::UnboundedSender<Finished>,
    invalid: watch::Sender<bool>,
}

struct Inner {
    seq: u64,
    events: Option<Box<dyn Write + Send>>,
    body: Box<dyn Write + Send>,
    /// Per task: bytes not yet reported and when data was last reported.
    pending: HashMap<u64, (usize, Instant)>,
}

impl CliDelegate {
    pub(crate) fn new(
        events: Option<Box<dyn Write + Send>>,
        body: Box<dyn Write + Send>,
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
            }),
            finished,
            invalid,
        };
        (delegate, finished_rx, invalid_rx)
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

    fn flush_data(&self, inner: &mut Inner, task: u64) {
        let Some((n, _)) = inner.pending.get(&task).copied() else {
            return;
        };
        if n == 0 {
            return;
        }
        inner.pending.insert(task, (0, Instant::now()));
        self.write(inner, "did_receive_data", Some(task), json!({ "bytes": n }));
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
            "resume_data": false,
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
    fn did_become_invalid(&self, error: Option<&Error>) {
        let mut inner = self.inner();
        let tasks: Vec<u64> = inner.pending.keys().copied().collect();
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
    fn did_change_state(&self, task: &TaskInfo, from: TaskState, to: TaskState) {
        let mut inner = self.inner();
        self.emit(
            &mut inner,
            "state",
            Some(task.id()),
            json!({ "from": from.name(), "to": to.name() }),
        );
    }

    fn did_complete(&self, task: &TaskInfo, error: Option<&Error>) {
        let status = task.response().map(|r| r.status().as_u16());
        let mut inner = self.inner();
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
        });
    }
}

impl courier_engine::DownloadDelegate for CliDelegate {}

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
        drop(inner);
        reply.send(disposition);
    }

    fn did_receive_data(&self, task: &TaskInfo, data: &Bytes) {
        let mut inner = self.inner();
        if inner.body.write_all(data).is_err() {
            tracing::warn!("cannot write the body to its output");
        }
        let now = Instant::now();
        let long_ago = now.checked_sub(COALESCE).unwrap_or(now);
        let entry = inner.pending.entry(task.id()).or_insert((0, long_ago));
        entry.0 += data.len();
        if now.duration_since(entry.1) >= COALESCE {
            self.flush_data(&mut inner, task.id());
        }
    }
}
