//! `get -F` (curl's `--form`): a `multipart/form-data` body (RFC 7578) built from the fields as
//! curl builds it, so that a server sees the same parts: `name=text`; `name=@FILE` (a file part:
//! its name, its type from its extension as curl guesses it, else `application/octet-stream`;
//! `@-` is standard input, with no type); `name=<FILE` (a field whose text is the file's). A file
//! part takes `;type=TYPE` and `;filename=NAME` after its path, and a path with `;` in it is
//! quoted (`@"a;b.txt"`). Unlike curl, a text field is taken as it is: `a=x;y` sends `x;y`, where
//! curl drops `;y` as an option it does not know.
//!
//! What is not a file part (text, `<FILE`, standard input) is held in memory, 16 MiB at most. A
//! form of 16 MiB or less goes as a data task's body; a larger one (its file parts) is streamed
//! from the files as an upload task's body stream, with its `Content-Length` counted beforehand,
//! as curl sends it, and streamed again for a resend (a 307, a challenge).

use std::path::PathBuf;
use std::sync::Arc;

use courier_engine::BodyStream;

use crate::Failure;
use crate::cli::{TooLong, read_bounded_arg, read_bounded_file};

/// The most bytes the parts held in memory may have, and the largest form sent as a data task's
/// body rather than streamed.
const MAX_IN_MEMORY: u64 = 16 << 20;

/// A form as it goes on the wire: its bytes in order, some of them a file's.
#[derive(Debug)]
pub(crate) struct Form {
    segments: Vec<Segment>,
    /// The whole body's length.
    length: u64,
    /// Its `Content-Type`, naming the boundary.
    content_type: String,
}

#[derive(Debug)]
enum Segment {
    Bytes(Vec<u8>),
    /// The file's bytes, `length` of them (its length when the form was made).
    File {
        path: PathBuf,
        length: u64,
    },
}

/// One `-F` argument, read.
#[derive(Debug, PartialEq, Eq)]
struct Field<'a> {
    name: &'a str,
    value: Value<'a>,
}

#[derive(Debug, PartialEq, Eq)]
enum Value<'a> {
    /// The text itself.
    Text(&'a str),
    /// The file's bytes as the field's text (`<FILE`).
    TextOf {
        path: &'a str,
        kind: Option<&'a str>,
    },
    /// The file itself (`@FILE`).
    File {
        path: &'a str,
        kind: Option<&'a str>,
        filename: Option<&'a str>,
    },
}

/// Makes `get -F`'s fields (`options.form`, if any) what every request sends, with its
/// `Content-Type`: the body (`options.body`) when the form is 16 MiB or less, or when it must be
/// (`streamed` false: a download's request carries its body), else the form to stream
/// (`options.form_stream`).
///
/// # Errors
/// As [`Form::build`]; a form over 16 MiB where it cannot be streamed.
pub(crate) fn apply(options: &mut crate::cli::Options, streamed: bool) -> Result<(), Failure> {
    if options.form.is_empty() {
        return Ok(());
    }
    let form = Form::build(&options.form)?;
    options.body_type = Some(form.content_type.clone());
    if form.length <= MAX_IN_MEMORY {
        options.body = Some(form.into_bytes()?);
    } else if streamed {
        options.form_stream = Some(Arc::new(form));
    } else {
        return Err(Failure::usage(format!(
            "the -F form is larger than {} MiB: -O sends it from memory; post it with courier \
             get -F (and -o FILE) instead",
            MAX_IN_MEMORY >> 20
        )));
    }
    Ok(())
}

impl Form {
    /// The form for the `-F` arguments `fields`, in their order: file parts named (their length
    /// taken now), the rest read.
    ///
    /// # Errors
    /// A field without `=`, an option after a path that is not `type=` or `filename=`, a file
    /// that cannot be read, or more than 16 MiB of parts held in memory: a usage error saying
    /// which.
    fn build(fields: &[String]) -> Result<Form, Failure> {
        let mut parts: Vec<(Field<'_>, Segment)> = Vec::with_capacity(fields.len());
        let mut in_memory = 0u64;
        for text in fields {
            let field = parse(text).map_err(|why| Failure::usage(format!("-F {text:?}: {why}")))?;
            let unreadable = |e: String| Failure::usage(format!("-F {text:?}: {e}"));
            let content = match &field.value {
                Value::Text(t) => Segment::Bytes(t.as_bytes().to_vec()),
                Value::File { path, .. } if *path != "-" => {
                    let meta = std::fs::metadata(path)
                        .map_err(|e| unreadable(format!("cannot read {path}: {e}")))?;
                    if !meta.is_file() {
                        return Err(unreadable(format!("{path} is not a file")));
                    }
                    Segment::File {
                        path: PathBuf::from(path),
                        length: meta.len(),
                    }
                }
                Value::TextOf { path, .. } | Value::File { path, .. } => Segment::Bytes(
                    read_bounded_arg(path, MAX_IN_MEMORY.saturating_sub(in_memory)).map_err(
                        |e| match e {
                            TooLong::Read(e) => unreadable(e),
                            TooLong::Over(_) => too_large(),
                        },
                    )?,
                ),
            };
            if let Segment::Bytes(b) = &content {
                in_memory += b.len() as u64;
                if in_memory > MAX_IN_MEMORY {
                    return Err(too_large());
                }
            }
            parts.push((field, content));
        }
        let boundary = boundary(&parts);
        let mut segments = Vec::with_capacity(parts.len() * 2 + 1);
        let mut head = Vec::new();
        for (field, content) in parts {
            head.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            head.extend_from_slice(part_head(&field).as_bytes());
            match content {
                Segment::Bytes(b) => head.extend_from_slice(&b),
                file => {
                    segments.push(Segment::Bytes(std::mem::take(&mut head)));
                    segments.push(file);
                }
            }
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        segments.push(Segment::Bytes(head));
        let length = segments
            .iter()
            .map(|s| match s {
                Segment::Bytes(b) => b.len() as u64,
                Segment::File { length, .. } => *length,
            })
            .sum();
        Ok(Form {
            segments,
            length,
            content_type: format!("multipart/form-data; boundary={boundary}"),
        })
    }

    /// The whole body's length (its `Content-Length`).
    pub(crate) fn length(&self) -> u64 {
        self.length
    }

    /// The body in memory, its files read (a form of 16 MiB at most).
    fn into_bytes(self) -> Result<Vec<u8>, Failure> {
        let mut body = Vec::with_capacity(self.length as usize);
        for segment in self.segments {
            match segment {
                Segment::Bytes(b) => body.extend_from_slice(&b),
                Segment::File { path, length } => {
                    let read = read_bounded_file(&path, length).map_err(|e| {
                        Failure::usage(match e {
                            TooLong::Read(e) => e,
                            TooLong::Over(_) => {
                                format!("{} grew while the form was made", path.display())
                            }
                        })
                    })?;
                    body.extend_from_slice(&read);
                }
            }
        }
        Ok(body)
    }

    /// The body as a stream, its files opened now (each send gets a stream of its own). A file
    /// is sent up to the length it had when the form was made; one that is shorter by then ends
    /// the stream short, which fails the upload rather than send a wrong length.
    ///
    /// # Errors
    /// A file that can no longer be opened.
    pub(crate) fn stream(&self) -> std::io::Result<BodyStream> {
        use tokio::io::AsyncReadExt;
        let mut stream: BodyStream = Box::pin(tokio::io::empty());
        for segment in &self.segments {
            stream = match segment {
                Segment::Bytes(b) => Box::pin(stream.chain(std::io::Cursor::new(b.clone()))),
                Segment::File { path, length } => {
                    let file = tokio::fs::File::from_std(std::fs::File::open(path)?);
                    Box::pin(stream.chain(file.take(*length)))
                }
            };
        }
        Ok(stream)
    }
}

/// A part's head: its `Content-Disposition`, its `Content-Type` when it has one, the blank line.
fn part_head(field: &Field<'_>) -> String {
    let name = escape(field.name);
    let (filename, kind) = match &field.value {
        Value::Text(_) => (None, None),
        Value::TextOf { kind, .. } => (None, *kind),
        Value::File {
            path,
            kind,
            filename,
        } => {
            // The type is guessed from the file's own name, as curl guesses it, whatever name the
            // server is told; standard input has none (curl sends no type).
            let guessed = (*path != "-").then(|| type_by_extension(base_name(path)));
            (
                Some(filename.unwrap_or_else(|| base_name(path))),
                kind.or(guessed),
            )
        }
    };
    let mut head = match filename {
        Some(f) => format!(
            "Content-Disposition: form-data; name=\"{name}\"; filename=\"{}\"\r\n",
            escape(f)
        ),
        None => format!("Content-Disposition: form-data; name=\"{name}\"\r\n"),
    };
    if let Some(kind) = kind {
        head.push_str(&format!("Content-Type: {kind}\r\n"));
    }
    head.push_str("\r\n");
    head
}

fn too_large() -> Failure {
    Failure::usage(format!(
        "the -F form holds more than {} MiB of text, <FILE and standard input: post large \
         content as a file part (name=@FILE), which is streamed",
        MAX_IN_MEMORY >> 20
    ))
}

/// Reads `name=value` (see the module's comment).
fn parse(text: &str) -> Result<Field<'_>, String> {
    let Some((name, value)) = text.split_once('=') else {
        return Err("expected name=value, name=@FILE or name=<FILE".into());
    };
    let value = if let Some(rest) = value.strip_prefix('@') {
        let (path, kind, filename) = path_and_options(rest, true)?;
        Value::File {
            path,
            kind,
            filename,
        }
    } else if let Some(rest) = value.strip_prefix('<') {
        let (path, kind, _) = path_and_options(rest, false)?;
        Value::TextOf { path, kind }
    } else {
        Value::Text(value)
    };
    Ok(Field { name, value })
}

/// A path (quoted when it holds `;`), then `;type=...` and, for a file part, `;filename=...`.
fn path_and_options(text: &str, file: bool) -> Result<(&str, Option<&str>, Option<&str>), String> {
    let (path, rest) = match text.strip_prefix('"') {
        Some(quoted) => quoted
            .split_once('"')
            .ok_or_else(|| "a quoted path has no closing quote".to_owned())?,
        None => text.split_once(';').map_or((text, ""), |(p, r)| (p, r)),
    };
    if path.is_empty() {
        return Err("no file named".into());
    }
    let (mut kind, mut filename) = (None, None);
    for option in rest.split(';').filter(|o| !o.is_empty()) {
        match option.split_once('=') {
            Some(("type", t)) if !t.is_empty() => kind = Some(t),
            Some(("filename", f)) if file => filename = Some(f),
            _ => return Err(format!("unknown option {option:?} after the path")),
        }
    }
    Ok((path, kind, filename))
}

/// The last part of `path`, as the name the server is told.
fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// curl's guess of a file part's type from its name, else `application/octet-stream`.
fn type_by_extension(name: &str) -> &'static str {
    const TYPES: [(&str, &str); 10] = [
        (".gif", "image/gif"),
        (".jpg", "image/jpeg"),
        (".jpeg", "image/jpeg"),
        (".png", "image/png"),
        (".svg", "image/svg+xml"),
        (".txt", "text/plain"),
        (".htm", "text/html"),
        (".html", "text/html"),
        (".pdf", "application/pdf"),
        (".xml", "application/xml"),
    ];
    let lower = name.to_ascii_lowercase();
    TYPES
        .iter()
        .find(|(ext, _)| lower.ends_with(ext))
        .map_or("application/octet-stream", |(_, t)| t)
}

/// A name or file name inside its quotes, as browsers and curl escape it (the HTML standard's
/// rule): `"` as `%22`, CR as `%0D`, LF as `%0A`, so that no value ends the quotes or the line.
fn escape(text: &str) -> String {
    text.replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A boundary that no part held in memory holds (curl's shape: 24 dashes and 16 hexadecimal
/// digits), from the time and the process: it need not be secret, only absent from the content.
/// That is checked for the parts in memory; a file part is streamed unread, where 64 unpredictable
/// bits make a match as unlikely as curl's random boundary does.
fn boundary(parts: &[(Field<'_>, Segment)]) -> String {
    use sha2::Digest;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    for attempt in 0u32.. {
        let digest = sha2::Sha256::digest(format!("{seed}/{}/{attempt}", std::process::id()));
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let boundary = format!("------------------------{hex}");
        let needle = boundary.as_bytes();
        let held = |s: &Segment| match s {
            Segment::Bytes(b) => b.windows(needle.len()).any(|w| w == needle),
            Segment::File { .. } => false,
        };
        if !parts.iter().any(|(_, s)| held(s)) {
            return boundary;
        }
    }
    unreachable!("a boundary is found within 2^32 attempts")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_read_as_curl_reads_them() {
        assert_eq!(
            parse("a=b=c").unwrap(),
            Field {
                name: "a",
                value: Value::Text("b=c")
            }
        );
        assert_eq!(
            parse("f=@dir/x.png;type=image/webp;filename=y.webp")
                .unwrap()
                .value,
            Value::File {
                path: "dir/x.png",
                kind: Some("image/webp"),
                filename: Some("y.webp")
            }
        );
        assert_eq!(
            parse("f=@\"a;b.txt\";type=text/x").unwrap().value,
            Value::File {
                path: "a;b.txt",
                kind: Some("text/x"),
                filename: None
            }
        );
        assert_eq!(
            parse("v=<notes.txt").unwrap().value,
            Value::TextOf {
                path: "notes.txt",
                kind: None
            }
        );
        for bad in [
            "no-equals",
            "f=@",
            "f=@x;size=3",
            "v=<x;filename=y",
            "f=@\"open",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(type_by_extension("A.JPG"), "image/jpeg");
        assert_eq!(type_by_extension("model.bin"), "application/octet-stream");
        assert_eq!(escape("we\"ird\r\nname"), "we%22ird%0D%0Aname");
    }

    proptest::proptest! {
        /// Any field text is read or refused, never a panic.
        #[test]
        fn any_field_text_is_read_or_refused(text in ".{0,40}") {
            let _ = parse(&text);
        }
    }
}
