//! The request the options describe for each URL: its method, its fields (`-H` as curl reads it,
//! `-A`, `-e`, `-r`, `-b 'NAME=VALUE'`, `--json`'s, `-z`'s), its body (`-d`, `--data-urlencode`,
//! `--data-binary`, a `-F` form) or, with `-G`, its query. Built as each task starts, from options
//! checked once before anything starts ([`check_request_options`]).

use courier_engine::Request;
use courier_engine::reexports::http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use courier_engine::reexports::http::{self, HeaderName, HeaderValue, Method};

use crate::Failure;
use crate::cli::Options;

/// Reads a `-H` option as curl does: `Name: value`; `Name:` with nothing after it is a field to
/// leave out (`None`: one Courier would add, `User-Agent` say, is not sent); `Name;` is the field
/// with an empty value.
fn header_option(h: &str) -> Result<(HeaderName, Option<HeaderValue>), Failure> {
    let (name, value) = match h.split_once(':') {
        Some(pair) => pair,
        None => match h.trim_end().strip_suffix(';') {
            Some(name) => {
                let name = HeaderName::from_bytes(name.trim().as_bytes())
                    .map_err(|_| Failure::usage(format!("bad header name in {h:?}")))?;
                return Ok((name, Some(HeaderValue::from_static(""))));
            }
            None => {
                return Err(Failure::usage(format!(
                    "bad header {h:?}: expected 'Name: value' ('Name:' leaves the field out, \
                     'Name;' sends it empty)"
                )));
            }
        },
    };
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| Failure::usage(format!("bad header name in {h:?}")))?;
    if value.trim().is_empty() {
        return Ok((name, None));
    }
    let value = HeaderValue::from_str(value.trim())
        .map_err(|_| Failure::usage(format!("bad header value in {h:?}")))?;
    Ok((name, Some(value)))
}

/// Builds one request for `url` from the options (a URL typed without a scheme is `https://`:
/// [`with_scheme`]).
pub(crate) fn request(url: &str, options: &Options) -> Result<Request, Failure> {
    let mut request = Request::get(with_scheme(url, "https").as_ref());
    if options.head {
        request.set_method(Method::HEAD);
    }
    if let Some(m) = &options.method {
        let method = Method::from_bytes(m.as_bytes())
            .map_err(|_| Failure::usage(format!("bad method {m:?}")))?;
        request.set_method(method);
    }
    for h in &options.headers {
        match header_option(h)? {
            (name, Some(value)) => {
                request.headers_mut().append(name, value);
            }
            // The framing is hyper's to write: a request without it could not be read.
            (name, None) if [HOST, CONTENT_LENGTH, TRANSFER_ENCODING].contains(&name) => {
                return Err(Failure::usage(format!(
                    "{h:?}: the {name} field frames the request and cannot be left out"
                )));
            }
            // Left out, whoever would add it: curl's `-H 'Name:'` (`Expect:` sends a large body
            // without waiting for `100 Continue`).
            (name, None) => request.omit_header(name),
        }
    }
    // `-b 'NAME=VALUE'`: sent as it is, as curl sends it (the jar's cookies are then not added).
    if let Some(cookie) = options.cookie.as_ref().filter(|c| c.contains('='))
        && !request.headers().contains_key(http::header::COOKIE)
    {
        let value = HeaderValue::from_str(cookie)
            .map_err(|_| Failure::usage(format!("-b {cookie:?}: not a Cookie field's value")))?;
        request.headers_mut().insert(http::header::COOKIE, value);
    }
    let json = options.json.then(|| "application/json".to_owned());
    // Fields that options name (`-A`, `-e`, `-r`, `--json`, `--oauth2-bearer`): a field given
    // with `-H` wins, as with curl.
    let named = [
        (
            http::header::CONTENT_TYPE,
            json.clone().or_else(|| options.body_type.clone()),
        ),
        (http::header::ACCEPT, json),
        (http::header::USER_AGENT, options.user_agent.clone()),
        (
            http::header::AUTHORIZATION,
            options
                .oauth2_bearer
                .as_ref()
                .map(|t| format!("Bearer {t}")),
        ),
        (http::header::REFERER, options.referer.clone()),
        (
            http::header::RANGE,
            options.range.as_ref().map(|r| format!("bytes={r}")),
        ),
    ];
    for (name, value) in named {
        let Some(value) = value else { continue };
        if !request.headers().contains_key(&name) && !request.omitted_headers().contains(&name) {
            let value = HeaderValue::from_str(&value)
                .map_err(|_| Failure::usage(format!("bad {name} {value:?}")))?;
            request.headers_mut().insert(name, value);
        }
    }
    // `-z` and `--etag-compare`'s conditions, read once (`conditional::resolve`).
    for (name, value) in &options.conditions {
        if !request.headers().contains_key(name) && !request.omitted_headers().contains(name) {
            request.headers_mut().insert(name.clone(), value.clone());
        }
    }
    if options.query {
        if options.body.is_some() || options.form_stream.is_some() {
            return Err(Failure::usage(
                "-G sends the -d and --data-urlencode parts in the URL: a --json, --data-binary \
                 or -F body cannot go there"
                    .into(),
            ));
        }
        if let Some(data) = &options.data_text
            && let Some(url) = request.url()
        {
            // Into the query, after what the URL has there, as curl appends it.
            let mut url = url.clone();
            let query = match url.query() {
                Some(q) if !q.is_empty() => format!("{q}&{data}"),
                _ => data.clone(),
            };
            url.set_query(Some(&query));
            request.set_url(url);
        }
        return Ok(request);
    }
    let body = options
        .data_text
        .as_ref()
        .map(|d| d.as_bytes())
        .or(options.body.as_deref());
    if let Some(body) = body {
        request.set_body(body.to_vec());
        if options.method.is_none() {
            request.set_method(Method::POST);
        }
    }
    // A form streamed from its files: its length counted beforehand, as curl sends it (not
    // chunked, which some servers refuse for a form).
    if let Some(form) = &options.form_stream {
        request
            .headers_mut()
            .insert(http::header::CONTENT_LENGTH, form.length().into());
        if options.method.is_none() {
            request.set_method(Method::POST);
        }
    }
    Ok(request)
}

/// A URL as typed, completed as curl and browsers complete one without a scheme
/// (`example.com/file`, `localhost:8080/x`): with `scheme`, `https` for a request (secure by
/// default: `http://` is written out, and allowed with `--allow-http`). A URL with a scheme
/// Courier knows (`data:` and `file:` among them) is left as it is, as is one naming any scheme
/// with `://`, which then fails as unsupported.
pub(crate) fn with_scheme<'u>(url: &'u str, scheme: &str) -> std::borrow::Cow<'u, str> {
    const KNOWN: [&str; 7] = ["http", "https", "ftp", "ws", "wss", "data", "file"];
    let known =
        courier_engine::reexports::url::Url::parse(url).is_ok_and(|u| KNOWN.contains(&u.scheme()));
    if known || url.contains("://") || url.is_empty() {
        std::borrow::Cow::Borrowed(url)
    } else {
        std::borrow::Cow::Owned(format!("{scheme}://{url}"))
    }
}

/// Checks what the options add to every request (method, headers, body) before anything starts,
/// on the `first` URL: each URL becomes a request only as its task starts, through [`request`]
/// (10,000 URLs held as requests up front took 4.3 MB). A bad URL is not a usage error: it fails
/// its own task.
pub(crate) fn check_request_options(first: Option<&str>, options: &Options) -> Result<(), Failure> {
    note_data_naming_a_file(options);
    first.map_or(Ok(()), |url| request(url, options).map(drop))
}

/// `--data @NAME` sends the text `@NAME`, as the contract says (curl's `--data-raw`); curl's
/// `-d @NAME` would send the file. When such a file is there, a note on stderr says which was
/// meant and how to send the file, so a curl habit does not send a file name in silence.
pub(crate) fn note_data_naming_a_file(options: &Options) {
    for name in options.data.iter().filter_map(|d| d.strip_prefix('@')) {
        if name.is_empty() || !std::path::Path::new(name).is_file() {
            continue;
        }
        say!(
            "courier: note: --data sends the text {:?} as it is; to send the file {name}, use \
             `--data-binary @{name}` (or `courier upload --file {name} -X POST URL`)",
            format!("@{name}")
        );
    }
}

/// `content` as `--data-urlencode` encodes it, the same bytes curl 7.88 sends: RFC 3986's
/// unreserved characters as they are, a space as `+` (the form encoding's), any other byte as
/// `%hh`.
fn url_encoded(content: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(content.len() * 3);
    for &b in content {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02x}");
            }
        }
    }
    out
}

/// Joins the `-d` parts and the `--data-urlencode` ones (encoded as curl encodes them: `CONTENT`,
/// `=CONTENT`, `NAME=CONTENT`, `@FILE`, `NAME@FILE`, a file's content read whole, at most 16
/// MiB) with `&` into `options.data_text`: once per command, not once per request.
///
/// # Errors
/// A file that cannot be read, or is larger than 16 MiB.
pub(crate) fn join_data(options: &mut Options) -> Result<(), Failure> {
    use crate::cli::{TooLong, read_bounded_arg};
    if options.data.is_empty() && options.data_urlencode.is_empty() {
        return Ok(());
    }
    let mut parts = options.data.clone();
    for item in &options.data_urlencode {
        // `NAME=CONTENT` and `=CONTENT`; else `NAME@FILE` and `@FILE`: as curl reads it, an `=`
        // anywhere makes the form a content's (`a@b=c` is the name `a@b`), then an `@` a file's.
        let (name, content) = match item
            .split_once('=')
            .map(|(n, c)| (n, c, false))
            .or_else(|| item.split_once('@').map(|(n, f)| (n, f, true)))
        {
            Some((name, rest, true)) => {
                let bytes = read_bounded_arg(rest, 16 << 20).map_err(|e| match e {
                    TooLong::Read(e) => Failure::usage(format!("--data-urlencode {item:?}: {e}")),
                    TooLong::Over(max) => Failure::usage(format!(
                        "--data-urlencode {item:?}: the file is larger than {} MiB",
                        max >> 20
                    )),
                })?;
                (name, bytes)
            }
            Some((name, rest, false)) => (name, rest.as_bytes().to_vec()),
            None => ("", item.as_bytes().to_vec()),
        };
        let encoded = url_encoded(&content);
        parts.push(if name.is_empty() {
            encoded
        } else {
            format!("{name}={encoded}")
        });
    }
    options.data_text = Some(parts.join("&"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::with_scheme;

    #[test]
    fn a_url_without_a_scheme_gets_the_default_one() {
        for (typed, meant) in [
            ("example.com", "https://example.com"),
            ("example.com/a/b?c", "https://example.com/a/b?c"),
            ("localhost:8080/x", "https://localhost:8080/x"),
            ("127.0.0.1:8080", "https://127.0.0.1:8080"),
            ("http://h/", "http://h/"),
            ("HTTPS://h/", "HTTPS://h/"),
            ("data:,hi", "data:,hi"),
            ("file:/tmp/x", "file:/tmp/x"),
            ("gopher://h/", "gopher://h/"),
        ] {
            assert_eq!(with_scheme(typed, "https"), meant, "{typed}");
        }
        assert_eq!(with_scheme("h:9/chat", "wss"), "wss://h:9/chat");
    }
}
