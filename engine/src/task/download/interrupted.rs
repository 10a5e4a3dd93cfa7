//! Downloads a process left behind when it ended without stopping them (killed, crashed, out of
//! power), and how a later session continues them.
//!
//! URLSession loses such a download outside background sessions: its temporary file goes with the
//! process. Courier keeps each download's partial file and latest checkpoint in the session
//! directory, and each partial carries the owner token of the live session writing it
//! (`courier_storage::owner`), so a later session on the same directory can find the downloads
//! of sessions that ended, and take each over (once: two sessions never both get one) as resume
//! data, never one that a live process is still writing.

use courier_delegates::{Error, ErrorCode, Request, ResumeData};
use courier_storage::{ResumeRecord, SessionDirectory};

use super::records::{request_from_record, request_record, resume_data_of};

/// A download that a session on the same directory left part-way when its process ended without
/// stopping it ([`Session::interrupted_downloads`](crate::Session::interrupted_downloads)).
/// Courier's addition: URLSession offers nothing of the kind outside background sessions.
///
/// Take it over with [`Session::take_over_download`](crate::Session::take_over_download) and
/// continue it with [`Session::download_task_with_resume_data`](crate::Session::download_task_with_resume_data),
/// or remove its file with [`Session::discard_interrupted_download`](crate::Session::discard_interrupted_download).
/// One left alone stays for the next session, until the sweep of stale partial files
/// ([`Configuration::partial_download_lifetime`](crate::Configuration::partial_download_lifetime)).
#[derive(Clone, Debug)]
pub struct InterruptedDownload {
    /// The partial file's name in the session directory.
    name: String,
    record: Box<ResumeRecord>,
}

impl InterruptedDownload {
    /// The URL being downloaded.
    pub fn url(&self) -> &str {
        &self.record.url
    }

    /// The request the download's task was created with.
    pub fn original_request(&self) -> Request {
        request_from_record(&self.record.original_request)
    }

    /// Whether this download was made from `request`: the same method, URL and header fields (a
    /// `Range` and an `If-Range` aside), so that continuing it fetches what `request` would.
    pub fn is_for(&self, request: &Request) -> bool {
        request_record(request) == self.record.original_request
    }

    /// The bytes on disk, checkpointed: where the download continues.
    pub fn bytes_on_disk(&self) -> u64 {
        self.record.bytes_on_disk
    }

    /// The resource's full length, when its server said.
    pub fn expected_total(&self) -> Option<u64> {
        self.record.expected_total
    }
}

/// The interrupted downloads of `dir`, by partial file name.
pub(crate) fn interrupted(dir: &SessionDirectory) -> Vec<InterruptedDownload> {
    dir.interrupted()
        .into_iter()
        .filter_map(|(name, blob)| {
            let record = ResumeRecord::decode(&blob).ok()?;
            // A record that names another file is not this partial's.
            (record.partial_file == name).then(|| InterruptedDownload {
                name,
                record: Box::new(record),
            })
        })
        .collect()
}

/// Takes `download` over: its file becomes this session's, and its resume data is returned.
pub(crate) fn take_over(
    dir: &SessionDirectory,
    download: &InterruptedDownload,
) -> Result<ResumeData, Error> {
    let failed = |code: ErrorCode, why: String| Error::new(code, why).with_url(download.url());
    let record = dir.take_over(&download.name).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => failed(
            ErrorCode::FileDoesNotExist,
            format!(
                "the interrupted download's file {} is gone (another session took it over)",
                download.name
            ),
        )
        .with_source(e),
        std::io::ErrorKind::ResourceBusy => failed(
            ErrorCode::CannotOpenFile,
            format!(
                "{} belongs to a session that is still running",
                download.name
            ),
        )
        .with_source(e),
        _ => failed(ErrorCode::CannotOpenFile, e.to_string()).with_source(e),
    })?;
    resume_data_of(dir, &record).ok_or_else(|| {
        failed(
            ErrorCode::CannotOpenFile,
            "the resume-data key of the session directory cannot be read".into(),
        )
    })
}

/// Removes `download`'s file, if its session still has ended.
pub(crate) fn discard(dir: &SessionDirectory, download: InterruptedDownload) {
    dir.discard_interrupted(&download.name);
}
