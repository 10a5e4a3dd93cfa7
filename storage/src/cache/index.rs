//! The disk cache's index: its files' names, sizes and ages, read from the directory once and
//! kept in step with every write, so that a look reads nothing and the capacity is kept oldest
//! first without listing the directory.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::{Name, parse_name};

/// How old a file written aside must be before reading the directory removes it: a writer in
/// another process may still be about to rename it.
const ABANDONED: Duration = Duration::from_secs(600);

/// The files on disk, as this process knows them.
#[derive(Default)]
pub(super) struct Index {
    /// Each file's size and age (a number that grows with every store).
    pub(super) files: HashMap<Name, (u64, u64)>,
    /// The same files, oldest first.
    by_age: BTreeMap<u64, Name>,
    total: u64,
    next_age: u64,
}

impl Index {
    /// Lists `dir` (missing: empty), the oldest files first by their modification time. Files
    /// left aside by a process that died while writing them are removed once they are old.
    pub(super) fn read(dir: &Path) -> Index {
        let mut index = Index::default();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return index;
        };
        let mut files: Vec<(SystemTime, u64, Name)> = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let Ok(meta) = entry.metadata() else { continue };
            let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            let file = entry.file_name();
            let file = file.to_string_lossy();
            match parse_name(&file) {
                Some(name) if meta.is_file() => files.push((modified, meta.len(), name)),
                Some(_) => {}
                None => {
                    let abandoned = modified.elapsed().is_ok_and(|age| age > ABANDONED);
                    if file.starts_with(crate::write::ASIDE_PREFIX) && abandoned {
                        let _ = std::fs::remove_file(entry.path());
                    }
                }
            }
        }
        files.sort();
        for (_, len, name) in files {
            index.insert(name, len);
        }
        index
    }

    pub(super) fn insert(&mut self, name: Name, len: u64) {
        self.remove(&name);
        let age = self.next_age;
        self.next_age += 1;
        self.files.insert(name, (len, age));
        self.by_age.insert(age, name);
        self.total += len;
    }

    pub(super) fn remove(&mut self, name: &Name) -> bool {
        let Some((len, age)) = self.files.remove(name) else {
            return false;
        };
        self.by_age.remove(&age);
        self.total -= len;
        true
    }

    /// Takes the oldest files out until the rest fit in `capacity`; their names.
    pub(super) fn evict_past(&mut self, capacity: u64) -> Vec<Name> {
        let mut gone = Vec::new();
        while self.total > capacity {
            let Some((_, name)) = self.by_age.pop_first() else {
                break;
            };
            if let Some((len, _)) = self.files.remove(&name) {
                self.total -= len;
            }
            gone.push(name);
        }
        gone
    }
}
