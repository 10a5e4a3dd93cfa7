//! Bodies written whole and in order while their tasks run at once (`courier get -j N` to one
//! output): the first task's body goes straight out; a later task's waits in memory until every
//! task before it has completed, then goes out whole. Held bodies are bounded: a task whose body
//! would take the held total past [`HELD`] is suspended (its connection stops being read, so the
//! server waits) until its turn, then resumed.
//!
//! curl's `--parallel` interleaves such bodies as their bytes come; nobody can use the result.

use std::collections::VecDeque;
use std::io::Write;

use courier_engine::DataTask;
use courier_engine::reexports::bytes::Bytes;

/// The most body bytes held for tasks that wait for their turn, over all of them.
pub(super) const HELD: usize = 32 << 20;

/// The tasks whose bodies go out in order, first to last.
#[derive(Default)]
pub(super) struct InOrder {
    /// Tasks not yet written out whole, in order; the first writes straight through.
    queue: VecDeque<Waiting>,
    /// Bytes held over all waiting tasks.
    held: usize,
}

/// A task whose body is not yet out whole.
struct Waiting {
    task: DataTask,
    body: Vec<Bytes>,
    /// Its `did_complete` came: it goes out whole once the tasks before it have.
    completed: bool,
    /// Suspended by [`InOrder`] because its held body would take the total past [`HELD`].
    suspended: bool,
}

impl InOrder {
    /// `task`'s body goes after those of the tasks added before it.
    pub(super) fn add(&mut self, task: DataTask) {
        self.queue.push_back(Waiting {
            task,
            body: Vec::new(),
            completed: false,
            suspended: false,
        });
    }

    fn position(&self, task: u64) -> Option<usize> {
        self.queue.iter().position(|w| w.task.info().id() == task)
    }

    /// Bytes of `task`'s body: written to `out` when it is first, held otherwise.
    pub(super) fn received(
        &mut self,
        task: u64,
        data: &Bytes,
        out: &mut dyn Write,
    ) -> std::io::Result<()> {
        match self.position(task) {
            Some(0) | None => out.write_all(data),
            Some(i) => {
                self.held += data.len();
                let waiting = &mut self.queue[i];
                waiting.body.push(data.clone());
                if self.held > HELD && !waiting.suspended {
                    waiting.suspended = true;
                    waiting.task.suspend();
                }
                Ok(())
            }
        }
    }

    /// `task` completed: once it is first, it and every completed task after it go out whole,
    /// and the next one still running writes straight through (resumed if it was suspended).
    pub(super) fn completed(&mut self, task: u64, out: &mut dyn Write) -> std::io::Result<()> {
        let Some(i) = self.position(task) else {
            return Ok(());
        };
        self.queue[i].completed = true;
        while self.queue.front().is_some_and(|w| w.completed) {
            self.queue.pop_front();
            let Some(next) = self.queue.front_mut() else {
                break;
            };
            for piece in next.body.drain(..) {
                self.held -= piece.len();
                out.write_all(&piece)?;
            }
            if next.suspended {
                next.suspended = false;
                next.task.resume();
            }
        }
        Ok(())
    }
}
