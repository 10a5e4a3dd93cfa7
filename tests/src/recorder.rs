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

mod callbacks;
mod event;

pub use event::Event;

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

    /// The `did_receive_response` replies a [`Recorder::holding_responses`] kept so far, in the
    /// order they came, taken from it.
    pub fn take_held_replies(&self) -> Vec<Reply<ResponseDisposition>> {
        self.held
            .as_ref()
            .map(|held| std::mem::take(&mut *held.lock().expect("held")))
            .unwrap_or_default()
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
