//! `-w FORMAT` (`--write-out`, curl's): a line of the caller's making after each task, with
//! `%{name}` replaced by what the task did (`%{http_code}`, `%{time_total}`, `%{size_download}`,
//! `%header{name}` (curl's; `%{header{name}}` too), `%{json}`...), so a script reads one field
//! without the event stream.
//!
//! The format is read once, when the command starts: a name curl does not know, or one Courier
//! does not report, is a usage error there, not an empty field after the transfer. The values
//! come from the task's response and its metrics ([`TaskMetrics`]); times are seconds from the
//! task's start, as curl counts them from the transfer's, redirects included.

use std::fmt::Write as _;
use std::time::Instant;

use courier_engine::{Error, FetchType, Response, TaskMetrics, TransactionMetrics};
use serde_json::{Map, Value};

/// The longest format `-w @FILE` reads.
const MAX_FORMAT: u64 = 64 << 10;

/// A parsed `-w` format.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct WriteOut(Vec<Piece>);

/// Text as it is, or a variable.
#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Text(String),
    Var(Var),
    /// `%{header{name}}`: that response header's value (several joined with `, `).
    Header(String),
}

/// The variables, by curl's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Var {
    ContentType,
    ErrorMsg,
    ExitCode,
    FilenameEffective,
    HttpCode,
    HttpVersion,
    Json,
    LocalIp,
    LocalPort,
    Method,
    NumConnects,
    NumHeaders,
    NumRedirects,
    RedirectUrl,
    RemoteIp,
    RemotePort,
    Scheme,
    SizeDownload,
    SizeHeader,
    SizeRequest,
    SizeUpload,
    SpeedDownload,
    SpeedUpload,
    TimeAppConnect,
    TimeConnect,
    TimeNameLookup,
    TimePreTransfer,
    TimeRedirect,
    TimeStartTransfer,
    TimeTotal,
    Url,
    UrlEffective,
}

/// Every variable and its name; `response_code` is `http_code`'s other name, as in curl.
const NAMES: &[(&str, Var)] = &[
    ("content_type", Var::ContentType),
    ("errormsg", Var::ErrorMsg),
    ("exitcode", Var::ExitCode),
    ("filename_effective", Var::FilenameEffective),
    ("http_code", Var::HttpCode),
    ("response_code", Var::HttpCode),
    ("http_version", Var::HttpVersion),
    ("json", Var::Json),
    ("local_ip", Var::LocalIp),
    ("local_port", Var::LocalPort),
    ("method", Var::Method),
    ("num_connects", Var::NumConnects),
    ("num_headers", Var::NumHeaders),
    ("num_redirects", Var::NumRedirects),
    ("redirect_url", Var::RedirectUrl),
    ("remote_ip", Var::RemoteIp),
    ("remote_port", Var::RemotePort),
    ("scheme", Var::Scheme),
    ("size_download", Var::SizeDownload),
    ("size_header", Var::SizeHeader),
    ("size_request", Var::SizeRequest),
    ("size_upload", Var::SizeUpload),
    ("speed_download", Var::SpeedDownload),
    ("speed_upload", Var::SpeedUpload),
    ("time_appconnect", Var::TimeAppConnect),
    ("time_connect", Var::TimeConnect),
    ("time_namelookup", Var::TimeNameLookup),
    ("time_pretransfer", Var::TimePreTransfer),
    ("time_redirect", Var::TimeRedirect),
    ("time_starttransfer", Var::TimeStartTransfer),
    ("time_total", Var::TimeTotal),
    ("url", Var::Url),
    ("url_effective", Var::UrlEffective),
];

/// How one task ended, as `-w` reads it.
pub(crate) struct Outcome<'a> {
    /// The URL the task was made with.
    pub(crate) url: &'a str,
    /// The method of its last request.
    pub(crate) method: &'a str,
    pub(crate) response: Option<&'a Response>,
    pub(crate) metrics: Option<&'a TaskMetrics>,
    pub(crate) error: Option<&'a Error>,
    /// The command's exit status for this task alone.
    pub(crate) exit_code: i32,
    /// Where a download's file went.
    pub(crate) file: Option<&'a std::path::Path>,
    /// The task's body bytes received and sent: the sizes of a task whose metrics hold no
    /// request (an `ftp:` transfer).
    pub(crate) received: u64,
    pub(crate) sent: u64,
}

impl WriteOut {
    /// Reads a format: `@FILE` (or `@-`, standard input) reads it from there; `\n`, `\r`, `\t`
    /// and `\\` are escapes, `%%` a `%`, and `%{name}` a variable.
    ///
    /// # Errors
    /// A variable curl does not know or Courier does not report, an unclosed `%{`, or a file
    /// that cannot be read.
    pub(crate) fn parse(arg: &str) -> Result<WriteOut, String> {
        use crate::cli::{TooLong, read_bounded_arg};
        let Some(from) = arg.strip_prefix('@') else {
            return Self::parse_text(arg);
        };
        let bytes = read_bounded_arg(from, MAX_FORMAT).map_err(|e| match e {
            TooLong::Read(e) => format!("-w: {e}"),
            TooLong::Over(max) => {
                format!("-w: the format in {from} is longer than {} KiB", max >> 10)
            }
        })?;
        let text = String::from_utf8(bytes).map_err(|_| format!("-w: {from} is not UTF-8"))?;
        Self::parse_text(&text)
    }

    fn parse_text(text: &str) -> Result<WriteOut, String> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            let after = &rest[c.len_utf8()..];
            match c {
                '\\' => {
                    let (escaped, skip) = match after.chars().next() {
                        Some('n') => ('\n', 1),
                        Some('r') => ('\r', 1),
                        Some('t') => ('\t', 1),
                        Some('\\') => ('\\', 1),
                        _ => ('\\', 0),
                    };
                    literal.push(escaped);
                    rest = &after[skip..];
                }
                '%' if after.starts_with('%') => {
                    literal.push('%');
                    rest = &after[1..];
                }
                // curl's `%header{name}` (`%{header{name}}` is Courier's older spelling).
                '%' if after.starts_with("header{") => {
                    let inner = &after["header{".len()..];
                    let end = inner
                        .find('}')
                        .ok_or_else(|| "-w: %header{NAME} is not closed".to_owned())?;
                    let name = header_name(&inner[..end])?;
                    if !literal.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Header(name));
                    rest = &inner[end + 1..];
                }
                '%' if after.starts_with('{') => {
                    let (piece, next) = variable(&after[1..])?;
                    if !literal.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut literal)));
                    }
                    pieces.push(piece);
                    rest = next;
                }
                _ => {
                    literal.push(c);
                    rest = after;
                }
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(WriteOut(pieces))
    }

    /// The text for one task.
    pub(crate) fn render(&self, outcome: &Outcome<'_>) -> String {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(Var::Json) => out.push_str(&json(outcome).to_string()),
                Piece::Var(var) => push_value(&mut out, &value(*var, outcome)),
                Piece::Header(name) => out.push_str(&header(outcome.response, name)),
            }
        }
        out
    }
}

/// A header name `-w` names, checked.
fn header_name(name: &str) -> Result<String, String> {
    http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("-w: {name:?} is not a header name"))?;
    Ok(name.to_owned())
}

/// The variable whose name starts `text` (after `%{`), and the text after its `}`.
fn variable(text: &str) -> Result<(Piece, &str), String> {
    if let Some(inner) = text.strip_prefix("header{") {
        let end = inner
            .find("}}")
            .ok_or_else(|| "-w: %{header{NAME}} is not closed".to_owned())?;
        let name = header_name(&inner[..end])?;
        return Ok((Piece::Header(name), &inner[end + 2..]));
    }
    let end = text
        .find('}')
        .ok_or_else(|| "-w: a %{ is not closed".to_owned())?;
    let name = &text[..end];
    let var = NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            format!(
                "-w: unknown variable %{{{name}}} (known: {}, header{{NAME}})",
                NAMES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            )
        })?;
    Ok((Piece::Var(var), &text[end + 1..]))
}

/// A variable's value: text, a whole number, or seconds.
#[derive(Debug, PartialEq)]
enum Val {
    Text(String),
    Number(u64),
    Seconds(f64),
}

fn push_value(out: &mut String, v: &Val) {
    let _ = match v {
        Val::Text(t) => write!(out, "{t}"),
        Val::Number(n) => write!(out, "{n}"),
        // curl prints times with six decimals.
        Val::Seconds(s) => write!(out, "{s:.6}"),
    };
}

/// The request the task's response answered: its last.
fn last<'a>(outcome: &Outcome<'a>) -> Option<&'a TransactionMetrics> {
    outcome.metrics.and_then(|m| m.transactions.last())
}

/// Seconds from the task's start to `at`.
fn since_start(outcome: &Outcome<'_>, at: Option<Instant>) -> f64 {
    match (outcome.metrics, at) {
        (Some(m), Some(at)) => at.saturating_duration_since(m.task_start).as_secs_f64(),
        _ => 0.0,
    }
}

fn value(var: Var, o: &Outcome<'_>) -> Val {
    let t = last(o);
    let text = |s: Option<String>| Val::Text(s.unwrap_or_default());
    let count = |f: fn(&TransactionMetrics) -> u64| Val::Number(t.map_or(0, f));
    let (received, sent) = match t {
        Some(t) => (
            // A body from the cache came over no network: its size is the body the task
            // delivered.
            match t.fetch_type {
                FetchType::LocalCache => t.response_body_bytes_after_decoding,
                _ => t.response_body_bytes_received,
            },
            t.request_body_bytes_sent,
        ),
        None => (o.received, o.sent),
    };
    let total = o.metrics.map_or(0.0, |m| m.task_duration.as_secs_f64());
    // Each phase of the last request, counted from the task's start: a reused connection's
    // lookup and connect took no time, and a phase that did not happen ends where the one
    // before it did.
    let lookup = since_start(o, t.map(|t| t.fetch_start))
        + t.and_then(|t| t.domain_lookup)
            .map_or(0.0, |d| d.as_secs_f64());
    let connect = lookup + t.and_then(|t| t.connect).map_or(0.0, |d| d.as_secs_f64());
    match var {
        Var::ContentType => text(
            o.response
                .and_then(|r| r.headers().get(http::header::CONTENT_TYPE))
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        ),
        Var::ErrorMsg => text(o.error.map(|e| e.message().to_owned())),
        Var::ExitCode => Val::Number(u64::try_from(o.exit_code).unwrap_or(0)),
        Var::FilenameEffective => text(o.file.map(|f| f.display().to_string())),
        // curl's 000: no response.
        Var::HttpCode => Val::Text(format!(
            "{:03}",
            o.response.map_or(0, |r| r.status().as_u16())
        )),
        // curl's 0: no response.
        Var::HttpVersion => Val::Text(
            match o.response.map(Response::version) {
                Some(http::Version::HTTP_09) => "0.9",
                Some(http::Version::HTTP_10) => "1",
                Some(http::Version::HTTP_11) => "1.1",
                Some(http::Version::HTTP_2) => "2",
                Some(http::Version::HTTP_3) => "3",
                _ => "0",
            }
            .to_owned(),
        ),
        Var::Json => Val::Text(json(o).to_string()),
        Var::LocalIp => text(t.and_then(|t| t.local_address).map(|a| a.ip().to_string())),
        Var::LocalPort => Val::Number(
            t.and_then(|t| t.local_address)
                .map_or(0, |a| u64::from(a.port())),
        ),
        Var::Method => Val::Text(o.method.to_owned()),
        Var::NumConnects => Val::Number(o.metrics.map_or(0, |m| {
            m.transactions
                .iter()
                .filter(|t| t.connect.is_some())
                .count() as u64
        })),
        Var::NumHeaders => Val::Number(o.response.map_or(0, |r| r.headers().len() as u64)),
        Var::NumRedirects => Val::Number(o.metrics.map_or(0, |m| u64::from(m.redirect_count))),
        // Where a redirect not followed would have led.
        Var::RedirectUrl => text(o.response.and_then(|r| {
            if !r.status().is_redirection() {
                return None;
            }
            let location = r.headers().get(http::header::LOCATION)?.to_str().ok()?;
            r.url().join(location).ok().map(|u| u.to_string())
        })),
        Var::RemoteIp => text(t.and_then(|t| t.remote_address).map(|a| a.ip().to_string())),
        Var::RemotePort => Val::Number(
            t.and_then(|t| t.remote_address)
                .map_or(0, |a| u64::from(a.port())),
        ),
        Var::Scheme => text(
            effective_url(o)
                .split_once(':')
                .map(|(scheme, _)| scheme.to_ascii_lowercase()),
        ),
        Var::SizeDownload => Val::Number(received),
        Var::SizeHeader => count(|t| t.response_header_bytes_received),
        Var::SizeRequest => count(|t| t.request_header_bytes_sent),
        Var::SizeUpload => Val::Number(sent),
        Var::SpeedDownload => Val::Number(per_second(received, total)),
        Var::SpeedUpload => Val::Number(per_second(sent, total)),
        Var::TimeAppConnect => Val::Seconds(match t.and_then(|t| t.secure_connection) {
            Some(tls) => connect + tls.as_secs_f64(),
            None => 0.0,
        }),
        Var::TimeConnect => Val::Seconds(connect),
        Var::TimeNameLookup => Val::Seconds(lookup),
        Var::TimePreTransfer => Val::Seconds(since_start(o, t.and_then(|t| t.request_start))),
        Var::TimeRedirect => Val::Seconds(match o.metrics {
            Some(m) if m.redirect_count > 0 => since_start(o, t.map(|t| t.fetch_start)),
            _ => 0.0,
        }),
        Var::TimeStartTransfer => Val::Seconds(since_start(o, t.and_then(|t| t.response_start))),
        Var::TimeTotal => Val::Seconds(total),
        Var::Url => Val::Text(crate::common::shown_url(o.url).into_owned()),
        Var::UrlEffective => Val::Text(crate::common::shown_url(&effective_url(o)).into_owned()),
    }
}

/// The URL the task ended at: its response's, else its last request's, else its own.
fn effective_url(o: &Outcome<'_>) -> String {
    o.response
        .map(|r| r.url().to_string())
        .or_else(|| last(o).map(|t| t.url.clone()))
        .unwrap_or_else(|| o.url.to_owned())
}

fn per_second(bytes: u64, seconds: f64) -> u64 {
    if seconds > 0.0 {
        (bytes as f64 / seconds) as u64
    } else {
        0
    }
}

/// A response header's values, joined as the event stream joins them.
fn header(response: Option<&Response>, name: &str) -> String {
    response.map_or_else(String::new, |r| {
        r.headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// `%{json}`: every variable, by name.
fn json(o: &Outcome<'_>) -> Value {
    let mut all = Map::new();
    for (name, var) in NAMES {
        if matches!(var, Var::Json) || *name == "response_code" {
            continue;
        }
        let v = match (var, value(*var, o)) {
            // A number in JSON, as curl writes it; 0 for no response.
            (Var::HttpCode, _) => Value::from(o.response.map_or(0, |r| r.status().as_u16())),
            (_, Val::Text(t)) => Value::from(t),
            (_, Val::Number(n)) => Value::from(n),
            (_, Val::Seconds(s)) => Value::from(s),
        };
        all.insert((*name).to_owned(), v);
    }
    Value::Object(all)
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use courier_engine::ErrorCode;

    use super::*;

    fn parsed(text: &str) -> WriteOut {
        WriteOut::parse_text(text).unwrap()
    }

    fn transaction(start: Instant, url: &str, new_connection: bool) -> TransactionMetrics {
        let ms = |n| Some(start + Duration::from_millis(n));
        TransactionMetrics {
            url: url.to_owned(),
            fetch_type: FetchType::Network,
            protocol: Some("http/1.1"),
            reused_connection: !new_connection,
            fetch_start: start,
            domain_lookup: new_connection.then_some(Duration::from_millis(1)),
            connect: new_connection.then_some(Duration::from_millis(2)),
            secure_connection: None,
            request_start: ms(4),
            request_end: ms(4),
            response_start: ms(10),
            response_end: ms(20),
            status: Some(200),
            request_header_bytes_sent: 80,
            request_body_bytes_sent: 0,
            response_header_bytes_received: 120,
            response_body_bytes_received: 5000,
            response_body_bytes_after_decoding: 9000,
            local_address: Some(SocketAddr::from(([127, 0, 0, 1], 40000))),
            remote_address: Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
            tls_protocol_version: None,
            tls_cipher_suite: None,
            proxy_connection: false,
        }
    }

    #[test]
    fn escapes_percent_signs_and_variables_are_read() {
        let w = parsed("%{http_code} 100%% %d\\n\\t\\x%{header{ETag}}");
        assert_eq!(
            w.0,
            vec![
                Piece::Var(Var::HttpCode),
                Piece::Text(" 100% %d\n\t\\x".to_owned()),
                Piece::Header("ETag".to_owned())
            ]
        );
        assert_eq!(
            parsed("%{response_code}").0,
            vec![Piece::Var(Var::HttpCode)]
        );
        // curl's own spelling of a header (curl refuses `%{header{...}}`).
        assert_eq!(
            parsed("<%header{content-type}>").0,
            vec![
                Piece::Text("<".to_owned()),
                Piece::Header("content-type".to_owned()),
                Piece::Text(">".to_owned())
            ]
        );
    }

    #[test]
    fn a_format_is_read_from_a_file_of_at_most_64_kib() {
        let dir = tempfile::tempdir().unwrap();
        let (small, large) = (dir.path().join("small"), dir.path().join("large"));
        std::fs::write(&small, "%{http_code}\\n").unwrap();
        std::fs::write(&large, "x".repeat(65 << 10)).unwrap();
        let at = |p: &std::path::Path| format!("@{}", p.display());
        assert_eq!(
            WriteOut::parse(&at(&small)).unwrap().0,
            vec![Piece::Var(Var::HttpCode), Piece::Text("\n".to_owned())]
        );
        assert!(WriteOut::parse(&at(&large)).unwrap_err().contains("64 KiB"));
        assert!(WriteOut::parse(&at(&dir.path().join("missing"))).is_err());
    }

    #[test]
    fn a_name_it_does_not_know_is_refused_at_once() {
        for bad in [
            "%{nope}",
            "%{http_code",
            "%{header{X}",
            "%{header{a b}}",
            "%header{X",
            "%header{a b}",
        ] {
            assert!(WriteOut::parse_text(bad).is_err(), "{bad}");
        }
        let e = WriteOut::parse_text("%{htp_code}").unwrap_err();
        assert!(e.contains("http_code"), "the message lists the names: {e}");
    }

    #[test]
    fn a_task_without_a_response_reports_000_and_its_error() {
        let error = Error::new(ErrorCode::CannotConnectToHost, "could not connect");
        let o = Outcome {
            url: "http://127.0.0.1:9/x",
            method: "GET",
            response: None,
            metrics: None,
            error: Some(&error),
            exit_code: 1,
            file: None,
            received: 0,
            sent: 0,
        };
        let w = parsed(
            "%{http_code}|%{exitcode}|%{errormsg}|%{url_effective}|%{size_download}|%{time_total}|%{scheme}|%{http_version}",
        );
        assert_eq!(
            w.render(&o),
            "000|1|could not connect|http://127.0.0.1:9/x|0|0.000000|http|0"
        );
    }

    #[test]
    fn the_last_request_gives_sizes_times_and_addresses() {
        let start = Instant::now();
        let first = transaction(start, "http://h/a", true);
        let mut second = transaction(start + Duration::from_millis(30), "http://h/b", false);
        second.status = Some(200);
        let metrics = TaskMetrics {
            task_start: start,
            task_duration: Duration::from_millis(50),
            redirect_count: 1,
            transactions: vec![first, second],
        };
        let mut headers = http::HeaderMap::new();
        headers.insert("content-type", "text/plain".parse().unwrap());
        headers.append("x-many", "1".parse().unwrap());
        headers.append("x-many", "2".parse().unwrap());
        let response = Response::new(
            "http://h/b".parse().unwrap(),
            http::StatusCode::OK,
            http::Version::HTTP_11,
            headers,
        );
        let o = Outcome {
            url: "http://h/a",
            method: "GET",
            response: Some(&response),
            metrics: Some(&metrics),
            error: None,
            exit_code: 0,
            file: None,
            received: 1,
            sent: 1,
        };
        let w = parsed(
            "%{http_code} %{http_version} %{num_redirects} %{num_connects} %{url} %{url_effective} \
             %{content_type} %{header{x-many}} %{size_download} %{size_header} %{remote_ip}:%{remote_port} \
             %{time_namelookup} %{time_connect} %{time_appconnect} %{time_pretransfer} \
             %{time_starttransfer} %{time_redirect} %{time_total} %{speed_download}",
        );
        assert_eq!(
            w.render(&o),
            "200 1.1 1 1 http://h/a http://h/b text/plain 1, 2 5000 120 127.0.0.1:8080 \
             0.030000 0.030000 0.000000 0.034000 0.040000 0.030000 0.050000 100000"
        );
        let json: Value = serde_json::from_str(&parsed("%{json}").render(&o)).unwrap();
        assert_eq!(json["http_code"], 200);
        assert_eq!(json["size_download"], 5000);
        assert_eq!(json["time_total"], 0.05);
        assert_eq!(json["num_redirects"], 1);
    }

    proptest::proptest! {
        /// Any format either parses or is refused with a message; none panics, and text with no
        /// `%` or `\` comes out as it went in.
        #[test]
        fn any_format_parses_or_is_refused(text in "[ -~]{0,60}") {
            if let Ok(w) = WriteOut::parse_text(&text) {
                let o = Outcome {
                    url: "http://h/", method: "GET", response: None, metrics: None,
                    error: None, exit_code: 0, file: None, received: 0, sent: 0,
                };
                let out = w.render(&o);
                if !text.contains(['%', '\\']) {
                    proptest::prop_assert_eq!(out, text);
                }
            }
        }
    }
}
