//! The background service's queue: which waiting transfers start now, under the service's limits.
//!
//! A pure structure, driven by the service: it says what waits ([`Queue::wait`]), what ended or was
//! suspended ([`Queue::remove`]) and what time it is; [`Queue::next`] answers which transfers start.
//! The rules, in the order they apply:
//!
//! 1. A transfer never starts before its earliest begin date (URLSession's `earliestBeginDate`;
//!    also how the service delays a retry).
//! 2. At most [`Limits::max_total`] transfers run at once, and at most [`Limits::max_per_host`] to
//!    one host.
//! 3. A discretionary transfer (URLSession's `isDiscretionary`) starts only when no other transfer
//!    is ready and waiting: it takes capacity nobody else asks for.
//! 4. Among the rest, higher `priority` first, then first come, first served.
//!
//! A transfer that cannot start because its host is full does not hold back a transfer to
//! another host.

use std::collections::HashMap;
use std::time::Instant;

/// The service's caps on transfers running at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Transfers running at once, over every identifier and host.
    pub max_total: usize,
    /// Transfers running at once to one host.
    pub max_per_host: usize,
}

impl Default for Limits {
    /// 16 in all, 6 per host (a browser's per-host habit).
    fn default() -> Limits {
        Limits {
            max_total: 16,
            max_per_host: 6,
        }
    }
}

/// A transfer: the identifier it belongs to and its task id in the journal.
pub type Key = (String, u64);

/// A transfer that waits to run.
#[derive(Clone, Debug, PartialEq)]
pub struct Waiting {
    /// Which transfer.
    pub key: Key,
    /// The host it talks to (what the per-host cap counts).
    pub host: String,
    /// 0.0 to 1.0; higher first.
    pub priority: f32,
    /// Runs only when nothing else is ready.
    pub discretionary: bool,
    /// Not before this moment.
    pub not_before: Option<Instant>,
}

/// The waiting and running transfers.
#[derive(Debug)]
pub struct Queue {
    limits: Limits,
    /// Waiting transfers with their arrival number (first come, first served among equals).
    waiting: Vec<(u64, Waiting)>,
    /// Running transfers and their hosts.
    running: HashMap<Key, String>,
    arrivals: u64,
}

impl Queue {
    /// An empty queue under `limits` (a cap of 0 is taken as 1: nothing would ever run).
    pub fn new(limits: Limits) -> Queue {
        Queue {
            limits: Limits {
                max_total: limits.max_total.max(1),
                max_per_host: limits.max_per_host.max(1),
            },
            waiting: Vec::new(),
            running: HashMap::new(),
            arrivals: 0,
        }
    }

    /// Puts a transfer in line (in place of its earlier entry; a running one stops counting as
    /// running: the service stopped it to run it again later).
    pub fn wait(&mut self, waiting: Waiting) {
        self.remove(&waiting.key);
        self.arrivals += 1;
        self.waiting.push((self.arrivals, waiting));
    }

    /// Takes a transfer out, waiting or running (it completed, was suspended or cancelled), which
    /// frees its slot. Returns whether it was there.
    pub fn remove(&mut self, key: &Key) -> bool {
        let before = self.waiting.len();
        self.waiting.retain(|(_, w)| &w.key != key);
        self.running.remove(key).is_some() || self.waiting.len() != before
    }

    /// Whether the transfer is running (started by [`Queue::next`] and not removed since).
    pub fn is_running(&self, key: &Key) -> bool {
        self.running.contains_key(key)
    }

    /// Whether the transfer waits.
    pub fn is_waiting(&self, key: &Key) -> bool {
        self.waiting.iter().any(|(_, w)| &w.key == key)
    }

    /// The running transfers.
    pub fn running(&self) -> impl Iterator<Item = &Key> {
        self.running.keys()
    }

    /// How many transfers run now.
    pub fn running_count(&self) -> usize {
        self.running.len()
    }

    /// The transfers to start at `now`, in the order to start them; they count as running from
    /// here on.
    pub fn next(&mut self, now: Instant) -> Vec<Key> {
        let ready = |w: &Waiting| w.not_before.is_none_or(|t| t <= now);
        let mut order: Vec<usize> = (0..self.waiting.len())
            .filter(|&i| ready(&self.waiting[i].1))
            .collect();
        order.sort_by(|&a, &b| {
            let (na, wa) = &self.waiting[a];
            let (nb, wb) = &self.waiting[b];
            wa.discretionary
                .cmp(&wb.discretionary)
                .then(wb.priority.total_cmp(&wa.priority))
                .then(na.cmp(nb))
        });
        let mut per_host: HashMap<&str, usize> = HashMap::new();
        for host in self.running.values() {
            *per_host.entry(host).or_default() += 1;
        }
        let mut total = self.running.len();
        let mut started = Vec::new();
        let mut others_wait = false;
        for i in order {
            let w = &self.waiting[i].1;
            if w.discretionary && others_wait {
                break; // sorted: only discretionary ones are left
            }
            let on_host = per_host.entry(&w.host).or_default();
            if total >= self.limits.max_total || *on_host >= self.limits.max_per_host {
                others_wait |= !w.discretionary;
                continue;
            }
            *on_host += 1;
            total += 1;
            started.push(i);
        }
        // The keys in the order of the rules; then out of the waiting list, by position.
        let keys: Vec<Key> = started
            .iter()
            .map(|&i| self.waiting[i].1.key.clone())
            .collect();
        started.sort_unstable();
        for i in started.into_iter().rev() {
            let (_, w) = self.waiting.remove(i);
            self.running.insert(w.key, w.host);
        }
        keys
    }

    /// When the earliest transfer held back by its begin date becomes ready (`None`: none is).
    pub fn wake_at(&self, now: Instant) -> Option<Instant> {
        self.waiting
            .iter()
            .filter_map(|(_, w)| w.not_before.filter(|&t| t > now))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    fn waiting(task: u64, host: &str, priority: f32, discretionary: bool) -> Waiting {
        Waiting {
            key: ("app".into(), task),
            host: host.into(),
            priority,
            discretionary,
            not_before: None,
        }
    }

    #[test]
    fn caps_per_host_and_in_total() {
        let mut q = Queue::new(Limits {
            max_total: 3,
            max_per_host: 2,
        });
        for (task, host) in [(1, "a"), (2, "a"), (3, "a"), (4, "b"), (5, "b")] {
            q.wait(waiting(task, host, 0.5, false));
        }
        let now = Instant::now();
        let started: Vec<u64> = q.next(now).into_iter().map(|k| k.1).collect();
        assert_eq!(
            started,
            [1, 2, 4],
            "a's third waits for a; b is not held back by it"
        );
        assert!(q.next(now).is_empty(), "full");
        q.remove(&("app".into(), 1));
        let started: Vec<u64> = q.next(now).into_iter().map(|k| k.1).collect();
        assert_eq!(started, [3]);
    }

    #[test]
    fn priority_then_arrival_and_discretionary_last() {
        let mut q = Queue::new(Limits {
            max_total: 1,
            max_per_host: 1,
        });
        q.wait(waiting(1, "a", 0.9, true));
        q.wait(waiting(2, "a", 0.5, false));
        q.wait(waiting(3, "a", 0.75, false));
        q.wait(waiting(4, "a", 0.5, false));
        let now = Instant::now();
        let mut order = Vec::new();
        loop {
            let started = q.next(now);
            let Some(key) = started.first() else { break };
            order.push(key.1);
            q.remove(&key.clone());
        }
        assert_eq!(order, [3, 2, 4, 1]);
    }

    #[test]
    fn a_discretionary_transfer_does_not_start_while_another_waits() {
        let mut q = Queue::new(Limits {
            max_total: 4,
            max_per_host: 1,
        });
        q.wait(waiting(1, "a", 0.5, false));
        q.wait(waiting(2, "a", 0.5, false)); // waits for host a
        q.wait(waiting(3, "b", 0.5, true)); // host b is free, but 2 waits
        let now = Instant::now();
        assert_eq!(q.next(now), [("app".to_owned(), 1)]);
        q.remove(&("app".into(), 1));
        assert_eq!(
            q.next(now),
            [("app".to_owned(), 2), ("app".to_owned(), 3)],
            "once 2 runs, nothing else waits"
        );
    }

    #[test]
    fn earliest_begin_dates_hold_back_and_wake() {
        let mut q = Queue::new(Limits::default());
        let now = Instant::now();
        let mut later = waiting(1, "a", 1.0, false);
        later.not_before = Some(now + Duration::from_secs(5));
        q.wait(later);
        q.wait(waiting(2, "a", 0.0, false));
        assert_eq!(q.next(now), [("app".to_owned(), 2)]);
        assert_eq!(q.wake_at(now), Some(now + Duration::from_secs(5)));
        assert!(q.next(now + Duration::from_secs(4)).is_empty());
        assert_eq!(
            q.next(now + Duration::from_secs(5)),
            [("app".to_owned(), 1)]
        );
        assert_eq!(q.wake_at(now), None);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Wait {
            task: u64,
            host: u8,
            priority: u8,
            discretionary: bool,
            delay: Option<u8>,
        },
        Remove(u64),
        Tick(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (
                0..12u64,
                0..3u8,
                0..4u8,
                any::<bool>(),
                proptest::option::of(0..10u8)
            )
                .prop_map(|(task, host, priority, discretionary, delay)| Op::Wait {
                    task,
                    host,
                    priority,
                    discretionary,
                    delay,
                }),
            (0..12u64).prop_map(Op::Remove),
            (0..5u8).prop_map(Op::Tick),
        ]
    }

    proptest! {
        /// Whatever is asked: the caps hold, nothing starts early, a discretionary transfer never
        /// starts while another is ready and held back, and the queue never idles with capacity
        /// and a ready transfer that fits.
        #[test]
        fn rules_hold(max_total in 1..5usize, max_per_host in 1..4usize,
                      ops in proptest::collection::vec(op(), 1..60)) {
            let limits = Limits { max_total, max_per_host };
            let mut q = Queue::new(limits);
            let start = Instant::now();
            let mut now = start;
            let mut hosts: HashMap<Key, String> = HashMap::new();
            for op in ops {
                match op {
                    Op::Wait { task, host, priority, discretionary, delay } => {
                        let key: Key = ("app".into(), task);
                        let host = format!("h{host}");
                        hosts.insert(key.clone(), host.clone());
                        q.wait(Waiting {
                            key,
                            host,
                            priority: f32::from(priority) / 3.0,
                            discretionary,
                            not_before: delay.map(|d| start + Duration::from_secs(d.into())),
                        });
                    }
                    Op::Remove(task) => { q.remove(&("app".into(), task)); }
                    Op::Tick(s) => now += Duration::from_secs(s.into()),
                }
                let ready_before: Vec<Waiting> = q.waiting.iter().map(|(_, w)| w.clone())
                    .filter(|w| w.not_before.is_none_or(|t| t <= now)).collect();
                let started = q.next(now);
                for key in &started {
                    let w = ready_before.iter().find(|w| &w.key == key);
                    prop_assert!(w.is_some(), "{key:?} started without being ready");
                    prop_assert!(!q.is_waiting(key));
                }
                // Caps.
                prop_assert!(q.running_count() <= max_total);
                let mut per_host: HashMap<&str, usize> = HashMap::new();
                for key in q.running() {
                    *per_host.entry(hosts[key].as_str()).or_default() += 1;
                }
                prop_assert!(per_host.values().all(|&n| n <= max_per_host));
                // Work-conserving, and discretionary last.
                let left: Vec<&Waiting> = q.waiting.iter().map(|(_, w)| w)
                    .filter(|w| w.not_before.is_none_or(|t| t <= now)).collect();
                let others_wait = left.iter().any(|w| !w.discretionary);
                for w in &left {
                    let fits = q.running_count() < max_total
                        && per_host.get(w.host.as_str()).copied().unwrap_or(0) < max_per_host;
                    prop_assert!(!fits || (w.discretionary && others_wait),
                        "{:?} fits but was left waiting", w.key);
                }
                if others_wait {
                    for key in &started {
                        let w = ready_before.iter().find(|w| &w.key == key).unwrap();
                        prop_assert!(!w.discretionary,
                            "discretionary {key:?} started while another waits");
                    }
                }
            }
        }
    }
}
