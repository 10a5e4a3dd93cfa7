//! Building what goes on the wire from a task's request and the session's configuration: the
//! checks before anything is sent (URL, scheme, cleartext policy, a GET with a body) and the headers
//! (the configuration's under the request's, `User-Agent`, `Accept-Encoding`, a form's
//! `Content-Type`).
//!
//! A download asks for its body as stored (`Accept-Encoding: identity`) unless the request or the
//! configuration names an encoding: a body a server compresses on the fly (nginx does for text
//! types) has no length and cannot be continued with a range. `Session::download_task` says how
//! this differs from URLSession.

use std::sync::Arc;

use courier_delegates::{Error, ErrorCode, Request};
use courier_protocol_http::decode;
use http::header::{ACCEPT_ENCODING, CONTENT_TYPE, HeaderValue, USER_AGENT};
use http::uri::InvalidUri;
use url::Url;

use super::transfer::Head;
use super::upload::UploadBody;
use crate::Configuration;

/// The default `User-Agent`, sent unless the request or the configuration sets one.
const DEFAULT_USER_AGENT: &str = concat!("courier/", env!("CARGO_PKG_VERSION"));

/// The fields every request of a session starts from, made once per session: a request clones
/// one of them (an `Arc`) instead of building its map field by field.
pub(crate) struct BaseHeaders {
    /// The configuration's additional headers, and `User-Agent` and `Accept-Encoding` unless those
    /// set them.
    plain: Arc<http::HeaderMap>,
    /// The same, and a form's `Content-Type` unless they set one: what a POST with a body starts
    /// from (URLSession's default). Made here, not per request: adding the field to a copy of
    /// `plain` cost every small POST three allocations.
    form: Arc<http::HeaderMap>,
    /// What a download starts from: `plain` asking for the body as stored (see the module's
    /// comment) unless the configuration names an encoding. Made once, so a running download
    /// shares it instead of holding a copy.
    download: Arc<http::HeaderMap>,
}

impl BaseHeaders {
    pub(crate) fn new(config: &Configuration) -> BaseHeaders {
        let mut plain = config.http_additional_headers.clone();
        plain.reserve(2);
        if !plain.contains_key(USER_AGENT) {
            plain.insert(USER_AGENT, HeaderValue::from_static(DEFAULT_USER_AGENT));
        }
        let mut download = plain.clone();
        if !plain.contains_key(ACCEPT_ENCODING) {
            // Decoded transparently (courier-protocol-http's `decode`).
            plain.insert(
                ACCEPT_ENCODING,
                HeaderValue::from_static(decode::ACCEPT_ENCODING),
            );
            download.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        }
        let mut form = plain.clone();
        if !form.contains_key(CONTENT_TYPE) {
            form.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
        }
        BaseHeaders {
            plain: Arc::new(plain),
            form: Arc::new(form),
            download: Arc::new(download),
        }
    }
}

/// Checks a request against the configuration and builds what goes on the wire (the body is
/// attached per send, from `body`), its fields from `base` (the session's [`BaseHeaders`]): a
/// download's (`download`) asking for the body as stored.
///
/// # Errors
/// The URL is malformed (-1000) or of an unsupported scheme (-1002); cleartext HTTP is not allowed
/// for the host (-1022); a GET carries a body (-1103). The scheme and cleartext checks are skipped for
/// a request a protocol handler claims.
pub(crate) fn build_request(
    request: &Request,
    body: Option<&UploadBody>,
    config: &Configuration,
    base: &BaseHeaders,
    download: bool,
) -> Result<(Head, Url), Error> {
    let text = request.url_str();
    let Some(url) = request.url() else {
        let reason = request.url_error().unwrap_or("malformed URL");
        return Err(Error::new(ErrorCode::BadUrl, format!("bad URL: {reason}")).with_url(text));
    };
    // A request a protocol handler answers never goes on the network: the network's rules (the
    // schemes it speaks, the cleartext policy) are not its.
    let claimed = super::protocol::claimer(&config.protocol_handlers, request).is_some();
    let secure = match url.scheme() {
        "https" => true,
        "http" => false,
        // FTP is cleartext unless the configuration asks for explicit FTPS.
        "ftp" => config.ftp_explicit_tls,
        _ if claimed => true,
        other => {
            return Err(Error::new(
                ErrorCode::UnsupportedUrl,
                format!("unsupported URL scheme {other:?}"),
            )
            .with_url(text));
        }
    };
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return Err(Error::new(ErrorCode::BadUrl, "bad URL: no host").with_url(text));
    };
    if !secure && !claimed && !config.cleartext.allows(host) {
        return Err(Error::new(
            ErrorCode::AppTransportSecurityRequiresSecureConnection,
            format!(
                "cleartext {} to {host} is not allowed by the session's configuration",
                url.scheme().to_uppercase()
            ),
        )
        .with_url(text));
    }
    let has_body = match body {
        None => false,
        Some(UploadBody::Bytes(b)) => !b.is_empty(),
        Some(_) => true,
    };
    if has_body && request.method() == http::Method::GET {
        return Err(Error::new(
            ErrorCode::DataLengthExceedsMaximum,
            "resource exceeds maximum size",
        )
        .with_url(text));
    }
    let (uri, host) = wire_target(url).map_err(|e| {
        Error::new(ErrorCode::BadUrl, format!("bad URL: {e}"))
            .with_url(text)
            .with_source(e)
    })?;

    // The session's fields first (a form's `Content-Type` among them for a POST with a body),
    // then the request's, which replace same-named ones: a copy of the session's only when there
    // is something to change.
    let mut headers = if download {
        base.download.clone()
    } else if has_body && request.method() == http::Method::POST {
        base.form.clone()
    } else {
        base.plain.clone()
    };
    let omitted = left_out(request);
    if !request.headers().is_empty() || omitted.is_some() {
        let merged = Arc::make_mut(&mut headers);
        for name in request
            .headers()
            .keys()
            .chain(omitted.iter().flat_map(|o| o.iter()))
        {
            merged.remove(name);
        }
        for (name, value) in request.headers() {
            merged.append(name.clone(), value.clone());
        }
    }
    let head = Head {
        method: request.method().clone(),
        uri,
        host,
        headers,
        omitted,
    };
    Ok((head, url.clone()))
}

/// The fields `request` leaves out ([`Request::omit_header`]) and does not set itself since:
/// what the session must not add to it.
pub(crate) fn left_out(request: &Request) -> Option<Arc<[http::HeaderName]>> {
    let omitted = request.omitted_headers();
    if omitted.is_empty() {
        return None;
    }
    let left: Arc<[http::HeaderName]> = omitted
        .iter()
        .filter(|n| !request.headers().contains_key(*n))
        .cloned()
        .collect();
    (!left.is_empty()).then_some(left)
}

/// What goes on the wire for `url`: the request target, and the `Host` field HTTP/1.1 sends with
/// it (its host, and its port when it is not the scheme's default, as hyper-util writes it).
///
/// Both are views of one copy of the URL's text: the parser already wrote the host in its
/// canonical form and left a default port out, so the field is the span from the host to the
/// port. (Formatting the field apart cost an allocation and a `format!` per request.)
pub(crate) fn wire_target(url: &Url) -> Result<(http::Uri, Option<HeaderValue>), InvalidUri> {
    use url::Position::{AfterPort, BeforeHost};
    let text = bytes::Bytes::copy_from_slice(url.as_str().as_bytes());
    let (start, end) = (url[..BeforeHost].len(), url[..AfterPort].len());
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .and_then(|_| HeaderValue::from_maybe_shared(text.slice(start..end)).ok());
    Ok((http::Uri::from_maybe_shared(text)?, host))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn code(r: Result<(Head, Url), Error>) -> Option<ErrorCode> {
        r.err().map(|e| e.code())
    }

    fn build(r: &Request, c: &Configuration) -> Result<(Head, Url), Error> {
        let body = r.body().cloned().map(UploadBody::Bytes);
        build_request(r, body.as_ref(), c, &BaseHeaders::new(c), false)
    }

    #[test]
    fn the_host_field_names_a_port_only_when_it_is_not_the_default() {
        let h = |u: &str| {
            let url: Url = u.parse().unwrap();
            let (uri, host) = wire_target(&url).unwrap();
            assert_eq!(
                uri.to_string(),
                url.as_str(),
                "the target is the URL as written"
            );
            host.map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(h("http://example.com/a").as_deref(), Some("example.com"));
        assert_eq!(h("http://example.com:80/").as_deref(), Some("example.com"));
        assert_eq!(
            h("https://example.com:443/").as_deref(),
            Some("example.com")
        );
        assert_eq!(
            h("http://example.com:443/").as_deref(),
            Some("example.com:443")
        );
        assert_eq!(h("http://u:p@127.0.0.1:8/").as_deref(), Some("127.0.0.1:8"));
        assert_eq!(h("https://[::1]:65535/x").as_deref(), Some("[::1]:65535"));
        assert_eq!(
            h("http://Example.COM:1080").as_deref(),
            Some("example.com:1080")
        );
        for port in [1u16, 9, 10, 99, 100, 4321, 10_000, 65_535] {
            let url = format!("http://h:{port}/");
            assert_eq!(h(&url), Some(format!("h:{port}")));
        }
    }

    #[test]
    fn an_omitted_field_leaves_the_sessions_out_and_the_request_may_set_it_again() {
        let mut c = Configuration::default();
        c.http_additional_headers
            .insert("x-config", HeaderValue::from_static("c"));
        let mut r = Request::get("https://a.test/");
        for name in [
            "x-config",
            "user-agent",
            "accept-encoding",
            "cookie",
            "x-again",
        ] {
            r.omit_header(name.parse().unwrap());
        }
        r.headers_mut()
            .insert("x-again", HeaderValue::from_static("set"));
        let (head, _) = build(&r, &c).unwrap();
        assert_eq!(head.headers.len(), 1, "{:?}", head.headers);
        assert_eq!(head.headers["x-again"], "set");
        assert!(head.omits(&http::header::COOKIE));
        assert!(
            !head.omits(&"x-again".parse().unwrap()),
            "the request sets it"
        );
        let (plain, _) = build(&Request::get("https://a.test/"), &c).unwrap();
        assert_eq!(plain.headers.len(), 3);
        assert!(plain.omitted.is_none());
    }

    #[test]
    fn refusals_before_the_wire() {
        let c = Configuration::default();
        assert_eq!(
            code(build(&Request::get("http://127.0.0.1:99999/"), &c)),
            Some(ErrorCode::BadUrl)
        );
        assert_eq!(
            code(build(&Request::get("gopher://a.test/"), &c)),
            Some(ErrorCode::UnsupportedUrl)
        );
        assert_eq!(
            code(build(&Request::get("http://a.test/"), &c)),
            Some(ErrorCode::AppTransportSecurityRequiresSecureConnection)
        );
        assert_eq!(
            code(build(&Request::get("https://a.test/").with_body("x"), &c)),
            Some(ErrorCode::DataLengthExceedsMaximum)
        );
        assert_eq!(code(build(&Request::get("https://a.test/"), &c)), None);
    }

    #[test]
    fn request_headers_win_over_configuration_headers() {
        let mut c = Configuration::default();
        c.http_additional_headers
            .insert("x-a", HeaderValue::from_static("config"));
        c.http_additional_headers
            .insert("x-b", HeaderValue::from_static("config"));
        let r = Request::get("https://a.test/").with_header(
            http::HeaderName::from_static("x-a"),
            HeaderValue::from_static("request"),
        );
        let (built, _) = build(&r, &c).unwrap();
        assert_eq!(built.headers["x-a"], "request");
        assert_eq!(built.headers["x-b"], "config");
        assert_eq!(built.headers[USER_AGENT], DEFAULT_USER_AGENT);
        assert_eq!(built.headers[ACCEPT_ENCODING], decode::ACCEPT_ENCODING);

        // A configuration's User-Agent replaces the default; a request's replaces both, and
        // is the only one sent.
        c.http_additional_headers
            .insert(USER_AGENT, HeaderValue::from_static("configured"));
        let (built, _) = build(&Request::get("https://a.test/"), &c).unwrap();
        assert_eq!(built.headers[USER_AGENT], "configured");
        let r = Request::get("https://a.test/")
            .with_header(USER_AGENT, HeaderValue::from_static("mine"))
            .with_header(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        let (built, _) = build(&r, &c).unwrap();
        assert_eq!(built.headers.get_all(USER_AGENT).iter().count(), 1);
        assert_eq!(built.headers[USER_AGENT], "mine");
        assert_eq!(built.headers[ACCEPT_ENCODING], "identity");
    }

    #[test]
    fn a_download_asks_for_its_body_as_stored_unless_told_otherwise() {
        let download = |r: &Request, c: &Configuration| {
            let (built, _) = build_request(r, None, c, &BaseHeaders::new(c), true).unwrap();
            let values: Vec<_> = built.headers.get_all(ACCEPT_ENCODING).iter().collect();
            assert_eq!(values.len(), 1, "one Accept-Encoding");
            values[0].to_str().unwrap().to_owned()
        };
        let mut c = Configuration::default();
        let get = Request::get("https://a.test/big.txt");
        assert_eq!(download(&get, &c), "identity");
        // A data task's request is untouched: it still asks for every encoding it decodes.
        let (built, _) = build(&get, &c).unwrap();
        assert_eq!(built.headers[ACCEPT_ENCODING], decode::ACCEPT_ENCODING);
        // The request's own choice wins, and so does the configuration's.
        let gzip = HeaderValue::from_static("gzip");
        let asked = get.clone().with_header(ACCEPT_ENCODING, gzip.clone());
        assert_eq!(download(&asked, &c), "gzip");
        c.http_additional_headers.insert(ACCEPT_ENCODING, gzip);
        assert_eq!(download(&get, &c), "gzip");
    }

    #[test]
    fn post_body_gets_a_form_content_type() {
        let r = Request::new(Method::POST, "https://a.test/").with_body("a=1");
        let (built, _) = build(&r, &Configuration::default()).unwrap();
        assert_eq!(
            built.headers[CONTENT_TYPE],
            "application/x-www-form-urlencoded"
        );
        let r = Request::new(Method::POST, "https://a.test/");
        let (built, _) = build(&r, &Configuration::default()).unwrap();
        assert!(built.headers.get(CONTENT_TYPE).is_none());
        // Only the default: a request's own type, or the configuration's, is the one sent.
        let json = HeaderValue::from_static("application/json");
        let r = Request::new(Method::POST, "https://a.test/")
            .with_body("{}")
            .with_header(CONTENT_TYPE, json.clone());
        let (built, _) = build(&r, &Configuration::default()).unwrap();
        assert_eq!(built.headers.get_all(CONTENT_TYPE).iter().count(), 1);
        assert_eq!(built.headers[CONTENT_TYPE], json);
        let mut c = Configuration::default();
        c.http_additional_headers
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let r = Request::new(Method::POST, "https://a.test/").with_body("a");
        let (built, _) = build(&r, &c).unwrap();
        assert_eq!(built.headers.get_all(CONTENT_TYPE).iter().count(), 1);
        assert_eq!(built.headers[CONTENT_TYPE], "text/plain");
        // A PUT gets no default type.
        let r = Request::new(Method::PUT, "https://a.test/").with_body("a");
        let (built, _) = build(&r, &Configuration::default()).unwrap();
        assert!(built.headers.get(CONTENT_TYPE).is_none());
    }
}
