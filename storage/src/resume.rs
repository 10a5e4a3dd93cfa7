//! Resume data: what a download needs to continue where it stopped, and the checks before it may.
//!
//! A [`ResumeRecord`] holds URLSession's resume-data keys (the URL, the original and current requests,
//! the bytes on disk, the validators, the response, the partial file's name) plus a digest of the
//! partial file's tail. It travels as an opaque blob ([`ResumeRecord::encode`], through the
//! [`codec`] envelope). [`SessionDirectory::reopen_for_resume`] accepts a record only if
//! its file is a plain name inside the session directory, is present, and still ends with the bytes
//! the record describes; it changes nothing on disk until every check has passed.

use std::io;

use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};
use crate::directory::SessionDirectory;
use crate::download::{PartialFile, tail_digest};

/// A request, as resume data keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// The method (`GET`).
    pub method: String,
    /// The URL.
    pub url: String,
    /// Header names and values, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// A response head, as resume data keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseRecord {
    /// The URL it answered.
    pub url: String,
    /// The status code.
    pub status: u16,
    /// Header names and values, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Everything needed to continue a download (URLSession's resume data).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeRecord {
    /// The URL being downloaded (`NSURLSessionDownloadURL`).
    pub url: String,
    /// The request the task was created with.
    pub original_request: RequestRecord,
    /// The request that produced the partial data.
    pub current_request: RequestRecord,
    /// The length of the good prefix on disk (`NSURLSessionResumeBytesReceived`).
    pub bytes_on_disk: u64,
    /// The strong `ETag` the server sent, if any.
    pub etag: Option<String>,
    /// The `Last-Modified` the server sent, if any.
    pub last_modified: Option<String>,
    /// The response whose body is on disk.
    pub response: ResponseRecord,
    /// The partial file's name, relative to the session directory.
    pub partial_file: String,
    /// SHA-256 of the partial file's last bytes (up to 64 KiB) ending at `bytes_on_disk`.
    pub tail_sha256: [u8; 32],
    /// The resource's full length, when the server said.
    pub expected_total: Option<u64>,
}

impl ResumeRecord {
    /// The record as an opaque blob.
    ///
    /// # Errors
    /// Never in practice (see [`codec::encode`]).
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode(self)
    }

    /// A record with every field filled from `text` and `bytes`, for tests.
    #[cfg(test)]
    pub(crate) fn sample(text: &str, bytes: &[u8]) -> ResumeRecord {
        let request = RequestRecord {
            method: "GET".into(),
            url: text.into(),
            headers: vec![(text.into(), bytes.to_vec())],
        };
        ResumeRecord {
            url: text.into(),
            original_request: request.clone(),
            current_request: request,
            bytes_on_disk: bytes.len() as u64,
            etag: Some(text.into()),
            last_modified: None,
            response: ResponseRecord {
                url: text.into(),
                status: 200,
                headers: vec![(text.into(), bytes.to_vec())],
            },
            partial_file: text.into(),
            tail_sha256: [7; 32],
            expected_total: Some(1 << 20),
        }
    }

    /// The resume data of this record: encoded and sealed with `dir`'s key.
    ///
    /// # Errors
    /// The key cannot be read or made.
    pub fn seal(&self, dir: &SessionDirectory) -> Result<Vec<u8>, ResumeError> {
        let encoded = self.encode().map_err(ResumeError::Corrupt)?;
        dir.seal(encoded).map_err(ResumeError::Io)
    }

    /// Reads resume data made by [`ResumeRecord::seal`] with `dir`'s key.
    ///
    /// # Errors
    /// [`ResumeError::NotSealedHere`] for data this directory's key did not seal (edited, or made
    /// elsewhere); [`ResumeError::Corrupt`] for a sealed blob that does not decode.
    pub fn open(sealed: &[u8], dir: &SessionDirectory) -> Result<ResumeRecord, ResumeError> {
        let envelope = dir.unseal(sealed)?;
        ResumeRecord::decode(envelope).map_err(ResumeError::Corrupt)
    }

    /// Reads a blob made by [`ResumeRecord::encode`] (a checkpoint record in the session directory;
    /// resume data from an application goes through [`ResumeRecord::open`]).
    ///
    /// # Errors
    /// The blob is corrupt, truncated, not Courier's, or of another format version.
    pub fn decode(blob: &[u8]) -> Result<ResumeRecord, CodecError> {
        codec::decode(blob)
    }
}

/// Why resume data cannot be used.
#[derive(Debug)]
#[non_exhaustive]
pub enum ResumeError {
    /// The blob does not decode.
    Corrupt(CodecError),
    /// The resume data was not sealed with this session directory's key: altered, or made by
    /// another user's or another directory's Courier.
    NotSealedHere,
    /// The partial file's name does not name a file inside the session directory.
    OutsideSessionDirectory(String),
    /// The partial file is gone.
    Missing(String),
    /// The partial file no longer holds the bytes the resume data describes.
    Changed(String),
    /// The partial file could not be read or reopened.
    Io(io::Error),
}

impl std::fmt::Display for ResumeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResumeError::Corrupt(e) => write!(f, "the resume data is unusable: {e}"),
            ResumeError::NotSealedHere => f.write_str(
                "the resume data was not made by this session directory's Courier (or was altered)",
            ),
            ResumeError::OutsideSessionDirectory(name) => write!(
                f,
                "the resume data names {name:?}, which is not a file of this session's directory"
            ),
            ResumeError::Missing(name) => {
                write!(f, "the partial file {name:?} of the resume data is gone")
            }
            ResumeError::Changed(why) => write!(
                f,
                "the partial file changed since the resume data was made: {why}"
            ),
            ResumeError::Io(e) => write!(f, "cannot reopen the partial file: {e}"),
        }
    }
}

impl std::error::Error for ResumeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ResumeError::Corrupt(e) => Some(e),
            ResumeError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl SessionDirectory {
    /// Checks `record` against the directory and reopens its partial file for appending.
    ///
    /// Nothing on disk changes unless every check passes; then bytes written after the record's
    /// checkpoint are cut off.
    ///
    /// # Errors
    /// A [`ResumeError`] naming the failed check.
    pub fn reopen_for_resume(&self, record: &ResumeRecord) -> Result<PartialFile, ResumeError> {
        let name = &record.partial_file;
        let path = self.check_resume(record)?;
        // Another session's file (of resume data it gave away, or that ended): this session's
        // from now on, so that no one takes it over while it is written again.
        let path = if self.holds(name).map_err(ResumeError::Io)? {
            path
        } else {
            self.move_to_own_name(&path, false)
                .map_err(|e| match e.kind() {
                    io::ErrorKind::NotFound => ResumeError::Missing(name.clone()),
                    _ => ResumeError::Io(e),
                })?
        };
        PartialFile::reopen(path, record.bytes_on_disk).map_err(ResumeError::Io)
    }

    /// Checks that `record` can continue its download here: its partial file is a plain file of
    /// this directory that still holds the bytes the record describes. Returns the file's path;
    /// changes nothing.
    ///
    /// # Errors
    /// A [`ResumeError`] naming the failed check.
    pub fn check_resume(&self, record: &ResumeRecord) -> Result<std::path::PathBuf, ResumeError> {
        let name = &record.partial_file;
        let path = self.resolve(name).map_err(|e| match e.kind() {
            io::ErrorKind::InvalidInput => ResumeError::OutsideSessionDirectory(name.clone()),
            _ => ResumeError::Io(e),
        })?;
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ResumeError::Missing(name.clone()));
            }
            Err(e) => return Err(ResumeError::Io(e)),
        };
        if !meta.file_type().is_file() {
            // A symlink or a directory under a partial file's name was not made by Courier.
            return Err(ResumeError::OutsideSessionDirectory(name.clone()));
        }
        if meta.len() < record.bytes_on_disk {
            return Err(ResumeError::Changed(format!(
                "it holds {} bytes, the resume data needs {}",
                meta.len(),
                record.bytes_on_disk
            )));
        }
        let digest = tail_digest(&path, record.bytes_on_disk).map_err(ResumeError::Io)?;
        if digest != record.tail_sha256 {
            return Err(ResumeError::Changed(
                "its last bytes differ from those recorded".into(),
            ));
        }
        Ok(path)
    }

    /// Takes over the partial file `name` of a session that ended (one
    /// [`SessionDirectory::interrupted`] named): moves it under a name of this session's and
    /// stores its checkpoint record beside it, naming the new file. Returns that record.
    ///
    /// # Errors
    /// Its session still runs ([`io::ErrorKind::ResourceBusy`]), another session took it first
    /// ([`io::ErrorKind::NotFound`]), its record does not decode ([`io::ErrorKind::InvalidData`]), or
    /// the directory cannot be written.
    pub fn take_over(&self, name: &str) -> io::Result<ResumeRecord> {
        let _housekeeping = self.housekeeping();
        let path = self.resolve(name)?;
        let record = crate::write::read_bounded(&crate::download::checkpoint_path(&path))?;
        let mut record = ResumeRecord::decode(&record)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        let moved = self.move_to_own_name(&path, true)?;
        record.partial_file = moved
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // A file that no longer holds what its record describes (its last bytes never reached the
        // disk before a power loss) cannot be continued: it goes, and the download starts over.
        if let Err(e) = self.check_resume(&record) {
            crate::download::remove_partial(&moved);
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{name:?} cannot be continued: {e}"),
            ));
        }
        let encoded = record
            .encode()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        crate::write::replace(
            &crate::download::checkpoint_path(&moved),
            &encoded,
            crate::Durability::Synced,
        )?;
        Ok(record)
    }

    /// The latest checkpoint record stored beside the partial file `name`, as a blob, if one is there.
    pub fn stored_checkpoint(&self, name: &str) -> Option<Vec<u8>> {
        let path = self.resolve(name).ok()?;
        std::fs::read(crate::download::checkpoint_path(&path)).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record_for(f: &mut PartialFile) -> ResumeRecord {
        let c = f.checkpoint(crate::Durability::Synced).unwrap();
        let req = RequestRecord {
            method: "GET".into(),
            url: "http://127.0.0.1/a".into(),
            headers: vec![("accept".into(), b"*/*".to_vec())],
        };
        ResumeRecord {
            url: req.url.clone(),
            original_request: req.clone(),
            current_request: req,
            bytes_on_disk: c.len,
            etag: Some("\"v1\"".into()),
            last_modified: None,
            response: ResponseRecord {
                url: "http://127.0.0.1/a".into(),
                status: 200,
                headers: vec![],
            },
            partial_file: f.name(),
            tail_sha256: c.tail_sha256,
            expected_total: Some(1000),
        }
    }

    #[test]
    fn a_good_record_reopens_and_cuts_unrecorded_bytes() {
        let parent = tempfile::tempdir().unwrap();
        let dir = SessionDirectory::persistent(Some(parent.path().to_path_buf()));
        let mut f = dir.create_partial().unwrap();
        f.append(&[7u8; 100_000]).unwrap();
        let rec = record_for(&mut f);
        f.append(b"after the checkpoint").unwrap();
        drop(f);
        let blob = rec.encode().unwrap();
        let back = ResumeRecord::decode(&blob).unwrap();
        assert_eq!(back, rec);
        let f = dir.reopen_for_resume(&back).unwrap();
        assert_eq!(f.len(), 100_000);
        assert_eq!(std::fs::metadata(f.path()).unwrap().len(), 100_000);
    }

    /// A partial file of session `dir` with 100,000 bytes and its checkpoint record beside it, as
    /// a download in mid-transfer leaves them.
    fn partial_in_mid_transfer(dir: &SessionDirectory) -> (String, ResumeRecord) {
        let mut f = dir.create_partial().unwrap();
        f.append(&[3u8; 100_000]).unwrap();
        let rec = record_for(&mut f);
        f.store_checkpoint_record(&rec.encode().unwrap(), crate::Durability::Synced)
            .unwrap();
        f.append(b"not yet checkpointed").unwrap();
        (f.name(), rec)
    }

    fn names(found: Vec<(String, Vec<u8>)>) -> Vec<String> {
        found.into_iter().map(|(n, _)| n).collect()
    }

    #[test]
    fn only_the_partials_of_a_session_that_ended_are_offered_and_one_session_takes_each() {
        let parent = tempfile::tempdir().unwrap();
        let at = || SessionDirectory::persistent(Some(parent.path().to_path_buf()));
        let (a, b, c) = (at(), at(), at());
        let (name, rec) = partial_in_mid_transfer(&a);
        assert!(crate::owner::token_of(&name).is_some(), "{name}");

        assert!(b.interrupted().is_empty(), "a live session's download");
        let busy = b.take_over(&name).unwrap_err();
        assert_eq!(busy.kind(), io::ErrorKind::ResourceBusy);

        a.die();
        assert_eq!(names(b.interrupted()), [name.as_str()]);
        let (_, blob) = c.interrupted().pop().unwrap();
        assert_eq!(ResumeRecord::decode(&blob).unwrap(), rec);

        let taken = b.take_over(&name).unwrap();
        assert_ne!(taken.partial_file, name);
        assert!(b.holds(&taken.partial_file).unwrap());
        assert_eq!(
            c.take_over(&name).unwrap_err().kind(),
            io::ErrorKind::NotFound,
            "taken once"
        );
        assert!(b.interrupted().is_empty() && c.interrupted().is_empty());
        assert_eq!(
            ResumeRecord::decode(&b.stored_checkpoint(&taken.partial_file).unwrap()).unwrap(),
            taken,
            "the record beside the new name names it"
        );
        let f = b.reopen_for_resume(&taken).unwrap();
        assert_eq!(f.len(), 100_000);
        assert_eq!(
            f.name(),
            taken.partial_file,
            "already its own: not moved again"
        );
        let a_token = crate::owner::token_of(&name).unwrap();
        assert!(
            !parent.path().join(format!("owner-{a_token}.lock")).exists(),
            "the ended owner's file went with its last partial"
        );

        // A session that ends cleanly removes its owner file; its leftovers are offered too.
        let d = at();
        let (left_behind, _) = partial_in_mid_transfer(&d);
        drop(d);
        assert_eq!(names(c.interrupted()), [left_behind.as_str()]);
        c.discard_interrupted(&left_behind);
        assert!(c.interrupted().is_empty());
        assert!(!parent.path().join(&left_behind).exists());
    }

    #[test]
    fn a_partial_that_lost_its_checkpointed_bytes_is_not_taken_over_but_removed() {
        let parent = tempfile::tempdir().unwrap();
        let at = || SessionDirectory::persistent(Some(parent.path().to_path_buf()));
        let (a, b) = (at(), at());
        let (name, _) = partial_in_mid_transfer(&a);
        a.die();
        // What a power loss may leave: the record, and fewer bytes than it describes.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(parent.path().join(&name))
            .unwrap();
        file.set_len(50_000).unwrap();
        let refused = b.take_over(&name).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::InvalidData);
        assert!(b.interrupted().is_empty());
        let partials = b.partial_names();
        assert!(partials.is_empty(), "{partials:?}");
    }

    #[test]
    fn a_partial_reopened_from_another_sessions_resume_data_becomes_the_reopeners() {
        let parent = tempfile::tempdir().unwrap();
        let at = || SessionDirectory::persistent(Some(parent.path().to_path_buf()));
        let (a, b, c) = (at(), at(), at());
        let mut f = a.create_partial().unwrap();
        f.append(&[9u8; 5000]).unwrap();
        let rec = record_for(&mut f);
        drop(f);
        drop(a);

        let mut f = b.reopen_for_resume(&rec).unwrap();
        assert_ne!(f.name(), rec.partial_file);
        assert!(b.holds(&f.name()).unwrap());
        assert!(!parent.path().join(&rec.partial_file).exists());
        // Written again and checkpointed, it is a live session's download.
        f.append(&[9u8; 5000]).unwrap();
        let again = record_for(&mut f);
        f.store_checkpoint_record(&again.encode().unwrap(), crate::Durability::Synced)
            .unwrap();
        assert!(c.interrupted().is_empty());
        assert!(matches!(
            c.reopen_for_resume(&rec),
            Err(ResumeError::Missing(_))
        ));
    }

    #[test]
    fn an_unowned_directory_names_no_owner_and_offers_nothing() {
        let parent = tempfile::tempdir().unwrap();
        let dir = SessionDirectory::unowned(Some(parent.path().to_path_buf()));
        let (name, rec) = partial_in_mid_transfer(&dir);
        assert_eq!(crate::owner::token_of(&name), None, "{name}");
        assert!(dir.interrupted().is_empty());
        let f = dir.reopen_for_resume(&rec).unwrap();
        assert_eq!(f.name(), name, "not moved");
    }

    #[test]
    fn bad_records_are_refused_and_touch_nothing() {
        let parent = tempfile::tempdir().unwrap();
        let dir = SessionDirectory::persistent(Some(parent.path().to_path_buf()));
        let mut f = dir.create_partial().unwrap();
        f.append(&[1u8; 5000]).unwrap();
        let rec = record_for(&mut f);
        let path = f.path().to_path_buf();
        drop(f);

        let mut outside = rec.clone();
        outside.partial_file = "../download-x.part".into();
        assert!(matches!(
            dir.reopen_for_resume(&outside),
            Err(ResumeError::OutsideSessionDirectory(_))
        ));

        let mut missing = rec.clone();
        missing.partial_file = "download-gone.part".into();
        assert!(matches!(
            dir.reopen_for_resume(&missing),
            Err(ResumeError::Missing(_))
        ));

        let mut longer = rec.clone();
        longer.bytes_on_disk = 6000;
        assert!(matches!(
            dir.reopen_for_resume(&longer),
            Err(ResumeError::Changed(_))
        ));

        // Same length, different last bytes.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[4999] = 2;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            dir.reopen_for_resume(&rec),
            Err(ResumeError::Changed(_))
        ));
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "refusals touch nothing"
        );

        let blob = rec.encode().unwrap();
        let mut damaged = blob.clone();
        damaged[20] ^= 1;
        assert!(matches!(
            ResumeRecord::decode(&damaged),
            Err(CodecError::ChecksumMismatch)
        ));
    }
}
