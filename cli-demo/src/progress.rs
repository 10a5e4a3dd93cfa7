//! Progress bars on stderr (indicatif): one per transfer, with bytes, rate and time left. Hidden with
//! `-q` and when stderr is not a terminal.

use std::collections::HashMap;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The bars of one command.
pub(crate) struct Progress {
    multi: MultiProgress,
    bars: Mutex<HashMap<u64, ProgressBar>>,
}

impl Progress {
    /// Bars on stderr, or none at all when `quiet`.
    pub(crate) fn new(quiet: bool) -> Progress {
        let target = if quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        Progress {
            multi: MultiProgress::with_draw_target(target),
            bars: Mutex::new(HashMap::new()),
        }
    }

    fn bars(&self) -> std::sync::MutexGuard<'_, HashMap<u64, ProgressBar>> {
        self.bars.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a bar for `task`, labelled with what `label` makes (made only for a bar that is
    /// drawn: naming one from its URL parses the URL again, 2.4% of `courier get`'s thread on
    /// many small requests).
    pub(crate) fn add(&self, task: u64, label: impl FnOnce() -> String) {
        if self.multi.is_hidden() {
            // No bar to draw (`-q`, or stderr is no terminal): none is made or kept up to date,
            // which cost `courier get` a sixth of its time on many small requests.
            return;
        }
        let bar = self.multi.add(ProgressBar::no_length());
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:20!} {bar:30.cyan/blue} {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(label());
        self.bars().insert(task, bar);
    }

    /// `task` has moved `done` bytes of `total` (-1 when unknown).
    pub(crate) fn set(&self, task: u64, done: i64, total: i64) {
        if let Some(bar) = self.bars().get(&task) {
            if total >= 0 {
                bar.set_length(total as u64);
            }
            bar.set_position(done.max(0) as u64);
        }
    }

    /// `task` starts (again) at `offset`: the rate counts from here.
    pub(crate) fn restart_at(&self, task: u64, offset: i64, total: i64) {
        if let Some(bar) = self.bars().get(&task) {
            bar.reset();
            if total >= 0 {
                bar.set_length(total as u64);
            }
            bar.set_position(offset.max(0) as u64);
        }
    }

    /// `task` ended.
    pub(crate) fn finish(&self, task: u64) {
        if let Some(bar) = self.bars().remove(&task) {
            bar.finish();
        }
    }

    /// Prints a line above the bars (or plainly when there are none).
    pub(crate) fn println(&self, line: &str) {
        if self.multi.is_hidden() {
            say!("{line}");
        } else {
            let _ = self.multi.println(line);
        }
    }
}
