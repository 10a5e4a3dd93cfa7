//! An upload's resume data, as URLSession's since iOS 17: made from the upload resource of an
//! upload in flight (for a cancel that asks for it, and the error of one that failed), read back
//! and checked before anything is sent, and the first send of an upload task made from it.
//!
//! It names the upload resource, the original request and the body: a file by its absolute path,
//! with the length and modification time it had (a file changed since is refused, not sent half
//! old, half new); bytes up to [`MAX_KEPT_BYTES`], kept in it. It is sealed with the session
//! directory's key, as a download's is (`courier_storage::upload`).

use std::time::SystemTime;

use courier_delegates::ResumeData;
use courier_storage::upload::{MAX_KEPT_BYTES, UploadResumeRecord, UploadSource};
use http::HeaderValue;

use super::*;

/// An upload task made from resume data: the upload resource to go on at (with the body it
/// sends, [`UploadResource::body`]), and the resume data itself (handed back as it is by a cancel
/// before the task starts).
pub(crate) struct UploadResumption {
    pub(crate) resource: UploadResource,
    pub(crate) data: ResumeData,
}

impl UploadResource {
    /// The resume data of this upload, begun with `original` at `url`, when the server named an
    /// upload resource of `url`'s origin and the body can be read again later (a file of the
    /// length sent, unchanged since; bytes up to [`MAX_KEPT_BYTES`]).
    fn resume_data(
        &self,
        original: &Request,
        url: &Url,
        dir: &courier_storage::SessionDirectory,
    ) -> Option<ResumeData> {
        let resource = self.url(url)?;
        let body = match &self.0.body {
            UploadBody::File(path) => UploadSource::File {
                path: path.to_str()?.to_owned(),
                length: self.0.length,
                modified_ns: self.0.modified.map(since_epoch),
            },
            UploadBody::Bytes(bytes) if bytes.len() <= MAX_KEPT_BYTES => {
                UploadSource::Bytes(bytes.to_vec())
            }
            _ => return None,
        };
        let record = UploadResumeRecord::new(
            crate::task::download::request_record(original),
            resource.to_string(),
            self.0.length,
            body,
        );
        match record.seal(dir) {
            Ok(sealed) => Some(ResumeData::from_bytes(sealed)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot seal an upload's resume data");
                None
            }
        }
    }
}

fn since_epoch(t: SystemTime) -> u128 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Reads an upload's resume data handed back by an application (only data sealed with this
/// session directory's key), and checks that its body can be sent again as it was: its file is
/// there, with the length and modification time it had. The request it continues, and the
/// upload; or why it cannot be used, delivered when the task is resumed.
pub(crate) fn decode_upload_resume_data(
    dir: &courier_storage::SessionDirectory,
    data: &ResumeData,
) -> (Request, Result<Box<UploadResumption>, Error>) {
    let record = match UploadResumeRecord::open(data.as_bytes(), dir) {
        Ok(record) => record,
        Err(e) => {
            let e = Error::new(
                ErrorCode::CannotDecodeRawData,
                format!("the upload's resume data is unusable: {e}"),
            )
            .with_source(e);
            return (Request::get(""), Err(e));
        }
    };
    let original = crate::task::download::request_from_record(&record.original_request);
    let checked = check_record(&record, &original, data).map(Box::new);
    (original, checked)
}

fn check_record(
    record: &UploadResumeRecord,
    original: &Request,
    data: &ResumeData,
) -> Result<UploadResumption, Error> {
    let url = original.url_str();
    let refuse = |code, why: String| Err(Error::new(code, why).with_url(url));
    // Sealed here, so made by this Courier; checked all the same, as any input.
    let location = original
        .url()
        .zip(Url::parse(&record.upload_resource).ok())
        .filter(|(task, resource)| task.origin() == resource.origin())
        .map(|(_, resource)| resource);
    let Some(location) = location else {
        return refuse(
            ErrorCode::CannotDecodeRawData,
            "the upload's resume data names an upload resource of another origin".into(),
        );
    };
    let (body, modified) = match &record.body {
        UploadSource::Bytes(bytes) if bytes.len() as u64 == record.length => {
            (UploadBody::Bytes(Bytes::copy_from_slice(bytes)), None)
        }
        UploadSource::Bytes(_) => {
            return refuse(
                ErrorCode::CannotDecodeRawData,
                "the upload's resume data holds a body of another length".into(),
            );
        }
        UploadSource::File {
            path,
            length,
            modified_ns,
        } => {
            let meta = match std::fs::metadata(path) {
                Ok(meta) if meta.is_file() => meta,
                Ok(_) => {
                    return refuse(ErrorCode::FileIsDirectory, format!("{path} is not a file"));
                }
                Err(e) => {
                    return refuse(
                        ErrorCode::FileDoesNotExist,
                        format!("the upload's file {path} cannot be read: {e}"),
                    );
                }
            };
            let now = meta.modified().ok();
            if meta.len() != *length
                || *length != record.length
                || modified_ns.is_some_and(|m| now.map(since_epoch) != Some(m))
            {
                return refuse(
                    ErrorCode::CannotOpenFile,
                    format!("the upload's file {path} changed since the resume data was made"),
                );
            }
            (UploadBody::File(path.into()), now)
        }
    };
    Ok(UploadResumption {
        data: data.clone(),
        resource: UploadResource(Arc::new(Offered {
            length: record.length,
            body,
            modified,
            location: Mutex::new(HeaderValue::from_str(location.as_str()).ok()),
        })),
    })
}

impl Run {
    /// The first send of an upload task made from resume data: the rest of the body to the
    /// upload resource, then as [`Run::resume_upload`] goes on. When the resource no longer tells
    /// an offset (gone, expired), the upload starts over as a new one; when it holds the whole
    /// upload, the task fails (the draft offers no way to get the lost response again, and the
    /// upload sent again could be made twice).
    pub(in crate::task::transfer) async fn go_on_with_upload(
        &mut self,
        head: &Head,
        body: &UploadBody,
        offered: &UploadResource,
        resource: Url,
    ) -> Result<http::Response<ResponseBody>, Halt> {
        let length = offered.length();
        let original = std::mem::replace(&mut self.url, resource.clone());
        let first = match self.upload_offset(head, &resource).await {
            Ok(Offset::At(offset)) if offset <= length => {
                // What the server holds counts as sent: the task's progress goes on from there.
                self.recorder.add_sent(offset);
                match self.callbacks && self.actor.cast(TaskMsg::SentBefore(offset)).is_err() {
                    true => Err(Halt::Interrupted),
                    false => Ok(Some(self.append(head, body, &resource, offset).await)),
                }
            }
            Ok(Offset::Complete) => {
                self.offered = None;
                Err(held_whole())
            }
            // The server did not answer: the task fails (and keeps its resume data).
            Ok(Offset::NoAnswer(e)) => Err(Halt::Failed(e)),
            Ok(Offset::At(_) | Offset::Unknown) => Ok(None),
            Err(halt) => Err(halt),
        };
        self.url = original;
        match first? {
            Some(outcome) if lost(&outcome) => {
                self.resume_upload(head, body, length, resource, outcome)
                    .await
            }
            Some(outcome) => outcome,
            // Nothing to go on from: a new upload, offered for resumption as any.
            None => {
                tracing::debug!(url = %resource, "the upload resource is gone: starting over");
                self.offered = None;
                Box::pin(self.send(head, Some(body))).await
            }
        }
    }

    /// The resume data of the upload in flight, when the server offered to resume it (an upload
    /// task's, sealed with the session directory's key): for a cancel that asks for it, and the
    /// error of one that failed.
    pub(in crate::task::transfer) fn upload_resume_data(&self) -> Option<ResumeData> {
        if self.info.kind() != courier_delegates::TaskKind::Upload {
            return None;
        }
        self.offered.as_ref()?.resume_data(
            self.info.original_request(),
            &self.url,
            &self.ctx.storage,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_data_is_checked_as_any_input() {
        let original = Request::new(http::Method::POST, "https://h.test/files");
        let data = ResumeData::from_bytes(b"sealed".to_vec());
        let record = |resource: &str, body: UploadSource, length: u64| {
            UploadResumeRecord::new(
                crate::task::download::request_record(&original),
                resource.into(),
                length,
                body,
            )
        };
        let checked = |r: &UploadResumeRecord| check_record(r, &original, &data).map(|_| ());
        let ten = || UploadSource::Bytes(vec![7; 10]);
        assert!(checked(&record("https://h.test/uploads/1", ten(), 10)).is_ok());
        for elsewhere in ["https://other.test/u", "http://h.test/u", "not a url"] {
            let e = checked(&record(elsewhere, ten(), 10)).unwrap_err();
            assert_eq!(e.code(), ErrorCode::CannotDecodeRawData, "{elsewhere}");
        }
        let e = checked(&record("https://h.test/u", ten(), 11)).unwrap_err();
        assert_eq!(e.code(), ErrorCode::CannotDecodeRawData);
        let dir = tempfile::tempdir().unwrap();
        let file = |length| UploadSource::File {
            path: dir.path().to_str().unwrap().to_owned(),
            length,
            modified_ns: None,
        };
        let e = checked(&record("https://h.test/u", file(0), 0)).unwrap_err();
        assert_eq!(e.code(), ErrorCode::FileIsDirectory);
    }
}
