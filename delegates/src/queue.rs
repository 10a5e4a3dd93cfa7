//! `DeliveryQueue`: the session's serial delegate queue.
//!
//! One thread per session with a delegate, like the private serial `OperationQueue` URLSession creates
//! when none is given. Callbacks run one at a time in the order they were queued, so a delegate needs no
//! locking of its own and a slow one does not stall the runtime's workers. The queue owns the delegate
//! and drops it after the final callback (`did_become_invalid`), then its thread exits.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;

use crate::Delegate;

type Job = Box<dyn FnOnce(&dyn Delegate) + Send>;

enum Item {
    Call(Job),
    /// The last callback: after it the delegate is dropped and the thread ends.
    Last(Job),
}

/// A handle to a session's serial delivery queue. Cheap to clone.
#[derive(Clone)]
pub struct DeliveryQueue {
    tx: mpsc::Sender<Item>,
}

impl DeliveryQueue {
    /// Starts the queue's thread, which owns `delegate` from now on.
    ///
    /// # Errors
    /// The operating system refused to start a thread.
    pub fn start(delegate: Arc<dyn Delegate>, label: &str) -> std::io::Result<DeliveryQueue> {
        let (tx, rx) = mpsc::channel::<Item>();
        thread::Builder::new()
            .name(format!("courier-delegate-{label}"))
            .spawn(move || {
                let delegate = delegate;
                while let Ok(item) = rx.recv() {
                    let (job, last) = match item {
                        Item::Call(job) => (job, false),
                        Item::Last(job) => (job, true),
                    };
                    // A panicking callback must not take the queue, and with it every later callback
                    // of the session, down with it.
                    if catch_unwind(AssertUnwindSafe(|| job(delegate.as_ref()))).is_err() {
                        tracing::error!("a delegate callback panicked; delivery goes on");
                    }
                    if last {
                        break;
                    }
                }
                // Dropping the receiver first makes later pushes fail: nothing follows the last call.
                drop(rx);
                drop(delegate);
            })?;
        Ok(DeliveryQueue { tx })
    }

    /// Queues a callback. Returns false when the queue has already delivered its last callback.
    pub fn push(&self, job: impl FnOnce(&dyn Delegate) + Send + 'static) -> bool {
        self.tx.send(Item::Call(Box::new(job))).is_ok()
    }

    /// Queues the final callback; after it runs the delegate is dropped.
    pub fn push_last(&self, job: impl FnOnce(&dyn Delegate) + Send + 'static) -> bool {
        self.tx.send(Item::Last(Box::new(job))).is_ok()
    }
}

impl std::fmt::Debug for DeliveryQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryQueue").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DataDelegate, SessionDelegate, TaskDelegate};
    use std::sync::Mutex;
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
}
