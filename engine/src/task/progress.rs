//! `Progress`: how far a task has come, as a value to bind to a progress bar (Foundation's
//! `Progress`, URLSession's `task.progress`), and [`SessionProgress`], the sum over a session's
//! tasks.
//!
//! Both are read from the counters a task keeps anyway: nothing is computed, sent or locked on the
//! transfer's path, so watching progress costs a transfer nothing. Throughput is measured by the
//! reader, between its reads (at least 100 ms apart), and smoothed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use courier_delegates::{TaskInfo, TaskKind, TaskState};

use super::Task;
use super::id_map::IdMap;

/// Reads closer together than this reuse the last throughput.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// A task's progress: completed and total units (bytes: sent for an upload, received otherwise),
/// the fraction done, throughput and time left, and the task's own controls.
///
/// Get it from any task handle (`progress()`); clones share the throughput measurement.
#[derive(Clone, Debug)]
pub struct Progress {
    task: Task,
    rate: Rate,
}

impl Progress {
    pub(crate) fn of(task: Task) -> Progress {
        Progress {
            task,
            rate: Rate::default(),
        }
    }

    fn info(&self) -> &TaskInfo {
        self.task.info()
    }

    /// Units done: bytes sent for an upload task, bytes received otherwise.
    pub fn completed_unit_count(&self) -> u64 {
        units(self.info()).0
    }

    /// Units in all, once known (`None` until the response names its length, or for a body of
    /// unknown length until the task finishes; the application's
    /// [`count_of_bytes_client_expects_to_receive`](TaskInfo::count_of_bytes_client_expects_to_receive)
    /// or `_to_send` stands in until then).
    pub fn total_unit_count(&self) -> Option<u64> {
        units(self.info()).1
    }

    /// Done over total, from 0.0 to 1.0; 1.0 once the task finished, `None` while the total is
    /// unknown.
    pub fn fraction_completed(&self) -> Option<f64> {
        fraction(units(self.info()))
    }

    /// True once the task completed (whether it succeeded or not).
    pub fn is_finished(&self) -> bool {
        self.info().state() == TaskState::Completed
    }

    /// Bytes per second, smoothed over the reader's reads; `None` before two reads 100 ms apart.
    pub fn throughput(&self) -> Option<f64> {
        self.rate.sample(self.completed_unit_count())
    }

    /// Time left at the current throughput, when the total is known and bytes are moving.
    pub fn estimated_time_remaining(&self) -> Option<Duration> {
        let (done, total) = units(self.info());
        remaining(done, total?, self.throughput()?)
    }

    /// True while the task can still be cancelled (until it completes).
    pub fn is_cancellable(&self) -> bool {
        !self.is_finished()
    }

    /// True while the task can still be paused (suspended) and resumed.
    pub fn is_pausable(&self) -> bool {
        !self.is_finished()
    }

    /// Cancels the task (`Task::cancel`).
    pub fn cancel(&self) {
        self.task.cancel();
    }

    /// Pauses the task (`Task::suspend`).
    pub fn pause(&self) {
        self.task.suspend();
    }

    /// Resumes the task (`Task::resume`).
    pub fn resume(&self) {
        self.task.resume();
    }
}

/// The sum of a session's tasks' progress (those made since the session was created), for one
/// bar over many transfers. Get it with [`Session::progress`](crate::Session::progress); clones
/// share the throughput measurement.
#[derive(Clone, Debug)]
pub struct SessionProgress {
    tasks: Arc<TaskTally>,
    rate: Rate,
}

impl SessionProgress {
    pub(crate) fn of(tasks: Arc<TaskTally>) -> SessionProgress {
        SessionProgress {
            tasks,
            rate: Rate::default(),
        }
    }

    /// Units done over every task.
    pub fn completed_unit_count(&self) -> u64 {
        self.tasks.sum().completed
    }

    /// Units in all, while every unfinished task knows its total.
    pub fn total_unit_count(&self) -> Option<u64> {
        self.tasks.sum().total
    }

    /// Done over total, from 0.0 to 1.0.
    pub fn fraction_completed(&self) -> Option<f64> {
        let sum = self.tasks.sum();
        fraction((sum.completed, sum.total))
    }

    /// Tasks made and not yet completed.
    pub fn unfinished_tasks(&self) -> usize {
        self.tasks.sum().unfinished
    }

    /// Bytes per second over every task, smoothed over the reader's reads.
    pub fn throughput(&self) -> Option<f64> {
        self.rate.sample(self.completed_unit_count())
    }

    /// Time left at the current throughput, when the total is known and bytes are moving.
    pub fn estimated_time_remaining(&self) -> Option<Duration> {
        let sum = self.tasks.sum();
        remaining(sum.completed, sum.total?, self.throughput()?)
    }
}

/// A session's tasks, as its progress counts them: the unfinished ones, and what the finished
/// ones added up to. A task is folded into the totals and let go of as it completes, so a
/// long-lived session does not keep every task, and a finished task's records are freed while
/// they are still in the cache, not hundreds of tasks later.
#[derive(Debug, Default)]
pub(crate) struct TaskTally(Mutex<Tallied>);

#[derive(Debug, Default)]
struct Tallied {
    live: IdMap<u64, TaskInfo>,
    done_completed: u64,
    done_total: u64,
}

/// What [`TaskTally::sum`] finds.
struct Sum {
    completed: u64,
    total: Option<u64>,
    unfinished: usize,
}

impl TaskTally {
    /// Counts a new task.
    pub(crate) fn register(&self, info: TaskInfo) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        t.live.insert(info.id(), info);
    }

    /// Folds the task `id` into the totals, now that it has completed (its counts are final).
    pub(crate) fn completed(&self, id: u64) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(info) = t.live.remove(&id) {
            t.fold(&info);
        }
    }

    fn sum(&self) -> Sum {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // Any task that completed by a way that did not say so is folded here.
        t.prune();
        let (mut completed, mut total) = (t.done_completed, Some(t.done_total));
        for info in t.live.values() {
            let (done, all) = units(info);
            completed += done;
            total = total.zip(all).map(|(a, b)| a + b);
        }
        Sum {
            completed,
            total,
            unfinished: t.live.len(),
        }
    }
}

impl Tallied {
    /// Adds a finished task's units to the totals.
    fn fold(&mut self, info: &TaskInfo) {
        let (done, all) = units(info);
        self.done_completed += done;
        self.done_total += all.unwrap_or(done);
    }

    /// Folds finished tasks into the totals and lets them go.
    fn prune(&mut self) {
        let finished: Vec<TaskInfo> = self
            .live
            .extract_if(|_, info| info.state() == TaskState::Completed)
            .map(|(_, info)| info)
            .collect();
        for info in &finished {
            self.fold(info);
        }
    }
}

/// A task's (done, total) units: bytes sent for an upload, received otherwise. Without a length
/// from the body or the server, the application's hint (`count_of_bytes_client_expects_*`) stands
/// in, never below what was done; a finished task's total is what it did, when it never learned
/// one.
fn units(info: &TaskInfo) -> (u64, Option<u64>) {
    let (done, total, hint) = match info.kind() {
        TaskKind::Upload => (
            info.bytes_sent(),
            info.bytes_expected_to_send(),
            info.count_of_bytes_client_expects_to_send(),
        ),
        _ => (
            info.bytes_received(),
            info.bytes_expected_to_receive(),
            info.count_of_bytes_client_expects_to_receive(),
        ),
    };
    if info.state() == TaskState::Completed {
        return (done, total.or(Some(done)));
    }
    (done, total.or(hint.map(|hint| hint.max(done))))
}

fn fraction((done, total): (u64, Option<u64>)) -> Option<f64> {
    match total? {
        0 => Some(1.0),
        total => Some((done as f64 / total as f64).min(1.0)),
    }
}

fn remaining(done: u64, total: u64, rate: f64) -> Option<Duration> {
    (rate > 0.0).then(|| Duration::from_secs_f64(total.saturating_sub(done) as f64 / rate))
}

/// Throughput measured between reads, smoothed (an exponential moving average).
#[derive(Clone, Debug, Default)]
struct Rate(Arc<Mutex<Option<RateState>>>);

#[derive(Debug)]
struct RateState {
    at: Instant,
    units: u64,
    rate: Option<f64>,
}

impl Rate {
    fn sample(&self, units: u64) -> Option<f64> {
        let now = Instant::now();
        let mut state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let Some(s) = state.as_mut() else {
            *state = Some(RateState {
                at: now,
                units,
                rate: None,
            });
            return None;
        };
        let elapsed = now.duration_since(s.at);
        if elapsed >= SAMPLE_EVERY {
            let now_rate = units.saturating_sub(s.units) as f64 / elapsed.as_secs_f64();
            s.rate = Some(s.rate.map_or(now_rate, |old| 0.7 * old + 0.3 * now_rate));
            s.at = now;
            s.units = units;
        }
        s.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A data task of `id` that expects `expected` bytes and has received `received`.
    fn task(id: u64, received: i64, expected: i64) -> (TaskInfo, courier_delegates::TaskRecorder) {
        let request = courier_delegates::Request::get("http://a.test/");
        let (info, recorder) = TaskInfo::new(id, TaskKind::Data, request);
        recorder.set_expected_to_receive(expected);
        recorder.set_received(received);
        (info, recorder)
    }

    #[test]
    fn a_completed_task_is_let_go_and_its_bytes_stay_counted() {
        let tally = TaskTally::default();
        let (a, a_rec) = task(1, 100, 100);
        let (b, _b_rec) = task(2, 10, 50);
        tally.register(a.clone());
        tally.register(b);
        let sum = tally.sum();
        assert_eq!(
            (sum.completed, sum.total, sum.unfinished),
            (110, Some(150), 2)
        );

        a_rec.set_state(TaskState::Completed);
        tally.completed(1);
        assert_eq!(tally.0.lock().unwrap().live.len(), 1, "let go at once");
        let sum = tally.sum();
        assert_eq!(
            (sum.completed, sum.total, sum.unfinished),
            (110, Some(150), 1)
        );
        // Said twice (a completion and a late prune): counted once.
        tally.completed(1);
        assert_eq!(tally.sum().completed, 110);
    }

    #[test]
    fn a_task_that_completed_without_saying_so_is_folded_when_the_sum_is_read() {
        let tally = TaskTally::default();
        let (a, a_rec) = task(1, 30, -1);
        tally.register(a);
        a_rec.set_state(TaskState::Completed);
        let sum = tally.sum();
        assert_eq!(
            (sum.completed, sum.total, sum.unfinished),
            (30, Some(30), 0)
        );
    }

    #[test]
    fn fractions_and_time_left() {
        assert_eq!(fraction((50, Some(200))), Some(0.25));
        assert_eq!(fraction((5, None)), None);
        assert_eq!(fraction((0, Some(0))), Some(1.0));
        assert_eq!(fraction((300, Some(200))), Some(1.0), "never past done");
        assert_eq!(remaining(50, 150, 25.0), Some(Duration::from_secs(4)));
        assert_eq!(remaining(50, 150, 0.0), None, "nothing moves: no estimate");
    }

    #[test]
    fn throughput_needs_two_reads_apart_then_smooths() {
        let rate = Rate::default();
        assert_eq!(rate.sample(0), None);
        assert_eq!(rate.sample(10), None, "too soon");
        std::thread::sleep(SAMPLE_EVERY);
        let first = rate.sample(1_000_000).unwrap();
        assert!(first > 0.0);
        std::thread::sleep(SAMPLE_EVERY);
        let second = rate.sample(1_000_000).unwrap();
        assert!(
            second < first,
            "no bytes moved: the rate falls, smoothly ({second} < {first})"
        );
        assert!(second > 0.0);
    }
}
