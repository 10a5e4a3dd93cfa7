//! `DeliveryQueue`: the session's serial delegate queue.
//!
//! By default one thread per session with a delegate, like the private serial `OperationQueue`
//! URLSession creates when none is given; or one Tokio task on a runtime the application hands in
//! (URLSession's `delegateQueue`), for a delegate that wants to live among its other async work.
//! Either way callbacks run one at a time in the order they were queued, so a delegate needs no
//! locking of its own. The queue owns the delegate and drops it after the final callback
//! (`did_become_invalid`), then its thread (or task) ends.
//!
//! URLSession calls an optional delegate method only if the delegate `respondsToSelector:` it. Rust
//! has no such question, so the queue learns the answer: the default body of each optional method
//! tells the queue, when it runs for the session's own delegate, that the method was left alone
//! (`left_at_default`). From then on [`DeliveryQueue::wants`] says no, and the engine neither
//! builds nor queues that callback, answering questions with the default at once. The answer is
//! the same either way; what is saved is a trip to the delegate thread on every task.
//!
//! A task may carry its own delegate (URLSession's `task.delegate`, see [`DeliveryQueue::attach`]).
//! Its messages go through the same queue ([`DeliveryQueue::push_task`], [`DeliveryQueue::ask_task`]):
//! to the task's delegate first, and, when that one's default body runs (it does not implement the
//! method), on to the session's, in the same turn of the queue. For a question, the default answer
//! the task delegate's default body sends is held back, and the session's delegate answers.

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

use tokio::sync::oneshot;

use crate::{Delegate, Reply, TaskInfo, TaskLevelDelegate};

type Job = Box<dyn FnOnce(&dyn Delegate) + Send>;

enum Item {
    Call(Job),
    /// The last callback: after it the delegate is dropped and the thread ends.
    Last(Job),
}

/// An optional delegate method the engine may leave out once it knows the delegate does not
/// implement it (see [`DeliveryQueue::wants`]). `did_complete` and `did_become_invalid` are always
/// delivered and are not listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Callback {
    /// [`SessionDelegate::did_receive_challenge`](crate::SessionDelegate::did_receive_challenge).
    SessionChallenge,
    /// [`TaskDelegate::did_change_state`](crate::TaskDelegate::did_change_state).
    ChangeState,
    /// [`TaskDelegate::will_perform_http_redirection`](crate::TaskDelegate::will_perform_http_redirection).
    Redirection,
    /// [`TaskDelegate::did_receive_challenge`](crate::TaskDelegate::did_receive_challenge).
    TaskChallenge,
    /// [`TaskDelegate::need_new_body_stream`](crate::TaskDelegate::need_new_body_stream).
    NewBodyStream,
    /// [`TaskDelegate::did_send_body_data`](crate::TaskDelegate::did_send_body_data).
    SendBodyData,
    /// [`TaskDelegate::did_finish_collecting_metrics`](crate::TaskDelegate::did_finish_collecting_metrics).
    Metrics,
    /// [`DataDelegate::did_receive_response`](crate::DataDelegate::did_receive_response).
    ReceiveResponse,
    /// [`DataDelegate::did_become_download_task`](crate::DataDelegate::did_become_download_task).
    BecomeDownload,
    /// [`DataDelegate::will_cache_response`](crate::DataDelegate::will_cache_response).
    WillCache,
    /// [`DataDelegate::did_receive_data`](crate::DataDelegate::did_receive_data).
    ReceiveData,
    /// [`DownloadDelegate::did_write_data`](crate::DownloadDelegate::did_write_data).
    WriteData,
    /// [`DownloadDelegate::did_resume_at_offset`](crate::DownloadDelegate::did_resume_at_offset).
    ResumeAtOffset,
    /// [`DownloadDelegate::did_finish_downloading_to`](crate::DownloadDelegate::did_finish_downloading_to).
    FinishDownloading,
    /// [`TaskDelegate::did_receive_informational_response`](crate::TaskDelegate::did_receive_informational_response).
    InformationalResponse,
    /// [`TaskDelegate::task_is_waiting_for_connectivity`](crate::TaskDelegate::task_is_waiting_for_connectivity).
    WaitingForConnectivity,
    /// [`TaskDelegate::did_create_task`](crate::TaskDelegate::did_create_task).
    CreateTask,
    /// [`TaskDelegate::will_begin_delayed_request`](crate::TaskDelegate::will_begin_delayed_request).
    DelayedRequest,
    /// [`TaskDelegate::did_complete`](crate::TaskDelegate::did_complete): always delivered; listed
    /// so that a task's own delegate that leaves it alone passes it on to the session's.
    Complete,
}

impl Callback {
    fn bit(self) -> u32 {
        1 << self as u32
    }
}

/// The delegate a delivery thread serves, and where it notes the methods left at their default.
struct Serving {
    /// The delegate's address and concrete type: together they tell the session's delegate from
    /// another object (a field at the same address has another type) whose default ran.
    address: usize,
    type_id: TypeId,
    defaulted: Arc<AtomicU32>,
}

thread_local! {
    static SERVING: RefCell<Option<Serving>> = const { RefCell::new(None) };
    /// The task delegate being asked right now on this thread, and whether its default body ran.
    static PROBING: RefCell<Option<Probe>> = const { RefCell::new(None) };
}

/// One call to a task's own delegate: which object, which method, and whether its default ran.
struct Probe {
    address: usize,
    type_id: TypeId,
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
        self.defaulted.load(Ordering::Relaxed) & callback.bit() == 0
    }

    /// Runs `call` on this delegate; true when it left `callback` at its default (its default
    /// body ran), so the session's delegate is to be asked instead. Learns the answer for next time.
    fn implements(&self, callback: Callback, call: impl FnOnce(&dyn TaskLevelDelegate)) -> bool {
        if !self.wants(callback) {
            return false;
        }
        let any: &dyn Any = self.delegate.as_ref();
        let probe = Probe {
            address: Arc::as_ptr(&self.delegate).cast::<()>() as usize,
            type_id: any.type_id(),
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

/// Called by the default body of an optional delegate method: when `delegate` is the delegate this
/// delivery thread serves, the queue stops asking for `callback`. A wrapper delegate that forwards
/// to another object's default is not taken for one that left the method alone.
pub(crate) fn left_at_default<D: ?Sized + 'static>(delegate: &D, callback: Callback) {
    let address = (delegate as *const D).cast::<()>() as usize;
    PROBING.with(|probing| {
        if let Some(p) = probing.borrow_mut().as_mut()
            && p.address == address
            && p.type_id == TypeId::of::<D>()
        {
            p.defaulted = true;
        }
    });
    SERVING.with(|serving| {
        if let Some(s) = serving.borrow().as_ref()
            && s.address == address
            && s.type_id == TypeId::of::<D>()
        {
            s.defaulted.fetch_or(callback.bit(), Ordering::Relaxed);
        }
    });
}

impl Serving {
    fn of(delegate: &Arc<dyn Delegate>, defaulted: &Arc<AtomicU32>) -> Serving {
        let any: &dyn Any = delegate.as_ref();
        Serving {
            address: Arc::as_ptr(delegate).cast::<()>() as usize,
            type_id: any.type_id(),
            defaulted: defaulted.clone(),
        }
    }
}

/// Where callbacks are queued: to the session's delegate thread, or to its task on a runtime.
#[derive(Clone)]
enum Sender {
    Thread(mpsc::Sender<Item>),
    Task(tokio::sync::mpsc::UnboundedSender<Item>),
}

impl Sender {
    /// False when the queue has ended.
    fn send(&self, item: Item) -> bool {
        match self {
            Sender::Thread(tx) => tx.send(item).is_ok(),
            Sender::Task(tx) => tx.send(item).is_ok(),
        }
    }
}

/// Runs one queued callback on `delegate`; true after the last one.
fn deliver(item: Item, delegate: &dyn Delegate) -> bool {
    let (job, last) = match item {
        Item::Call(job) => (job, false),
        Item::Last(job) => (job, true),
    };
    // A panicking callback must not take the queue, and with it every later callback of the
    // session, down with it.
    if catch_unwind(AssertUnwindSafe(|| job(delegate))).is_err() {
        tracing::error!("a delegate callback panicked; delivery goes on");
    }
    last
}

/// A handle to a session's serial delivery queue. Cheap to clone.
#[derive(Clone)]
pub struct DeliveryQueue {
    tx: Sender,
    /// The optional methods the delegate was seen to leave at their default.
    defaulted: Arc<AtomicU32>,
    /// The same, per type of task delegate attached to this queue.
    learned: Arc<Mutex<HashMap<TypeId, Arc<AtomicU32>>>>,
}

impl DeliveryQueue {
    /// Starts the queue's thread, which owns `delegate` from now on.
    ///
    /// # Errors
    /// The operating system refused to start a thread.
    pub fn start(delegate: Arc<dyn Delegate>, label: &str) -> std::io::Result<DeliveryQueue> {
        // std's channel: a parked thread wakes faster from it than from Tokio's.
        let (tx, rx) = mpsc::channel::<Item>();
        let defaulted = Arc::new(AtomicU32::new(0));
        let serving = Serving::of(&delegate, &defaulted);
        thread::Builder::new()
            .name(format!("courier-delegate-{label}"))
            .spawn(move || {
                SERVING.with(|s| *s.borrow_mut() = Some(serving));
                while let Ok(item) = rx.recv() {
                    if deliver(item, delegate.as_ref()) {
                        break;
                    }
                }
                // Dropping the receiver first makes later pushes fail: nothing follows the last call.
                drop(rx);
                drop(delegate);
            })?;
        Ok(DeliveryQueue {
            tx: Sender::Thread(tx),
            defaulted,
            learned: Arc::default(),
        })
    }

    /// Starts the queue as one task on `runtime` (URLSession's `delegateQueue`), which owns
    /// `delegate` from now on. Callbacks still run one at a time, in order; each runs on a worker
    /// of `runtime`, so it must return quickly there too (hand long work to `tokio::spawn`).
    pub fn start_on(
        delegate: Arc<dyn Delegate>,
        runtime: &tokio::runtime::Handle,
    ) -> DeliveryQueue {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Item>();
        let defaulted = Arc::new(AtomicU32::new(0));
        let noting = defaulted.clone();
        runtime.spawn(async move {
            while let Some(item) = rx.recv().await {
                // The task may move between workers: the delegate is named on each call's thread.
                let serving = Serving::of(&delegate, &noting);
                SERVING.with(|s| *s.borrow_mut() = Some(serving));
                let last = deliver(item, delegate.as_ref());
                SERVING.with(|s| *s.borrow_mut() = None);
                if last {
                    break;
                }
            }
            drop(rx);
            drop(delegate);
        });
        DeliveryQueue {
            tx: Sender::Task(tx),
            defaulted,
            learned: Arc::default(),
        }
    }

    /// Whether the delegate may implement `callback`: true until its default body was seen to run
    /// for this queue's delegate. Callers skip a callback the delegate does not want (and answer a
    /// question with its default), which changes nothing the delegate could see.
    pub fn wants(&self, callback: Callback) -> bool {
        self.defaulted.load(Ordering::Relaxed) & callback.bit() == 0
    }

    /// Queues a callback. Returns false when the queue has already delivered its last callback.
    pub fn push(&self, job: impl FnOnce(&dyn Delegate) + Send + 'static) -> bool {
        self.tx.send(Item::Call(Box::new(job)))
    }

    /// Asks the delegate a question: `call` gets a [`Reply`] whose answer (or `default`, when the
    /// reply is dropped) comes on the returned receiver. When the delegate leaves `callback` at its
    /// default, `default` is the answer at once, without a trip to the delegate thread. The
    /// receiver fails only when the queue has ended.
    pub fn ask<T: Send + 'static>(
        &self,
        callback: Callback,
        default: T,
        call: impl FnOnce(&dyn Delegate, Reply<T>) + Send + 'static,
    ) -> oneshot::Receiver<T> {
        let (tx, rx) = oneshot::channel();
        if !self.wants(callback) {
            let _ = tx.send(default);
            return rx;
        }
        self.push(move |d| {
            let reply = Reply::new(default, move |answer| {
                let _ = tx.send(answer);
            });
            call(d, reply);
        });
        rx
    }

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
        if !self.wants_task(task, callback) {
            let _ = tx.send(default());
            return rx;
        }
        let own = task.own();
        let answer = Arc::new(Mutex::new(Some(tx)));
        self.push(move |session| {
            let send = |answer: &Arc<Mutex<Option<oneshot::Sender<T>>>>, value: T| {
                let taken = answer.lock().unwrap_or_else(|p| p.into_inner()).take();
                if let Some(tx) = taken {
                    let _ = tx.send(value);
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
        rx
    }

    /// Queues the final callback; after it runs the delegate is dropped.
    pub fn push_last(&self, job: impl FnOnce(&dyn Delegate) + Send + 'static) -> bool {
        self.tx.send(Item::Last(Box::new(job)))
    }
}

impl std::fmt::Debug for DeliveryQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryQueue")
            .field("defaulted", &self.defaulted.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DataDelegate, ResponseDisposition, SessionDelegate, TaskDelegate};
    use std::sync::Mutex;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    #[derive(Default)]
    struct Log(Mutex<Vec<u32>>);
    impl SessionDelegate for Log {}
    impl TaskDelegate for Log {}
    impl DataDelegate for Log {}
    impl crate::DownloadDelegate for Log {}

    #[test]
    fn runs_in_order_survives_panics_and_drops_delegate_last() {
        let log = Arc::new(Log::default());
        let q = DeliveryQueue::start(log.clone(), "t").unwrap();
        for i in 0..100u32 {
            let l = log.clone();
            q.push(move |_| l.0.lock().unwrap().push(i));
        }
        q.push(|_| panic!("boom"));
        let l = log.clone();
        assert!(q.push_last(move |_| l.0.lock().unwrap().push(1000)));
        let deadline = Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&log) > 1 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(Arc::strong_count(&log), 1, "the queue dropped its delegate");
        let seen = log.0.lock().unwrap().clone();
        let mut want: Vec<u32> = (0..100).collect();
        want.push(1000);
        assert_eq!(seen, want);
        assert!(
            !q.push(|_| {}),
            "nothing is delivered after the last callback"
        );
    }

    /// Only `did_complete`: every optional method is left at its default.
    struct Quiet;
    impl SessionDelegate for Quiet {}
    impl TaskDelegate for Quiet {}
    impl DataDelegate for Quiet {}
    impl crate::DownloadDelegate for Quiet {}

    /// Implements `did_receive_data` by forwarding to an object whose method is the default, after
    /// counting: the queue must not mistake the forwarded default for its own. `repr(C)` puts the
    /// inner object at the wrapper's address, the case the type check is there for.
    #[repr(C)]
    struct Forwarding {
        inner: Quiet,
        seen: std::sync::atomic::AtomicUsize,
    }
    impl SessionDelegate for Forwarding {}
    impl TaskDelegate for Forwarding {}
    impl crate::DownloadDelegate for Forwarding {}
    impl DataDelegate for Forwarding {
        fn did_receive_data(&self, task: &crate::TaskInfo, data: &bytes::Bytes) {
            self.seen.fetch_add(1, Ordering::Relaxed);
            self.inner.did_receive_data(task, data);
        }
    }

    fn info() -> crate::TaskInfo {
        crate::TaskInfo::new(
            1,
            crate::TaskKind::Data,
            crate::Request::new(http::Method::GET, "https://a.test/"),
        )
        .0
    }

    /// Waits until every callback queued so far has run.
    fn drain(q: &DeliveryQueue) {
        let (tx, rx) = mpsc::channel();
        q.push(move |_| {
            let _ = tx.send(());
        });
        rx.recv_timeout(Duration::from_secs(5))
            .expect("the queue drains");
    }

    #[test]
    fn a_method_left_at_its_default_is_asked_once_then_skipped() {
        let q = DeliveryQueue::start(Arc::new(Quiet), "t").unwrap();
        assert!(q.wants(Callback::ReceiveData) && q.wants(Callback::ReceiveResponse));
        let i = info();
        q.push(move |d| d.did_receive_data(&i, &bytes::Bytes::from_static(b"x")));
        drain(&q);
        assert!(
            !q.wants(Callback::ReceiveData),
            "the default body told the queue"
        );
        assert!(
            q.wants(Callback::ReceiveResponse),
            "a method not yet called is still wanted"
        );

        // A question about a defaulted method is answered at once, even while the delegate thread
        // is busy: no trip to it.
        let first = q.ask(
            Callback::ReceiveResponse,
            ResponseDisposition::Allow,
            |d, reply| {
                let (info, response) = (
                    info(),
                    crate::Response::new(
                        "https://a.test/".parse().unwrap(),
                        http::StatusCode::OK,
                        http::Version::HTTP_11,
                        http::HeaderMap::new(),
                    ),
                );
                d.did_receive_response(&info, &response, reply);
            },
        );
        assert_eq!(first.blocking_recv().unwrap(), ResponseDisposition::Allow);
        drain(&q);
        assert!(!q.wants(Callback::ReceiveResponse));
        let (release, blocked) = mpsc::channel::<()>();
        q.push(move |_| {
            let _ = blocked.recv_timeout(Duration::from_secs(5));
        });
        let answer = q.ask(
            Callback::ReceiveResponse,
            ResponseDisposition::Cancel,
            |_, _| panic!("a defaulted question never reaches the delegate"),
        );
        assert_eq!(answer.blocking_recv().unwrap(), ResponseDisposition::Cancel);
        release.send(()).unwrap();
    }

    #[test]
    fn a_delegate_that_forwards_to_a_default_keeps_getting_the_method() {
        let d = Arc::new(Forwarding {
            inner: Quiet,
            seen: std::sync::atomic::AtomicUsize::new(0),
        });
        let q = DeliveryQueue::start(d.clone(), "t").unwrap();
        for _ in 0..3 {
            let i = info();
            q.push(move |d| d.did_receive_data(&i, &bytes::Bytes::from_static(b"x")));
        }
        drain(&q);
        assert!(q.wants(Callback::ReceiveData));
        assert_eq!(d.seen.load(Ordering::Relaxed), 3);
        // Its own defaults are still learned.
        let i = info();
        q.push(move |d| {
            d.did_change_state(&i, crate::TaskState::Suspended, crate::TaskState::Running)
        });
        drain(&q);
        assert!(!q.wants(Callback::ChangeState));
    }

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

    #[test]
    fn a_default_run_outside_the_delivery_thread_teaches_nothing() {
        let q = DeliveryQueue::start(Arc::new(Quiet), "t").unwrap();
        Quiet.did_receive_data(&info(), &bytes::Bytes::new());
        assert!(q.wants(Callback::ReceiveData));
    }
}
