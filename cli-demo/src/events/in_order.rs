//! Bodies written whole and in order while their tasks run at once (`courier get -j N` to one
//! output): the first task's body goes straight out; a later task's waits until every task before
//! it has completed, then goes out whole. Waiting bodies are held in memory up to [`HELD`] in all;
//! past that, a waiting task's further bytes go to a spool file of its own (unnamed, removed when
//! closed), so memory stays bounded and every task keeps running.
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
        let Some(i) = self.position(task).filter(|&i| i > 0) else {
            return out.write_all(data);
        };
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
    /// and the next one still running writes straight through from then on.
    ///
    /// # Errors
    /// `out` refused a body, or a spool file could not be read back.
    pub(super) fn completed(&mut self, task: u64, out: &mut dyn Write) -> io::Result<()> {
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
