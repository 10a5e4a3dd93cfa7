//! Byte ranges for resumed downloads: which responses can be resumed, the headers that ask to
//! continue, and what the server's answer means; and, for a protocol whose server knows no
//! `Range` (`ftp:`), which bytes a request's `Range` asks for. Pure functions over HTTP types; the
//! engine decides.
//!
//! The rules are URLSession's: only a `GET` whose response carries a validator (a strong `ETag`, or
//! `Last-Modified`) can be resumed, and a server that does not answer the range exactly as asked is
//! not trusted with it: the download starts over.

use headers::{ContentRange, ETag, HeaderMapExt};
use http::header::{
    ACCEPT_RANGES, CONTENT_ENCODING, CONTENT_LENGTH, ETAG, IF_RANGE, LAST_MODIFIED, RANGE,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

/// The validator that tells whether the resource changed since the partial data was fetched.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Validator {
    /// A strong entity tag (weak ones cannot validate a range, RFC 9110 13.1.5).
    pub etag: Option<String>,
    /// The `Last-Modified` date, as sent.
    pub last_modified: Option<String>,
    /// The resource's full length when the partial data was fetched, if known. A 206 that gives
    /// another full length is for a changed resource, whatever its validator says.
    pub length: Option<u64>,
}

impl Validator {
    /// The `If-Range` value: the entity tag, else the date.
    fn if_range(&self) -> Option<&str> {
        self.etag.as_deref().or(self.last_modified.as_deref())
    }
}

/// The validator of a response for the URL `path` whose body could be resumed later, or `None`
/// when it cannot be: not a `GET`, not a 200 or 206, a content coding other than identity (ranges
/// would address the encoded bytes; not so for a gzip file kept as sent,
/// [`is_a_gzip_file`](crate::decode::is_a_gzip_file)), `Accept-Ranges: none`, or no validator.
pub fn resumable(
    method: &Method,
    status: StatusCode,
    headers: &HeaderMap,
    path: &str,
) -> Option<Validator> {
    if method != Method::GET || !matches!(status.as_u16(), 200 | 206) {
        return None;
    }
    if headers
        .get_all(CONTENT_ENCODING)
        .iter()
        .any(|coding| !coding.as_bytes().eq_ignore_ascii_case(b"identity"))
        && !crate::decode::is_a_gzip_file(headers, path)
    {
        return None;
    }
    if headers
        .get(ACCEPT_RANGES)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"none"))
    {
        return None;
    }
    let etag = headers
        .typed_get::<ETag>()
        .filter(|tag| !tag.is_weak())
        .and_then(|_| headers.get(ETAG)?.to_str().ok().map(str::to_owned));
    let last_modified = headers
        .get(LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .filter(|v| httpdate::parse_http_date(v).is_ok())
        .map(str::to_owned);
    let v = Validator {
        etag,
        last_modified,
        length: None,
    };
    v.if_range().is_some().then_some(v)
}

/// Adds `Range: bytes=<offset>-` and `If-Range: <validator>` to `headers`.
pub fn ask_to_continue(headers: &mut HeaderMap, offset: u64, validator: &Validator) {
    headers.insert(
        RANGE,
        HeaderValue::from_str(&format!("bytes={offset}-")).expect("ascii"),
    );
    if let Some(v) = validator
        .if_range()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        headers.insert(IF_RANGE, v);
    }
}

/// What a server's answer to [`ask_to_continue`] means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Continuation {
    /// A 206 starting exactly at the offset, same validator: append this body. `total` is the
    /// resource's full length when known.
    Append {
        /// The full length of the resource, if the server said.
        total: Option<u64>,
    },
    /// The server sent the whole resource (a 200, or any other final status): start over from byte
    /// 0 with this body.
    StartOverWithThisBody,
    /// The answer cannot be used (a 206 at another offset or for a changed resource, a 416): start
    /// over with a new request that asks for the whole resource.
    StartOverWithNewRequest,
}

/// Reads the answer to a request made with [`ask_to_continue`] at `offset`.
pub fn continuation(
    status: StatusCode,
    headers: &HeaderMap,
    offset: u64,
    validator: &Validator,
) -> Continuation {
    match status {
        StatusCode::PARTIAL_CONTENT => {
            let Some(range) = headers.typed_get::<ContentRange>() else {
                return Continuation::StartOverWithNewRequest;
            };
            let starts_at_offset = range
                .bytes_range()
                .is_some_and(|(start, _)| start == offset);
            // A part answers for the resource we hold the start of only if nothing it says
            // differs from what the first response said: the validator `If-Range` sent (its tag,
            // else its date) and the full length.
            let (name, ours) = match (&validator.etag, &validator.last_modified) {
                (Some(tag), _) => (ETAG, Some(tag)),
                (None, date) => (LAST_MODIFIED, date.as_ref()),
            };
            let same_resource = match (ours, headers.get(name)) {
                (Some(ours), Some(theirs)) => theirs.as_bytes() == ours.as_bytes(),
                _ => true,
            } && match (validator.length, range.bytes_len()) {
                (Some(ours), Some(theirs)) => ours == theirs,
                _ => true,
            };
            if starts_at_offset && same_resource {
                Continuation::Append {
                    total: range.bytes_len(),
                }
            } else {
                Continuation::StartOverWithNewRequest
            }
        }
        StatusCode::RANGE_NOT_SATISFIABLE => Continuation::StartOverWithNewRequest,
        _ => Continuation::StartOverWithThisBody,
    }
}

/// The `Content-Length` of a response, if present and valid.
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The bytes a request's `Range` field asks for, read as an HTTP server reads it (RFC 9110
/// 14.1.2), for a resource of `size` bytes when known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AskedRange {
    /// All of it: no `Range`, one this side does not serve (several ranges, a unit other than
    /// `bytes`, a suffix of a resource whose size is unknown), or one that is not well formed.
    /// An HTTP server ignores such a field too.
    Whole,
    /// The bytes from `first` to `last` (inclusive; to the end when `None`, which is only when
    /// the size is unknown and the range is open), clipped to the resource's size.
    Part {
        /// The first byte's offset.
        first: u64,
        /// The last byte's offset.
        last: Option<u64>,
    },
    /// No byte of the resource is in the range (it starts at or past the end, or is an empty
    /// suffix): a server answers 416.
    Unsatisfiable,
}

/// Reads the single byte range `headers` ask for; see [`AskedRange`].
pub fn asked_range(headers: &HeaderMap, size: Option<u64>) -> AskedRange {
    let Some(spec) = headers
        .get(RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
    else {
        return AskedRange::Whole;
    };
    let Some((first, last)) = spec.trim().split_once('-') else {
        return AskedRange::Whole;
    };
    let number = |text: &str| -> Option<Option<u64>> {
        let text = text.trim();
        if text.is_empty() {
            return Some(None);
        }
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse().ok().map(Some)
    };
    let (Some(first), Some(last)) = (number(first), number(last)) else {
        // Several ranges (a `,` in either half), a sign, or a number too large: not one this
        // side serves.
        return AskedRange::Whole;
    };
    match (first, last, size) {
        (None, None, _) => AskedRange::Whole,
        // A suffix: the last `n` bytes, all of them when `n` is more than there are.
        (None, Some(_), None) => AskedRange::Whole,
        (None, Some(0), Some(_)) | (None, Some(_), Some(0)) => AskedRange::Unsatisfiable,
        (None, Some(n), Some(size)) => AskedRange::Part {
            first: size.saturating_sub(n),
            last: Some(size - 1),
        },
        (Some(first), Some(last), _) if last < first => AskedRange::Whole,
        (Some(first), _, Some(size)) if first >= size => AskedRange::Unsatisfiable,
        (Some(first), last, Some(size)) => AskedRange::Part {
            first,
            last: Some(last.map_or(size - 1, |last| last.min(size - 1))),
        },
        (Some(first), last, None) => AskedRange::Part { first, last },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn eligibility_follows_urlsession() {
        let get = |pairs: &[(&'static str, &'static str)], path: &str| {
            resumable(&Method::GET, StatusCode::OK, &h(pairs), path)
        };
        let ok = h(&[("etag", "\"v1\""), ("accept-ranges", "bytes")]);
        let v = resumable(&Method::GET, StatusCode::OK, &ok, "/f").unwrap();
        assert_eq!(v.etag.as_deref(), Some("\"v1\""));
        assert!(resumable(&Method::POST, StatusCode::OK, &ok, "/f").is_none());
        assert!(resumable(&Method::GET, StatusCode::NOT_FOUND, &ok, "/f").is_none());
        assert!(get(&[], "/f").is_none());
        assert!(get(&[("etag", "W/\"v1\"")], "/f").is_none());
        assert!(get(&[("etag", "\"v1\""), ("accept-ranges", "none")], "/f").is_none());
        let gzip = [("etag", "\"v1\""), ("content-encoding", "gzip")];
        assert!(get(&gzip, "/f").is_none());
        // Unless the body is a gzip file kept as sent: its ranges are the stored bytes'.
        assert!(get(&gzip, "/f.tar.gz").is_some());
        // A coding on any line of the header: the body's bytes are not the resource's.
        let second_line = h(&[
            ("etag", "\"v1\""),
            ("content-encoding", "identity"),
            ("content-encoding", "gzip"),
        ]);
        assert!(resumable(&Method::GET, StatusCode::OK, &second_line, "/f").is_none());
        let dated = h(&[("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT")]);
        let v = resumable(&Method::GET, StatusCode::OK, &dated, "/f").unwrap();
        let mut req = HeaderMap::new();
        ask_to_continue(&mut req, 42, &v);
        assert_eq!(req[RANGE], "bytes=42-");
        assert_eq!(req[IF_RANGE], "Sun, 06 Nov 1994 08:49:37 GMT");
    }

    #[test]
    fn answers_are_read_strictly() {
        let v = Validator {
            etag: Some("\"v1\"".into()),
            last_modified: Some("Sun, 06 Nov 1994 08:49:37 GMT".into()),
            length: Some(1000),
        };
        let good = h(&[("content-range", "bytes 100-999/1000"), ("etag", "\"v1\"")]);
        assert_eq!(
            continuation(StatusCode::PARTIAL_CONTENT, &good, 100, &v),
            Continuation::Append { total: Some(1000) }
        );
        let unknown_total = h(&[("content-range", "bytes 100-999/*")]);
        assert_eq!(
            continuation(StatusCode::PARTIAL_CONTENT, &unknown_total, 100, &v),
            Continuation::Append { total: None }
        );
        assert_eq!(
            continuation(StatusCode::PARTIAL_CONTENT, &good, 50, &v),
            Continuation::StartOverWithNewRequest
        );
        let changed = h(&[("content-range", "bytes 100-999/1000"), ("etag", "\"v2\"")]);
        assert_eq!(
            continuation(StatusCode::PARTIAL_CONTENT, &changed, 100, &v),
            Continuation::StartOverWithNewRequest
        );
        // The same tag, but another full length: the resource changed.
        let longer = h(&[("content-range", "bytes 100-1004/1005"), ("etag", "\"v1\"")]);
        assert_eq!(
            continuation(StatusCode::PARTIAL_CONTENT, &longer, 100, &v),
            Continuation::StartOverWithNewRequest
        );
        // A date is compared only where it was the validator `If-Range` sent.
        let redated = h(&[
            ("content-range", "bytes 100-999/1000"),
            ("last-modified", "Mon, 07 Nov 1994 08:49:37 GMT"),
        ]);
        assert_eq!(
            continuation(StatusCode::PARTIAL_CONTENT, &redated, 100, &v),
            Continuation::Append { total: Some(1000) }
        );
        let dated = Validator {
            etag: None,
            ..v.clone()
        };
        assert_eq!(
            continuation(StatusCode::PARTIAL_CONTENT, &redated, 100, &dated),
            Continuation::StartOverWithNewRequest
        );
        assert_eq!(
            continuation(StatusCode::PARTIAL_CONTENT, &h(&[]), 100, &v),
            Continuation::StartOverWithNewRequest
        );
        assert_eq!(
            continuation(StatusCode::RANGE_NOT_SATISFIABLE, &h(&[]), 100, &v),
            Continuation::StartOverWithNewRequest
        );
        assert_eq!(
            continuation(StatusCode::OK, &h(&[]), 100, &v),
            Continuation::StartOverWithThisBody
        );
    }

    #[test]
    fn an_asked_range_is_read_as_an_http_server_reads_it() {
        let asked =
            |range: &'static str, size: Option<u64>| asked_range(&h(&[("range", range)]), size);
        let part = |first, last| AskedRange::Part { first, last };
        assert_eq!(asked_range(&h(&[]), Some(10)), AskedRange::Whole);
        assert_eq!(asked("bytes=2-5", Some(10)), part(2, Some(5)));
        assert_eq!(asked("bytes=2-", Some(10)), part(2, Some(9)));
        assert_eq!(asked("bytes=2-500", Some(10)), part(2, Some(9)));
        assert_eq!(asked("bytes=-3", Some(10)), part(7, Some(9)));
        assert_eq!(asked("bytes=-30", Some(10)), part(0, Some(9)));
        assert_eq!(asked("bytes=10-", Some(10)), AskedRange::Unsatisfiable);
        assert_eq!(asked("bytes=-0", Some(10)), AskedRange::Unsatisfiable);
        assert_eq!(asked("bytes=0-", Some(0)), AskedRange::Unsatisfiable);
        // Without the size: what can be served without it.
        assert_eq!(asked("bytes=2-5", None), part(2, Some(5)));
        assert_eq!(asked("bytes=2-", None), part(2, None));
        assert_eq!(asked("bytes=-3", None), AskedRange::Whole);
        // What a server ignores.
        for ignored in [
            "bytes=5-2",
            "bytes=0-1,4-5",
            "bytes=-",
            "bytes=+1-2",
            "items=0-5",
            "bytes=99999999999999999999-",
            "bytes=1",
        ] {
            assert_eq!(asked(ignored, Some(10)), AskedRange::Whole, "{ignored}");
        }
    }

    // 256 cases each by default; `PROPTEST_CASES=N` runs N.
    proptest::proptest! {
        /// Any `Range` text and size: never a panic, and a part is inside the resource.
        #[test]
        fn an_arbitrary_range_asks_for_bytes_inside_the_resource(
            range in "bytes=[0-9]{0,21}-[0-9]{0,21}|\\PC{0,40}",
            size in proptest::option::of(0u64..1_000_000),
        ) {
            let mut headers = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&range) {
                headers.insert(RANGE, v);
            }
            if let AskedRange::Part { first, last } = asked_range(&headers, size) {
                if let Some(last) = last {
                    proptest::prop_assert!(first <= last);
                }
                if let Some(size) = size {
                    proptest::prop_assert!(last.is_some_and(|last| last < size));
                }
            }
        }

        /// Any Content-Range, ETag and Content-Length text: a decision, never a panic; an append
        /// only where the range starts exactly at the offset.
        #[test]
        fn arbitrary_content_ranges_never_panic(
            range in "(bytes )?[0-9*]{0,20}(-[0-9]{0,20})?(/[0-9*]{0,20})?|\\PC{0,40}",
            length in "\\PC{0,24}",
            offset in proptest::prelude::any::<u64>(),
        ) {
            let mut headers = HeaderMap::new();
            if let Ok(v) = http::HeaderValue::from_str(&range) {
                headers.insert(http::header::CONTENT_RANGE, v);
            }
            if let Ok(v) = http::HeaderValue::from_str(&length) {
                headers.insert(CONTENT_LENGTH, v);
            }
            let _ = content_length(&headers);
            let validator = Validator { etag: Some("\"v1\"".into()), last_modified: None, length: None };
            let answer = continuation(StatusCode::PARTIAL_CONTENT, &headers, offset, &validator);
            if let Continuation::Append { .. } = answer {
                let start = range.trim_start_matches("bytes ").split('-').next().and_then(|n| n.parse::<u64>().ok());
                proptest::prop_assert_eq!(start, Some(offset));
            }
        }
    }
}
