//! `Request` and `Response`: what a task asks for and what the server answered.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};
use url::Url;

mod url_text;

/// A URL request: method, URL, headers, an optional body and an optional idle timeout.
///
/// Like `URLRequest`, a request can be built from a string that turns out not to be a valid URL (a port
/// out of range, say). Such a request is not refused here: the task made from it completes with
/// [`ErrorCode::BadUrl`](crate::ErrorCode::BadUrl) and the text as failing URL, as URLSession reports it.
#[derive(Clone, Debug)]
pub struct Request {
    target: Target,
    method: Method,
    headers: HeaderMap,
    body: Option<Bytes>,
    timeout: Option<Duration>,
    cache_policy: Option<CachePolicy>,
    /// Fields the session must not add ([`Request::omit_header`]).
    omitted: Vec<HeaderName>,
}

/// How a request uses the URL cache (`URLRequest.CachePolicy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CachePolicy {
    /// HTTP's rules (RFC 9111): a fresh cached response is used, a stale one is revalidated.
    #[default]
    UseProtocolCachePolicy,
    /// Always from the network (the response may still be stored).
    ReloadIgnoringLocalCacheData,
    /// A cached response however old, else the network.
    ReturnCacheDataElseLoad,
    /// A cached response however old, else fail with
    /// [`ErrorCode::CannotLoadFromNetwork`](crate::ErrorCode::CannotLoadFromNetwork) (-2000).
    ReturnCacheDataDontLoad,
}

#[derive(Clone, Debug)]
enum Target {
    Url(Url),
    /// The text given, and why it is not a URL (kept so that the task can fail with it).
    Invalid {
        text: String,
        reason: String,
    },
}

impl Request {
    /// A request with `method` for `url`. An unparsable `url` is kept and fails the task later.
    pub fn new(method: Method, url: &str) -> Request {
        let target = match url_text::parse(url) {
            Ok(url) => Target::Url(url),
            Err(e) => Target::Invalid {
                text: url.to_owned(),
                reason: e.to_string(),
            },
        };
        Request {
            target,
            method,
            headers: HeaderMap::new(),
            body: None,
            timeout: None,
            cache_policy: None,
            omitted: Vec::new(),
        }
    }

    /// A GET request for `url`.
    pub fn get(url: &str) -> Request {
        Request::new(Method::GET, url)
    }

    /// The URL, when the text given was a valid one.
    pub fn url(&self) -> Option<&Url> {
        match &self.target {
            Target::Url(url) => Some(url),
            Target::Invalid { .. } => None,
        }
    }

    /// The URL as text: the parsed URL, or the text that did not parse.
    pub fn url_str(&self) -> &str {
        match &self.target {
            Target::Url(url) => url.as_str(),
            Target::Invalid { text, .. } => text,
        }
    }

    /// Why the URL text did not parse, if it did not.
    pub fn url_error(&self) -> Option<&str> {
        match &self.target {
            Target::Url(_) => None,
            Target::Invalid { reason, .. } => Some(reason),
        }
    }

    /// Replaces the URL.
    pub fn set_url(&mut self, url: Url) {
        self.target = Target::Url(url);
    }

    /// The HTTP method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// Replaces the method.
    pub fn set_method(&mut self, method: Method) {
        self.method = method;
    }

    /// The request's own headers (the configuration's extra headers are merged under them when sent).
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The headers, to change.
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.headers
    }

    /// Adds a header value (keeping earlier values of the same name) and returns the request.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Request {
        self.headers.append(name, value);
        self
    }

    /// Leaves the field `name` out of what is sent: the request's own values of it are removed,
    /// and the session adds none of its own: its configuration's `http_additional_headers`, its
    /// default `User-Agent` and `Accept-Encoding`, a form's `Content-Type`, the cookie jar's
    /// `Cookie`, `Expect: 100-continue` before a large body, a task priority's `Priority`. A
    /// value the request sets afterwards is sent.
    ///
    /// URLSession has no such call: setting a field to `nil` removes only the request's own value,
    /// and an empty one is sent as empty. This is curl's `-H 'Name:'`. The fields that frame the
    /// message (`Host`, `Content-Length`, `Transfer-Encoding`) and those Courier answers a
    /// server with (a resumed download's `Range`, a challenge's `Authorization`) are the
    /// protocol's and are not left out.
    pub fn omit_header(&mut self, name: HeaderName) {
        self.headers.remove(&name);
        if !self.omitted.contains(&name) {
            self.omitted.push(name);
        }
    }

    /// The fields [`Request::omit_header`] left out, in the order they were named.
    pub fn omitted_headers(&self) -> &[HeaderName] {
        &self.omitted
    }

    /// The body, if any (`httpBody`).
    pub fn body(&self) -> Option<&Bytes> {
        self.body.as_ref()
    }

    /// Sets the body.
    pub fn set_body(&mut self, body: impl Into<Bytes>) {
        self.body = Some(body.into());
    }

    /// Sets the body and returns the request.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Request {
        self.set_body(body);
        self
    }

    /// This request's idle timeout; when `None` the configuration's request timeout applies.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Sets this request's idle timeout, which wins over the configuration's.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = Some(timeout);
    }

    /// This request's cache policy; when `None` the configuration's applies.
    pub fn cache_policy(&self) -> Option<CachePolicy> {
        self.cache_policy
    }

    /// Sets this request's cache policy, which wins over the configuration's.
    pub fn set_cache_policy(&mut self, policy: CachePolicy) {
        self.cache_policy = Some(policy);
    }
}

impl From<Url> for Request {
    fn from(url: Url) -> Request {
        Request {
            target: Target::Url(url),
            method: Method::GET,
            headers: HeaderMap::new(),
            body: None,
            timeout: None,
            cache_policy: None,
            omitted: Vec::new(),
        }
    }
}

impl From<&str> for Request {
    /// A GET request for the URL text (an unparsable text fails the task with `BadUrl`).
    fn from(url: &str) -> Request {
        Request::get(url)
    }
}

impl From<String> for Request {
    /// A GET request for the URL text (an unparsable text fails the task with `BadUrl`).
    fn from(url: String) -> Request {
        Request::get(&url)
    }
}

/// The head of a final HTTP response (`HTTPURLResponse`): URL, status, version and headers.
///
/// Immutable once made, and shared: a clone (the task's `response`, the delegate's copy, the
/// completion's) is a reference count, not a copy of the headers.
#[derive(Clone)]
pub struct Response(Arc<Head>);

/// What a [`Response`] holds.
struct Head {
    url: Url,
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("url", &self.0.url)
            .field("status", &self.0.status)
            .field("version", &self.0.version)
            .field("headers", &self.0.headers)
            .finish()
    }
}

impl Response {
    /// A response for `url`.
    pub fn new(url: Url, status: StatusCode, version: Version, headers: HeaderMap) -> Response {
        Response(Arc::new(Head {
            url,
            status,
            version,
            headers,
        }))
    }

    /// The URL this response answered (the last request's, after redirects).
    pub fn url(&self) -> &Url {
        &self.0.url
    }

    /// The status code. 4xx and 5xx are responses, not errors.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The HTTP version the response came over.
    pub fn version(&self) -> Version {
        self.0.version
    }

    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.0.headers
    }

    /// `expectedContentLength`: the Content-Length; `None` when unknown (URLSession's -1), and
    /// when the body is content-encoded (gzip, br...): the length on the wire is not the length
    /// delivered.
    pub fn expected_content_length(&self) -> Option<u64> {
        let encoded = self
            .0
            .headers
            .get(http::header::CONTENT_ENCODING)
            .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
        if encoded {
            return None;
        }
        self.0
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    }

    /// The MIME type from Content-Type, without parameters, if present.
    pub fn mime_type(&self) -> Option<&str> {
        self.0
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim())
    }

    /// A file name to save the body under (`suggestedFilename`): the `Content-Disposition`
    /// `filename*` (RFC 6266 and 8187, UTF-8 or ISO-8859-1) or `filename`, else the URL's last path
    /// segment, else its host, else `"unknown"`. Always one plain name: no directories, no `..`,
    /// no leading dot, no control characters, so it is safe to join to a directory.
    pub fn suggested_filename(&self) -> String {
        let from_header = self
            .0
            .headers
            .get(http::header::CONTENT_DISPOSITION)
            .and_then(|v| disposition_filename(v.as_bytes()));
        let from_url = self
            .0
            .url
            .path_segments()
            .and_then(|mut s| s.next_back().map(str::to_owned))
            .filter(|s| !s.is_empty())
            .map(|s| {
                percent_encoding::percent_decode_str(&s)
                    .decode_utf8_lossy()
                    .into_owned()
            });
        [
            from_header,
            from_url,
            self.0.url.host_str().map(str::to_owned),
        ]
        .into_iter()
        .flatten()
        .map(|name| plain_file_name(&name))
        .find(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
    }
}

/// The file name a `Content-Disposition` value gives, `filename*` before `filename`.
fn disposition_filename(value: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(value);
    let mut plain = None;
    let mut extended = None;
    for param in split_params(&text).into_iter().skip(1) {
        let Some((name, raw)) = param.split_once('=') else {
            continue;
        };
        let (name, raw) = (name.trim().to_ascii_lowercase(), raw.trim());
        match name.as_str() {
            "filename*" => extended = extended.or_else(|| ext_value(raw)),
            "filename" => plain = plain.or_else(|| Some(unquote(raw))),
            _ => {}
        }
    }
    extended.or(plain).filter(|n| !n.is_empty())
}

/// Splits at the semicolons that are outside quoted strings.
fn split_params(text: &str) -> Vec<String> {
    let (mut out, mut current) = (Vec::new(), String::new());
    let (mut quoted, mut escaped) = (false, false);
    for c in text.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                out.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    out.push(current);
    out
}

/// A quoted-string's content (backslash escapes undone), or a token as it is.
fn unquote(raw: &str) -> String {
    let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else {
        return raw.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut escaped = false;
    for c in inner.chars() {
        if c == '\\' && !escaped {
            escaped = true;
            continue;
        }
        escaped = false;
        out.push(c);
    }
    out
}

/// An RFC 8187 ext-value: `charset'language'percent-encoded`.
fn ext_value(raw: &str) -> Option<String> {
    let mut parts = raw.splitn(3, '\'');
    let (charset, _language, encoded) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(encoded).collect();
    match charset.to_ascii_lowercase().as_str() {
        "utf-8" => String::from_utf8(bytes).ok(),
        "iso-8859-1" => Some(bytes.iter().map(|&b| char::from(b)).collect()),
        _ => None,
    }
}

/// `name` made into one plain file name that is safe to join to a directory: path separators,
/// `:` and control characters become `_`, leading dots and spaces go (no `..`, no hidden files),
/// and it is cut to 200 bytes. Empty when nothing is left; the caller picks a fallback.
pub fn plain_file_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| match c {
            '/' | '\\' | ':' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    let mut name = cleaned.trim_start_matches(['.', ' ']).trim_end().to_owned();
    while name.len() > 200 {
        name.pop();
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_disposition(url: &str, value: Option<&str>) -> Response {
        let mut headers = HeaderMap::new();
        if let Some(v) = value {
            headers.insert(
                http::header::CONTENT_DISPOSITION,
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        Response::new(
            url.parse().unwrap(),
            StatusCode::OK,
            Version::HTTP_11,
            headers,
        )
    }

    #[test]
    fn suggested_filename_follows_content_disposition_then_the_url() {
        let cases = [
            (Some(r#"attachment; filename="report.pdf""#), "report.pdf"),
            (Some("attachment; filename=plain.txt"), "plain.txt"),
            (
                Some(
                    r#"attachment; filename="fallback.txt"; filename*=UTF-8''%E2%82%AC%20rates.txt"#,
                ),
                "\u{20ac} rates.txt",
            ),
            (
                Some("attachment; filename*=iso-8859-1'en'%A3%20rates.txt"),
                "\u{a3} rates.txt",
            ),
            (
                Some(r#"attachment; filename="a;b \"q\".txt""#),
                "a;b \"q\".txt",
            ),
            (
                Some(r#"attachment; filename="../../etc/passwd""#),
                "_.._etc_passwd",
            ),
            (
                Some(r#"attachment; filename="..\\..\\boot.ini""#),
                "_.._boot.ini",
            ),
            (Some(r#"attachment; filename=".hidden""#), "hidden"),
            (Some(r#"attachment; filename="""#), "file.bin"),
            (Some("inline"), "file.bin"),
            (None, "file.bin"),
        ];
        for (value, want) in cases {
            let r = with_disposition("https://example.com/dir/file.bin?x=1", value);
            assert_eq!(r.suggested_filename(), want, "{value:?}");
        }
        assert_eq!(
            with_disposition("https://example.com/a%20b.txt", None).suggested_filename(),
            "a b.txt"
        );
        assert_eq!(
            with_disposition("https://example.com/", None).suggested_filename(),
            "example.com"
        );
        assert_eq!(
            with_disposition("https://example.com/..%2F..%2Fx", None).suggested_filename(),
            "_.._x"
        );
    }

    #[test]
    fn bad_port_is_kept_as_text() {
        let r = Request::get("http://127.0.0.1:99999/x");
        assert!(r.url().is_none());
        assert_eq!(r.url_str(), "http://127.0.0.1:99999/x");
        assert!(r.url_error().is_some());
    }

    #[test]
    fn content_length_or_none() {
        let url = Url::parse("http://a.test/").unwrap();
        let mut h = HeaderMap::new();
        let r = Response::new(url.clone(), StatusCode::OK, Version::HTTP_11, h.clone());
        assert_eq!(r.expected_content_length(), None);
        h.insert(CONTENT_LENGTH, HeaderValue::from_static("12"));
        let r = Response::new(url, StatusCode::OK, Version::HTTP_11, h);
        assert_eq!(r.expected_content_length(), Some(12));
    }
    // 256 cases each by default; `PROPTEST_CASES=N` runs N.
    proptest::proptest! {
        /// Any Content-Disposition bytes: one plain name (no separator, no leading dot, at most
        /// 200 bytes) or the URL's, never a panic.
        #[test]
        fn arbitrary_dispositions_give_a_plain_name(
            value in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            shaped in "attachment; filename\\*?=(\"[^\"]{0,30}\"|[ -~]{0,30})(; filename\\*=(utf-8|iso-8859-1|x)'[a-z]{0,2}'[%0-9A-Fa-z./\\\\]{0,30})?",
        ) {
            for value in [value, shaped.into_bytes()] {
                let _ = disposition_filename(&value);
                let mut response = with_disposition("https://a.test/dir/file.bin", None);
                if let Ok(v) = http::HeaderValue::from_bytes(&value) {
                    response = Response::new(
                        url::Url::parse("https://a.test/dir/file.bin").unwrap(),
                        http::StatusCode::OK,
                        http::Version::HTTP_11,
                        std::iter::once((http::header::CONTENT_DISPOSITION, v)).collect(),
                    );
                }
                let name = response.suggested_filename();
                proptest::prop_assert!(!name.is_empty() && name.len() <= 200, "{:?}", name);
                proptest::prop_assert!(!name.contains('/') && !name.contains('\\') && !name.starts_with('.'), "{:?}", name);
                proptest::prop_assert!(!name.chars().any(char::is_control), "{:?}", name);
            }
        }
    }
}

/// A response as the URL cache keeps it (`CachedURLResponse`): the head and the whole body.
#[derive(Clone, Debug)]
pub struct CachedResponse {
    /// The response head.
    pub response: Response,
    /// The body.
    pub data: Bytes,
}
