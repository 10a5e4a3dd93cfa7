//! `data:` and `file:` URLs: bodies that come from the URL itself or from the local disk, with no
//! network. The transfer delivers them exactly as it delivers an HTTP body, so data and download
//! tasks work the same way.
//!
//! URLSession answers these with a plain `URLResponse`; here the response is a `Response` with status
//! 200, `Content-Type` and `Content-Length`, so the same code reads every response.

use bytes::Bytes;
use courier_delegates::{Error, ErrorCode, Response};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, StatusCode, Version};
use url::Url;

use super::upload::file_error;

/// Where a local body comes from.
pub(crate) enum LocalBody {
    /// Decoded from a `data:` URL.
    Bytes(Bytes),
    /// Read from a file, as it is delivered.
    File(tokio::fs::File),
}

/// True for the schemes served locally.
pub(crate) fn is_local(url: &Url) -> bool {
    matches!(url.scheme(), "data" | "file")
}

/// The response head and body of a `data:` or `file:` URL.
///
/// # Errors
/// A `data:` URL that does not decode (-1000 if malformed, -1015 for bad base64); a `file:` URL
/// naming a missing file (-1100), a directory (-1101) or an unreadable file (-1102).
pub(crate) async fn open(url: &Url) -> Result<(Response, LocalBody), Error> {
    match url.scheme() {
        "data" => {
            let parsed = data_url::DataUrl::process(url.as_str()).map_err(|e| {
                Error::new(ErrorCode::BadUrl, format!("bad data: URL: {e:?}"))
                    .with_url(url.as_str())
            })?;
            let mime = parsed.mime_type();
            let mut content_type = format!("{}/{}", mime.type_, mime.subtype);
            for (name, value) in &mime.parameters {
                content_type.push_str(&format!(";{name}={value}"));
            }
            let (body, _) = parsed.decode_to_vec().map_err(|_| {
                Error::new(
                    ErrorCode::CannotDecodeRawData,
                    "the data: URL's base64 does not decode",
                )
                .with_url(url.as_str())
            })?;
            let response = head(url, &content_type, body.len() as u64);
            Ok((response, LocalBody::Bytes(Bytes::from(body))))
        }
        _ => {
            let path = url.to_file_path().map_err(|()| {
                Error::new(
                    ErrorCode::BadUrl,
                    "a file: URL must name an absolute local path",
                )
                .with_url(url.as_str())
            })?;
            let meta = tokio::fs::metadata(&path)
                .await
                .map_err(|e| file_error(e, &path).with_url(url.as_str()))?;
            if meta.is_dir() {
                return Err(Error::new(
                    ErrorCode::FileIsDirectory,
                    format!("{} is a directory", path.display()),
                )
                .with_url(url.as_str()));
            }
            let file = tokio::fs::File::open(&path)
                .await
                .map_err(|e| file_error(e, &path).with_url(url.as_str()))?;
            let response = head(url, "application/octet-stream", meta.len());
            Ok((response, LocalBody::File(file)))
        }
    }
}

fn head(url: &Url, content_type: &str, len: u64) -> Response {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        headers.insert(CONTENT_TYPE, v);
    }
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    Response::new(url.clone(), StatusCode::OK, Version::HTTP_11, headers)
}
