//! The service's scheduling: the [`Queue`] driven in time, retries with backoff, and the throughput
//! floor.
//!
//! - A task the application resumes waits in the queue until its turn (the caps, priority,
//!   discretion and earliest begin date decide); then its transfer is resumed.
//! - An attempt that fails for a transient reason (a timeout, a lost connection, a server's 503)
//!   is tried again after a wait: what the server asked for in `Retry-After`, else an exponential
//!   backoff, while the task's resource timeout lasts. A download continues from its partial file.
//! - A transfer slower than [`Throughput`] over its window is stopped, keeps its partial file and
//!   waits its turn again after a backoff: another attempt may find a better path or a less busy
//!   server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use courier_storage::journal::{Schedule, TaskPhase, TaskRecord};
use tokio::sync::{Notify, mpsc};

use super::super::queue::{Key, Limits, Queue, Waiting};
use super::Inner;
use crate::background::wire::unix_ms;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The service's scheduling rules.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Policy {
    /// How many transfers run at once, in all and per host.
    pub limits: Limits,
    /// The wait before the first retry; it doubles with each retry, up to `retry_max`.
    pub retry_base: Duration,
    /// The longest wait between retries (a server's `Retry-After` may ask for more).
    pub retry_max: Duration,
    /// Stops a transfer slower than this, to retry it later (`None`: never).
    pub minimum_throughput: Option<Throughput>,
}

impl Default for Policy {
    /// [`Limits::default`]; retries after 1 s, 2 s, 4 s... up to 10 minutes; a transfer under
    /// 1 KiB/s over a minute is stopped and tried again later.
    fn default() -> Policy {
        Policy {
            limits: Limits::default(),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(600),
            minimum_throughput: Some(Throughput {
                bytes_per_second: 1024,
                window: Duration::from_secs(60),
            }),
        }
    }
}

/// A throughput floor: fewer than `bytes_per_second` on average over `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throughput {
    /// The floor.
    pub bytes_per_second: u64,
    /// Over how long.
    pub window: Duration,
}

/// A task to run again after `delay`.
pub(crate) struct Retry {
    pub(crate) identifier: String,
    pub(crate) task: u64,
    /// The resume data of the attempt that ended, if it left some.
    pub(crate) checkpoint: Option<Vec<u8>>,
    pub(crate) delay: Duration,
}

/// The queue and what wakes its driver.
pub(crate) struct Scheduler {
    pub(crate) policy: Policy,
    queue: Mutex<Queue>,
    wake: Notify,
    retries: mpsc::UnboundedSender<Retry>,
}

impl Scheduler {
    pub(crate) fn new(policy: Policy) -> (Arc<Scheduler>, mpsc::UnboundedReceiver<Retry>) {
        let (retries, rx) = mpsc::unbounded_channel();
        let scheduler = Scheduler {
            queue: Mutex::new(Queue::new(policy.limits)),
            policy,
            wake: Notify::new(),
            retries,
        };
        (Arc::new(scheduler), rx)
    }

    /// Puts task `task` of `identifier` in line, as its record says.
    pub(crate) fn enqueue(&self, identifier: &str, task: u64, record: &TaskRecord) {
        let now_ms = unix_ms(SystemTime::now());
        let not_before = record
            .schedule
            .not_before_ms
            .filter(|&t| t > now_ms)
            .map(|t| Instant::now() + Duration::from_millis(t - now_ms));
        let host = url::Url::parse(&record.request.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        lock(&self.queue).wait(Waiting {
            key: (identifier.to_owned(), task),
            host,
            priority: record.schedule.priority,
            discretionary: record.schedule.discretionary,
            not_before,
        });
        self.wake.notify_one();
    }

    /// Takes a task out of the queue (completed, suspended, cancelled), freeing its slot.
    pub(crate) fn remove(&self, identifier: &str, task: u64) {
        if lock(&self.queue).remove(&(identifier.to_owned(), task)) {
            self.wake.notify_one();
        }
    }

    /// Whether the task waits or runs.
    pub(crate) fn is_queued(&self, identifier: &str, task: u64) -> bool {
        let key = (identifier.to_owned(), task);
        let queue = lock(&self.queue);
        queue.is_running(&key) || queue.is_waiting(&key)
    }

    /// Hands a retry to the driver.
    pub(crate) fn retry(&self, retry: Retry) {
        let _ = self.retries.send(retry);
    }

    /// The wait before retry number `retries + 1`.
    pub(crate) fn backoff(&self, retries: u32) -> Duration {
        courier_delegates::retry::backoff(self.policy.retry_base, self.policy.retry_max, retries)
    }

    /// The wait before trying a task of `schedule` again at `now`: the server's `asked` wait, else
    /// the backoff; `None` when the task's resource timeout ends first.
    pub(crate) fn retry_delay(
        &self,
        schedule: &Schedule,
        now: SystemTime,
        asked: Option<Duration>,
    ) -> Option<Duration> {
        let delay = asked.unwrap_or_else(|| self.backoff(schedule.retries));
        let deadline = schedule
            .created_ms
            .saturating_add(schedule.resource_timeout_ms);
        let due = unix_ms(now).saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
        (due < deadline).then_some(delay)
    }
}

impl Inner {
    /// Runs the queue: starts what may start, carries out retries, watches throughput. Ends when
    /// the service is dropped (the retry channel closes).
    pub(super) async fn drive(self: Arc<Self>, mut retries: mpsc::UnboundedReceiver<Retry>) {
        let mut samples: HashMap<Key, (Instant, u64)> = HashMap::new();
        loop {
            let now = Instant::now();
            let (start, wake_at, running) = {
                let mut queue = lock(&self.scheduler.queue);
                let start = queue.next(now);
                (start, queue.wake_at(now), queue.running_count())
            };
            for key in start {
                self.start_transfer(&key);
            }
            let tick = (self.scheduler.policy.minimum_throughput.is_some() && running > 0)
                .then(|| now + Duration::from_secs(1));
            let until = match (wake_at, tick) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            tokio::select! {
                () = self.scheduler.wake.notified() => {}
                retry = retries.recv() => match retry {
                    Some(retry) => self.requeue(retry).await,
                    None => return,
                },
                () = sleep_until(until) => {}
            }
            if let Some(floor) = self.scheduler.policy.minimum_throughput {
                self.check_throughput(floor, &mut samples).await;
            }
        }
    }

    /// Resumes the transfer of a task whose turn came.
    fn start_transfer(&self, key: &Key) {
        let handle = self
            .session_of(&key.0)
            .and_then(|s| lock(&s.tasks).get(&key.1).cloned());
        match handle {
            Some(task) => task.resume(),
            // Gone meanwhile (completed, cancelled): its slot is free again.
            None => self.scheduler.remove(&key.0, key.1),
        }
    }

    /// Makes a task run again after `retry.delay`, from the resume data its last attempt left.
    async fn requeue(&self, retry: Retry) {
        let Retry {
            identifier,
            task,
            checkpoint,
            delay,
        } = retry;
        let Some(state) = self.session_of(&identifier) else {
            return;
        };
        let not_before = unix_ms(SystemTime::now() + delay);
        let id = identifier.clone();
        let record = super::journaled(&self.journal, move |j| {
            j.modify_task(&id, task, |record| {
                record.schedule.retries += 1;
                record.schedule.not_before_ms = Some(not_before);
                if checkpoint.is_some() {
                    record.checkpoint = checkpoint;
                }
            })?;
            j.task(&id, task)
        })
        .await;
        match record {
            // It finished meanwhile (just before the service stopped it).
            Ok(Some(Ok(record))) if record.phase == TaskPhase::Completed => {}
            Ok(Some(Ok(record))) => {
                if let Err(e) = self.revive(&identifier, &state, task, record).await {
                    tracing::error!(task, error = %e, "a task could not be retried");
                }
            }
            other => tracing::error!(task, ?other, "a task to retry is not in the journal"),
        }
    }

    /// Stops the running transfers slower than `floor` over its window; each keeps its partial
    /// file and waits its turn again after a backoff.
    async fn check_throughput(
        &self,
        floor: Throughput,
        samples: &mut HashMap<Key, (Instant, u64)>,
    ) {
        let running: Vec<Key> = lock(&self.scheduler.queue).running().cloned().collect();
        samples.retain(|key, _| running.contains(key));
        let now = Instant::now();
        for key in running {
            let Some(state) = self.session_of(&key.0) else {
                continue;
            };
            let Some(task) = lock(&state.tasks).get(&key.1).cloned() else {
                continue;
            };
            let moved = task.info().bytes_received() + task.info().bytes_sent();
            let expected = task.info().bytes_expected_to_receive();
            if expected.is_some_and(|e| e > 0 && task.info().bytes_received() >= e) {
                continue; // done: its completion is on its way
            }
            let (since, at) = *samples.entry(key.clone()).or_insert((now, moved));
            let elapsed = now.duration_since(since);
            if elapsed < floor.window {
                continue;
            }
            let rate = moved.saturating_sub(at) as f64 / elapsed.as_secs_f64();
            samples.insert(key.clone(), (now, moved));
            if rate >= floor.bytes_per_second as f64 {
                continue;
            }
            tracing::info!(
                task = key.1,
                rate,
                "too slow: stopped, to be tried again later"
            );
            if let Some(engine) = state.engine() {
                engine.delegate.stopping_task(key.1);
            }
            self.scheduler.remove(&key.0, key.1);
            // A download or an upload goes on from where it stopped when it can.
            let checkpoint = task
                .cancel_for_resume()
                .await
                .map(|d| d.as_bytes().to_vec());
            let id = key.0.clone();
            let retries = super::journaled(&self.journal, move |j| j.task(&id, key.1))
                .await
                .ok()
                .flatten()
                .and_then(Result::ok)
                .map_or(0, |r| r.schedule.retries);
            self.requeue(Retry {
                identifier: key.0.clone(),
                task: key.1,
                checkpoint,
                delay: self.scheduler.backoff(retries),
            })
            .await;
        }
    }
}

async fn sleep_until(until: Option<Instant>) {
    match until {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    fn schedule(created_ms: u64, timeout_ms: u64, retries: u32) -> Schedule {
        Schedule {
            priority: 0.5,
            discretionary: false,
            not_before_ms: None,
            created_ms,
            resource_timeout_ms: timeout_ms,
            retries,
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_stops_at_the_deadline() {
        let (s, _rx) = Scheduler::new(Policy {
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_secs(1),
            ..Policy::default()
        });
        let waits: Vec<u64> = (0..6).map(|n| s.backoff(n).as_millis() as u64).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(s.backoff(u32::MAX), Duration::from_secs(1));
        let now = UNIX_EPOCH + Duration::from_secs(100);
        // Created at 99 s with 10 s to live: a retry due at 100.4 s is fine...
        assert_eq!(
            s.retry_delay(&schedule(99_000, 10_000, 2), now, None),
            Some(Duration::from_millis(400))
        );
        // ...one asked for past 109 s is not.
        assert_eq!(
            s.retry_delay(
                &schedule(99_000, 10_000, 0),
                now,
                Some(Duration::from_secs(9))
            ),
            None
        );
        assert_eq!(
            s.retry_delay(
                &schedule(99_000, 10_000, 0),
                now,
                Some(Duration::from_secs(5))
            ),
            Some(Duration::from_secs(5))
        );
    }
}
