//! A download's partial file: appended to, synced at checkpoints, cut back on a failed write.
//!
//! The file's length on disk is kept equal to [`PartialFile::len`], the bytes known to be written: a
//! write that fails half-way (a full disk) is cut back, so what is on disk is always a prefix of the
//! resource that resume data can describe. A checkpoint syncs the data and records a digest of the
//! file's tail; resume data carries it, and a resumed task refuses a file whose tail no longer matches.
//! Beside the file, its latest checkpoint record (`<name>.checkpoint`) lets a session build resume data
//! for a task whose actor died.
//!
//! These calls block; the engine runs them off its async workers, in large batches.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::write::Durability;

use sha2::{Digest, Sha256};

use crate::directory::CHECKPOINT_SUFFIX;

/// How much of a partial file's end its digest covers.
pub const TAIL_WINDOW: u64 = 64 * 1024;

/// What a checkpoint recorded: the bytes on disk and a digest of their last [`TAIL_WINDOW`] bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Bytes on disk, all synced.
    pub len: u64,
    /// SHA-256 of the last `min(len, TAIL_WINDOW)` bytes.
    pub tail_sha256: [u8; 32],
}

/// A download's file in the session directory.
#[derive(Debug)]
pub struct PartialFile {
    file: File,
    path: PathBuf,
    len: u64,
}

impl PartialFile {
    pub(crate) fn created(file: File, path: PathBuf) -> io::Result<PartialFile> {
        Ok(PartialFile { file, path, len: 0 })
    }

    /// Opens an existing partial file for appending after its first `len` bytes; anything past them
    /// (written after the last checkpoint) is cut off.
    pub(crate) fn reopen(path: PathBuf, len: u64) -> io::Result<PartialFile> {
        // Never through a link: one planted under the partial file's name since it was checked
        // must not make the resume write into some other file.
        let mut file = crate::write::open_no_follow(
            std::fs::OpenOptions::new().read(true).write(true),
            &path,
        )?;
        file.set_len(len)?;
        file.seek(SeekFrom::Start(len))?;
        // In use again: a sweep of stale partial files must leave it alone from now on.
        file.set_modified(std::time::SystemTime::now())?;
        Ok(PartialFile { file, path, len })
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's name inside the session directory (what resume data records).
    pub fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `data`. On failure the file is cut back to its length before the call, so it still
    /// holds exactly [`PartialFile::len`] good bytes.
    ///
    /// # Errors
    /// The write failed (a full disk, an I/O error).
    pub fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.append_parts(&[data])
    }

    /// Appends `parts` one after the other, in as few (vectored) writes as the kernel takes: the
    /// chunks a download received, written without first being copied into one buffer. On failure
    /// the file is cut back as by [`PartialFile::append`].
    ///
    /// # Errors
    /// The write failed (a full disk, an I/O error).
    pub fn append_parts<P: AsRef<[u8]>>(&mut self, parts: &[P]) -> io::Result<()> {
        match write_all_parts(&mut self.file, parts) {
            Ok(written) => {
                self.len += written as u64;
                Ok(())
            }
            Err(e) => {
                // Best effort: shrinking needs no space, so it works on a full disk too.
                let _ = self.file.set_len(self.len);
                let _ = self.file.seek(SeekFrom::Start(self.len));
                Err(e)
            }
        }
    }

    /// Empties the file, to start the download again from byte 0.
    ///
    /// # Errors
    /// The file cannot be truncated.
    pub fn truncate(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.len = 0;
        Ok(())
    }

    /// Records a digest of the file's tail, after syncing the data written so far when
    /// `durability` asks for it.
    ///
    /// # Errors
    /// The sync or the read-back failed.
    pub fn checkpoint(&mut self, durability: Durability) -> io::Result<Checkpoint> {
        self.checkpointer()?.run(durability)
    }

    /// A checkpoint of the bytes written so far, to take on another thread while this file goes on
    /// being appended to.
    ///
    /// # Errors
    /// The file handle cannot be duplicated.
    pub fn checkpointer(&self) -> io::Result<Checkpointer> {
        Ok(Checkpointer {
            file: self.file.try_clone()?,
            path: self.path.clone(),
            len: self.len,
        })
    }

    /// Stores `record` (an encoded checkpoint record) beside the file; see
    /// [`Checkpointer::store`].
    ///
    /// # Errors
    /// The record cannot be written (a full disk): the previous record, if any, stays.
    pub fn store_checkpoint_record(&self, record: &[u8], durability: Durability) -> io::Result<()> {
        store_record(&self.path, record, durability)
    }

    /// Closes the file and returns its path; the checkpoint record beside it is removed.
    pub fn finish(self) -> PathBuf {
        let _ = std::fs::remove_file(checkpoint_path(&self.path));
        self.path
    }

    /// Removes the file and its checkpoint record.
    pub fn remove(self) {
        remove_partial(&self.path);
    }
}

/// A checkpoint of a partial file's first `len` bytes, through a handle of its own.
///
/// Taking it while the download keeps appending is sound: a partial file only grows, so the bytes a
/// checkpoint describes never change under it (a restart from zero waits for the checkpoint first).
#[derive(Debug)]
pub struct Checkpointer {
    file: File,
    path: PathBuf,
    len: u64,
}

impl Checkpointer {
    /// Digests the file's tail, after syncing its data when `durability` asks for it.
    ///
    /// # Errors
    /// The sync or the read-back failed.
    pub fn run(&self, durability: Durability) -> io::Result<Checkpoint> {
        if durability == Durability::Synced {
            self.file.sync_data()?;
        }
        Ok(Checkpoint {
            len: self.len,
            tail_sha256: tail_digest(&self.path, self.len)?,
        })
    }

    /// Stores `record` (an encoded checkpoint record) beside the file, replacing the previous one
    /// atomically (written aside, then renamed).
    ///
    /// # Errors
    /// The record cannot be written (a full disk): the previous record, if any, stays.
    pub fn store(&self, record: &[u8], durability: Durability) -> io::Result<()> {
        store_record(&self.path, record, durability)
    }
}

fn store_record(partial: &Path, record: &[u8], durability: Durability) -> io::Result<()> {
    crate::write::replace(&checkpoint_path(partial), record, durability)
}

/// Keeps a partial file for a later resume and removes the checkpoint record beside it (the resume
/// data now lives with the application).
pub fn keep_for_resume(path: &Path) {
    let _ = std::fs::remove_file(checkpoint_path(path));
}

/// Removes a partial file and its checkpoint record, ignoring files already gone.
pub fn remove_partial(path: &Path) {
    let _ = std::fs::remove_file(checkpoint_path(path));
    let _ = std::fs::remove_file(path);
}

/// Where the checkpoint record of the partial file at `path` is kept.
pub fn checkpoint_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(CHECKPOINT_SUFFIX);
    PathBuf::from(name)
}

/// SHA-256 of the `min(len, TAIL_WINDOW)` bytes that end at `len`.
pub(crate) fn tail_digest(path: &Path, len: u64) -> io::Result<[u8; 32]> {
    let start = len.saturating_sub(TAIL_WINDOW);
    let mut file = crate::write::open_no_follow(std::fs::OpenOptions::new().read(true), path)?;
    file.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::with_capacity((len - start) as usize);
    file.take(len - start).read_to_end(&mut buf)?;
    if (buf.len() as u64) != len - start {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the file is shorter than recorded",
        ));
    }
    Ok(Sha256::digest(&buf).into())
}

/// Writes every part in order; returns the bytes written. One part is written as it is; several go
/// in vectored writes (at most `IOV_MAX` slices each, as the standard library caps them), resumed
/// where a short write left off.
fn write_all_parts<P: AsRef<[u8]>>(out: &mut impl Write, parts: &[P]) -> io::Result<usize> {
    if let [one] = parts {
        out.write_all(one.as_ref())?;
        return Ok(one.as_ref().len());
    }
    let mut slices: Vec<io::IoSlice<'_>> = parts
        .iter()
        .map(|p| io::IoSlice::new(p.as_ref()))
        .filter(|s| !s.is_empty())
        .collect();
    let total = slices.iter().map(|s| s.len()).sum();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match out.write_vectored(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => io::IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use crate::SessionDirectory;

    #[test]
    fn append_checkpoint_truncate() {
        let parent = tempfile::tempdir().unwrap();
        let dir = SessionDirectory::persistent(Some(parent.path().to_path_buf()));
        let mut f = dir.create_partial().unwrap();
        f.append(b"hello ").unwrap();
        f.append(b"world").unwrap();
        let c = f.checkpoint(crate::Durability::Synced).unwrap();
        assert_eq!(c.len, 11);
        assert_eq!(std::fs::read(f.path()).unwrap(), b"hello world");
        f.truncate().unwrap();
        f.append(b"x").unwrap();
        assert_eq!(std::fs::read(f.path()).unwrap(), b"x");
        f.store_checkpoint_record(b"rec", crate::Durability::PageCache)
            .unwrap();
        let path = f.path().to_path_buf();
        assert!(super::checkpoint_path(&path).exists());
        f.remove();
        assert!(dir.list().is_empty());
    }

    /// A file that takes at most `step` bytes per call, from the first slice only or across
    /// slices, as a kernel may.
    struct Short {
        taken: Vec<u8>,
        step: usize,
    }

    impl std::io::Write for Short {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.step);
            self.taken.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(self.step - n);
                self.taken.extend_from_slice(&b[..take]);
                n += take;
                if n == self.step {
                    break;
                }
            }
            Ok(n)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    proptest::proptest! {
        /// Every part lands, in order, whatever short writes the file makes.
        #[test]
        fn parts_are_written_whole_and_in_order(
            parts in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..50), 0..20),
            step in 1usize..64,
        ) {
            let mut out = Short { taken: Vec::new(), step };
            let written = super::write_all_parts(&mut out, &parts).unwrap();
            let whole: Vec<u8> = parts.concat();
            proptest::prop_assert_eq!(written, whole.len());
            proptest::prop_assert_eq!(out.taken, whole);
        }
    }

    #[test]
    fn parts_append_to_the_file() {
        let parent = tempfile::tempdir().unwrap();
        let dir = SessionDirectory::persistent(Some(parent.path().to_path_buf()));
        let mut f = dir.create_partial().unwrap();
        f.append(b"ab").unwrap();
        f.append_parts(&[&b"cd"[..], b"", b"efg"]).unwrap();
        assert_eq!(f.len(), 7);
        assert_eq!(std::fs::read(f.path()).unwrap(), b"abcdefg");
        f.remove();
    }
}
