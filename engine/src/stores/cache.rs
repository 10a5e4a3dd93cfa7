//! The session's URL cache: RFC 9111 semantics through `http-cache-semantics`, entries in memory and,
//! for default sessions, on disk in the session directory (`courier-storage`'s `DiskCache`).
//! Ephemeral sessions keep it in memory only.
//!
//! Only whole `GET` responses of data tasks that the policy calls storable are kept, each at most a
//! twentieth of the cache's capacity (URLSession's rule of thumb is 5%). When a capacity is exceeded
//! the oldest entries go first.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use bytes::Bytes;
use courier_delegates::Response;
use std::sync::Arc;

use courier_storage::cache::{CacheRecord, DiskCache};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Version};
use http_cache_semantics::{CacheOptions, CachePolicy};
use url::Url;

use crate::context::SessionContext;

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

/// The options of a private (single-user) cache, as a client's is.
pub(crate) fn options() -> CacheOptions {
    CacheOptions {
        shared: false,
        ..CacheOptions::default()
    }
}

impl UrlCache {
    /// The entry for a `GET` of `url`, from memory, else from disk (read on a blocking thread).
    pub(crate) async fn get(&self, ctx: &Arc<SessionContext>, url: &Url) -> Option<Entry> {
        if let Some(e) = self.lock().entries.get(url.as_str()) {
            return Some(e.clone());
        }
        disk(ctx)?;
        let (reading, key) = (ctx.clone(), url.clone());
        let record =
            tokio::task::spawn_blocking(move || disk(&reading).and_then(|d| d.get(key.as_str())))
                .await
                .ok()
                .flatten()?;
        let entry = from_disk(record, url)?;
        self.remember(ctx, url, entry.clone());
        Some(entry)
    }

    /// Stores `entry` for `url` (memory, and disk for a default session, written on a blocking
    /// thread), if it fits.
    pub(crate) fn put(&self, ctx: &Arc<SessionContext>, url: &Url, entry: Entry) {
        if disk(ctx).is_some() && entry.body.len() <= ctx.config.url_cache_disk_capacity / 20 {
            let record = CacheRecord {
                url: url.to_string(),
                policy: serde_json::to_string(&entry.policy).unwrap_or_default(),
                status: entry.response.status().as_u16(),
                headers: entry
                    .response
                    .headers()
                    .iter()
                    .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                    .collect(),
                body: entry.body.to_vec(),
            };
            let writing = ctx.clone();
            let job = move || {
                if let Some(disk) = disk(&writing)
                    && let Err(e) = disk.put(&record)
                {
                    tracing::warn!(error = %e, "cannot store a response in the disk cache");
                }
            };
            ctx.writes.run(job);
        }
        self.remember(ctx, url, entry);
    }

    /// Forgets every response, in memory and on disk (`Session::reset`).
    pub(crate) fn clear(&self, ctx: &SessionContext) {
        *self.lock() = Memory::default();
        if let Some(disk) = disk(ctx)
            && let Err(e) = disk.clear()
        {
            tracing::warn!(error = %e, "cannot clear the disk cache");
        }
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

/// A default session's disk cache; none for an ephemeral session or a zero capacity.
fn disk(ctx: &SessionContext) -> Option<DiskCache<'_>> {
    let capacity = ctx.config.url_cache_disk_capacity;
    (!ctx.storage.is_ephemeral() && capacity > 0).then(|| DiskCache::new(&ctx.storage, capacity))
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
    Some(Entry {
        policy,
        response: Response::new(url.clone(), status, Version::HTTP_11, headers),
        body: Bytes::from(d.body),
    })
}
