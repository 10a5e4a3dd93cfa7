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
        PartialFile::reopen(path, record.bytes_on_disk).map_err(ResumeError::Io)
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
