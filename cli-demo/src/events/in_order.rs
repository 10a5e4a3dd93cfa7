//! Bodies written whole and in order while their tasks run at once (`courier get -j N` to one
//! output): the first task's body goes straight out; a later task's waits until every task before
//! it has completed, then goes out whole. Waiting bodies are held in memory up to [`HELD`] in all;
//! past that, a waiting task's further bytes go to a spool file of its own (unnamed, removed when
//! closed), so memory stays bounded and every task keeps running.
//!
//! A cancelled task means the command is stopping (Ctrl-C, an output that refused a body: every
//! task is cancelled): the body going out ends where it is, and the bodies still waiting never go
//! out. Written after a cut body, they could not be told from the rest of it; as one URL after
//! another, the command would have stopped there too.
//!
//! Why not suspend a task instead: a suspended task keeps its connection, and the first task may
//! need one (a redirect, a retry) on a host whose every connection a suspended task holds. It
//! would wait for them, and they for it.
//!
//! curl's `--parallel` interleaves such bodies as their bytes come; nobody can use the result.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Seek, Write};

use courier_engine::reexports::bytes::Bytes;

/// The most body bytes held in memory for tasks that wait for their turn, over all of them.
pub(super) const HELD: usize = 32 << 20;

/// The tasks whose bodies go out in order, first to last.
#[derive(Default)]
pub(super) struct InOrder {
    /// Tasks not yet written out whole, in order; the first writes straight through.
    queue: VecDeque<Waiting>,
    /// Bytes held in memory over all waiting tasks.
    held: usize,
    /// A task was cancelled: nothing goes out after the body going out now.
    stopped: bool,
}

/// A task whose body is not yet out whole.
struct Waiting {
    task: u64,
    /// Its first bytes, in memory.
    body: Vec<Bytes>,
    /// The rest, once memory was full: every byte after the first spooled one goes here too.
    spool: Option<File>,
    /// Its `did_complete` came: it goes out whole once the tasks before it have.
    completed: bool,
}

impl InOrder {
    /// `task`'s body goes after those of the tasks added before it.
    pub(super) fn add(&mut self, task: u64) {
        self.queue.push_back(Waiting {
            task,
            body: Vec::new(),
            spool: None,
            completed: false,
        });
    }

    fn position(&self, task: u64) -> Option<usize> {
        self.queue.iter().position(|w| w.task == task)
    }

    /// Bytes of `task`'s body: written to `out` when it is first, held otherwise.
    ///
    /// # Errors
    /// `out` refused them, or a spool file could not be made or written.
    pub(super) fn received(
        &mut self,
        task: u64,
        data: &Bytes,
        out: &mut dyn Write,
    ) -> io::Result<()> {
        let Some(i) = self.position(task) else {
            return if self.stopped {
                Ok(())
            } else {
                out.write_all(data)
            };
        };
        if i == 0 {
            return out.write_all(data);
        }
        let waiting = &mut self.queue[i];
        if waiting.spool.is_none() && self.held + data.len() <= HELD {
            self.held += data.len();
            waiting.body.push(data.clone());
            return Ok(());
        }
        let spool = match &mut waiting.spool {
            Some(spool) => spool,
            None => waiting.spool.insert(tempfile::tempfile()?),
        };
        spool.write_all(data)
    }

    /// `task` completed: once it is first, it and every completed task after it go out whole,
    /// and the next one still running writes straight through from then on. A `cancelled` task
    /// stops the order: the first task's body, whichever it is, is the last to go out.
    ///
    /// # Errors
    /// `out` refused a body, or a spool file could not be read back.
    pub(super) fn completed(
        &mut self,
        task: u64,
        cancelled: bool,
        out: &mut dyn Write,
    ) -> io::Result<()> {
        if cancelled {
            self.stopped = true;
            // The waiting bodies (and their spool files) go; they were all that `held` counts.
            let going_out = self.queue.front().is_some_and(|w| w.task != task);
            self.queue.truncate(usize::from(going_out));
            self.held = 0;
            return Ok(());
        }
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
            if let Some(mut spool) = next.spool.take() {
                spool.rewind()?;
                io::copy(&mut spool, out)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> InOrder {
        let mut order = InOrder::default();
        for task in 1..=3 {
            order.add(task);
        }
        order
    }

    fn bytes(text: &'static str) -> Bytes {
        Bytes::from_static(text.as_bytes())
    }

    #[test]
    fn later_bodies_wait_and_go_out_whole_in_order() {
        let (mut order, mut out) = (three(), Vec::new());
        order.received(3, &bytes("c"), &mut out).unwrap();
        order.received(1, &bytes("a1"), &mut out).unwrap();
        order.received(2, &bytes("b"), &mut out).unwrap();
        order.completed(3, false, &mut out).unwrap();
        order.completed(2, false, &mut out).unwrap();
        assert_eq!(out, b"a1");
        order.received(1, &bytes("a2"), &mut out).unwrap();
        order.completed(1, false, &mut out).unwrap();
        assert_eq!(out, b"a1a2bc");
    }

    #[test]
    fn a_cancelled_first_task_ends_the_output_where_it_stands() {
        let (mut order, mut out) = (three(), Vec::new());
        order.received(1, &bytes("a1"), &mut out).unwrap();
        order.received(2, &bytes("b"), &mut out).unwrap();
        order.completed(2, false, &mut out).unwrap();
        order.received(3, &bytes("c"), &mut out).unwrap();
        order.completed(1, true, &mut out).unwrap();
        order.completed(3, true, &mut out).unwrap();
        order.received(3, &bytes("late"), &mut out).unwrap();
        assert_eq!(out, b"a1", "nothing after the cut body");
        assert_eq!(order.held, 0);
    }

    #[test]
    fn a_later_task_cancelled_first_lets_the_first_body_go_on_alone() {
        let (mut order, mut out) = (three(), Vec::new());
        order.received(1, &bytes("a1"), &mut out).unwrap();
        order.received(2, &bytes("b"), &mut out).unwrap();
        order.completed(2, true, &mut out).unwrap();
        // The first task's bytes still in flight go on; it ends, whatever how, and that is all.
        order.received(1, &bytes("a2"), &mut out).unwrap();
        order.completed(3, false, &mut out).unwrap();
        order.completed(1, false, &mut out).unwrap();
        assert_eq!(out, b"a1a2");
    }
}
