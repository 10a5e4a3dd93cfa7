//! The URL cache's disk half: one file per cached response in `cache/` of the session directory,
//! through the [`codec`](crate::codec) envelope, the oldest removed past the capacity. What a response
//! means for caching (RFC 9111) is the engine's business; this keeps bytes.

use std::io;
use std::path::PathBuf;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::SessionDirectory;

/// One cached response, as the disk keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// The URL it answers.
    pub url: String,
    /// The engine's cache policy, serialised (JSON: its header maps need a self-describing format).
    pub policy: String,
    /// The response status.
    pub status: u16,
    /// The response headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: Vec<u8>,
}

/// A session directory's disk cache, holding at most `capacity` bytes of files.
#[derive(Debug)]
pub struct DiskCache<'a> {
    dir: &'a SessionDirectory,
    capacity: usize,
}

impl<'a> DiskCache<'a> {
    /// The disk cache of `dir`, `capacity` bytes at most.
    pub fn new(dir: &'a SessionDirectory, capacity: usize) -> DiskCache<'a> {
        DiskCache { dir, capacity }
    }

    fn path(&self, url: &str) -> io::Result<PathBuf> {
        let name: String = Sha256::digest(url.as_bytes())
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(self.dir.path()?.join("cache").join(name))
    }

    /// The record for `url`, if one is stored and reads back whole.
    pub fn get(&self, url: &str) -> Option<CacheRecord> {
        let blob = crate::write::read_bounded(&self.path(url).ok()?).ok()?;
        crate::codec::decode::<CacheRecord>(&blob)
            .ok()
            .filter(|r| r.url == url)
    }

    /// Stores `record` (written aside, then renamed), then trims the oldest files past the capacity.
    ///
    /// # Errors
    /// The record cannot be written.
    pub fn put(&self, record: &CacheRecord) -> io::Result<()> {
        let path = self.path(&record.url)?;
        let blob = crate::codec::encode(record).map_err(io::Error::other)?;
        if let Some(parent) = path.parent() {
            crate::directory::create_private_dir_all(parent)?;
        }
        crate::write::replace(&path, &blob, crate::write::Durability::Synced)?;
        if let Some(dir) = path.parent() {
            trim(dir, self.capacity);
        }
        Ok(())
    }
}

impl DiskCache<'_> {
    /// Removes the record for `url`, if one is stored.
    ///
    /// # Errors
    /// It exists and cannot be removed.
    pub fn remove(&self, url: &str) -> io::Result<()> {
        match std::fs::remove_file(self.path(url)?) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Removes every stored response.
    ///
    /// # Errors
    /// The cache directory exists and cannot be removed.
    pub fn clear(&self) -> io::Result<()> {
        let dir = self.dir.path()?.join("cache");
        match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Removes the oldest files of `dir` until it holds at most `capacity` bytes.
fn trim(dir: &std::path::Path, capacity: usize) {
    let Ok(read) = std::fs::read_dir(dir) else {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(url: &str, size: usize) -> CacheRecord {
        CacheRecord {
            url: url.into(),
            policy: "{}".into(),
            status: 200,
            headers: vec![("etag".into(), b"\"a\"".to_vec())],
            body: vec![7; size],
        }
    }

    #[test]
    fn records_round_trip_and_the_oldest_go_past_the_capacity() {
        let parent = tempfile::tempdir().unwrap();
        let dir = SessionDirectory::persistent(Some(parent.path().to_path_buf()));
        let cache = DiskCache::new(&dir, 25_000);
        cache.put(&record("https://a.test/1", 10_000)).unwrap();
        assert_eq!(
            cache.get("https://a.test/1"),
            Some(record("https://a.test/1", 10_000))
        );
        assert_eq!(cache.get("https://a.test/2"), None);
        std::thread::sleep(std::time::Duration::from_millis(20));
        cache.put(&record("https://a.test/2", 10_000)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        cache.put(&record("https://a.test/3", 10_000)).unwrap();
        assert_eq!(cache.get("https://a.test/1"), None, "the oldest went");
        assert!(cache.get("https://a.test/3").is_some());
    }
}
