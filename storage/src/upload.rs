//! Resume data of an upload: where the server keeps what it received (the upload resource of the
//! IETF resumable-upload draft), and the body to send the rest from.
//!
//! An [`UploadResumeRecord`] travels as resume data does: encoded through the [`codec`] envelope
//! and sealed with the session directory's key ([`UploadResumeRecord::seal`]), so only resume
//! data this user's Courier made is read back. It names the body's file by its path, with the
//! length and modification time it had, so that a file changed since is refused rather than sent
//! half old, half new; bytes are kept in the record itself, up to [`MAX_KEPT_BYTES`].

use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};
use crate::directory::SessionDirectory;
use crate::resume::{RequestRecord, ResumeError};

/// The most body bytes an upload's resume data carries itself: a larger upload from bytes is not
/// resumable from resume data (one from a file is, whatever its size).
pub const MAX_KEPT_BYTES: usize = 16 << 20;

/// What marks an upload's record: resume data is opaque bytes, and a download's must never be
/// read as an upload's (nor the other way round: a download's record starts with its URL).
const KIND: [u8; 8] = *b"upload\x00\x01";

/// Where an upload's body comes from when it is resumed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UploadSource {
    /// A file, by its path, as it was when the upload began.
    File {
        /// The path, as given (UTF-8).
        path: String,
        /// Its length.
        length: u64,
        /// Its modification time, in nanoseconds since the Unix epoch, when the system said.
        modified_ns: Option<u128>,
    },
    /// The body itself.
    Bytes(Vec<u8>),
}

/// Everything needed to go on with an upload the server offered to resume (URLSession's
/// `NSURLSessionUploadTaskResumeData`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadResumeRecord {
    kind: [u8; 8],
    /// The request the task was created with.
    pub original_request: RequestRecord,
    /// The upload resource's URL (the `Location` of the server's `104`).
    pub upload_resource: String,
    /// The whole body's length (`Upload-Length`).
    pub length: u64,
    /// The body.
    pub body: UploadSource,
}

impl UploadResumeRecord {
    /// A record of an upload of `length` bytes from `body` with `original_request`, which the
    /// server keeps at `upload_resource`.
    pub fn new(
        original_request: RequestRecord,
        upload_resource: String,
        length: u64,
        body: UploadSource,
    ) -> UploadResumeRecord {
        UploadResumeRecord {
            kind: KIND,
            original_request,
            upload_resource,
            length,
            body,
        }
    }

    /// The resume data of this record: encoded and sealed with `dir`'s key.
    ///
    /// # Errors
    /// The key cannot be read or made.
    pub fn seal(&self, dir: &SessionDirectory) -> Result<Vec<u8>, ResumeError> {
        let encoded = codec::encode(self).map_err(ResumeError::Corrupt)?;
        dir.seal(encoded).map_err(ResumeError::Io)
    }

    /// Reads resume data made by [`UploadResumeRecord::seal`] with `dir`'s key.
    ///
    /// # Errors
    /// [`ResumeError::NotSealedHere`] for data this directory's key did not seal;
    /// [`ResumeError::Corrupt`] for sealed data that is not an upload's (a download's, say).
    pub fn open(sealed: &[u8], dir: &SessionDirectory) -> Result<UploadResumeRecord, ResumeError> {
        let envelope = dir.unseal(sealed)?;
        let record: UploadResumeRecord = codec::decode(envelope).map_err(ResumeError::Corrupt)?;
        if record.kind != KIND {
            return Err(ResumeError::Corrupt(CodecError::Malformed(
                "not an upload's resume data".into(),
            )));
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resume::ResumeRecord;

    fn record(body: UploadSource) -> UploadResumeRecord {
        UploadResumeRecord::new(
            RequestRecord {
                method: "POST".into(),
                url: "https://h.test/files".into(),
                headers: vec![("content-type".into(), b"text/plain".to_vec())],
            },
            "https://h.test/uploads/7".into(),
            10,
            body,
        )
    }

    #[test]
    fn sealed_records_read_back_only_here_and_only_as_uploads() {
        let dir = tempfile::tempdir().unwrap();
        let here = SessionDirectory::persistent(Some(dir.path().join("s")));
        let other = SessionDirectory::persistent(Some(dir.path().join("t")));
        for body in [
            UploadSource::Bytes(b"0123456789".to_vec()),
            UploadSource::File {
                path: "/tmp/f".into(),
                length: 10,
                modified_ns: Some(1),
            },
        ] {
            let r = record(body);
            let sealed = r.seal(&here).unwrap();
            assert_eq!(UploadResumeRecord::open(&sealed, &here).unwrap(), r);
            assert!(matches!(
                UploadResumeRecord::open(&sealed, &other),
                Err(ResumeError::NotSealedHere)
            ));
        }
        // A download's resume data is not an upload's, nor is an upload's a download's.
        let download = ResumeRecord::sample("https://h.test/f", b"abc")
            .seal(&here)
            .unwrap();
        assert!(matches!(
            UploadResumeRecord::open(&download, &here),
            Err(ResumeError::Corrupt(_))
        ));
        let upload = record(UploadSource::Bytes(vec![1; 10]))
            .seal(&here)
            .unwrap();
        assert!(ResumeRecord::open(&upload, &here).is_err());
    }

    proptest::proptest! {
        /// Any bytes sealed here: read without a panic.
        #[test]
        fn any_sealed_bytes_are_read_without_a_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let dir = tempfile::tempdir().unwrap();
            let here = SessionDirectory::persistent(Some(dir.path().join("s")));
            let sealed = here.seal(bytes).unwrap();
            let _ = UploadResumeRecord::open(&sealed, &here);
        }
    }
}
