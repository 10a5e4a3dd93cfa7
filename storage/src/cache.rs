//! The URL cache's disk half: one file per cached response in `cache/` of the session directory,
//! through the [`codec`](crate::codec) envelope, the oldest removed past the capacity. What a response
//! means for caching (RFC 9111) is the engine's business; this keeps bytes.
//!
//! A [`DiskCache`] keeps an index of its files (name, size, age), read from the directory once, so
//! that looking for a response the disk does not hold reads nothing, and keeping the files under the
//! capacity lists nothing. Stores and removals are queued, the latest per response winning, and one
//! writer at a time applies them ([`Writer`], run on a blocking thread), making each stored
//! response's record there ([`ToRecord`]) rather than on the thread that stored it; until then,
//! [`DiskCache::look`] answers from the queue, so a reader sees its own process's latest change.
//!
//! The index is this process's view: a response another process stores in the same directory
//! afterwards is not seen until a later session reads the directory again. For a cache that only
//! costs a fetch from the network. (The engine gives each directory one `DiskCache` in a process,
//! so that sessions sharing a directory share it.)

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::SessionDirectory;
use index::Index;

mod index;

/// One cached response, as the disk keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// The URL it answers.
    pub url: String,
    /// The engine's cache policy, serialised (JSON: its header maps need a self-describing format).
    pub policy: String,
    /// The response status.
    pub status: u16,
    /// The HTTP version it came over, as major and minor digits: 9 (HTTP/0.9), 10, 11, 20 or 30.
    /// Records written before this field was kept do not decode: each is a miss, fetched again.
    pub version: u8,
    /// The response headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: Vec<u8>,
}

/// A response to store, made into its [`CacheRecord`] only when one is needed: by the writer, on
/// its thread, or by a read that finds it queued. So the thread that received a response does not
/// serialise it, and a response stored again before the writer runs is serialised once.
pub trait ToRecord: Send + Sync {
    /// The URL it answers.
    fn url(&self) -> &str;
    /// Roughly what its record takes (see [`CacheRecord`]'s): what the queue counts.
    fn size(&self) -> usize;
    /// Its record.
    fn to_record(&self) -> CacheRecord;
}

impl ToRecord for CacheRecord {
    fn url(&self) -> &str {
        &self.url
    }

    /// Its body, its headers, its URL and its policy.
    fn size(&self) -> usize {
        let headers: usize = self.headers.iter().map(|(n, v)| n.len() + v.len()).sum();
        self.body.len() + headers + self.url.len() + self.policy.len()
    }

    fn to_record(&self) -> CacheRecord {
        self.clone()
    }
}

/// A file's name: the first 16 bytes of the SHA-256 of the URL (32 hex digits on disk).
type Name = [u8; 16];

fn name_of(url: &str) -> Name {
    let digest = Sha256::digest(url.as_bytes());
    let mut name = [0; 16];
    name.copy_from_slice(&digest[..16]);
    name
}

fn file_name(name: &Name) -> String {
    name.iter().map(|b| format!("{b:02x}")).collect()
}

/// The name a file of the cache directory stands for; `None` for anything else (a file being
/// written aside, say).
fn parse_name(file: &str) -> Option<Name> {
    if file.len() != 32 {
        return None;
    }
    let mut name = [0; 16];
    for (i, byte) in name.iter_mut().enumerate() {
        *byte = u8::from_str_radix(file.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(name)
}

/// What the disk holds for a URL, as far as can be told without reading.
#[derive(Debug, PartialEq, Eq)]
pub enum Look {
    /// A store not written yet: the record itself.
    Queued(CacheRecord),
    /// Nothing: the index has no file for it, or its removal is queued.
    Absent,
    /// A file for it is on disk: read it to know more.
    Stored,
    /// The directory has not been read yet.
    Unknown,
}

/// A change waiting for the writer.
enum Change {
    Put(Arc<dyn ToRecord>),
    Remove,
}

/// How long the writer lets changes gather before it takes a batch: repeated stores of one
/// response become one write, and a burst of stores one wake of the writer's thread. A writer
/// started at every change and writing what it found made a default session's 10,000 small GETs
/// of one URL take 0.37-0.49 s a round; gathering for 2 or 10 ms, 0.27-0.30 s. `flush` waits for
/// it too.
const GATHER: Duration = Duration::from_millis(10);

struct State {
    /// The files on disk, once the directory has been read.
    index: Option<Index>,
    /// Changes not applied yet, the latest per file.
    queued: HashMap<Name, Change>,
    /// The sizes of the queued stores: the queue holds at most the capacity.
    queued_bytes: usize,
    /// Every file goes before the queued changes are applied.
    clear: bool,
    /// The capacity the files are kept within: the latest store's.
    capacity: usize,
    /// A writer has been asked for and has not finished.
    writing: bool,
}

/// A session directory's disk cache: its files, kept within the capacity each store gives.
pub struct DiskCache {
    state: Mutex<State>,
}

impl std::fmt::Debug for DiskCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskCache").finish_non_exhaustive()
    }
}

impl Default for DiskCache {
    fn default() -> DiskCache {
        DiskCache::new()
    }
}

impl DiskCache {
    /// A disk cache; the directory is given to the calls that touch it.
    pub fn new() -> DiskCache {
        DiskCache {
            state: Mutex::new(State {
                index: None,
                queued: HashMap::new(),
                queued_bytes: 0,
                clear: false,
                capacity: 0,
                writing: false,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the disk holds for `url`, without reading anything.
    pub fn look(&self, url: &str) -> Look {
        self.look_at(&name_of(url))
    }

    /// Whether the disk may hold `url`: [`DiskCache::look`] is not [`Look::Absent`] (told without
    /// copying a queued record).
    pub fn may_hold(&self, url: &str) -> bool {
        let name = name_of(url);
        let state = self.lock();
        match state.queued.get(&name) {
            Some(Change::Put(_)) => true,
            Some(Change::Remove) => false,
            None => {
                !state.clear
                    && state
                        .index
                        .as_ref()
                        .is_none_or(|i| i.files.contains_key(&name))
            }
        }
    }

    fn look_at(&self, name: &Name) -> Look {
        let state = self.lock();
        let queued = match state.queued.get(name) {
            Some(Change::Put(record)) => record.clone(),
            Some(Change::Remove) => return Look::Absent,
            None if state.clear => return Look::Absent,
            None => {
                return match &state.index {
                    None => Look::Unknown,
                    Some(index) if index.files.contains_key(name) => Look::Stored,
                    Some(_) => Look::Absent,
                };
            }
        };
        // Made outside the lock: the writer and other stores need not wait for it.
        drop(state);
        Look::Queued(queued.to_record())
    }

    /// The record for `url`, if one is stored and reads back whole. Blocking: it may read the
    /// directory (the first time) and the file.
    pub fn read(&self, dir: &SessionDirectory, url: &str) -> Option<CacheRecord> {
        let name = name_of(url);
        let look = match self.look_at(&name) {
            Look::Unknown => {
                self.read_index(dir);
                self.look_at(&name)
            }
            look => look,
        };
        match look {
            Look::Queued(record) => Some(record),
            Look::Absent | Look::Unknown => None,
            Look::Stored => {
                let path = cache_dir(dir).ok()?.join(file_name(&name));
                let blob = crate::write::read_bounded(&path).ok()?;
                crate::codec::decode::<CacheRecord>(&blob)
                    .ok()
                    .filter(|r| r.url == url)
            }
        }
    }

    /// Queues `record` to be stored, replacing any change queued for its URL; once written, the
    /// oldest files go until the rest fit in `capacity`. Returns the writer to run (on a blocking
    /// thread) when none is running. A record that does not fit in what the queue may hold (the
    /// capacity) is not kept. The record is made ([`ToRecord::to_record`]) when it is written.
    #[must_use = "a writer returned must run"]
    pub fn put(
        self: &Arc<Self>,
        record: impl ToRecord + 'static,
        capacity: usize,
    ) -> Option<Writer> {
        let size = record.size();
        let name = name_of(record.url());
        let mut state = self.lock();
        let replaced = match state.queued.get(&name) {
            Some(Change::Put(old)) => old.size(),
            _ => 0,
        };
        if state.queued_bytes - replaced + size > capacity {
            return None;
        }
        state.queued_bytes = state.queued_bytes - replaced + size;
        state.capacity = capacity;
        state.queued.insert(name, Change::Put(Arc::new(record)));
        self.ask_for_writer(&mut state)
    }

    /// Queues the removal of `url`'s record; returns the writer to run, as [`DiskCache::put`]
    /// does.
    #[must_use = "a writer returned must run"]
    pub fn remove(self: &Arc<Self>, url: &str) -> Option<Writer> {
        let mut state = self.lock();
        if let Some(Change::Put(old)) = state.queued.insert(name_of(url), Change::Remove) {
            state.queued_bytes -= old.size();
        }
        self.ask_for_writer(&mut state)
    }

    /// Queues the removal of every record (and drops the changes queued so far); returns the
    /// writer to run, as [`DiskCache::put`] does.
    #[must_use = "a writer returned must run"]
    pub fn clear(self: &Arc<Self>) -> Option<Writer> {
        let mut state = self.lock();
        state.queued.clear();
        state.queued_bytes = 0;
        state.clear = true;
        self.ask_for_writer(&mut state)
    }

    fn ask_for_writer(self: &Arc<Self>, state: &mut State) -> Option<Writer> {
        (!std::mem::replace(&mut state.writing, true)).then(|| Writer {
            cache: self.clone(),
            finished: false,
        })
    }

    /// Applies the queued changes until none is left. A change that cannot be written (a full
    /// disk) is logged and dropped: the response is then not cached.
    fn write_queued(&self, dir: &SessionDirectory) {
        self.read_index(dir);
        loop {
            {
                let mut state = self.lock();
                if state.queued.is_empty() && !state.clear {
                    state.writing = false;
                    return;
                }
            }
            // Lets the changes of the next moments gather into one batch first.
            std::thread::sleep(GATHER);
            let (clear, changes) = {
                let mut state = self.lock();
                state.queued_bytes = 0;
                (
                    std::mem::take(&mut state.clear),
                    std::mem::take(&mut state.queued),
                )
            };
            let Ok(cache) = cache_dir(dir) else {
                tracing::warn!("no session directory: the disk cache keeps nothing");
                continue;
            };
            if clear {
                match std::fs::remove_dir_all(&cache) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        tracing::warn!(error = %e, "cannot clear the disk cache");
                    }
                    _ => {}
                }
                self.lock().index = Some(Index::default());
            }
            let mut stored = false;
            for (name, change) in changes {
                let path = cache.join(file_name(&name));
                match change {
                    Change::Put(record) => match write_record(&cache, &path, &record.to_record()) {
                        Ok(len) => {
                            self.with_index(|index| index.insert(name, len));
                            stored = true;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot store a response in the disk cache");
                        }
                    },
                    Change::Remove => {
                        if let Err(e) = crate::write::remove_if_present(&path) {
                            tracing::warn!(error = %e, "cannot remove a response from the disk cache");
                        }
                        self.with_index(|index| index.remove(&name));
                    }
                }
            }
            if stored {
                let capacity = self.lock().capacity as u64;
                let gone = self.with_index(|index| index.evict_past(capacity));
                for name in gone.into_iter().flatten() {
                    let _ = crate::write::remove_if_present(&cache.join(file_name(&name)));
                }
            }
        }
    }

    /// Reads the directory into the index, unless it was read already.
    fn read_index(&self, dir: &SessionDirectory) {
        if self.lock().index.is_some() {
            return;
        }
        let index = cache_dir(dir).map(|d| Index::read(&d)).unwrap_or_default();
        self.lock().index.get_or_insert(index);
    }

    fn with_index<T>(&self, f: impl FnOnce(&mut Index) -> T) -> Option<T> {
        self.lock().index.as_mut().map(f)
    }
}

/// The one writer of a [`DiskCache`], handed out when a change finds none running. Run it on a
/// blocking thread: it applies the queue until the queue is empty. Dropped without running (a
/// runtime that shut down before it ran) or by a panic, it lets the next change ask for another.
#[must_use = "a writer applies the queued changes only when it runs"]
pub struct Writer {
    cache: Arc<DiskCache>,
    finished: bool,
}

impl Writer {
    /// Applies the queued changes to the files in `dir` until none is left. Blocking.
    pub fn run(mut self, dir: &SessionDirectory) {
        self.cache.write_queued(dir);
        self.finished = true;
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if !self.finished {
            self.cache.lock().writing = false;
        }
    }
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

fn cache_dir(dir: &SessionDirectory) -> io::Result<std::path::PathBuf> {
    Ok(dir.path()?.join("cache"))
}

/// Writes one record, aside then renamed, and returns its size on disk. Not synced: a cache entry
/// lost to a power cut costs a fetch, and a sync per response made a default session's small
/// requests wait on the disk (10,000 GETs of 1 KiB: 0.64-1.17 s against 0.18 s without a disk
/// cache). The rename still shows a reader the old file or the new one, never a torn one.
fn write_record(cache: &Path, path: &Path, record: &CacheRecord) -> io::Result<u64> {
    let blob = crate::codec::encode(record).map_err(io::Error::other)?;
    crate::directory::create_private_dir_all(cache)?;
    crate::write::replace(path, &blob, crate::write::Durability::PageCache)?;
    Ok(blob.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(url: &str, size: usize) -> CacheRecord {
        CacheRecord {
            url: url.into(),
            policy: "{}".into(),
            status: 200,
            version: 11,
            headers: vec![("etag".into(), b"\"a\"".to_vec())],
            body: vec![7; size],
        }
    }

    /// Queues `record` (within `capacity`) and runs the writer it asks for, as the engine's
    /// blocking thread does.
    fn put(cache: &Arc<DiskCache>, capacity: usize, dir: &SessionDirectory, record: CacheRecord) {
        if let Some(writer) = cache.put(record, capacity) {
            writer.run(dir);
        }
    }

    #[test]
    fn records_round_trip_and_the_oldest_go_past_the_capacity() {
        let parent = tempfile::tempdir().unwrap();
        let dir = SessionDirectory::persistent(Some(parent.path().to_path_buf()));
        let cache = Arc::new(DiskCache::new());
        put(&cache, 25_000, &dir, record("https://a.test/1", 10_000));
        assert_eq!(
            cache.read(&dir, "https://a.test/1"),
            Some(record("https://a.test/1", 10_000))
        );
        assert_eq!(cache.read(&dir, "https://a.test/2"), None);
        put(&cache, 25_000, &dir, record("https://a.test/2", 10_000));
        put(&cache, 25_000, &dir, record("https://a.test/3", 10_000));
        assert_eq!(
            cache.read(&dir, "https://a.test/1"),
            None,
            "the oldest went"
        );
        assert_eq!(cache.look("https://a.test/1"), Look::Absent);
        assert!(cache.read(&dir, "https://a.test/3").is_some());
        let files = std::fs::read_dir(dir.path().unwrap().join("cache")).unwrap();
        assert_eq!(
            files.count(),
            2,
            "the oldest file is gone from the disk too"
        );
    }

    #[test]
    fn a_later_cache_on_the_same_directory_reads_the_index_from_it() {
        let parent = tempfile::tempdir().unwrap();
        let dir = SessionDirectory::persistent(Some(parent.path().to_path_buf()));
        let first = Arc::new(DiskCache::new());
        put(&first, 1 << 20, &dir, record("https://a.test/old", 100));
        std::thread::sleep(Duration::from_millis(20));
        put(&first, 1 << 20, &dir, record("https://a.test/new", 100));
        let later = Arc::new(DiskCache::new());
        assert_eq!(later.look("https://a.test/old"), Look::Unknown);
        assert!(later.read(&dir, "https://a.test/old").is_some());
        assert_eq!(later.look("https://a.test/new"), Look::Stored);
        assert_eq!(later.look("https://a.test/none"), Look::Absent);
        // Read back oldest first: a store past the capacity removes the older one.
        let small = Arc::new(DiskCache::new());
        let room = 2 * first_file_size(&dir) + 10;
        put(&small, room, &dir, record("https://a.test/third", 100));
        assert_eq!(small.look("https://a.test/old"), Look::Absent);
        assert_eq!(small.look("https://a.test/new"), Look::Stored);
    }

    fn first_file_size(dir: &SessionDirectory) -> usize {
        let mut files = std::fs::read_dir(dir.path().unwrap().join("cache")).unwrap();
        files.next().unwrap().unwrap().metadata().unwrap().len() as usize
    }

    #[test]
    fn queued_changes_are_seen_before_they_are_written_and_the_latest_wins() {
        let parent = tempfile::tempdir().unwrap();
        let dir = SessionDirectory::persistent(Some(parent.path().to_path_buf()));
        let cache = Arc::new(DiskCache::new());
        let writer = cache
            .put(record("https://a.test/1", 10), 1 << 20)
            .expect("a writer");
        assert!(
            cache.put(record("https://a.test/1", 20), 1 << 20).is_none(),
            "one writer at a time"
        );
        assert_eq!(
            cache.look("https://a.test/1"),
            Look::Queued(record("https://a.test/1", 20))
        );
        assert!(cache.remove("https://a.test/1").is_none());
        assert_eq!(cache.look("https://a.test/1"), Look::Absent);
        assert!(cache.put(record("https://a.test/2", 10), 1 << 20).is_none());
        writer.run(&dir);
        assert_eq!(
            cache.read(&dir, "https://a.test/1"),
            None,
            "the removal won"
        );
        assert!(cache.read(&dir, "https://a.test/2").is_some());
        let writer = cache.clear().expect("the writer finished: a new one");
        assert_eq!(cache.look("https://a.test/2"), Look::Absent);
        writer.run(&dir);
        assert!(!dir.path().unwrap().join("cache").exists());
        assert_eq!(cache.read(&dir, "https://a.test/2"), None);
    }

    #[test]
    fn the_queue_holds_at_most_the_capacity() {
        let cache = Arc::new(DiskCache::new());
        let writer = cache
            .put(record("https://a.test/1", 600), 1_000)
            .expect("a writer");
        assert!(cache.put(record("https://a.test/2", 600), 1_000).is_none());
        assert_eq!(cache.look("https://a.test/2"), Look::Unknown, "not queued");
        // Replacing a queued record counts the new one only.
        assert!(cache.put(record("https://a.test/1", 800), 1_000).is_none());
        assert_eq!(
            cache.look("https://a.test/1"),
            Look::Queued(record("https://a.test/1", 800))
        );
        // A writer dropped without running lets the next change ask for one.
        drop(writer);
        assert!(cache.put(record("https://a.test/3", 10), 1_000).is_some());
    }

    /// A record made on demand, counting how often it is made.
    struct Counted {
        record: CacheRecord,
        made: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl ToRecord for Counted {
        fn url(&self) -> &str {
            &self.record.url
        }

        fn size(&self) -> usize {
            self.record.size()
        }

        fn to_record(&self) -> CacheRecord {
            self.made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.record.clone()
        }
    }

    /// The record is made by the writer, not when it is queued; one stored again before the
    /// writer runs is made once, and a read of a queued one makes it for the read.
    #[test]
    fn a_queued_record_is_made_when_written_and_once_for_repeated_stores() {
        use std::sync::atomic::Ordering::Relaxed;
        let parent = tempfile::tempdir().unwrap();
        let dir = SessionDirectory::persistent(Some(parent.path().to_path_buf()));
        let cache = Arc::new(DiskCache::new());
        let made = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = |size| Counted {
            record: record("https://a.test/1", size),
            made: made.clone(),
        };
        let writer = cache.put(counted(10), 1 << 20).expect("a writer");
        for size in 11..20 {
            assert!(cache.put(counted(size), 1 << 20).is_none());
        }
        assert_eq!(made.load(Relaxed), 0, "nothing made while queued");
        assert_eq!(
            cache.look("https://a.test/1"),
            Look::Queued(record("https://a.test/1", 19))
        );
        assert_eq!(made.load(Relaxed), 1, "made for the look");
        writer.run(&dir);
        assert_eq!(made.load(Relaxed), 2, "made once more, for the one write");
        assert_eq!(
            cache.read(&dir, "https://a.test/1"),
            Some(record("https://a.test/1", 19))
        );
    }

    #[test]
    fn file_names_round_trip_and_other_names_are_not_records() {
        let name = name_of("https://a.test/");
        assert_eq!(parse_name(&file_name(&name)), Some(name));
        assert_eq!(parse_name(".courier-abc.new"), None);
        assert_eq!(parse_name(&"g".repeat(32)), None);
        assert_eq!(parse_name("é".repeat(16).as_str()), None);
    }
}
