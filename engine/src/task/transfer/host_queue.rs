//! `HostQueue`: a session's per-host queue of HTTP/1.1 requests, served in priority order.
//!
//! An HTTP/1.1 connection carries one exchange at a time and a host gets at most
//! `http_maximum_connections_per_host` of them, so requests beyond that wait. Left to the
//! connection pool they would wait first come, first served; URLSession serves a waiting
//! task of higher `priority` first. So a request to an HTTP/1.1 host first takes a turn here
//! (one of the host's `limit` turns, or a place in its line, highest priority first, then oldest
//! first), holds it until its exchange is over (its body read, or abandoned), and hands it on.
//! HTTP/2 hosts are not queued: their requests share one connection, and the priority travels
//! with each request instead (the `priority` header, RFC 9218).
//!
//! Two kinds wait: a transfer under way awaits its turn ([`InLine`]), and a session queues a
//! task it has not started yet ([`HostQueue::try_turn_or_call`]), so that a task waiting for a
//! connection holds no actor and no transfer until its turn comes.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use courier_protocol_http::host_key::HostKey;
use tokio::sync::oneshot;

/// Which host a turn is for: its [`HostKey`] as text, held (shared) by the host's line and its
/// turns. A request looks its host up by a key built on the stack.
type LineKey = Arc<str>;

/// The per-host lines of one session.
pub(crate) struct HostQueue {
    inner: Arc<Inner>,
}

struct Inner {
    /// Turns per host: the session's connection limit per host.
    limit: usize,
    lines: Mutex<Lines>,
}

/// The lines by host. Hashed with FNV, not SipHash: each request hashes its host's key twice (its
/// turn taken, then given back), and the keys are the few hosts the session's own requests are
/// talking to at the moment, not a table an attacker can fill.
type Lines = HashMap<LineKey, Line, fnv::FnvBuildHasher>;

/// One host: how many turns are out, and who waits for one.
struct Line {
    /// The host's key, which its turns share.
    key: LineKey,
    busy: usize,
    waiting: Waiting,
}

/// The requests waiting for a host's turn: a first-come, first-served queue per priority, the
/// queues ordered by priority.
///
/// Tasks usually share a handful of priorities (most keep the default), so the next in line is
/// the front of the last queue, taken in constant time; a task of a priority of its own costs a
/// logarithmic insertion among the priorities waiting, not among the waiters. A binary heap of all
/// the waiters took a logarithmic sift over thousands of them for every turn handed on
/// (`Turn::drop` was 1.2% of the samples of 20,000 delegate tasks on six connections).
#[derive(Default)]
struct Waiting {
    /// The queues by rank; none is empty.
    by_rank: BTreeMap<u32, VecDeque<Waiter>>,
}

/// A called waiter's call: it passes the turn on, or gives it back.
pub(crate) type Call = Box<dyn FnOnce(Turn) -> Option<Turn> + Send>;

/// Who waits for a turn.
enum Waiter {
    /// A transfer awaiting it ([`InLine::turn`]); gone if it stopped waiting.
    Awaiting(oneshot::Sender<Turn>),
    /// A session that queued a task before starting it: told of the turn by a call (outside the
    /// line's lock). The call gives the turn back if it could not pass it on (the session has
    /// stopped); a turn the session no longer wants, it drops, which hands it on.
    Called(Call),
}

impl Waiting {
    /// A task's priority (0.0 to 1.0) as a rank to order by: an integer, 0 to 1,000,000.
    fn rank(priority: f32) -> u32 {
        (priority.clamp(0.0, 1.0) * 1_000_000.0) as u32
    }

    /// Adds a waiter behind every other of its `rank`.
    fn push(&mut self, rank: u32, waiter: Waiter) {
        self.by_rank.entry(rank).or_default().push_back(waiter);
    }

    /// The next in line: the oldest of the highest rank.
    fn pop(&mut self) -> Option<Waiter> {
        let mut last = self.by_rank.last_entry()?;
        let next = last.get_mut().pop_front();
        if last.get().is_empty() {
            last.remove();
        }
        next
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_rank.values().map(VecDeque::len).sum()
    }
}

/// A place in a host's line ([`HostQueue::try_turn`]). Dropping it leaves the line; a turn handed
/// to it meanwhile goes on to the next.
#[derive(Debug)]
pub(crate) struct InLine {
    key: LineKey,
    rx: oneshot::Receiver<Turn>,
}

impl InLine {
    /// Waits for the turn.
    pub(crate) async fn turn(self) -> Turn {
        match self.rx.await {
            Ok(turn) => turn,
            // The queue went away with the session: nothing left to wait for.
            Err(_) => Turn {
                queue: None,
                key: self.key,
            },
        }
    }
}

/// The right to have one exchange with a host in flight. Dropping it hands it to the next in line.
pub(crate) struct Turn {
    /// `None` once passed on or given back (so dropping it then does nothing).
    queue: Option<Arc<Inner>>,
    key: LineKey,
}

fn lock(m: &Mutex<Lines>) -> std::sync::MutexGuard<'_, Lines> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl HostQueue {
    /// A queue giving each host `limit` turns at once.
    pub(crate) fn new(limit: usize) -> HostQueue {
        HostQueue {
            inner: Arc::new(Inner {
                limit: limit.max(1),
                lines: Mutex::new(Lines::default()),
            }),
        }
    }

    /// Waits for a turn with the host of `uri`, behind every waiting request of higher
    /// `priority` (0.0 to 1.0) and every older one of the same. Cancel-safe: a request that stops
    /// waiting leaves its place, and a turn handed to it meanwhile goes on to the next.
    pub(crate) async fn turn(&self, uri: &http::Uri, priority: f32) -> Turn {
        match self.try_turn(uri, priority) {
            Ok(turn) => turn,
            Err(in_line) => in_line.turn().await,
        }
    }

    /// A turn with the host of `uri` if one is free now; otherwise a place in its line, as
    /// [`HostQueue::turn`] takes.
    pub(crate) fn try_turn(&self, uri: &http::Uri, priority: f32) -> Result<Turn, InLine> {
        let mut rx = None;
        let waiter = || {
            let (tx, receiver) = oneshot::channel();
            rx = Some(receiver);
            Waiter::Awaiting(tx)
        };
        match (
            self.take_or_wait(&HostKey::of_uri(uri), priority, waiter),
            rx,
        ) {
            (Ok(turn), _) => Ok(turn),
            (Err(key), Some(rx)) => Err(InLine { key, rx }),
            // `take_or_wait` queues the waiter whenever it returns no turn.
            (Err(key), None) => Ok(Turn { queue: None, key }),
        }
    }

    /// A turn with `host` if one is free now; otherwise the callback `call` makes is queued as
    /// [`HostQueue::turn`] queues a request, and called with the turn when it comes (on the thread
    /// that hands it on, so it must only pass the turn along, or give it back).
    pub(crate) fn try_turn_or_call(
        &self,
        host: &HostKey,
        priority: f32,
        call: impl FnOnce() -> Call,
    ) -> Option<Turn> {
        self.take_or_wait(host, priority, || Waiter::Called(call()))
            .ok()
    }

    /// Whether `host` has a turn free now (a request for it would not wait).
    #[cfg(test)]
    fn has_free_turn(&self, host: &HostKey) -> bool {
        lock(&self.inner.lines)
            .get(host.as_str())
            .is_none_or(|line| line.busy < self.inner.limit)
    }

    /// A free turn with `host`, or the waiter `waiter` makes queued for one (and the line's key).
    /// The waiter is made only when it waits: most requests find a turn free.
    fn take_or_wait(
        &self,
        host: &HostKey,
        priority: f32,
        waiter: impl FnOnce() -> Waiter,
    ) -> Result<Turn, LineKey> {
        let name = host.as_str();
        let mut lines = lock(&self.inner.lines);
        // One lookup when the host has a line already (the usual case: its exchanges overlap);
        // the key is made only for a host not in the map yet.
        let Some(line) = lines.get_mut(name) else {
            let key: LineKey = Arc::from(name);
            let line = Line {
                key: key.clone(),
                busy: 1,
                waiting: Waiting::default(),
            };
            lines.insert(key.clone(), line);
            return Ok(Turn {
                queue: Some(self.inner.clone()),
                key,
            });
        };
        if line.busy < self.inner.limit {
            line.busy += 1;
            return Ok(Turn {
                queue: Some(self.inner.clone()),
                key: line.key.clone(),
            });
        }
        line.waiting.push(Waiting::rank(priority), waiter());
        Err(line.key.clone())
    }

    /// How many requests wait for `host` (tests).
    #[cfg(test)]
    fn waiting(&self, tls: bool, host: &str, port: u16) -> usize {
        lock(&self.inner.lines)
            .get(HostKey::new(tls, host, port).as_str())
            .map_or(0, |l| l.waiting.len())
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let Some(inner) = self.queue.take() else {
            return;
        };
        // A loop, not a recursion, through those who no longer take it: thousands of a stopped
        // session's waiters may be next.
        loop {
            let call = {
                let mut lines = lock(&inner.lines);
                let Some(line) = lines.get_mut(&*self.key) else {
                    return;
                };
                loop {
                    match line.waiting.pop() {
                        Some(Waiter::Awaiting(next)) => {
                            let handed = Turn {
                                queue: Some(inner.clone()),
                                key: self.key.clone(),
                            };
                            match next.send(handed) {
                                Ok(()) => return,
                                // That one stopped waiting: the turn comes back, without running
                                // this again.
                                Err(mut back) => back.queue = None,
                            }
                        }
                        Some(Waiter::Called(call)) => break call,
                        None => {
                            line.busy -= 1;
                            if line.busy == 0 {
                                lines.remove(&*self.key);
                            }
                            return;
                        }
                    }
                }
            };
            // Outside the lock: a turn the callee takes and drops (its task was cancelled
            // meanwhile) comes back through here later, and goes on to the next.
            let handed = Turn {
                queue: Some(inner.clone()),
                key: self.key.clone(),
            };
            match call(handed) {
                None => return,
                Some(mut back) => back.queue = None,
            }
        }
    }
}

impl std::fmt::Debug for Turn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Turn").field("host", &self.key).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn uri() -> http::Uri {
        "http://a.test:8080/x".parse().unwrap()
    }

    #[tokio::test]
    async fn turns_go_to_the_highest_priority_then_the_oldest() {
        let q = Arc::new(HostQueue::new(1));
        let first = q.turn(&uri(), 0.5).await;
        let (order_tx, mut order) = tokio::sync::mpsc::unbounded_channel();
        // Arrive in this order: low, default, high, default again.
        let arrivals = [
            ("low", 0.25),
            ("default", 0.5),
            ("high", 0.75),
            ("default2", 0.5),
        ];
        for (i, (name, p)) in arrivals.into_iter().enumerate() {
            let (line, tx) = (q.clone(), order_tx.clone());
            tokio::spawn(async move {
                let turn = line.turn(&uri(), p).await;
                tx.send(name).unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
                drop(turn);
            });
            while q.waiting(false, "a.test", 8080) < i + 1 {
                tokio::task::yield_now().await;
            }
        }
        drop(first);
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(
                tokio::time::timeout(Duration::from_secs(5), order.recv())
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        assert_eq!(seen, ["high", "default", "default2", "low"]);
        // The last turn goes back once its holder is done.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !lock(&q.inner.lines).is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(lock(&q.inner.lines).is_empty(), "an idle host is forgotten");
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_passes_its_turn_on() {
        let q = Arc::new(HostQueue::new(1));
        let held = q.turn(&uri(), 0.5).await;
        // A high-priority waiter that stops waiting (its task was cancelled).
        let gives_up = {
            let q = q.clone();
            tokio::spawn(async move { q.turn(&uri(), 1.0).await })
        };
        while q.waiting(false, "a.test", 8080) < 1 {
            tokio::task::yield_now().await;
        }
        let stays = {
            let q = q.clone();
            tokio::spawn(async move { q.turn(&uri(), 0.1).await })
        };
        while q.waiting(false, "a.test", 8080) < 2 {
            tokio::task::yield_now().await;
        }
        gives_up.abort();
        let _ = gives_up.await;
        drop(held);
        let turn = tokio::time::timeout(Duration::from_secs(5), stays)
            .await
            .expect("the turn reached the one still waiting")
            .unwrap();
        drop(turn);
        assert!(lock(&q.inner.lines).is_empty());
    }

    #[tokio::test]
    async fn a_free_turn_is_taken_at_once_and_a_place_in_line_waits_or_passes_on() {
        let q = HostQueue::new(1);
        let first = q.try_turn(&uri(), 0.5).expect("a free turn");
        let Err(leaves) = q.try_turn(&uri(), 1.0) else {
            panic!("the host's one turn is out");
        };
        let Err(stays) = q.try_turn(&uri(), 0.1) else {
            panic!("the host's one turn is out");
        };
        assert_eq!(q.waiting(false, "a.test", 8080), 2);
        // The first in line (the highest priority) is handed the turn, but has left meanwhile:
        // the turn goes on to the next.
        drop(first);
        drop(leaves);
        let turn = tokio::time::timeout(Duration::from_secs(5), stays.turn())
            .await
            .expect("the turn reached the one still in line");
        assert!(q.try_turn(&uri(), 1.0).is_err(), "it holds the turn");
        drop(turn);
        assert!(lock(&q.inner.lines).is_empty(), "an idle host is forgotten");
    }

    proptest::proptest! {
        /// Whatever the priorities and however pushes and pops interleave, the next in line is
        /// the oldest waiter of the highest rank, and no empty queue is kept.
        #[test]
        fn the_line_serves_the_highest_rank_then_the_oldest(
            steps in proptest::collection::vec(proptest::option::of(0u32..4), 0..64),
        ) {
            let mut line = Waiting::default();
            // The reference: (rank, arrival) of everyone waiting, and the receivers that tell
            // which waiter was popped.
            let mut expected: Vec<(u32, usize)> = Vec::new();
            let mut receivers = Vec::new();
            for step in steps {
                match step {
                    Some(rank) => {
                        let (tx, rx) = oneshot::channel::<Turn>();
                        line.push(rank, Waiter::Awaiting(tx));
                        expected.push((rank, receivers.len()));
                        receivers.push(rx);
                    }
                    None => {
                        let want = expected
                            .iter()
                            .copied()
                            .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
                        let got = line.pop();
                        proptest::prop_assert_eq!(got.is_some(), want.is_some());
                        if let (Some(waiter), Some((_, arrival))) = (got, want) {
                            expected.retain(|&(_, a)| a != arrival);
                            drop(waiter);
                            // The sender popped was that waiter's: its receiver is closed now,
                            // and every receiver still waiting is open.
                            use oneshot::error::TryRecvError;
                            let closed = |rx: &mut oneshot::Receiver<Turn>| {
                                matches!(rx.try_recv(), Err(TryRecvError::Closed))
                            };
                            proptest::prop_assert!(closed(&mut receivers[arrival]));
                            for &(_, a) in &expected {
                                proptest::prop_assert!(!closed(&mut receivers[a]));
                            }
                        }
                    }
                }
                proptest::prop_assert_eq!(line.len(), expected.len());
                proptest::prop_assert!(line.by_rank.values().all(|q| !q.is_empty()));
            }
        }
    }

    #[tokio::test]
    async fn a_called_waiter_gets_its_turn_in_order_and_a_dropped_turn_goes_on() {
        let q = HostQueue::new(1);
        let host = HostKey::of_uri(&uri());
        let first = q.turn(&uri(), 0.5).await;
        assert!(!q.has_free_turn(&host));
        let (called_tx, called_rx) = std::sync::mpsc::channel();
        // A session's waiter, then a transfer's of the same priority behind it.
        let tx = called_tx.clone();
        let call = move || -> Call {
            Box::new(move |turn| {
                tx.send(turn).unwrap();
                None
            })
        };
        assert!(q.try_turn_or_call(&host, 0.5, call).is_none());
        let Err(behind) = q.try_turn(&uri(), 0.5) else {
            panic!("the host's one turn is out");
        };
        // A waiter that no longer wants its turn (its task was cancelled) drops it.
        let call = || -> Call {
            Box::new(|turn| {
                drop(turn);
                None
            })
        };
        assert!(q.try_turn_or_call(&host, 0.75, call).is_none());
        assert_eq!(q.waiting(false, "a.test", 8080), 3);
        // The highest priority drops it at once; it goes on to the oldest of the rest: the call.
        drop(first);
        let turn = called_rx
            .try_recv()
            .expect("the called waiter got the turn");
        assert!(!q.has_free_turn(&host), "the call holds the turn");
        drop(turn);
        let last = tokio::time::timeout(Duration::from_secs(5), behind.turn())
            .await
            .expect("the turn reached the transfer behind");
        drop(last);
        assert!(q.has_free_turn(&host));
        assert!(lock(&q.inner.lines).is_empty(), "an idle host is forgotten");
        drop(called_tx);
    }

    /// Waiters that give the turn back (a stopped session's) are passed over in a loop: a
    /// recursion through each would overflow the stack.
    #[test]
    fn a_turn_passes_over_any_number_of_waiters_that_give_it_back() {
        let q = HostQueue::new(1);
        let host = HostKey::of_uri(&uri());
        let first = q.try_turn(&uri(), 0.5).expect("the host's one turn");
        for _ in 0..200_000 {
            let gives_back = || -> Call { Box::new(Some) };
            assert!(q.try_turn_or_call(&host, 0.5, gives_back).is_none());
        }
        drop(first);
        assert!(q.has_free_turn(&host));
        assert!(lock(&q.inner.lines).is_empty(), "an idle host is forgotten");
    }

    #[tokio::test]
    async fn hosts_have_their_own_turns() {
        let q = HostQueue::new(2);
        let a1 = q.turn(&uri(), 0.5).await;
        let a2 = q.turn(&uri(), 0.5).await;
        let other: http::Uri = "http://b.test:8080/".parse().unwrap();
        let b = tokio::time::timeout(Duration::from_secs(1), q.turn(&other, 0.5))
            .await
            .expect("another host does not wait for this one");
        drop((a1, a2, b));
    }
}
