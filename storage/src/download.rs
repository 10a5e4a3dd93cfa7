//! A download's partial file: appended to, synced at checkpoints, cut back on a failed write.
//!
//! The file's length on disk is kept equal to [`PartialFile::len`], the bytes known to be written: a
//! write that fails half-way (a full disk) is cut back, so what is on disk is always a prefix of the
//! resource that resume data can describe. A checkpoint syncs the data and records a digest of the
//! file's tail; resume data carries it, and a resumed task refuses a file whose tail no longer matches.
//! Beside the file, its latest checkpoint record (`<name>.checkpoint`) lets a session build resume data
//! for a task whose actor died.
//!
//! A partial file may be released between writes ([`PartialFile::release`]): a download among
//! thousands then holds a descriptor only while it writes, and the next write opens the file again
//! by its path, never through a link and only if it is still the file that was created.
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
    /// The open handle; `None` while released ([`PartialFile::release`]).
    file: Option<File>,
    path: PathBuf,
    len: u64,
    identity: Identity,
}

/// Which file a path named when it was opened: a reopened path must name the same one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Identity {
    #[cfg(unix)]
    device: u64,
    #[cfg(unix)]
    inode: u64,
}

impl Identity {
    fn of(file: &File) -> io::Result<Identity> {
        Ok(Identity::from_metadata(&file.metadata()?))
    }

    fn from_metadata(meta: &std::fs::Metadata) -> Identity {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Identity {
                device: meta.dev(),
                inode: meta.ino(),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = meta;
            Identity {}
        }
    }
}

/// Opens the partial file at `path` again, for reading and writing, checking that it is the one
/// `identity` names and (when `len` is given) that it holds exactly `len` bytes.
fn open_again(path: &Path, identity: Identity, len: Option<u64>) -> io::Result<File> {
    let file =
        crate::write::open_no_follow(std::fs::OpenOptions::new().read(true).write(true), path)?;
    let meta = file.metadata()?;
    if Identity::from_metadata(&meta) != identity {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} was replaced while it was closed", path.display()),
        ));
    }
    if let Some(len) = len
        && meta.len() != len
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} changed length while it was closed", path.display()),
        ));
    }
    Ok(file)
}

impl PartialFile {
    pub(crate) fn created(file: File, path: PathBuf) -> io::Result<PartialFile> {
        Ok(PartialFile {
            identity: Identity::of(&file)?,
            file: Some(file),
            path,
            len: 0,
        })
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
        Ok(PartialFile {
            identity: Identity::of(&file)?,
            file: Some(file),
            path,
            len,
        })
    }

    /// Closes the file's handle until the next write, truncation or synced checkpoint needs one,
    /// which opens the file again (never through a link, and only if it is still this file with
    /// exactly [`PartialFile::len`] bytes: otherwise that call fails). For a download among
    /// thousands: a descriptor for each one's file besides its socket would run a process out of
    /// descriptors at half the downloads.
    pub fn release(&mut self) {
        self.file = None;
    }

    /// True while the file's handle is open (not [released](PartialFile::release)).
    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// The open handle, positioned at the end of the good bytes; opened again if released.
    fn handle(&mut self) -> io::Result<&mut File> {
        let file = match self.file.take() {
            Some(file) => file,
            None => {
                let mut file = open_again(&self.path, self.identity, Some(self.len))?;
                file.seek(SeekFrom::Start(self.len))?;
                file
            }
        };
        Ok(self.file.insert(file))
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
        let len = self.len;
        let file = self.handle()?;
        match write_all_parts(file, parts) {
            Ok(written) => {
                self.len += written as u64;
                Ok(())
            }
            Err(e) => {
                // Best effort: shrinking needs no space, so it works on a full disk too.
                let _ = file.set_len(len);
                let _ = file.seek(SeekFrom::Start(len));
                Err(e)
            }
        }
    }

    /// Empties the file, to start the download again from byte 0.
    ///
    /// # Errors
    /// The file cannot be truncated.
    pub fn truncate(&mut self) -> io::Result<()> {
        let file = self.handle()?;
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        self.len = 0;
        Ok(())
    }

    /// Records a digest of the file's tail, after syncing the data written so far when
    /// `durability` asks for it.
    ///
    /// # Errors
    /// The sync or the read-back failed.
    pub fn checkpoint(&mut self, durability: Durability) -> io::Result<Checkpoint> {
        if durability == Durability::Synced {
            self.handle()?.sync_data()?;
        }
        self.checkpointer().run(Durability::PageCache)
    }

    /// A checkpoint of the bytes written so far, to take on another thread while this file goes on
    /// being appended to. It holds no descriptor until it runs.
    pub fn checkpointer(&self) -> Checkpointer {
        Checkpointer {
            path: self.path.clone(),
            len: self.len,
            identity: self.identity,
        }
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
    path: PathBuf,
    len: u64,
    identity: Identity,
}

impl Checkpointer {
    /// Digests the file's tail, after syncing its data when `durability` asks for it (through a
    /// handle opened for that, on the file the download created: a sync covers what every
    /// handle wrote).
    ///
    /// # Errors
    /// The sync or the read-back failed, or the file at the path is no longer the download's.
    pub fn run(&self, durability: Durability) -> io::Result<Checkpoint> {
        if durability == Durability::Synced {
            // The download may have appended since: only the file's identity is checked.
            open_again(&self.path, self.identity, None)?.sync_data()?;
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
    use std::io::Write;

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

    #[test]
    fn a_released_file_is_opened_again_by_the_next_write_and_checkpoint() {
        let parent = tempfile::tempdir().unwrap();
        let dir = SessionDirectory::persistent(Some(parent.path().to_path_buf()));
        let mut f = dir.create_partial().unwrap();
        f.append(b"hello ").unwrap();
        f.release();
        assert!(!f.is_open());
        // Taken without a handle of the download's, synced through one of its own.
        let c = f.checkpointer().run(crate::Durability::Synced).unwrap();
        assert_eq!(c.len, 6);
        assert!(!f.is_open());
        f.append(b"world").unwrap();
        assert!(f.is_open(), "the write opened the file");
        f.release();
        let c = f.checkpoint(crate::Durability::Synced).unwrap();
        assert_eq!(c.len, 11);
        f.release();
        f.truncate().unwrap();
        f.append(b"x").unwrap();
        assert_eq!(std::fs::read(f.path()).unwrap(), b"x");
        f.remove();
        assert!(dir.list().is_empty());
    }

    /// While released, the path is only a name: whatever was put there in the meantime (another
    /// file, a link to one, more bytes) is refused, and left as it is.
    #[test]
    fn a_released_file_that_was_replaced_or_changed_is_not_written() {
        let parent = tempfile::tempdir().unwrap();
        let dir = SessionDirectory::persistent(Some(parent.path().to_path_buf()));
        let elsewhere = parent.path().join("elsewhere");
        std::fs::write(&elsewhere, b"someone else's").unwrap();

        let mut f = dir.create_partial().unwrap();
        f.append(b"good").unwrap();
        f.release();
        let path = f.path().to_path_buf();
        let other = parent.path().join("other");
        std::fs::write(&other, b"good").unwrap();
        std::fs::rename(&other, &path).unwrap();
        assert!(
            f.append(b" bytes").is_err(),
            "another file of the same length"
        );
        assert!(f.checkpointer().run(crate::Durability::Synced).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"good");

        #[cfg(unix)]
        {
            let mut g = dir.create_partial().unwrap();
            g.release();
            std::fs::remove_file(g.path()).unwrap();
            std::os::unix::fs::symlink(&elsewhere, g.path()).unwrap();
            assert!(g.append(b"planted").is_err(), "a link");
            assert!(g.truncate().is_err());
            assert_eq!(std::fs::read(&elsewhere).unwrap(), b"someone else's");
        }

        let mut h = dir.create_partial().unwrap();
        h.append(b"0123").unwrap();
        h.release();
        std::fs::OpenOptions::new()
            .append(true)
            .open(h.path())
            .unwrap()
            .write_all(b"4567")
            .unwrap();
        assert!(h.append(b"89").is_err(), "bytes it did not write");
        assert_eq!(std::fs::read(h.path()).unwrap(), b"01234567");
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
