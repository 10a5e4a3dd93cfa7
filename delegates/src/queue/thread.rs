//! The channel to a session's delegate thread, whose wake-ups are gathered per turn of the runtime.
//!
//! Waking a sleeping thread is a system call, and a costly one for the waker. A channel that woke
//! the thread on every send paid it for nearly every callback, since the thread runs a callback
//! quickly and sleeps again before the next one comes: with std's channel, 10,000 GETs through
//! `courier get` made 76,852 `futex` calls, and the kernel's `try_to_wake_up` under them was 6% of
//! the runtime thread. Here a send from inside a Tokio task only queues the callback and, if the
//! thread sleeps, schedules one wake as a task on that runtime. Every callback queued before the
//! wake runs (other tasks' too) rides on it. Outside a Tokio task the thread is woken at once.
//!
//! The cost is latency: a callback queued in a task reaches a sleeping delegate thread once the
//! runtime has run the tasks ahead of the wake, not at once. A question is not deferred: the task
//! that asked waits for the answer, so the thread is woken at once for it (`awaited`). A task that queues a callback and then
//! blocks its thread until the delegate has run it would wait until it yields (on a current-thread
//! runtime). That was never safe: the callbacks after it come from the session's actors, which
//! need the same runtime.
//!
//! The wake task also wakes the thread when it is dropped unpolled (a runtime shutting down), so no
//! callback is ever left queued with the thread asleep.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll};

/// A channel to one receiving thread: the sending side ([`Channel::send`]) and the [`Receiver`].
pub(super) fn channel<T: Send + 'static>() -> (Arc<Channel<T>>, Receiver<T>) {
    let channel = Arc::new(Channel {
        state: Mutex::new(State {
            items: VecDeque::new(),
            sleeping: false,
            closed: false,
        }),
        ready: Condvar::new(),
        wake_scheduled: AtomicBool::new(false),
    });
    (channel.clone(), Receiver(channel))
}

/// The state the sending side and the [`Receiver`] share.
pub(super) struct Channel<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
    /// A wake is scheduled and has not run yet: later sends need not schedule another.
    wake_scheduled: AtomicBool,
}

struct State<T> {
    items: VecDeque<T>,
    /// The receiver waits on `ready`: a send must wake it.
    sleeping: bool,
    /// The receiver is gone: sends fail.
    closed: bool,
}

impl<T: Send + 'static> Channel<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while the lock was held left the queue itself intact (pushes and pops are whole).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `item`; false (and the item dropped) when the receiver has closed. With `awaited`
    /// (someone waits for what the receiver will do with it: a delegate's answer), a sleeping
    /// receiver is woken at once rather than after the runtime's turn.
    pub(super) fn send(self: &Arc<Self>, item: T, awaited: bool) -> bool {
        let mut state = self.lock();
        if state.closed {
            return false;
        }
        state.items.push_back(item);
        let sleeping = state.sleeping;
        drop(state);
        if sleeping && awaited {
            self.wake();
        } else if sleeping && !self.wake_scheduled.swap(true, Ordering::AcqRel) {
            // Only from inside a Tokio task is the runtime known to turn soon: this thread drives
            // it, and goes on once the task yields. Elsewhere (a runtime entered but driven by
            // nobody, `block_on`'s own future, a plain thread) the wake is immediate.
            match tokio::task::try_id().and(tokio::runtime::Handle::try_current().ok()) {
                Some(runtime) => drop(runtime.spawn(Wake(Some(self.clone())))),
                None => self.wake(),
            }
        }
        true
    }

    /// Wakes the receiver if it sleeps.
    fn wake(&self) {
        // Cleared first: a send after this point, while the receiver still sleeps, schedules its
        // own wake (at worst one more than needed, never one too few).
        self.wake_scheduled.store(false, Ordering::Release);
        self.ready.notify_one();
    }
}

/// The receiving side. Dropped (at the thread's end, or by a panic), it closes the channel: sends
/// fail from then on, and what was queued is dropped.
pub(super) struct Receiver<T: Send + 'static>(Arc<Channel<T>>);

impl<T: Send + 'static> Receiver<T> {
    /// Waits for the next items and moves all of them into `into` (empty), oldest first.
    pub(super) fn receive(&self, into: &mut VecDeque<T>) {
        debug_assert!(
            into.is_empty(),
            "the last batch is not done: swapping would reorder it"
        );
        let channel = &self.0;
        let mut state = channel.lock();
        while state.items.is_empty() {
            state.sleeping = true;
            state = channel.ready.wait(state).unwrap_or_else(|p| p.into_inner());
            state.sleeping = false;
        }
        std::mem::swap(&mut state.items, into);
    }
}

impl<T: Send + 'static> Drop for Receiver<T> {
    /// Later sends fail; what is queued is dropped, outside the lock (dropping a callback may
    /// queue another).
    fn drop(&mut self) {
        let left = {
            let mut state = self.0.lock();
            state.closed = true;
            std::mem::take(&mut state.items)
        };
        drop(left);
    }
}

/// The scheduled wake: wakes the receiver when polled, or when dropped unpolled.
struct Wake<T: Send + 'static>(Option<Arc<Channel<T>>>);

impl<T: Send + 'static> Future for Wake<T> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if let Some(channel) = self.0.take() {
            channel.wake();
        }
        Poll::Ready(())
    }
}

impl<T: Send + 'static> Drop for Wake<T> {
    fn drop(&mut self) {
        if let Some(channel) = self.0.take() {
            channel.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The receiving thread: collects what it gets until it gets `None`.
    fn receiver(rx: Receiver<Option<u32>>) -> std::thread::JoinHandle<Vec<u32>> {
        std::thread::spawn(move || {
            let (mut got, mut batch) = (Vec::new(), VecDeque::new());
            loop {
                rx.receive(&mut batch);
                for item in batch.drain(..) {
                    match item {
                        Some(n) => got.push(n),
                        None => return got,
                    }
                }
            }
        })
    }

    /// Runs `work` as a task (not as `block_on`'s own future) on a current-thread runtime.
    fn in_a_task(work: impl Future<Output = ()> + Send + 'static) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async { tokio::spawn(work).await.unwrap() });
    }

    /// Waits (5 s at most) until the receiver sleeps on the channel with nothing queued, so that
    /// only a wake gets it to take what is sent next. A fixed pause let a loaded machine (CI's two
    /// cores, tests in parallel) send while the receiver, woken for the last item, had not yet
    /// taken it: `sleeping` still read true, and the receiver took both items with no new wake.
    fn until_asleep(channel: &Channel<Option<u32>>) {
        let asleep = (0..5000).any(|_| {
            let state = channel.lock();
            if state.sleeping && state.items.is_empty() {
                return true;
            }
            drop(state);
            std::thread::sleep(Duration::from_millis(1));
            false
        });
        assert!(asleep, "the receiver never went to sleep");
    }

    /// Whether the receiver takes what is queued within 5 s (it was woken), checked without
    /// yielding to any runtime.
    fn taken_soon(channel: &Channel<Option<u32>>) -> bool {
        (0..500).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            channel.lock().items.is_empty()
        })
    }

    #[test]
    fn items_arrive_in_order_from_outside_a_runtime() {
        let (channel, rx) = channel();
        let thread = receiver(rx);
        for n in 0..1000 {
            assert!(channel.send(Some(n), false));
            if n % 100 == 0 {
                // Let the receiver fall asleep now and then, so sends must wake it.
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        assert!(channel.send(None, false));
        assert_eq!(thread.join().unwrap(), (0..1000).collect::<Vec<_>>());
        assert!(
            !channel.send(Some(1), false),
            "a closed channel refuses sends"
        );
    }

    #[test]
    fn a_send_from_a_task_wakes_the_sleeping_receiver_once_the_task_yields() {
        let (channel, rx) = channel();
        let thread = receiver(rx);
        let sending = channel.clone();
        in_a_task(async move {
            for n in 0..20 {
                until_asleep(&sending);
                assert!(sending.send(Some(n), false));
                // The wake waits for this task to yield: the item is still queued.
                std::thread::sleep(Duration::from_millis(5));
                assert_eq!(
                    sending.lock().items.len(),
                    1,
                    "woken before the task yielded"
                );
                tokio::task::yield_now().await;
            }
        });
        assert!(channel.send(None, false));
        assert_eq!(thread.join().unwrap(), (0..20).collect::<Vec<_>>());
    }

    #[test]
    fn an_awaited_send_from_a_task_wakes_the_receiver_at_once() {
        let (channel, rx) = channel();
        let thread = receiver(rx);
        let sending = channel.clone();
        in_a_task(async move {
            until_asleep(&sending);
            assert!(sending.send(Some(1), true));
            assert!(
                taken_soon(&sending),
                "a question waited for the runtime's turn"
            );
        });
        assert!(channel.send(None, false));
        assert_eq!(thread.join().unwrap(), vec![1]);
    }

    #[test]
    fn a_wake_dropped_unpolled_still_wakes() {
        let (channel, rx) = channel();
        let thread = receiver(rx);
        until_asleep(&channel);
        // Queued as a send from a task would (no wake yet), then the wake task is dropped without
        // being polled, as a runtime that shuts down drops it.
        channel.wake_scheduled.store(true, Ordering::Release);
        channel.lock().items.push_back(Some(7));
        drop(Wake(Some(channel.clone())));
        assert!(
            taken_soon(&channel),
            "the dropped wake did not wake the receiver"
        );
        assert!(channel.send(None, false));
        assert_eq!(thread.join().unwrap(), vec![7]);
    }
}
