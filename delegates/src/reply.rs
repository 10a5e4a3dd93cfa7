//! `Reply`: the completion handler of a delegate callback that needs an answer.
//!
//! URLSession hands such callbacks a completion block and the task waits until it is called. Here the
//! callback receives a [`Reply`]; answer it now or move it elsewhere and answer later. A reply that is
//! dropped unanswered answers with the callback's default, so a task never waits forever on a
//! forgotten handler (Darwin would stall it until a timeout).

use std::fmt;

/// Where an answer goes.
type Deliver<T> = Box<dyn FnOnce(T) + Send>;

/// A one-time answer to a delegate callback. Dropping it unanswered sends the default answer.
#[must_use = "an unanswered reply sends the default answer when dropped"]
pub struct Reply<T: Send + 'static> {
    pending: Option<(T, Deliver<T>)>,
}

impl<T: Send + 'static> Reply<T> {
    /// A reply that delivers its answer to `deliver`, or `default` if dropped unanswered.
    pub fn new(default: T, deliver: impl FnOnce(T) + Send + 'static) -> Reply<T> {
        Reply {
            pending: Some((default, Box::new(deliver))),
        }
    }

    /// Answers the callback.
    pub fn send(mut self, answer: T) {
        if let Some((_, deliver)) = self.pending.take() {
            deliver(answer);
        }
    }
}

impl<T: Send + 'static> Drop for Reply<T> {
    fn drop(&mut self) {
        if let Some((default, deliver)) = self.pending.take() {
            deliver(default);
        }
    }
}

impl<T: Send + 'static> fmt::Debug for Reply<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reply")
            .field("answered", &self.pending.is_none())
            .finish()
    }
}

/// The answer to `did_receive_response` (`URLSession.ResponseDisposition`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResponseDisposition {
    /// Go on delivering the body (the default).
    Allow,
    /// Cancel the task: it completes with `-999`.
    Cancel,
    /// Turn the data task into a download task: `did_become_download_task` names the new task,
    /// which receives the body into a file (`did_write_data`, `did_finish_downloading_to`,
    /// `did_complete`). The data task hears nothing more, not even `did_complete`.
    BecomeDownload,
    /// Turn the data task into a stream task on the same connection: `did_become_stream_task`
    /// names the new task, whose handle `Session::adopt_stream_task` gives (by its identifier). Only for a
    /// `101 Switching Protocols` answer over HTTP/1.1 (a request that asked for `Upgrade`): the
    /// connection is the new protocol's. For any other answer it cancels the task, which completes
    /// with `-999`. The data task hears nothing more, not even `did_complete`.
    BecomeStream,
}

impl ResponseDisposition {
    /// The lower-case name the event stream uses.
    pub fn name(self) -> &'static str {
        match self {
            ResponseDisposition::Allow => "allow",
            ResponseDisposition::Cancel => "cancel",
            ResponseDisposition::BecomeStream => "become_stream",
            ResponseDisposition::BecomeDownload => "become_download",
        }
    }
}

/// The answer to `will_begin_delayed_request` (`URLSession.DelayedRequestDisposition`).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum DelayedRequestDisposition {
    /// Load the request as it is (the default).
    ContinueLoading,
    /// Load this request instead (fresher headers, another mirror). Its URL must pass the same
    /// checks as any request's; the task's current request becomes it.
    UseNewRequest(Box<crate::Request>),
    /// Cancel the task: it completes with `-999`.
    Cancel,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn answer_is_delivered_once() {
        let (tx, rx) = mpsc::channel();
        Reply::new(ResponseDisposition::Allow, move |d| tx.send(d).unwrap())
            .send(ResponseDisposition::Cancel);
        assert_eq!(rx.try_recv(), Ok(ResponseDisposition::Cancel));
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn dropped_reply_sends_default() {
        let (tx, rx) = mpsc::channel();
        drop(Reply::new(ResponseDisposition::Allow, move |d| {
            tx.send(d).unwrap()
        }));
        assert_eq!(rx.try_recv(), Ok(ResponseDisposition::Allow));
    }
}
