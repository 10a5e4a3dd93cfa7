//! A task's own delegate (URLSession's `task.delegate`) on the session's queue: attached to a
//! task before it is resumed, asked first about the task, and passing on to the session's delegate
//! whatever it leaves at a method's default.
//!
//! To know whether the task's delegate implements a method, the queue calls it while *probing*
//! (a thread-local naming the object and the method): when its default body runs,
//! `leave_at_default` notes it on the probe, the call counts as not implemented, and the session's
//! delegate is called in the same turn. An answer the default body sent meanwhile is held back.
//! What a type leaves at its default is learned once per type and queue.

use std::any::Any;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::{Callback, DeliveryQueue, Identity};
use crate::{Reply, TaskInfo, TaskLevelDelegate};

thread_local! {
    /// The task delegate being asked right now on this thread, and whether its default body ran.
    static PROBING: RefCell<Option<Probe>> = const { RefCell::new(None) };
}

/// One call to a task's own delegate: which object, which method, and whether its default ran.
struct Probe {
    who: Identity,
    callback: Callback,
    defaulted: bool,
}

/// A task's own delegate, attached before the task is first resumed, with what the queue learned
/// of it and the queue its messages go through.
pub(crate) struct OwnDelegate {
    pub(crate) delegate: Arc<dyn TaskLevelDelegate>,
    /// The optional methods this delegate's type was seen to leave at their default: shared by
    /// every task delegate of the type on the queue (a default is the type's, whatever the
    /// instance), so each method is probed once per type, not once per task.
    defaulted: Arc<AtomicU32>,
    queue: DeliveryQueue,
}

impl OwnDelegate {
    fn wants(&self, callback: Callback) -> bool {
        callback.wanted_by(&self.defaulted)
    }

    /// Runs `call` on this delegate; true when it implements `callback`, false when its default
    /// body ran (or is known to), so the session's delegate is to be asked instead. Learns the
    /// answer for next time.
    fn implements(&self, callback: Callback, call: impl FnOnce(&dyn TaskLevelDelegate)) -> bool {
        if !self.wants(callback) {
            return false;
        }
        let probe = Probe {
            who: Identity::of(self.delegate.as_ref()),
            callback,
            defaulted: false,
        };
        let outer = PROBING.with(|p| p.borrow_mut().replace(probe));
        call(self.delegate.as_ref());
        let probe = PROBING.with(|p| std::mem::replace(&mut *p.borrow_mut(), outer));
        let defaulted = probe.is_some_and(|p| p.defaulted);
        if defaulted {
            self.defaulted.fetch_or(callback.bit(), Ordering::Relaxed);
        }
        !defaulted
    }
}

/// True while the default body of `callback` runs for the task delegate being probed on this
/// thread: an answer it sends then is the default, not the delegate's.
fn probed_default(callback: Callback) -> bool {
    PROBING.with(|p| {
        p.borrow()
            .as_ref()
            .is_some_and(|p| p.defaulted && p.callback == callback)
    })
}

/// Called from `leave_at_default`: when the object whose default ran is the task delegate being
/// probed on this thread, the probe notes that it left the method alone.
pub(super) fn note_default(who: Identity) {
    PROBING.with(|probing| {
        if let Some(p) = probing.borrow_mut().as_mut()
            && p.who == who
        {
            p.defaulted = true;
        }
    });
}

impl DeliveryQueue {
    /// Attaches `delegate` to `task` as its own (URLSession's `task.delegate`): the task's messages
    /// go through this queue to it first. False when the task has one already. Attach before the
    /// task is first resumed; a message already on its way goes where it was sent.
    pub fn attach(&self, task: &TaskInfo, delegate: Arc<dyn TaskLevelDelegate>) -> bool {
        let any: &dyn Any = delegate.as_ref();
        let defaulted = self
            .learned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(any.type_id())
            .or_default()
            .clone();
        task.attach(OwnDelegate {
            delegate,
            defaulted,
            queue: self.clone(),
        })
    }

    /// The queue a task's messages go through: the one its own delegate was attached to, else the
    /// session's (`session`, `None` when the session has no delegate).
    pub fn for_task(session: Option<&DeliveryQueue>, task: &TaskInfo) -> Option<DeliveryQueue> {
        match task.own() {
            Some(own) => Some(own.queue.clone()),
            None => session.cloned(),
        }
    }

    /// Whether `task`'s own delegate or the session's may implement `callback`.
    pub fn wants_task(&self, task: &TaskInfo, callback: Callback) -> bool {
        task.own().is_some_and(|own| own.wants(callback)) || self.wants(callback)
    }

    /// Queues a message about `task`: to its own delegate, or to the session's when the task has
    /// none or its own leaves `callback` at its default. `job` may therefore run twice, once for
    /// each; only the delegate that implements the method sees anything.
    pub fn push_task(
        &self,
        task: &TaskInfo,
        callback: Callback,
        job: impl Fn(&dyn TaskLevelDelegate) + Send + 'static,
    ) -> bool {
        let own = task.own();
        self.push(move |session| {
            if own
                .as_ref()
                .is_some_and(|own| own.implements(callback, &job))
            {
                return;
            }
            job(session);
        })
    }

    /// Asks a question about `task`, as [`DeliveryQueue::ask`] does, of its own delegate first and
    /// of the session's when the task's leaves `callback` at its default (the default answer its
    /// default body sends is not taken). `default` makes the default answer, once per delegate
    /// asked.
    pub fn ask_task<T: Send + 'static>(
        &self,
        task: &TaskInfo,
        callback: Callback,
        default: impl Fn() -> T + Send + 'static,
        call: impl Fn(&dyn TaskLevelDelegate, Reply<T>) + Send + 'static,
    ) -> oneshot::Receiver<T> {
        let (tx, rx) = oneshot::channel();
        self.ask_task_then(task, callback, default, call, move |value| {
            let _ = tx.send(value);
        });
        rx
    }

    /// [`DeliveryQueue::ask_task`], with the answer handed to `answered` (once, on whichever thread
    /// answers, or at once with the default when neither delegate implements `callback`) rather
    /// than sent on a channel someone must await.
    pub fn ask_task_then<T: Send + 'static, A: FnOnce(T) + Send + 'static>(
        &self,
        task: &TaskInfo,
        callback: Callback,
        default: impl Fn() -> T + Send + 'static,
        call: impl Fn(&dyn TaskLevelDelegate, Reply<T>) + Send + 'static,
        answered: A,
    ) {
        if !self.wants_task(task, callback) {
            return answered(default());
        }
        let own = task.own();
        let answer = Arc::new(Mutex::new(Some(answered)));
        self.push_question(move |session| {
            let send = |answer: &Mutex<Option<A>>, value: T| {
                let taken = answer.lock().unwrap_or_else(|p| p.into_inner()).take();
                if let Some(answered) = taken {
                    answered(value);
                }
            };
            if let Some(own) = own.as_ref().filter(|own| own.wants(callback)) {
                let slot = answer.clone();
                let reply = Reply::new(default(), move |value| {
                    // The task delegate's default body answering: the session's delegate answers.
                    if !probed_default(callback) {
                        send(&slot, value);
                    }
                });
                if own.implements(callback, |d| call(d, reply)) {
                    return;
                }
            }
            let reply = Reply::new(default(), move |value| send(&answer, value));
            call(session, reply);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{Quiet, drain, info};
    use super::*;
    use crate::{DataDelegate, ResponseDisposition, SessionDelegate, TaskDelegate};
    use std::thread;

    /// A session delegate that cancels every response and counts the data it gets.
    #[derive(Default)]
    struct Strict(std::sync::atomic::AtomicUsize);
    impl SessionDelegate for Strict {}
    impl TaskDelegate for Strict {}
    impl crate::DownloadDelegate for Strict {}
    impl DataDelegate for Strict {
        fn did_receive_response(
            &self,
            _task: &crate::TaskInfo,
            _response: &crate::Response,
            reply: Reply<ResponseDisposition>,
        ) {
            reply.send(ResponseDisposition::Cancel);
        }
        fn did_receive_data(&self, _task: &crate::TaskInfo, _data: &bytes::Bytes) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A task's own delegate that takes its data, and answers responses later, from elsewhere.
    #[derive(Default)]
    struct Later {
        data: std::sync::atomic::AtomicUsize,
        replies: Mutex<Vec<Reply<ResponseDisposition>>>,
    }
    impl TaskDelegate for Later {}
    impl crate::DownloadDelegate for Later {}
    impl DataDelegate for Later {
        fn did_receive_response(
            &self,
            _task: &crate::TaskInfo,
            _response: &crate::Response,
            reply: Reply<ResponseDisposition>,
        ) {
            self.replies.lock().unwrap().push(reply);
        }
        fn did_receive_data(&self, _task: &crate::TaskInfo, _data: &bytes::Bytes) {
            self.data.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn response() -> crate::Response {
        crate::Response::new(
            "https://a.test/".parse().unwrap(),
            http::StatusCode::OK,
            http::Version::HTTP_11,
            http::HeaderMap::new(),
        )
    }

    fn ask_response(
        q: &DeliveryQueue,
        task: &crate::TaskInfo,
    ) -> oneshot::Receiver<ResponseDisposition> {
        let info = task.clone();
        q.ask_task(
            task,
            Callback::ReceiveResponse,
            || ResponseDisposition::Allow,
            move |d, reply| d.did_receive_response(&info, &response(), reply),
        )
    }

    #[test]
    fn a_tasks_delegate_that_leaves_a_method_passes_it_on_answer_included() {
        let session = Arc::new(Strict::default());
        let q = DeliveryQueue::start(session.clone(), "t").unwrap();
        let (quiet_task, plain_task) = (info(), info());
        assert!(q.attach(&quiet_task, Arc::new(Quiet)));
        assert!(!q.attach(&quiet_task, Arc::new(Quiet)), "once only");

        // `Quiet` leaves `did_receive_response` at its default (Allow): the session's delegate
        // answers (Cancel), and the task delegate's default answer is not taken.
        let answer = ask_response(&q, &quiet_task).blocking_recv().unwrap();
        assert_eq!(answer, ResponseDisposition::Cancel);
        let i = quiet_task.clone();
        q.push_task(&quiet_task, Callback::ReceiveData, move |d| {
            d.did_receive_data(&i, &bytes::Bytes::new())
        });
        drain(&q);
        assert_eq!(
            session.0.load(Ordering::Relaxed),
            1,
            "passed on to the session's"
        );
        // Still wanted for the task: the session's delegate implements it.
        assert!(q.wants_task(&quiet_task, Callback::ReceiveData));
        assert_eq!(
            ask_response(&q, &plain_task).blocking_recv().unwrap(),
            ResponseDisposition::Cancel
        );
    }

    #[test]
    fn a_tasks_delegate_that_implements_a_method_keeps_it_even_answering_later() {
        let session = Arc::new(Strict::default());
        let q = DeliveryQueue::start(session.clone(), "t").unwrap();
        let task = info();
        let own = Arc::new(Later::default());
        assert!(q.attach(&task, own.clone()));
        assert_eq!(
            task.delegate().map(|d| Arc::as_ptr(&d).cast::<()>()),
            Some(Arc::as_ptr(&own).cast::<()>())
        );

        let answer = ask_response(&q, &task);
        let i = task.clone();
        q.push_task(&task, Callback::ReceiveData, move |d| {
            d.did_receive_data(&i, &bytes::Bytes::new())
        });
        drain(&q);
        assert_eq!(own.data.load(Ordering::Relaxed), 1);
        assert_eq!(
            session.0.load(Ordering::Relaxed),
            0,
            "the session's heard nothing"
        );
        // Answered from another thread, after the callback returned: that answer counts.
        let reply = own.replies.lock().unwrap().pop().expect("kept");
        thread::spawn(move || reply.send(ResponseDisposition::BecomeDownload))
            .join()
            .unwrap();
        assert_eq!(
            answer.blocking_recv().unwrap(),
            ResponseDisposition::BecomeDownload
        );
    }
}
