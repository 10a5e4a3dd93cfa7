//! `DeliveryQueue`: the session's serial delegate queue.
//!
//! By default one thread per session with a delegate, like the private serial `OperationQueue`
//! URLSession creates when none is given; or one Tokio task on a runtime the application hands in
//! (URLSession's `delegateQueue`), for a delegate that wants to live among its other async work.
//! Either way callbacks run one at a time in the order they were queued, so a delegate needs no
//! locking of its own. The queue owns the delegate and drops it after the final callback
//! (`did_become_invalid`), then its thread (or task) ends. The thread's channel (`thread`) wakes it
//! once for all the callbacks a turn of the runtime queues.
//!
//! URLSession calls an optional delegate method only if the delegate `respondsToSelector:` it. Rust
//! has no such question, so the queue learns the answer: the default body of each optional method
//! tells the queue, when it runs for the session's own delegate, that the method was left alone
//! (`leave_at_default`). From then on [`DeliveryQueue::wants`] says no, and the engine neither
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
use std::collections::{HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::{Delegate, Reply};

mod own;
mod thread;

pub(crate) use own::OwnDelegate;

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
    /// [`TaskDelegate::did_open_with_protocol`](crate::TaskDelegate::did_open_with_protocol).
    WebSocketOpen,
    /// [`TaskDelegate::did_close_with`](crate::TaskDelegate::did_close_with).
    WebSocketClose,
    /// [`DataDelegate::did_become_stream_task`](crate::DataDelegate::did_become_stream_task).
    BecomeStream,
    /// [`TaskDelegate::read_closed`](crate::TaskDelegate::read_closed).
    ReadClosed,
    /// [`TaskDelegate::write_closed`](crate::TaskDelegate::write_closed).
    WriteClosed,
    /// [`TaskDelegate::did_become_streams`](crate::TaskDelegate::did_become_streams).
    BecomeStreams,
}

impl Callback {
    fn bit(self) -> u32 {
        1 << self as u32
    }

    /// Whether `defaulted`, the methods a delegate was seen to leave at their default, leaves this
    /// one out.
    fn wanted_by(self, defaulted: &AtomicU32) -> bool {
        defaulted.load(Ordering::Relaxed) & self.bit() == 0
    }
}

/// One object as `leave_at_default` recognises it: its address and concrete type. Together they
/// tell a delegate from another object (a field at the same address has another type) whose
/// default ran.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Identity {
    address: usize,
    type_id: TypeId,
}

impl Identity {
    fn of(object: &dyn Any) -> Identity {
        Identity {
            address: (object as *const dyn Any).cast::<()>() as usize,
            type_id: object.type_id(),
        }
    }
}

/// The delegate a delivery thread serves, and where it notes the methods left at their default.
struct Serving {
    who: Identity,
    defaulted: Arc<AtomicU32>,
}

thread_local! {
    static SERVING: RefCell<Option<Serving>> = const { RefCell::new(None) };
}

/// Tells the queue that serves `delegate` that it needs no more `callback`s, as if it had left
/// that method at its default: called from a method that has nothing to do for the rest of the
/// session (an event log that is off, say), it saves every later trip to the delegate thread, and
/// the engine stops preparing what the callback would carry (a task's metrics, for
/// [`Callback::Metrics`]).
///
/// URLSession decides this once, from the methods the delegate object responds to; a Rust trait
/// has every method, so a delegate says it here, from inside the method, on the delegate's own
/// queue. Called anywhere else, or with an object the queue does not serve, it does nothing.
///
/// ```
/// use courier_delegates::{Callback, TaskDelegate, TaskInfo, TaskMetrics, leave_at_default};
///
/// struct Logger {
///     logging: bool,
/// }
///
/// impl TaskDelegate for Logger {
///     fn did_finish_collecting_metrics(&self, task: &TaskInfo, metrics: &TaskMetrics) {
///         if !self.logging {
///             return leave_at_default(self, Callback::Metrics);
///         }
///         println!("task {}: {} transactions", task.id(), metrics.transactions.len());
///     }
/// }
/// ```
///
/// The default body of every optional delegate method calls it too: that is how the queue learns
/// which methods a delegate leaves alone. A wrapper delegate that forwards to another object's
/// default is not taken for one that left the method alone.
pub fn leave_at_default<D: ?Sized + 'static>(delegate: &D, callback: Callback) {
    let who = Identity {
        address: (delegate as *const D).cast::<()>() as usize,
        type_id: TypeId::of::<D>(),
    };
    own::note_default(who);
    SERVING.with(|serving| {
        if let Some(s) = serving.borrow().as_ref()
            && s.who == who
        {
            s.defaulted.fetch_or(callback.bit(), Ordering::Relaxed);
        }
    });
}

impl Serving {
    fn of(delegate: &Arc<dyn Delegate>, defaulted: &Arc<AtomicU32>) -> Serving {
        Serving {
            who: Identity::of(delegate.as_ref()),
            defaulted: defaulted.clone(),
        }
    }
}

/// Where callbacks are queued: to the session's delegate thread, or to its task on a runtime.
#[derive(Clone)]
enum Sender {
    Thread(Arc<thread::Channel<Item>>),
    Task(tokio::sync::mpsc::UnboundedSender<Item>),
}

impl Sender {
    /// False when the queue has ended. `awaited`: a question, whose asker waits for the answer.
    fn send(&self, item: Item, awaited: bool) -> bool {
        match self {
            Sender::Thread(tx) => tx.send(item, awaited),
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
        // A channel of our own: it wakes the thread once for all the callbacks a turn of the
        // runtime queues (see `thread`).
        let (channel, rx) = thread::channel::<Item>();
        let defaulted = Arc::new(AtomicU32::new(0));
        let serving = Serving::of(&delegate, &defaulted);
        std::thread::Builder::new()
            .name(format!("courier-delegate-{label}"))
            .spawn(move || {
                SERVING.with(|s| *s.borrow_mut() = Some(serving));
                let mut batch = VecDeque::new();
                'serving: loop {
                    rx.receive(&mut batch);
                    while let Some(item) = batch.pop_front() {
                        if deliver(item, delegate.as_ref()) {
                            break 'serving;
                        }
                    }
                }
                // Closed first, so later pushes fail: nothing follows the last call. What was
                // queued behind it is dropped, as it would have been had it come later. (A panic
                // here closes it too, as it unwinds.)
                drop(rx);
                drop(batch);
                drop(delegate);
            })?;
        Ok(DeliveryQueue {
            tx: Sender::Thread(channel),
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
        callback.wanted_by(&self.defaulted)
    }

    /// Queues a callback. Returns false when the queue has already delivered its last callback.
    pub fn push(&self, job: impl FnOnce(&dyn Delegate) + Send + 'static) -> bool {
        self.tx.send(Item::Call(Box::new(job)), false)
    }

    /// Queues a question: as [`DeliveryQueue::push`], but the delegate thread is woken at once,
    /// since the asker waits for the answer.
    fn push_question(&self, job: impl FnOnce(&dyn Delegate) + Send + 'static) -> bool {
        self.tx.send(Item::Call(Box::new(job)), true)
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
        self.push_question(move |d| {
            let reply = Reply::new(default, move |answer| {
                let _ = tx.send(answer);
            });
            call(d, reply);
        });
        rx
    }

    /// Queues the final callback; after it runs the delegate is dropped.
    pub fn push_last(&self, job: impl FnOnce(&dyn Delegate) + Send + 'static) -> bool {
        self.tx.send(Item::Last(Box::new(job)), false)
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
            std::thread::sleep(Duration::from_millis(5));
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
    pub(super) struct Quiet;
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

    pub(super) fn info() -> crate::TaskInfo {
        crate::TaskInfo::new(
            1,
            crate::TaskKind::Data,
            crate::Request::new(http::Method::GET, "https://a.test/"),
        )
        .0
    }

    /// Waits until every callback queued so far has run.
    pub(super) fn drain(q: &DeliveryQueue) {
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

    /// A delegate whose metrics method has nothing to do unless it logs.
    struct Logger {
        logging: bool,
        seen: std::sync::atomic::AtomicUsize,
    }
    impl SessionDelegate for Logger {}
    impl crate::DownloadDelegate for Logger {}
    impl DataDelegate for Logger {}
    impl TaskDelegate for Logger {
        fn did_finish_collecting_metrics(&self, _: &crate::TaskInfo, _: &crate::TaskMetrics) {
            self.seen.fetch_add(1, Ordering::Relaxed);
            if !self.logging {
                leave_at_default(self, Callback::Metrics);
            }
        }
    }

    #[test]
    fn a_delegate_can_leave_a_method_it_implements_at_its_default() {
        for logging in [false, true] {
            let d = Arc::new(Logger {
                logging,
                seen: std::sync::atomic::AtomicUsize::new(0),
            });
            let q = DeliveryQueue::start(d.clone(), "t").unwrap();
            for _ in 0..3 {
                if !q.wants(Callback::Metrics) {
                    continue; // what the engine does: no trip for a method left at its default
                }
                let i = info();
                let metrics = crate::TaskMetrics {
                    task_start: Instant::now(),
                    task_duration: Duration::ZERO,
                    redirect_count: 0,
                    transactions: Vec::new(),
                };
                q.push(move |d| d.did_finish_collecting_metrics(&i, &metrics));
                drain(&q);
            }
            assert_eq!(q.wants(Callback::Metrics), logging, "logging: {logging}");
            assert_eq!(d.seen.load(Ordering::Relaxed), if logging { 3 } else { 1 });
            // Other methods are not affected.
            assert!(q.wants(Callback::ReceiveData));
        }
        // Outside the delivery thread it changes nothing.
        let d = Arc::new(Logger {
            logging: false,
            seen: std::sync::atomic::AtomicUsize::new(0),
        });
        let q = DeliveryQueue::start(d.clone(), "t").unwrap();
        leave_at_default(d.as_ref(), Callback::Metrics);
        assert!(q.wants(Callback::Metrics));
    }

    #[test]
    fn a_default_run_outside_the_delivery_thread_teaches_nothing() {
        let q = DeliveryQueue::start(Arc::new(Quiet), "t").unwrap();
        Quiet.did_receive_data(&info(), &bytes::Bytes::new());
        assert!(q.wants(Callback::ReceiveData));
    }
}
