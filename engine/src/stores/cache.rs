//! [`UrlCache`] (URLSession's `URLCache`): RFC 9111 semantics through `http-cache-semantics`,
//! entries in memory and, when the cache has a directory, on disk (`courier-storage`'s
//! `DiskCache`, which keeps an index of its files and writes them from one background writer). A
//! default session's own cache is on disk in its session directory; an ephemeral session's is in
//! memory only.
//!
//! Only whole `GET` responses of data tasks that the policy calls storable are kept, each at most a
//! twentieth of the cache's capacity (URLSession's rule of thumb is 5%). When a capacity is exceeded
//! the oldest entries go first.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex, Weak};

use bytes::Bytes;
use courier_delegates::{CachedResponse, Request, Response};
use courier_storage::SessionDirectory;
use courier_storage::cache::{CacheRecord, DiskCache, Look, ToRecord, Writer as DiskWriter};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Version};
use http_cache_semantics::{CacheOptions, CachePolicy};
use url::Url;

use super::Home;
use super::saver::Writes;

/// One cached response: the policy that judges it, the head and the body. Shared (`Arc<Entry>`)
/// between the memory half, the disk's queue and the transfers that read it, never copied.
pub(crate) struct Entry {
    pub(crate) policy: CachePolicy,
    pub(crate) response: Response,
    pub(crate) body: Bytes,
}

/// Responses kept for reuse (URLSession's `URLCache`), in memory and, with a directory, on disk.
///
/// A session uses its own by default, sized by the configuration's `url_cache_memory_capacity`
/// and `url_cache_disk_capacity`; make one with [`UrlCache::new`] to share it between sessions
/// ([`Configuration::url_cache`](crate::Configuration::url_cache)), or reach a session's through
/// [`Session::url_cache`](crate::Session::url_cache) to look at or remove what it holds.
pub struct UrlCache {
    memory: Mutex<Memory>,
    memory_capacity: usize,
    disk_capacity: usize,
    /// The disk half, with a directory and some capacity on disk.
    disk: Option<Arc<DiskHalf>>,
    home: Home,
}

/// The disk half of the URL caches that use one directory: its files' index and queue, and its
/// writes under way. One per directory in a process while it is used (`DiskHalf::of`), so that
/// sessions sharing a directory (two default sessions do) see each other's stores at once, keep
/// one index and run one writer, and a session's `flush` waits for every store to its directory.
struct DiskHalf {
    files: Arc<DiskCache>,
    writes: Writes,
}

impl DiskHalf {
    fn of(dir: &SessionDirectory) -> Arc<DiskHalf> {
        static SHARED: LazyLock<Mutex<HashMap<PathBuf, Weak<DiskHalf>>>> =
            LazyLock::new(Mutex::default);
        let made = || {
            Arc::new(DiskHalf {
                files: Arc::new(DiskCache::new()),
                writes: Writes::default(),
            })
        };
        // Only a persistent directory can be another session's too.
        let Some(path) = dir.persistent_path() else {
            return made();
        };
        let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        shared.retain(|_, half| half.strong_count() > 0);
        if let Some(half) = shared.get(path).and_then(Weak::upgrade) {
            return half;
        }
        let half = made();
        shared.insert(path.to_owned(), Arc::downgrade(&half));
        half
    }
}

impl std::fmt::Debug for UrlCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlCache")
            .field("memory_capacity", &self.memory_capacity)
            .field("disk_capacity", &self.disk_capacity)
            .field("home", &self.home)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Memory {
    /// Each entry, with the number of its place in `order`. Shared with the disk's queue until
    /// the disk's writer has made it a record.
    entries: HashMap<String, (Arc<Entry>, u64)>,
    /// Keys oldest first, each with its place's number. A key stored again or removed leaves its
    /// old place behind, passed over when it comes up and swept out once such places outnumber
    /// the live ones: finding and removing it at once would scan the whole order at every store.
    order: VecDeque<(String, u64)>,
    next_place: u64,
    bytes: usize,
}

impl Memory {
    /// Whether `place` is `key`'s current place in the order.
    fn is_current(entries: &HashMap<String, (Arc<Entry>, u64)>, key: &str, place: u64) -> bool {
        entries.get(key).is_some_and(|(_, p)| *p == place)
    }
}

/// The options of a private (single-user) cache, as a client's is.
pub(crate) fn options() -> CacheOptions {
    CacheOptions {
        shared: false,
        ..CacheOptions::default()
    }
}

impl UrlCache {
    /// A cache of at most `memory_capacity` bytes in memory and, with a `directory`, at most
    /// `disk_capacity` bytes on disk there (the directory is created, private to the user, on the
    /// first write; what an earlier process stored there is used).
    pub fn new(
        memory_capacity: usize,
        disk_capacity: usize,
        directory: Option<std::path::PathBuf>,
    ) -> Arc<UrlCache> {
        let home = directory.map_or_else(Home::memory, Home::directory);
        Arc::new(UrlCache::in_home(home, memory_capacity, disk_capacity))
    }

    pub(crate) fn in_home(home: Home, memory_capacity: usize, disk_capacity: usize) -> UrlCache {
        UrlCache {
            memory: Mutex::default(),
            memory_capacity,
            disk_capacity,
            disk: home.dir().filter(|_| disk_capacity > 0).map(DiskHalf::of),
            home,
        }
    }

    /// The most bytes kept in memory.
    pub fn memory_capacity(&self) -> usize {
        self.memory_capacity
    }

    /// The most bytes kept on disk (nothing is, without a directory).
    pub fn disk_capacity(&self) -> usize {
        self.disk_capacity
    }

    /// Whether anything can be kept: some room in memory, or a directory with room on disk. A
    /// cache that can keep nothing is not consulted.
    pub(crate) fn can_keep_anything(&self) -> bool {
        self.memory_capacity > 0 || self.disk.is_some()
    }

    /// Whether an entry for `url` may be here, told without a look that waits: one in memory is;
    /// one on disk may be when the disk's index lists it (or has not been read yet).
    pub(crate) fn may_hold(&self, url: &Url) -> bool {
        self.lock().entries.contains_key(url.as_str())
            || self
                .disk
                .as_ref()
                .is_some_and(|d| d.files.may_hold(url.as_str()))
    }

    /// The bytes the entries held in memory take now, as the cache counts them: bodies, headers,
    /// keys and a fixed part for each entry's structures (see `footprint`).
    pub fn current_memory_usage(&self) -> usize {
        self.lock().bytes
    }

    /// The response stored for a `GET` of `request`'s URL, fresh or not (`cachedResponse(for:)`),
    /// from memory or disk.
    pub async fn cached_response(self: &Arc<Self>, request: &Request) -> Option<CachedResponse> {
        let entry = self.get(request.url()?).await?;
        Some(CachedResponse {
            response: entry.response.clone(),
            data: entry.body.clone(),
        })
    }

    /// Removes the response stored for `request`'s URL, in memory and on disk (lookups miss at once;
    /// the file goes in the background, gone once a session's `flush` returns).
    pub fn remove_cached_response(&self, request: &Request) {
        let Some(url) = request.url() else {
            return;
        };
        let mut m = self.lock();
        if let Some((gone, _)) = m.entries.remove(url.as_str()) {
            m.bytes -= footprint(url.as_str(), &gone);
        }
        drop(m);
        if let Some(disk) = &self.disk
            && let Some(writer) = disk.files.remove(url.as_str())
        {
            self.run_disk_writer(writer);
        }
    }

    /// Removes every response, in memory and on disk. Lookups miss at once; the files go in the
    /// background, and a session's `flush` (or `reset`) returns once they are gone.
    pub fn remove_all(&self) {
        *self.lock() = Memory::default();
        if let Some(disk) = &self.disk
            && let Some(writer) = disk.files.clear()
        {
            self.run_disk_writer(writer);
        }
    }

    /// Waits until what was stored is on disk.
    pub(crate) async fn written(&self) {
        if let Some(disk) = &self.disk {
            disk.writes.idle().await;
        }
    }

    /// The entry for a `GET` of `url`, from memory, else from disk (read on a blocking thread,
    /// unless the disk's index tells at once). Shared, not copied: its policy holds two header
    /// maps.
    pub(crate) async fn get(self: &Arc<Self>, url: &Url) -> Option<Arc<Entry>> {
        if let Some((e, _)) = self.lock().entries.get(url.as_str()) {
            return Some(e.clone());
        }
        let disk = self.disk.as_ref()?;
        let record = match disk.files.look(url.as_str()) {
            Look::Absent => return None,
            Look::Queued(record) => record,
            Look::Stored | Look::Unknown => {
                let (files, dir, key) = (disk.files.clone(), self.home.shared_dir()?, url.clone());
                tokio::task::spawn_blocking(move || files.read(&dir, key.as_str()))
                    .await
                    .ok()
                    .flatten()?
            }
        };
        let entry = Arc::new(from_disk(record, url)?);
        self.remember(url, entry.clone());
        Some(entry)
    }

    /// Stores `entry` for `url` (memory, and disk when the cache has a directory, written on a
    /// blocking thread), if it fits.
    pub(crate) fn put(self: &Arc<Self>, url: &Url, entry: Entry) {
        let entry = Arc::new(entry);
        if let Some(disk) = &self.disk
            && entry.body.len() <= self.disk_capacity / 20
        {
            // Queued as it is: the disk's writer makes the record on its own thread.
            let pending = ForDisk {
                url: url.as_str().to_owned(),
                entry: entry.clone(),
            };
            if let Some(writer) = disk.files.put(pending, self.disk_capacity) {
                self.run_disk_writer(writer);
            }
        }
        self.remember(url, entry);
    }

    fn remember(&self, url: &Url, entry: Arc<Entry>) {
        let capacity = self.memory_capacity;
        let size = footprint(url.as_str(), &entry);
        let mut guard = self.lock();
        let m = &mut *guard;
        if size > capacity / 20 {
            // Too large to keep here; nor may an older response for the URL answer for it.
            if let Some((old, _)) = m.entries.remove(url.as_str()) {
                m.bytes -= footprint(url.as_str(), &old);
            }
            return;
        }
        let key = url.as_str().to_owned();
        let place = m.next_place;
        m.next_place += 1;
        if let Some((old, _)) = m.entries.insert(key.clone(), (entry, place)) {
            m.bytes -= footprint(&key, &old);
        }
        m.bytes += size;
        m.order.push_back((key, place));
        while m.bytes > capacity {
            let Some((oldest, place)) = m.order.pop_front() else {
                break;
            };
            if Memory::is_current(&m.entries, &oldest, place)
                && let Some((gone, _)) = m.entries.remove(&oldest)
            {
                m.bytes -= footprint(&oldest, &gone);
            }
        }
        if m.order.len() > 2 * m.entries.len() + 16 {
            let entries = &m.entries;
            m.order
                .retain(|(key, place)| Memory::is_current(entries, key, *place));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs the disk half's writer (one at a time, handed out by its queue) on a blocking thread,
    /// counted in the disk half's writes.
    fn run_disk_writer(&self, writer: DiskWriter) {
        if let (Some(disk), Some(dir)) = (&self.disk, self.home.shared_dir()) {
            disk.writes.run(move || writer.run(&dir));
        }
    }
}

/// What a header field costs in a header map beyond its name and value bytes (its bucket and its
/// slot in the index).
const FIELD_OVERHEAD: usize = 128;

/// What an entry costs beyond its body, its headers and its key: the policy's own copy of the
/// request's head, the response record and the map's and the order's slots.
const ENTRY_OVERHEAD: usize = 1024;

/// The memory an entry takes, as the capacity counts it. Counting the bodies alone let small
/// responses take several times the capacity: 10,000 responses of 1 KiB from nginx through
/// `courier get` held about 4.3 KiB each, and the default 4 MiB cache held 17 MB.
fn footprint(key: &str, entry: &Entry) -> usize {
    // The key is kept twice (the map and the order); the headers twice (the response record and
    // the policy).
    entry.body.len() + 2 * key.len() + 2 * header_bytes(entry, FIELD_OVERHEAD) + ENTRY_OVERHEAD
}

/// The bytes of an entry's header fields, names and values, each field counted `per_field` more.
fn header_bytes(entry: &Entry, per_field: usize) -> usize {
    entry
        .response
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + per_field)
        .sum()
}

/// An entry queued for the disk; the writer makes it a record.
struct ForDisk {
    url: String,
    entry: Arc<Entry>,
}

impl ToRecord for ForDisk {
    fn url(&self) -> &str {
        &self.url
    }

    /// The body, the URL, and the headers twice (the response's, and the policy's copy).
    fn size(&self) -> usize {
        self.entry.body.len() + self.url.len() + 2 * header_bytes(&self.entry, 0)
    }

    fn to_record(&self) -> CacheRecord {
        let entry = &self.entry;
        CacheRecord {
            url: self.url.clone(),
            policy: serde_json::to_string(&entry.policy).unwrap_or_default(),
            status: entry.response.status().as_u16(),
            version: match entry.response.version() {
                Version::HTTP_09 => 9,
                Version::HTTP_10 => 10,
                Version::HTTP_2 => 20,
                Version::HTTP_3 => 30,
                _ => 11,
            },
            headers: entry
                .response
                .headers()
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                .collect(),
            body: entry.body.to_vec(),
        }
    }
}

fn from_disk(d: CacheRecord, url: &Url) -> Option<Entry> {
    let policy: CachePolicy = serde_json::from_str(&d.policy).ok()?;
    let mut headers = HeaderMap::new();
    for (name, value) in d.headers {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).ok()?,
            HeaderValue::from_bytes(&value).ok()?,
        );
    }
    let status = StatusCode::from_u16(d.status).ok()?;
    let version = match d.version {
        9 => Version::HTTP_09,
        10 => Version::HTTP_10,
        11 => Version::HTTP_11,
        20 => Version::HTTP_2,
        30 => Version::HTTP_3,
        _ => return None,
    };
    Some(Entry {
        policy,
        response: Response::new(url.clone(), status, version, headers),
        body: Bytes::from(d.body),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(url: &Url, body: usize) -> Entry {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        );
        headers.insert(http::header::ETAG, HeaderValue::from_static("\"abc\""));
        let response = Response::new(url.clone(), StatusCode::OK, Version::HTTP_11, headers);
        let request = http::Request::get(url.as_str()).body(()).unwrap();
        let answer = http::Response::builder()
            .status(200)
            .header("cache-control", "max-age=60")
            .body(())
            .unwrap();
        Entry {
            policy: CachePolicy::new_options(
                &request,
                &answer,
                std::time::SystemTime::now(),
                options(),
            ),
            response,
            body: Bytes::from(vec![7; body]),
        }
    }

    /// Small responses count with their headers, keys and structures, not their bodies alone: the
    /// capacity bounds what the cache holds, and removing entries gives their count back.
    #[test]
    fn the_capacity_counts_whole_entries() {
        let cache = UrlCache::new(64 << 10, 0, None);
        let url = |i| Url::parse(&format!("http://127.0.0.1:8080/bytes/1024?i={i}")).unwrap();
        for i in 0..200 {
            cache.put(&url(i), entry(&url(i), 16));
        }
        let usage = cache.current_memory_usage();
        assert!(usage <= 64 << 10, "{usage} bytes counted");
        let held = cache.lock().entries.len();
        // Each entry is counted as more than a kilobyte, though its body is 16 bytes.
        assert!(held <= 64, "{held} entries held");
        assert!(held > 0);
        assert!(usage >= held * 1024, "{usage} bytes for {held} entries");
        let last = Request::get(url(199).as_str());
        cache.remove_cached_response(&last);
        assert_eq!(cache.lock().entries.len(), held - 1);
        assert!(cache.current_memory_usage() < usage);
        cache.remove_all();
        assert_eq!(cache.current_memory_usage(), 0);
    }

    /// A response stored again moves to the back of the order, so the oldest go first; the places
    /// it leaves behind are passed over and do not pile up.
    #[test]
    fn an_entry_stored_again_is_the_newest_and_old_places_do_not_pile_up() {
        let url = |i| Url::parse(&format!("http://127.0.0.1:8080/{i}")).unwrap();
        let one = footprint(url(0).as_str(), &entry(&url(0), 16));
        // Room for twenty entries (each may take a twentieth).
        let cache = UrlCache::new(20 * one + one / 2, 0, None);
        for i in 0..3 {
            cache.put(&url(i), entry(&url(i), 16));
        }
        for _ in 0..1000 {
            cache.put(&url(0), entry(&url(0), 16));
        }
        assert!(cache.lock().order.len() <= 2 * 3 + 16 + 1, "swept");
        // Past the capacity, 1 and 2 are the oldest and go first; 0, stored since, stays.
        for i in 3..22 {
            cache.put(&url(i), entry(&url(i), 16));
        }
        let m = cache.lock();
        assert!(m.entries.contains_key(url(0).as_str()));
        assert!(!m.entries.contains_key(url(1).as_str()));
        assert!(!m.entries.contains_key(url(2).as_str()));
        assert!(m.entries.contains_key(url(21).as_str()));
        assert_eq!(m.entries.len(), 20);
    }

    /// A response too large for the memory half replaces, not keeps, an older one for its URL.
    #[test]
    fn a_response_too_large_to_keep_removes_the_older_one() {
        let url = Url::parse("http://127.0.0.1:8080/grows").unwrap();
        let one = footprint(url.as_str(), &entry(&url, 16));
        let cache = UrlCache::new(20 * one, 0, None);
        cache.put(&url, entry(&url, 16));
        assert!(cache.lock().entries.contains_key(url.as_str()));
        cache.put(&url, entry(&url, 2 * one));
        assert!(!cache.lock().entries.contains_key(url.as_str()));
        assert_eq!(cache.current_memory_usage(), 0);
    }
}
