//! Resume data and the records it is made of: a download's request and response as storage keeps
//! them, sealed resume data from a checkpoint record, and the errors of resuming.

use super::*;

/// Resume data from the checkpoint record storage holds for the partial file `name`.
pub(crate) fn resume_data_from_storage(dir: &SessionDirectory, name: &str) -> Option<ResumeData> {
    let blob = dir.stored_checkpoint(name)?;
    ResumeRecord::decode(&blob).ok()?;
    let data = seal(dir, blob)?;
    if let Ok(path) = dir.resolve(name) {
        keep_for_resume(&path);
    }
    Some(data)
}

/// The resume data that describes `record`.
pub(crate) fn resume_data_of(dir: &SessionDirectory, record: &ResumeRecord) -> Option<ResumeData> {
    record.seal(dir).ok().map(ResumeData::from_bytes)
}

/// An encoded record sealed with the directory's key, as resume data (none when the key cannot be
/// had: then the download cannot be continued).
pub(super) fn seal(dir: &SessionDirectory, encoded: Vec<u8>) -> Option<ResumeData> {
    match dir.seal(encoded) {
        Ok(sealed) => Some(ResumeData::from_bytes(sealed)),
        Err(e) => {
            tracing::warn!(error = %e, "cannot seal resume data");
            None
        }
    }
}

/// Reads resume data handed back by an application: only data sealed with this session
/// directory's key is taken. The error, if any, is delivered when the task is resumed.
pub(crate) fn decode_resume_data(
    dir: &SessionDirectory,
    data: &ResumeData,
) -> Result<Box<ResumeRecord>, Error> {
    ResumeRecord::open(data.as_bytes(), dir)
        .map(Box::new)
        .map_err(|e| {
            Error::new(
                ErrorCode::CannotDecodeRawData,
                format!("the resume data is unusable: {e}"),
            )
            .with_source(e)
        })
}

/// The request a task made from `record` starts with.
pub(crate) fn request_from_record(record: &RequestRecord) -> Request {
    let method = http::Method::from_bytes(record.method.as_bytes()).unwrap_or(http::Method::GET);
    let mut request = Request::new(method, record.url.as_str());
    for (name, value) in &record.headers {
        if name.is_empty() {
            // A field the request left out (`request_record`).
            if let Ok(n) = http::HeaderName::from_bytes(value) {
                request.omit_header(n);
            }
        } else if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_bytes(value),
        ) {
            request = request.with_header(n, v);
        }
    }
    request
}

/// The response head `record` describes (`None` when its URL or status does not parse). The
/// record keeps no HTTP version: it reads as HTTP/1.1.
pub(crate) fn response_from_record(record: &ResponseRecord) -> Option<Response> {
    let url = url::Url::parse(&record.url).ok()?;
    let status = http::StatusCode::from_u16(record.status).ok()?;
    let mut headers = http::HeaderMap::new();
    for (name, value) in &record.headers {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_bytes(value),
        ) {
            headers.append(n, v);
        }
    }
    Some(Response::new(url, status, http::Version::HTTP_11, headers))
}

/// A request as resume data and the background journal keep it (without `Range`/`If-Range`,
/// which belong to one attempt).
///
/// A field the request leaves out ([`Request::omit_header`]) is kept as a pair with an empty name
/// and the field's name as its value: no field has an empty name, so a build that predates
/// omissions reads such a record and skips the pair, and the format's version stays.
pub fn request_record(r: &Request) -> RequestRecord {
    let left_out = crate::task::request::left_out(r)
        .into_iter()
        .flat_map(|names| names.to_vec())
        .map(|n| (String::new(), n.as_str().as_bytes().to_vec()));
    RequestRecord {
        method: r.method().as_str().to_owned(),
        url: r.url_str().to_owned(),
        headers: r
            .headers()
            .iter()
            .filter(|(n, _)| *n != http::header::RANGE && *n != http::header::IF_RANGE)
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .chain(left_out)
            .collect(),
    }
}

/// A response head as resume data and the background journal keep it.
pub(crate) fn response_record(r: &Response) -> ResponseRecord {
    ResponseRecord {
        url: r.url().as_str().to_owned(),
        status: r.status().as_u16(),
        headers: r
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect(),
    }
}

/// Names why a partial file could not be created or reopened.
pub(crate) fn resume_error(e: ResumeError, resuming: bool, url: &str) -> Error {
    let code = match &e {
        ResumeError::Corrupt(_) => ErrorCode::CannotDecodeRawData,
        ResumeError::OutsideSessionDirectory(_) => ErrorCode::FileOutsideSafeArea,
        ResumeError::Missing(_) => ErrorCode::FileDoesNotExist,
        ResumeError::Changed(_) => ErrorCode::CannotOpenFile,
        ResumeError::Io(_) if resuming => ErrorCode::CannotOpenFile,
        _ => ErrorCode::CannotCreateFile,
    };
    let message = match &e {
        // A new download has no partial file to reopen yet.
        ResumeError::Io(io) if !resuming => format!("cannot create the partial file: {io}"),
        _ => e.to_string(),
    };
    Error::new(code, message).with_url(url).with_source(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_cannot_be_made_is_named_as_made_or_as_reopened() {
        let io = || ResumeError::Io(std::io::Error::other("no room"));
        let new = resume_error(io(), false, "http://h/f");
        assert_eq!(new.code(), ErrorCode::CannotCreateFile);
        assert_eq!(new.message(), "cannot create the partial file: no room");
        let resumed = resume_error(io(), true, "http://h/f");
        assert_eq!(resumed.code(), ErrorCode::CannotOpenFile);
        assert_eq!(resumed.message(), "cannot reopen the partial file: no room");
    }

    #[test]
    fn a_request_keeps_its_omitted_fields_through_its_record() {
        use http::header::{ACCEPT_ENCODING, USER_AGENT};
        let mut request = Request::get("https://h.test/f")
            .with_header(http::HeaderName::from_static("x-one"), "1".parse().unwrap());
        request.omit_header(USER_AGENT);
        request.omit_header(ACCEPT_ENCODING);
        request
            .headers_mut()
            .insert(ACCEPT_ENCODING, "gzip".parse().unwrap());
        let record = request_record(&request);
        // Left out and not set again since: the only pair with an empty name.
        let left: Vec<_> = record
            .headers
            .iter()
            .filter(|(n, _)| n.is_empty())
            .collect();
        assert_eq!(left, [&(String::new(), b"user-agent".to_vec())]);
        let back = request_from_record(&record);
        assert_eq!(back.omitted_headers(), [USER_AGENT]);
        assert_eq!(back.headers()["x-one"], "1");
        assert_eq!(back.headers()[ACCEPT_ENCODING], "gzip");
        // A build that predates omissions skips the pair: no field has an empty name.
        assert!(http::HeaderName::from_bytes(b"").is_err());
    }
}
