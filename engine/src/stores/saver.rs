//! Saving the small stores (cookies, credentials) off the async workers, in order.
//!
//! A response that changes the jar is handled on a runtime worker, which must not wait on the disk.
//! The store's new contents are taken under its lock and numbered; a blocking thread writes them
//! (through courier-storage's one atomic, private write) unless a newer version was written first,
//! so the file always ends as the latest contents.
//!
//! Every such write (the URL cache's too) is counted in its store's [`Writes`]: a session's `flush`,
//! `reset` and invalidation wait until none is left, so what a session stored is on disk once it
//! says so.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// A store's writes under way on blocking threads.
#[derive(Debug)]
pub(crate) struct Writes {
    count: watch::Sender<usize>,
}

impl Default for Writes {
    fn default() -> Writes {
        Writes {
            count: watch::Sender::new(0),
        }
    }
}

impl Writes {
    /// Runs `job` (blocking file work) on a blocking thread, counted until it is done; on this
    /// thread when there is no runtime.
    pub(crate) fn run(&self, job: impl FnOnce() + Send + 'static) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return job();
        };
        self.count.send_modify(|n| *n += 1);
        let count = self.count.clone();
        let done = Done(count);
        drop(runtime.spawn_blocking(move || {
            let _done = done; // counted down even if the job panics or never runs
            job();
        }));
    }

    /// Waits until no write is under way.
    pub(crate) async fn idle(&self) {
        let mut rx = self.count.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

/// Counts a write down when dropped.
struct Done(watch::Sender<usize>);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Writes one file of the session directory, latest version last.
#[derive(Debug, Default)]
pub(crate) struct Saver {
    next: AtomicU64,
    /// The version last written (or removed).
    written: Arc<Mutex<u64>>,
}

impl Saver {
    /// Writes `contents` to `path`, or removes the file for `None`, on a blocking thread counted in
    /// `writes`. Call it with the store's lock held, so versions are numbered in the order the
    /// store changed.
    pub(crate) fn save(&self, writes: &Writes, path: PathBuf, contents: Option<Vec<u8>>) {
        writes.run(self.job(path, contents));
    }

    /// As [`Saver::save`], on this thread: for callers already off the async workers (a reset)
    /// that must see the file changed when they return.
    pub(crate) fn save_here(&self, path: PathBuf, contents: Option<Vec<u8>>) {
        self.job(path, contents)();
    }

    fn job(&self, path: PathBuf, contents: Option<Vec<u8>>) -> impl FnOnce() + Send + 'static {
        let version = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let written = self.written.clone();
        move || {
            let mut last = written.lock().unwrap_or_else(|p| p.into_inner());
            if *last > version {
                return; // a newer version is on disk already
            }
            let done = match &contents {
                Some(bytes) => courier_storage::write::replace(
                    &path,
                    bytes,
                    courier_storage::Durability::Synced,
                ),
                None => courier_storage::write::remove_if_present(&path),
            };
            if let Err(e) = done {
                tracing::warn!(path = %path.display(), error = %e, "cannot save a session store");
            }
            *last = version;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_file_ends_as_the_latest_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let (saver, writes) = (Saver::default(), Writes::default());
        for i in 0..200u32 {
            saver.save(&writes, path.clone(), Some(i.to_string().into_bytes()));
        }
        writes.idle().await;
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "199");
        saver.save(&writes, path.clone(), None);
        writes.idle().await;
        assert!(!path.exists());
    }
}
