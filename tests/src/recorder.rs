//! `Recorder`: a delegate that writes down every callback, in order, for tests to check.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use courier_engine::reexports::bytes::Bytes;
use courier_engine::{
    DataDelegate, Error, ErrorCode, Reply, Response, ResponseDisposition, SessionDelegate,
    TaskDelegate, TaskInfo, TaskState,
};

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
    /// `did_receive_data`.
    Data {
        /// Task identifier.
        task: u64,
        /// Bytes in this call.
        bytes: usize,
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
    /// `did_become_invalid`.
    Invalid,
}

impl Event {
    /// The task the event is about (`None` for session events).
    pub fn task(&self) -> Option<u64> {
        match self {
            Event::State { task, .. }
            | Event::Response { task, .. }
            | Event::Data { task, .. }
            | Event::Complete { task, .. } => Some(*task),
            Event::Invalid => None,
        }
    }
}

/// A delegate that records every callback. Optionally answers responses with a fixed disposition.
#[derive(Default)]
pub struct Recorder {
    events: Mutex<Vec<Event>>,
    body: Mutex<Vec<u8>>,
    disposition: Option<ResponseDisposition>,
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

    /// Waits until `pred` holds for the events, or `timeout` passes. Returns the events.
    ///
    /// Polls without blocking the thread, so it can run on the runtime the session uses.
    pub async fn wait_for(&self, timeout: Duration, pred: impl Fn(&[Event]) -> bool) -> Vec<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            let events = self.events();
            if pred(&events) || Instant::now() >= deadline {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Waits (up to `timeout`) for `did_become_invalid`.
    pub async fn wait_invalid(&self, timeout: Duration) -> Vec<Event> {
        self.wait_for(timeout, |e| e.contains(&Event::Invalid))
            .await
    }

    /// Waits (up to `timeout`) for task `id`'s `did_complete` and returns its error code.
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
    fn did_become_invalid(&self, _error: Option<&Error>) {
        self.push(Event::Invalid);
    }
}

impl TaskDelegate for Recorder {
    fn did_change_state(&self, task: &TaskInfo, from: TaskState, to: TaskState) {
        self.push(Event::State {
            task: task.id(),
            from,
            to,
        });
    }

    fn did_complete(&self, task: &TaskInfo, error: Option<&Error>) {
        self.push(Event::Complete {
            task: task.id(),
            error: error.map(|e| e.code()),
            failing_url: error.and_then(|e| e.failing_url().map(str::to_owned)),
        });
    }
}

impl DataDelegate for Recorder {
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
        reply.send(self.disposition.unwrap_or(ResponseDisposition::Allow));
    }

    fn did_receive_data(&self, task: &TaskInfo, data: &Bytes) {
        self.body.lock().expect("body").extend_from_slice(data);
        self.push(Event::Data {
            task: task.id(),
            bytes: data.len(),
        });
    }
}

/// Checks the stream invariants every session must keep: per task at most one `did_complete` and
/// nothing after it; `did_become_invalid` at most once and last; states chain. Returns the first
/// violation found.
pub fn check_invariants(events: &[Event]) -> Result<(), String> {
    use std::collections::HashMap;
    let mut completed: HashMap<u64, usize> = HashMap::new();
    let mut state: HashMap<u64, TaskState> = HashMap::new();
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
            _ => {}
        }
    }
    Ok(())
}
