//! A task's one terminal message: where it goes ([`Sink`]), how it is taken exactly once
//! ([`Terminal`]), and the guarantee that it is never lost.
//!
//! The session (for tasks that never got an actor, or whose actor died) and the task actor (for
//! everything else) both hold the task's `Terminal`; whoever completes the task first takes the sink
//! and the other finds it empty. Should every holder drop it with the sink still inside (a
//! registration dropped with a stopping session's mailbox, an actor lost to a bug), the last drop
//! delivers an error: no code path can end a task without its completion. This is hyper's
//! dispatch `Callback` rule, "a reply always arrives", applied to URLSession's `did_complete`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use courier_delegates::{
    Callback, DeliveryQueue, Error, ErrorCode, Response, TaskRecorder, TaskState,
};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

/// One piece of body, with its place in the task's window (freed when the reader takes it).
pub(crate) type Chunk = (Bytes, Option<OwnedSemaphorePermit>);
/// Where the body goes, then the error that ends it, if any.
pub(crate) type BodySender = mpsc::UnboundedSender<Result<Chunk, Error>>;
pub(crate) type BodyReceiver = mpsc::UnboundedReceiver<Result<Chunk, Error>>;
pub(crate) type HeadReceiver = oneshot::Receiver<Result<Response, Error>>;

/// The sending half, held by the task: the response head once, then the body, then the end (the
/// senders dropped) or an error.
pub(crate) struct Streamed {
    pub(crate) head: Option<oneshot::Sender<Result<Response, Error>>>,
    pub(crate) body: BodySender,
}

impl Streamed {
    /// A task's sending half and the receiving halves for [`ByteStream`].
    pub(crate) fn channel() -> (Streamed, HeadReceiver, BodyReceiver) {
        let (head, head_rx) = oneshot::channel();
        let (body, body_rx) = mpsc::unbounded_channel();
        let streamed = Streamed {
            head: Some(head),
            body,
        };
        (streamed, head_rx, body_rx)
    }

    /// Hands the response head to the waiting caller (once).
    pub(crate) fn send_head(&mut self, response: Result<Response, Error>) {
        if let Some(head) = self.head.take() {
            let _ = head.send(response);
        }
    }

    /// Ends the stream with the task's result: an error goes to whoever is still waiting, the
    /// caller of `bytes` when no head was sent, else the reader.
    pub(crate) fn finish(mut self, result: Result<(), Error>, response: Option<Response>) {
        match (result, self.head.is_some()) {
            (Err(e), true) => self.send_head(Err(e)),
            (Err(e), false) => {
                let _ = self.body.send(Err(e));
            }
            (Ok(()), true) => self.send_head(response.ok_or_else(|| {
                Error::new(
                    courier_delegates::ErrorCode::BadServerResponse,
                    "no response",
                )
            })),
            (Ok(()), false) => {}
        }
    }
}

/// A completion-form task's body, gathered as it arrives. The one chunk most small bodies come in
/// is kept as it is, without a copy (as http-body-util's `Collected` does); a second chunk starts a
/// buffer.
#[derive(Default)]
pub(crate) struct Gathered {
    first: Bytes,
    more: Option<BytesMut>,
}

impl Gathered {
    pub(crate) fn push(&mut self, data: Bytes) {
        match &mut self.more {
            Some(buffer) => buffer.extend_from_slice(&data),
            None if self.first.is_empty() => self.first = data,
            None => {
                let mut buffer = BytesMut::with_capacity(self.first.len() + data.len());
                buffer.extend_from_slice(&std::mem::take(&mut self.first));
                buffer.extend_from_slice(&data);
                self.more = Some(buffer);
            }
        }
    }

    /// The whole body; the gatherer is empty again.
    pub(crate) fn take(&mut self) -> Bytes {
        match self.more.take() {
            Some(buffer) => buffer.freeze(),
            None => std::mem::take(&mut self.first),
        }
    }
}

/// What a completed task hands over.
pub(crate) enum Delivered {
    /// A data or upload task's body (empty when it went to a delegate).
    Body(Bytes),
    /// A download's file, for the completion form to own.
    File(PathBuf),
}

/// What the caller of a completion form gets.
pub(crate) type Completion = Result<(Delivered, Response), Error>;

/// The caller of a completion form, waiting for the task's result.
pub(crate) type Waiter = oneshot::Sender<Completion>;

/// Where a task's terminal message goes.
pub(crate) enum Sink {
    /// To the task's delegates (`did_complete`, on the queue, after the task's other callbacks):
    /// its own delegate when it has one, else the session's (the queue; `None` when the session
    /// has no delegate, and then only a delegate of the task's own hears of it).
    Delegate(Option<DeliveryQueue>),
    /// To the caller awaiting the completion form; no delegate callbacks.
    Await(Waiter),
    /// To the caller of `Session::bytes`, which got the head and reads the body as it arrives.
    Stream(Streamed),
}

/// The task's terminal message, taken exactly once by whoever completes the task. Cheap to clone;
/// the last clone dropped with the message undelivered delivers an error (see the module doc).
#[derive(Clone)]
pub(crate) struct Terminal(Arc<Slot>);

struct Slot {
    sink: Mutex<Option<Sink>>,
    recorder: TaskRecorder,
}

impl Terminal {
    /// The terminal message of the task `recorder` records.
    pub(crate) fn new(sink: Sink, recorder: TaskRecorder) -> Terminal {
        Terminal(Arc::new(Slot {
            sink: Mutex::new(Some(sink)),
            recorder,
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Sink>> {
        self.0.sink.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the sink without delivering anything: the task ends silently (a data task that became
    /// a download).
    pub(crate) fn discard(&self) {
        self.lock().take();
        self.0.recorder.release_delegate();
    }

    /// For a streamed task, where its body goes.
    pub(crate) fn stream_body(&self) -> Option<BodySender> {
        match self.lock().as_ref() {
            Some(Sink::Stream(s)) => Some(s.body.clone()),
            _ => None,
        }
    }

    /// For a streamed task, hands the final response head to the caller of `Session::bytes`.
    pub(crate) fn send_stream_head(&self, response: &Response) {
        if let Some(Sink::Stream(s)) = self.lock().as_mut() {
            s.send_head(Ok(response.clone()));
        }
    }

    /// True while nobody has delivered the terminal message yet.
    pub(crate) fn is_pending(&self) -> bool {
        self.lock().is_some()
    }

    /// True when the result goes to a delegate (so a finished download is handed to it).
    pub(crate) fn goes_to_delegate(&self) -> bool {
        matches!(self.lock().as_ref(), Some(Sink::Delegate(_)))
    }

    /// Delivers the terminal message, once. Returns false when it had been delivered already.
    pub(crate) fn deliver(&self, result: Result<Delivered, Error>) -> bool {
        let Some(sink) = self.lock().take() else {
            return false;
        };
        self.0.send(sink, result);
        true
    }

    /// Completes a task that cannot finish normally (its actor is gone): publishes `Completed` if
    /// the task was not there yet, then delivers `error`. Does nothing once delivered.
    pub(crate) fn abandon(&self, error: Error) {
        let Some(sink) = self.lock().take() else {
            return;
        };
        self.0.abandon(sink, error);
    }
}

impl Slot {
    fn send(&self, sink: Sink, result: Result<Delivered, Error>) {
        let info = self.recorder.info();
        if let Err(e) = &result {
            self.recorder.set_error(e.clone());
        }
        tracing::debug!(task = info.id(), error = ?result.as_ref().err().map(|e| e.code()), "task completed");
        match sink {
            Sink::Delegate(queue) => {
                if let Some(queue) = DeliveryQueue::for_task(queue.as_ref(), &info) {
                    let (task, error) = (info.clone(), result.err());
                    queue.push_task(&info, Callback::Complete, move |d| {
                        d.did_complete(&task, error.as_ref())
                    });
                }
            }
            Sink::Await(tx) => {
                let answer = result.and_then(|delivered| match info.response() {
                    Some(response) => Ok((delivered, response)),
                    None => Err(Error::new(ErrorCode::BadServerResponse, "no response")
                        .with_url(info.original_request().url_str())),
                });
                // The caller may have stopped waiting (its future was dropped): a downloaded file is
                // then nobody's.
                if let Err(Ok((Delivered::File(path), _))) = tx.send(answer) {
                    courier_storage::download::remove_partial(&path);
                }
            }
            Sink::Stream(s) => s.finish(result.map(|_| ()), info.response()),
        }
        // Nothing more is said about the task: its own delegate goes once the messages queued
        // for it have run.
        self.recorder.release_delegate();
    }

    fn abandon(&self, sink: Sink, error: Error) {
        let info = self.recorder.info();
        let error = match error.failing_url() {
            Some(_) => error,
            None => error.with_url(info.original_request().url_str()),
        };
        let from = info.state();
        if from != TaskState::Completed {
            self.recorder.set_state(TaskState::Completed);
            if let Sink::Delegate(queue) = &sink
                && let Some(queue) = DeliveryQueue::for_task(queue.as_ref(), &info)
                && queue.wants_task(&info, Callback::ChangeState)
            {
                let task = info.clone();
                queue.push_task(&info, Callback::ChangeState, move |d| {
                    d.did_change_state(&task, from, TaskState::Completed)
                });
            }
        }
        self.send(sink, Err(error));
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(sink) = self
            .sink
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return;
        };
        tracing::error!(
            task = self.recorder.info().id(),
            "a task was dropped without completing; completing it"
        );
        let error = Error::new(
            ErrorCode::Unknown,
            "the task ended without completing (its session stopped, or an internal error)",
        );
        self.abandon(sink, error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use courier_delegates::{Request, TaskInfo, TaskKind};

    fn terminal() -> (Terminal, oneshot::Receiver<Completion>) {
        let (_, recorder) = TaskInfo::new(1, TaskKind::Data, Request::get("https://a.test/"));
        let (tx, rx) = oneshot::channel();
        (Terminal::new(Sink::Await(tx), recorder), rx)
    }

    #[test]
    fn delivered_once_whoever_tries_first() {
        let (t, mut rx) = terminal();
        let other = t.clone();
        assert!(t.deliver(Err(Error::cancelled("https://a.test/"))));
        assert!(!other.deliver(Ok(Delivered::Body(Bytes::new()))));
        other.abandon(Error::new(ErrorCode::Unknown, "late"));
        assert_eq!(
            rx.try_recv().unwrap().err().map(|e| e.code()),
            Some(ErrorCode::Cancelled)
        );
    }

    #[test]
    fn the_last_holder_dropping_it_unanswered_completes_the_task() {
        let (t, mut rx) = terminal();
        let other = t.clone();
        drop(t);
        assert!(rx.try_recv().is_err(), "a clone still holds it");
        drop(other);
        let error = rx.try_recv().unwrap().err().unwrap();
        assert_eq!(error.code(), ErrorCode::Unknown);
        assert!(error.message().contains("without completing"), "{error}");
    }

    #[test]
    fn finish_sends_an_error_to_whoever_still_waits() {
        let (streamed, head, mut body) = Streamed::channel();
        let e = Error::new(courier_delegates::ErrorCode::CannotConnectToHost, "no");
        streamed.finish(Err(e), None);
        assert_eq!(
            head.blocking_recv().unwrap().unwrap_err().code(),
            courier_delegates::ErrorCode::CannotConnectToHost
        );
        assert!(
            body.blocking_recv().is_none(),
            "the body ends with nothing in it"
        );

        let (mut streamed, _head, mut body) = Streamed::channel();
        streamed.send_head(Err(Error::new(
            courier_delegates::ErrorCode::Unknown,
            "stand-in for a head",
        )));
        let cut = Error::new(courier_delegates::ErrorCode::NetworkConnectionLost, "cut");
        streamed.finish(Err(cut), None);
        assert_eq!(
            body.blocking_recv().unwrap().err().map(|e| e.code()),
            Some(courier_delegates::ErrorCode::NetworkConnectionLost)
        );
    }
}
