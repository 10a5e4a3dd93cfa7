//! Redirects: whether a response redirects, and how it rewrites the request. Pure functions; the
//! engine decides whether to follow (its limit, its cleartext policy, its delegate).
//!
//! The method table is URLSession's (and every browser's, per the Fetch standard): 301 and 302 turn a
//! POST into a GET, 303 turns anything but GET and HEAD into a GET, and a request whose method stays
//! keeps its body (307 and 308 always keep both). 300, 304 and any
//! 3xx without a usable `Location` (none, an empty one, one that does not parse or is not http(s))
//! are not redirects to follow.

use http::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, LOCATION, PROXY_AUTHORIZATION,
};
use http::{HeaderMap, Method, StatusCode};
use url::Url;

/// A redirect to follow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirect {
    /// Where to go (the `Location`, resolved against the request's URL).
    pub url: Url,
    /// The method of the next request.
    pub method: Method,
    /// True when the next request carries the body again (its method was not turned into a GET).
    pub keeps_body: bool,
}

/// The redirect `status` and `headers` ask for, for a request `method` to `from`, if any.
pub fn redirect(
    status: StatusCode,
    headers: &HeaderMap,
    method: &Method,
    from: &Url,
) -> Option<Redirect> {
    let code = status.as_u16();
    if !matches!(code, 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    let location = location_text(headers.get(LOCATION)?.as_bytes());
    // An empty `Location` would resolve to the request's own URL and loop until the limit: it is
    // no redirect, as curl and Chromium read it.
    let location = location.trim();
    if location.is_empty() {
        return None;
    }
    let url = from.join(location).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    // As the Fetch standard says: a request turned into a GET loses its body; any other keeps its
    // method and its body.
    let (method, keeps_body) = match code {
        301 | 302 if method == Method::POST => (Method::GET, false),
        303 if method != Method::HEAD && method != Method::GET => (Method::GET, false),
        _ => (method.clone(), true),
    };
    Some(Redirect {
        url,
        method,
        keeps_body,
    })
}

/// A `Location` value as text to resolve. Servers send non-ASCII bytes in it (a file name in
/// UTF-8, now and then in Latin-1) that RFC 9110 does not allow; curl and browsers follow them
/// anyway: UTF-8 is read as such (the URL parser percent-encodes it, and maps a host to IDNA),
/// and any other byte past ASCII is percent-encoded as it is (`é` in Latin-1 goes as `%E9`).
fn location_text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.into(),
        Err(_) => bytes
            .iter()
            .map(|&b| match b {
                0..=0x7f => char::from(b).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
            .into(),
    }
}

/// Rewrites the headers of the request that follows `r` from `from`: a request that loses its body
/// loses the headers describing it, and one that goes to another origin loses its credentials and
/// cookies.
pub fn rewrite_headers(headers: &mut HeaderMap, r: &Redirect, from: &Url) {
    if !r.keeps_body {
        headers.remove(CONTENT_TYPE);
        headers.remove(CONTENT_LENGTH);
    }
    if from.origin() != r.url.origin() {
        headers.remove(AUTHORIZATION);
        headers.remove(PROXY_AUTHORIZATION);
        headers.remove(COOKIE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn loc(l: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(LOCATION, HeaderValue::from_static(l));
        h
    }

    #[test]
    fn the_method_table() {
        let from = Url::parse("https://a.test/x/y").unwrap();
        let go = |code: u16, m: Method| {
            redirect(StatusCode::from_u16(code).unwrap(), &loc("../z"), &m, &from)
                .map(|r| (r.method, r.keeps_body, r.url.to_string()))
        };
        let z = "https://a.test/z".to_string();
        assert_eq!(go(301, Method::POST), Some((Method::GET, false, z.clone())));
        assert_eq!(go(302, Method::POST), Some((Method::GET, false, z.clone())));
        assert_eq!(go(302, Method::PUT), Some((Method::PUT, true, z.clone())));
        assert_eq!(go(301, Method::GET), Some((Method::GET, true, z.clone())));
        assert_eq!(go(303, Method::PUT), Some((Method::GET, false, z.clone())));
        assert_eq!(go(303, Method::HEAD), Some((Method::HEAD, true, z.clone())));
        assert_eq!(go(307, Method::POST), Some((Method::POST, true, z.clone())));
        assert_eq!(go(308, Method::PUT), Some((Method::PUT, true, z)));
        assert_eq!(go(300, Method::GET), None);
        assert_eq!(go(304, Method::GET), None);
        assert_eq!(
            redirect(StatusCode::FOUND, &HeaderMap::new(), &Method::GET, &from),
            None
        );
        for empty in ["", "  "] {
            let mut h = HeaderMap::new();
            h.insert(LOCATION, HeaderValue::from_static(empty));
            assert_eq!(
                redirect(StatusCode::FOUND, &h, &Method::GET, &from),
                None,
                "an empty Location is no redirect"
            );
        }
        assert_eq!(
            redirect(
                StatusCode::FOUND,
                &loc("ftp://a.test/"),
                &Method::GET,
                &from
            ),
            None
        );
    }

    #[test]
    fn a_location_past_ascii_is_followed_as_curl_and_browsers_follow_it() {
        let from = Url::parse("http://a.test/dir/x").unwrap();
        let go = |bytes: &'static [u8]| {
            let mut h = HeaderMap::new();
            h.insert(LOCATION, HeaderValue::from_bytes(bytes).unwrap());
            redirect(StatusCode::FOUND, &h, &Method::GET, &from).map(|r| r.url.to_string())
        };
        assert_eq!(
            go("/caf\u{e9} \u{2603}?q=\u{e9}".as_bytes()).as_deref(),
            Some("http://a.test/caf%C3%A9%20%E2%98%83?q=%C3%A9"),
            "UTF-8"
        );
        assert_eq!(
            go(b"na\xefve/r\xe9sum\xe9.pdf").as_deref(),
            Some("http://a.test/dir/na%EFve/r%E9sum%E9.pdf"),
            "Latin-1, each byte as it is"
        );
        assert_eq!(
            go("http://b\u{fc}cher.test/".as_bytes()).as_deref(),
            Some("http://xn--bcher-kva.test/"),
            "a host in UTF-8 goes as IDNA"
        );
        assert_eq!(
            go(b"http://b\xfccher.test/"),
            None,
            "a Latin-1 host is no host"
        );
    }

    #[test]
    fn credentials_stay_with_their_origin() {
        let from = Url::parse("https://a.test/").unwrap();
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic x"));
        h.insert(COOKIE, HeaderValue::from_static("a=1"));
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let same = redirect(
            StatusCode::TEMPORARY_REDIRECT,
            &loc("/b"),
            &Method::POST,
            &from,
        )
        .unwrap();
        let mut kept = h.clone();
        rewrite_headers(&mut kept, &same, &from);
        assert_eq!(kept.len(), 3);
        let other = redirect(
            StatusCode::SEE_OTHER,
            &loc("https://b.test/"),
            &Method::POST,
            &from,
        )
        .unwrap();
        rewrite_headers(&mut h, &other, &from);
        assert!(h.is_empty(), "{h:?}");
    }

    proptest::proptest! {
        /// Any bytes a header may hold as a `Location`: a redirect to an http(s) URL, or none;
        /// never a panic.
        #[test]
        fn any_location_bytes_resolve_or_are_refused(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        ) {
            let from = Url::parse("https://a.test/dir/x?y").unwrap();
            if let Ok(value) = HeaderValue::from_bytes(&bytes) {
                let mut h = HeaderMap::new();
                h.insert(LOCATION, value);
                if let Some(r) = redirect(StatusCode::FOUND, &h, &Method::GET, &from) {
                    proptest::prop_assert!(matches!(r.url.scheme(), "http" | "https"));
                }
            }
        }
    }
}
