//! The session's URL cache: RFC 9111 semantics through `http-cache-semantics`, entries in memory and,
//! for default sessions, on disk in the session directory (`cache/`). Ephemeral sessions keep it in
//! memory only.
//!
//! Only whole `GET` responses of data tasks that the policy calls storable are kept, each at most a
//! twentieth of the cache's capacity (URLSession's rule of thumb is 5%). When a capacity is exceeded
//! the oldest entries go first.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use bytes::Bytes;
use courier_delegates::Response;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Version};
use http_cache_semantics::{CacheOptions, CachePolicy};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::session::SessionContext;

/// One cached response: the policy that judges it, the head and the body.
#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) policy: CachePolicy,
    pub(crate) response: Response,
    pub(crate) body: Bytes,
}

/// The cache.
#[derive(Default)]
pub(crate) struct UrlCache {
    memory: Mutex<Memory>,
}

#[derive(Default)]
struct Memory {
    entries: HashMap<String, Entry>,
    order: VecDeque<String>,
    bytes: usize,
}

/// What the disk keeps of an entry (the policy as JSON: its header maps need a self-describing
/// format).
#[derive(Serialize, Deserialize)]
struct DiskEntry {
    url: String,
    policy_json: String,
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

/// The options of a private (single-user) cache, as a client's is.
pub(crate) fn options() -> CacheOptions {
    CacheOptions {
        shared: false,
        ..CacheOptions::default()
    }
}

impl UrlCache {
    /// The entry for a `GET` of `url`, from memory, else from disk.
    pub(crate) fn get(&self, ctx: &SessionContext, url: &Url) -> Option<Entry> {
        if let Some(e) = self.lock().entries.get(url.as_str()) {
            return Some(e.clone());
        }
        let entry = disk_path(ctx, url)
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|blob| courier_storage::codec::decode::<DiskEntry>(&blob).ok())
            .and_then(|d| from_disk(d, url))?;
        self.remember(ctx, url, entry.clone());
        Some(entry)
    }

    /// Stores `entry` for `url` (memory, and disk for a default session), if it fits.
    pub(crate) fn put(&self, ctx: &SessionContext, url: &Url, entry: Entry) {
        let size = entry.body.len();
        let disk = ctx.config.url_cache_disk_capacity;
        if disk > 0
            && size <= disk / 20
            && let Some(path) = disk_path(ctx, url)
        {
            let record = DiskEntry {
                url: url.to_string(),
                policy_json: serde_json::to_string(&entry.policy).unwrap_or_default(),
                status: entry.response.status().as_u16(),
                headers: entry
                    .response
                    .headers()
                    .iter()
                    .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                    .collect(),
                body: entry.body.to_vec(),
            };
            if let Ok(blob) = courier_storage::codec::encode(&record) {
                let _ = path.parent().map(std::fs::create_dir_all);
                let aside = path.with_extension("new");
                if std::fs::write(&aside, blob)
                    .and_then(|()| std::fs::rename(&aside, &path))
                    .is_err()
                {
                    let _ = std::fs::remove_file(&aside);
                }
                trim_disk(path.parent().map(PathBuf::from), disk);
            }
        }
        self.remember(ctx, url, entry);
    }

    fn remember(&self, ctx: &SessionContext, url: &Url, entry: Entry) {
        let capacity = ctx.config.url_cache_memory_capacity;
        let size = entry.body.len();
        if size > capacity / 20 {
            return;
        }
        let mut m = self.lock();
        let key = url.as_str().to_owned();
        if let Some(old) = m.entries.insert(key.clone(), entry) {
            m.bytes -= old.body.len();
            m.order.retain(|k| *k != key);
        }
        m.bytes += size;
        m.order.push_back(key);
        while m.bytes > capacity {
            let Some(oldest) = m.order.pop_front() else {
                break;
            };
            if let Some(gone) = m.entries.remove(&oldest) {
                m.bytes -= gone.body.len();
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Where a default session keeps `url`'s entry on disk.
fn disk_path(ctx: &SessionContext, url: &Url) -> Option<PathBuf> {
    if ctx.storage.is_ephemeral() || ctx.config.url_cache_disk_capacity == 0 {
        return None;
    }
    use sha2::Digest;
    let name: String = sha2::Sha256::digest(url.as_str().as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(ctx.storage.path().ok()?.join("cache").join(name))
}

fn from_disk(d: DiskEntry, url: &Url) -> Option<Entry> {
    let policy: CachePolicy = serde_json::from_str(&d.policy_json).ok()?;
    let mut headers = HeaderMap::new();
    for (name, value) in d.headers {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).ok()?,
            HeaderValue::from_bytes(&value).ok()?,
        );
    }
    let status = StatusCode::from_u16(d.status).ok()?;
    Some(Entry {
        policy,
        response: Response::new(url.clone(), status, Version::HTTP_11, headers),
        body: Bytes::from(d.body),
    })
}

/// Removes the oldest files of the disk cache until it holds at most `capacity` bytes.
fn trim_disk(dir: Option<PathBuf>, capacity: usize) {
    let Some(dir) = dir else { return };
    let Ok(read) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut files: Vec<(SystemTime, u64, PathBuf)> = read
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((meta.modified().ok()?, meta.len(), e.path()))
        })
        .collect();
    let mut total: u64 = files.iter().map(|f| f.1).sum();
    files.sort();
    for (_, len, path) in files {
        if total <= capacity as u64 {
            break;
        }
        if std::fs::remove_file(path).is_ok() {
            total -= len;
        }
    }
}
