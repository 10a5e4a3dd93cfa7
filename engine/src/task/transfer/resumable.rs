//! Resumable uploads: an upload cut off part-way goes on from where the server has it, as
//! URLSession's upload tasks do since iOS 17, by the IETF draft "Resumable Uploads for HTTP"
//! (draft-ietf-httpbis-resumable-upload).
//!
//! An upload task whose body can be read again from any byte (bytes, a file) and is at least
//! [`OFFERED_FROM`] long offers the server the upgrade: its request carries `Upload-Complete: ?1`
//! and `Upload-Length`. A server that takes it answers `104 (Upload Resumption Supported)` with
//! the `Location` of an upload resource before its final answer. When the connection is lost
//! before that final answer, the transfer asks the upload resource how much it holds (`HEAD`,
//! `Upload-Offset`), then sends the rest (`PATCH`, `application/partial-upload`, `Upload-Offset`,
//! `Upload-Complete: ?1`); the answer to that is the task's response, as the draft says. A server
//! that does not take the upgrade ignores the two fields, and nothing changes.
//!
//! Only an upload resource of the request's own origin is used: its requests carry the request's
//! fields (credentials among them), which never go to another origin. A `5xx` answer is the
//! task's response as it is (the draft allows resuming after one; Courier delivers it, as before).
//! At most [`RESUMPTIONS`] resumptions a send. Over HTTP/1.1 only: hyper hands a client no
//! informational response over HTTP/2, so no `104` is heard there.
//!
//! An upload that cannot go on now keeps what it needs to go on later, as URLSession's resume
//! data for uploads (iOS 17): `cancel_by_producing_resume_data` on the task, or a failure past
//! the resumptions, gives resume data naming the upload resource and the body (its file, or its
//! bytes up to 16 MiB), sealed like a download's (`resumable/resume_data.rs`). An upload task
//! made from it ([`UploadResumption`]) starts by asking the resource its offset and sends only
//! the rest; a resource that no longer answers with one (gone, expired) has the upload start
//! over, and one that holds the whole upload fails the task (its response was lost, and sending
//! it all again could make a second upload).

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::failure::transport_kind;
use super::*;

mod resume_data;

pub(crate) use resume_data::{UploadResumption, decode_upload_resume_data};

/// `Upload-Complete`: whether the request's content ends the representation.
pub(super) const UPLOAD_COMPLETE: HeaderName = HeaderName::from_static("upload-complete");
/// `Upload-Length`: the whole representation's length.
const UPLOAD_LENGTH: HeaderName = HeaderName::from_static("upload-length");
/// `Upload-Offset`: how many bytes of the representation the upload resource holds.
const UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");

/// `104 (Upload Resumption Supported)`.
const UPLOAD_RESUMPTION_SUPPORTED: u16 = 104;

/// The most times one send is resumed after a lost connection.
pub(super) const RESUMPTIONS: u32 = 3;

/// The smallest body offered for resumption. Below it, sending the body again costs less than an
/// upload resource the server keeps for it, and the offer (two fields, a callback for the `104`)
/// would cost every small upload something for nothing: 10,000 POSTs of 1 KiB are a bench scenario.
pub(super) const OFFERED_FROM: u64 = 64 << 10;

/// The fields of the original request that describe its content, not the request: not carried to
/// the upload resource (`Content-Type` is `application/partial-upload` there).
const CONTENT_FIELDS: [HeaderName; 6] = [
    http::header::CONTENT_TYPE,
    http::header::CONTENT_LENGTH,
    http::header::CONTENT_ENCODING,
    http::header::CONTENT_DISPOSITION,
    http::header::EXPECT,
    http::header::TRANSFER_ENCODING,
];

/// A resumable upload offered to the server: its length and body, and where the server said the
/// upload resource is (the `Location` of the first `104` of the send).
#[derive(Clone)]
pub(crate) struct UploadResource(Arc<Offered>);

struct Offered {
    length: u64,
    body: UploadBody,
    /// The body file's modification time when the upload began (a file changed since cannot be
    /// resumed from).
    modified: Option<SystemTime>,
    location: Mutex<Option<HeaderValue>>,
}

impl UploadResource {
    /// Notes an informational response: true for a `104`, whose `Location` is kept if none was
    /// before.
    pub(super) fn hear(&self, status: http::StatusCode, headers: &HeaderMap) -> bool {
        if status.as_u16() != UPLOAD_RESUMPTION_SUPPORTED {
            return false;
        }
        if let Some(location) = headers.get(http::header::LOCATION) {
            let mut noted = self.0.location.lock().unwrap_or_else(|p| p.into_inner());
            noted.get_or_insert_with(|| location.clone());
        }
        true
    }

    /// The upload resource's URL, when a `104` named one of `url`'s own origin.
    pub(super) fn url(&self, url: &Url) -> Option<Url> {
        let noted = self
            .0
            .location
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        let resource = url.join(noted.to_str().ok()?).ok()?;
        (resource.origin() == url.origin()).then_some(resource)
    }

    /// The whole body's length.
    pub(super) fn length(&self) -> u64 {
        self.0.length
    }

    /// The body the upload sends (a file by its absolute path, or the bytes).
    pub(crate) fn body(&self) -> &UploadBody {
        &self.0.body
    }
}

/// Offers the server a resumable upload of `body`, `length` bytes, unless it is smaller than
/// [`OFFERED_FROM`] or the request speaks the protocol itself: the offer, when made.
pub(super) fn offer(
    headers: &mut HeaderMap,
    length: u64,
    body: &UploadBody,
) -> Option<UploadResource> {
    if length < OFFERED_FROM || headers.contains_key(UPLOAD_COMPLETE) {
        return None;
    }
    headers.insert(UPLOAD_COMPLETE, HeaderValue::from_static("?1"));
    headers.insert(UPLOAD_LENGTH, HeaderValue::from(length));
    // Read now: a file changed after the upload began is not resumed from later. Its path is
    // kept absolute: resume data may be used from another working directory.
    let (body, modified) = match body {
        UploadBody::File(path) => (
            UploadBody::File(std::path::absolute(path).unwrap_or_else(|_| path.clone())),
            std::fs::metadata(path).and_then(|m| m.modified()).ok(),
        ),
        other => (other.clone(), None),
    };
    Some(UploadResource(Arc::new(Offered {
        length,
        body,
        modified,
        location: Mutex::new(None),
    })))
}

/// What an upload resource's answer to `HEAD` says: its offset, and whether the upload is
/// complete. `None` when either field is missing or not what the draft allows (a structured
/// Integer of at most 15 digits; a Boolean `?0` or `?1`).
pub(super) fn offset_of(headers: &HeaderMap) -> Option<(u64, bool)> {
    let offset = headers.get(UPLOAD_OFFSET)?.to_str().ok()?.trim();
    if offset.is_empty() || offset.len() > 15 || !offset.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let complete = match headers.get(UPLOAD_COMPLETE)?.as_bytes() {
        b"?1" => true,
        b"?0" => false,
        _ => return None,
    };
    Some((offset.parse().ok()?, complete))
}

/// The failure of an upload whose server holds it whole, but whose response was lost: the draft
/// offers no way to get it again, and the upload sent again could be made twice.
fn held_whole() -> Halt {
    Halt::Failed(Error::new(
        ErrorCode::BadServerResponse,
        "the server holds the whole upload, but its response to it was lost",
    ))
}

/// What an upload resource says of itself.
enum Offset {
    /// It holds this many bytes, and takes more.
    At(u64),
    /// It holds the whole upload.
    Complete,
    /// Nothing usable: an error status, or fields missing or malformed.
    Unknown,
    /// No answer: the request failed.
    NoAnswer(Error),
}

/// Whether a send's outcome is a lost connection, which an upload resource can resume.
pub(super) fn lost(outcome: &Result<http::Response<ResponseBody>, Halt>) -> bool {
    matches!(outcome, Err(Halt::Failed(e)) if matches!(
        transport_kind(e),
        Some(TransportErrorKind::ConnectionLost | TransportErrorKind::ClosedBeforeResponse)
    ))
}

impl Run {
    /// Resumes the upload `head` sent, at `resource`, after `outcome` (a lost connection): asks
    /// the resource for its offset, then sends the rest of `body`. The outcome of the last
    /// attempt; the first's when the resource cannot be resumed from (it did not answer, the
    /// upload is complete already, or it holds more than the body).
    pub(super) async fn resume_upload(
        &mut self,
        head: &Head,
        body: &UploadBody,
        length: u64,
        resource: Url,
        outcome: Result<http::Response<ResponseBody>, Halt>,
    ) -> Result<http::Response<ResponseBody>, Halt> {
        // The resource's requests are under its URL (metrics, cookies, errors); the task's
        // response is the original request's, whatever ends the attempts.
        let original = std::mem::replace(&mut self.url, resource.clone());
        let outcome = self
            .resume_attempts(head, body, length, &resource, outcome)
            .await;
        self.url = original;
        outcome
    }

    async fn resume_attempts(
        &mut self,
        head: &Head,
        body: &UploadBody,
        length: u64,
        resource: &Url,
        mut outcome: Result<http::Response<ResponseBody>, Halt>,
    ) -> Result<http::Response<ResponseBody>, Halt> {
        let mut resumed = 0;
        while lost(&outcome) && resumed < RESUMPTIONS {
            resumed += 1;
            self.end_transaction();
            match self.upload_offset(head, resource).await? {
                Offset::At(offset) if offset <= length => {
                    outcome = self.append(head, body, resource, offset).await;
                }
                // Nothing left to send, nor to go on with later.
                Offset::Complete => {
                    self.offered = None;
                    return Err(held_whole());
                }
                _ => break,
            }
        }
        outcome
    }

    /// Sends the rest of `body`, from `offset`, to the upload resource (`PATCH`).
    async fn append(
        &mut self,
        head: &Head,
        body: &UploadBody,
        resource: &Url,
        offset: u64,
    ) -> Result<http::Response<ResponseBody>, Halt> {
        tracing::debug!(url = %resource, offset, "resuming the upload");
        let mut append = self.head_for(head, resource, http::Method::PATCH)?;
        let fields = Arc::make_mut(&mut append.headers);
        fields.insert(UPLOAD_OFFSET, HeaderValue::from(offset));
        fields.insert(UPLOAD_COMPLETE, HeaderValue::from_static("?1"));
        fields.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/partial-upload"),
        );
        self.send_once(&append, Some(body), offset).await
    }

    /// What the upload resource says of itself (`HEAD`): its offset, that it holds the whole
    /// upload, nothing usable (an error status, fields missing or malformed), or no answer at all.
    async fn upload_offset(&mut self, head: &Head, resource: &Url) -> Result<Offset, Halt> {
        let ask = self.head_for(head, resource, http::Method::HEAD)?;
        let answer = match self.send_once(&ask, None, 0).await {
            Ok(answer) => answer,
            Err(Halt::Failed(e)) => return Ok(Offset::NoAnswer(e)),
            Err(halt) => return Err(halt),
        };
        let said = answer
            .status()
            .is_success()
            .then(|| offset_of(answer.headers()))
            .flatten();
        drop(answer);
        self.end_transaction();
        Ok(match said {
            Some((offset, false)) => Offset::At(offset),
            Some((_, true)) => Offset::Complete,
            None => Offset::Unknown,
        })
    }

    /// A request to the upload resource: `method`, with the original request's fields but those
    /// of its content.
    fn head_for(&self, head: &Head, resource: &Url, method: http::Method) -> Result<Head, Halt> {
        let (uri, host) = crate::task::request::wire_target(resource).map_err(|e| {
            Halt::Failed(
                Error::new(ErrorCode::BadUrl, format!("bad upload resource: {e}"))
                    .with_url(resource.as_str()),
            )
        })?;
        let mut fields = (*head.headers).clone();
        for name in CONTENT_FIELDS {
            fields.remove(name);
        }
        fields.remove(UPLOAD_LENGTH);
        fields.remove(UPLOAD_COMPLETE);
        Ok(Head {
            method,
            uri,
            host,
            headers: Arc::new(fields),
            omitted: head.omitted.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes() -> UploadBody {
        UploadBody::Bytes(Bytes::from_static(b"body"))
    }

    fn fields(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(n, v)| {
                (
                    HeaderName::from_bytes(n.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn an_offset_is_read_only_as_the_draft_writes_it() {
        let said =
            |o: &str, c: &str| offset_of(&fields(&[("upload-offset", o), ("upload-complete", c)]));
        assert_eq!(said("25000000", "?0"), Some((25_000_000, false)));
        assert_eq!(said("0", "?1"), Some((0, true)));
        for bad in ["", "-1", "1.5", "0x10", "1234567890123456", "12 34"] {
            assert_eq!(said(bad, "?0"), None, "{bad:?}");
        }
        for bad in ["?2", "true", "1", ""] {
            assert_eq!(said("10", bad), None, "{bad:?}");
        }
        assert_eq!(offset_of(&fields(&[("upload-offset", "10")])), None);
    }

    #[test]
    fn only_an_upload_resource_of_the_same_origin_is_used() {
        let url: Url = "https://h.test/files/1".parse().unwrap();
        let heard = |status: u16, location: &str| {
            let resource = offer(&mut HeaderMap::new(), OFFERED_FROM, &bytes()).unwrap();
            let was_104 = resource.hear(
                http::StatusCode::from_u16(status).unwrap(),
                &fields(&[("location", location)]),
            );
            (was_104, resource.url(&url).map(|u| u.to_string()))
        };
        assert_eq!(
            heard(104, "/uploads/a"),
            (true, Some("https://h.test/uploads/a".into()))
        );
        assert_eq!(
            heard(104, "https://h.test/uploads/b"),
            (true, Some("https://h.test/uploads/b".into()))
        );
        for elsewhere in [
            "https://other.test/uploads/c",
            "http://h.test/uploads/d",
            "https://h.test:8443/uploads/e",
        ] {
            assert_eq!(heard(104, elsewhere), (true, None), "{elsewhere}");
        }
        // Another informational status says nothing of an upload resource.
        assert_eq!(heard(103, "/x"), (false, None));
    }

    #[test]
    fn a_small_upload_or_one_that_speaks_the_protocol_itself_is_not_offered() {
        let mut own = fields(&[("upload-complete", "?0")]);
        assert!(offer(&mut own, OFFERED_FROM, &bytes()).is_none());
        assert_eq!(own.get("upload-complete").unwrap(), "?0");
        let mut small = HeaderMap::new();
        assert!(offer(&mut small, OFFERED_FROM - 1, &bytes()).is_none());
        assert!(small.is_empty());
        let mut plain = HeaderMap::new();
        assert_eq!(
            offer(&mut plain, OFFERED_FROM, &bytes()).unwrap().length(),
            OFFERED_FROM
        );
        assert_eq!(plain.get("upload-complete").unwrap(), "?1");
        assert_eq!(plain.get("upload-length").unwrap(), "65536");
    }

    proptest::proptest! {
        #[test]
        fn any_field_values_are_read_without_a_panic(o in "\\PC{0,24}", c in "\\PC{0,4}") {
            if let (Ok(o), Ok(c)) = (HeaderValue::from_str(&o), HeaderValue::from_str(&c)) {
                let mut h = HeaderMap::new();
                h.insert(UPLOAD_OFFSET, o);
                h.insert(UPLOAD_COMPLETE, c);
                let _ = offset_of(&h);
            }
        }
    }
}
