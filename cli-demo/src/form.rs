//! `get -F` (curl's `--form`): a `multipart/form-data` body (RFC 7578) built from the fields as
//! curl builds it, so that a server sees the same parts: `name=text`; `name=@FILE` (a file part:
//! its name, its type from its extension as curl guesses it, else `application/octet-stream`;
//! `@-` is standard input, with no type); `name=<FILE` (a field whose text is the file's). A file
//! part takes `;type=TYPE` and `;filename=NAME` after its path, and a path with `;` in it is
//! quoted (`@"a;b.txt"`). Unlike curl, a text field is taken as it is: `a=x;y` sends `x;y`, where
//! curl drops `;y` as an option it does not know.
//!
//! The body is made in memory, bounded as `--data-binary @FILE` is: 16 MiB in all.

use crate::Failure;
use crate::cli::{TooLong, read_bounded_arg};

/// The most bytes the whole body may have.
const MAX_FORM: u64 = 16 << 20;

/// A form as it goes on the wire.
pub(crate) struct Form {
    /// The body.
    pub(crate) body: Vec<u8>,
    /// Its `Content-Type`, naming the boundary.
    pub(crate) content_type: String,
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

/// Makes `get -F`'s fields (`options.form`, if any) the body every request sends, with its
/// `Content-Type`.
///
/// # Errors
/// As [`build`].
pub(crate) fn apply(options: &mut crate::cli::Options) -> Result<(), Failure> {
    if options.form.is_empty() {
        return Ok(());
    }
    let form = build(&options.form)?;
    options.body = Some(form.body);
    options.body_type = Some(form.content_type);
    Ok(())
}

/// The body for the `-F` arguments `fields`, in their order.
///
/// # Errors
/// A field without `=`, an option after a path that is not `type=` or `filename=`, a file that
/// cannot be read, or a body over 16 MiB: a usage error saying which.
pub(crate) fn build(fields: &[String]) -> Result<Form, Failure> {
    let mut parts: Vec<(Field<'_>, Vec<u8>)> = Vec::with_capacity(fields.len());
    let mut total = 0u64;
    for text in fields {
        let field = parse(text).map_err(|why| Failure::usage(format!("-F {text:?}: {why}")))?;
        let content = match &field.value {
            Value::Text(t) => t.as_bytes().to_vec(),
            Value::TextOf { path, .. } | Value::File { path, .. } => {
                read_bounded_arg(path, MAX_FORM.saturating_sub(total)).map_err(|e| match e {
                    TooLong::Read(e) => Failure::usage(format!("-F {text:?}: {e}")),
                    TooLong::Over(_) => too_large(),
                })?
            }
        };
        total += content.len() as u64;
        parts.push((field, content));
    }
    let boundary = boundary(&parts);
    let mut body = Vec::with_capacity(total as usize + parts.len() * 160 + 64);
    for (field, content) in &parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let name = escape(field.name);
        let (filename, kind) = match &field.value {
            Value::Text(_) => (None, None),
            Value::TextOf { kind, .. } => (None, *kind),
            Value::File {
                path,
                kind,
                filename,
            } => {
                // The type is guessed from the file's own name, as curl guesses it, whatever
                // name the server is told; standard input has none (curl sends no type).
                let guessed = (*path != "-").then(|| type_by_extension(base_name(path)));
                (
                    Some(filename.unwrap_or_else(|| base_name(path))),
                    kind.or(guessed),
                )
            }
        };
        let disposition = match filename {
            Some(f) => format!(
                "Content-Disposition: form-data; name=\"{name}\"; filename=\"{}\"\r\n",
                escape(f)
            ),
            None => format!("Content-Disposition: form-data; name=\"{name}\"\r\n"),
        };
        body.extend_from_slice(disposition.as_bytes());
        if let Some(kind) = kind {
            body.extend_from_slice(format!("Content-Type: {kind}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    if body.len() as u64 > MAX_FORM {
        return Err(too_large());
    }
    Ok(Form {
        body,
        content_type: format!("multipart/form-data; boundary={boundary}"),
    })
}

fn too_large() -> Failure {
    Failure::usage(format!(
        "the -F form is larger than {} MiB in all: upload a large file with courier upload --file",
        MAX_FORM >> 20
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

/// A boundary that no part holds (curl's shape: 24 dashes and 16 hexadecimal digits), from the
/// time and the process: it need not be secret, only absent from the content, which is checked.
fn boundary(parts: &[(Field<'_>, Vec<u8>)]) -> String {
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
        if !parts
            .iter()
            .any(|(_, c)| c.windows(needle.len()).any(|w| w == needle))
        {
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
