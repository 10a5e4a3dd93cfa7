//! How option values are read: rates (`100k`), seconds, byte ranges, priorities, and bodies given
//! as text or as `@FILE` (read bounded: an option's argument is held whole in memory).

/// The most bytes `--json @FILE` and `--data-binary @FILE` read.
const MAX_BODY_FILE: u64 = 16 << 20;

/// A body given on the command line (`--json`, `--data-binary`), as bytes.
#[derive(Clone, Debug)]
pub(crate) struct BodyArg(pub(crate) Vec<u8>);

/// Reads `--json` or `--data-binary`: the text, or `@FILE` (`@-`: standard input) as it is, at
/// most [`MAX_BODY_FILE`].
pub(super) fn parse_body_arg(text: &str) -> Result<BodyArg, String> {
    let Some(from) = text.strip_prefix('@') else {
        return Ok(BodyArg(text.as_bytes().to_vec()));
    };
    read_bounded_arg(from, MAX_BODY_FILE)
        .map_err(|e| match e {
            TooLong::Read(e) => e,
            TooLong::Over(max) => format!(
                "{from} is larger than {} MiB: send it with courier upload --file {from} -X POST",
                max >> 20
            ),
        })
        .map(BodyArg)
}

/// Why [`read_bounded_arg`] gave nothing.
pub(crate) enum TooLong {
    /// The file could not be opened or read (the message says which).
    Read(String),
    /// It holds more than this many bytes.
    Over(u64),
}

/// What an option's `@FILE` names (`-`: standard input), at most `max` bytes: an option's
/// argument is read whole into memory, so it is bounded.
pub(crate) fn read_bounded_arg(from: &str, max: u64) -> Result<Vec<u8>, TooLong> {
    match from {
        "-" => read_bounded_from(std::io::stdin(), from, max),
        file => read_bounded_file(std::path::Path::new(file), max),
    }
}

/// The file at `path` (links followed, as for any file a user names), at most `max` bytes: for
/// the files options name (`--cacert`, `--cert`, `--key`, `@FILE`), so that one that never ends
/// (`/dev/zero`) or is far too large is refused instead of filling the memory.
pub(crate) fn read_bounded_file(path: &std::path::Path, max: u64) -> Result<Vec<u8>, TooLong> {
    let file = std::fs::File::open(path)
        .map_err(|e| TooLong::Read(format!("cannot read {}: {e}", path.display())))?;
    read_bounded_from(file, &path.display().to_string(), max)
}

fn read_bounded_from(reader: impl std::io::Read, from: &str, max: u64) -> Result<Vec<u8>, TooLong> {
    use std::io::Read;
    let mut bytes = Vec::new();
    reader
        .take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| TooLong::Read(format!("cannot read {from}: {e}")))?;
    if bytes.len() as u64 > max {
        return Err(TooLong::Over(max));
    }
    Ok(bytes)
}

/// Reads a number of bytes (a rate's, a size's) such as `500`, `100k`, `2m` or `1g` (1024-based,
/// like curl).
pub(super) fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim().to_ascii_lowercase();
    let (digits, unit) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t.as_str(), 1),
    };
    let n: f64 = digits
        .parse()
        .map_err(|_| format!("not a number of bytes: {text:?} (try 500k or 2m)"))?;
    let bytes = n * unit as f64;
    if !(bytes.is_finite() && bytes >= 1.0) {
        return Err(format!("not a positive number of bytes: {text:?}"));
    }
    if bytes >= u64::MAX as f64 {
        return Err(format!("too large a number of bytes: {text:?}"));
    }
    Ok(bytes as u64)
}

/// Reads `--begin-after`: a number of seconds, 0 or more.
pub(super) fn parse_delay(text: &str) -> Result<std::time::Duration, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .and_then(|secs| std::time::Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| format!("not a number of seconds: {text:?}"))
}

/// Reads `--range`: byte ranges as curl takes them (`0-499`, `500-`, `-500`, `0-1,5-9`), each
/// bound a number, the first not past the last.
pub(super) fn parse_range(text: &str) -> Result<String, String> {
    let bad = || format!("not a byte range such as 0-499, 500- or -500: {text:?}");
    let number = |n: &str| {
        (!n.is_empty() && n.len() <= 19 && n.bytes().all(|b| b.is_ascii_digit()))
            .then(|| n.parse::<u64>().ok())
            .flatten()
    };
    for part in text.split(',') {
        let (first, last) = part.trim().split_once('-').ok_or_else(bad)?;
        match (number(first), number(last)) {
            (Some(a), Some(b)) if a <= b => {}
            (Some(_), None) if last.is_empty() => {}
            (None, Some(_)) if first.is_empty() => {}
            _ => return Err(bad()),
        }
    }
    Ok(text.split(',').map(str::trim).collect::<Vec<_>>().join(","))
}

/// Reads `--priority`: a number from 0 to 1.
pub(super) fn parse_priority(text: &str) -> Result<f32, String> {
    text.trim()
        .parse::<f32>()
        .ok()
        .filter(|p| (0.0..=1.0).contains(p))
        .ok_or_else(|| format!("not a priority from 0 to 1: {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::{parse_bytes, parse_delay, parse_priority, parse_range};

    #[test]
    fn ranges_are_read_as_curl_reads_them() {
        for (typed, sent) in [
            ("0-499", "0-499"),
            ("500-", "500-"),
            ("-500", "-500"),
            ("0-0", "0-0"),
            ("0-1, 5-9,20-", "0-1,5-9,20-"),
        ] {
            assert_eq!(parse_range(typed).as_deref(), Ok(sent), "{typed}");
        }
        for bad in [
            "",
            "-",
            "5",
            "5-1",
            "a-b",
            "1-2-3",
            "0-1,",
            "+1-2",
            "1 -2",
            "0x1-2",
            "99999999999999999999-",
        ] {
            assert!(parse_range(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rates() {
        assert_eq!(parse_bytes("500"), Ok(500));
        assert_eq!(parse_bytes("100k"), Ok(102_400));
        assert_eq!(parse_bytes("2M"), Ok(2 << 20));
        assert_eq!(parse_bytes("1.5k"), Ok(1536));
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("fast").is_err());
    }

    #[test]
    fn delays_and_priorities() {
        assert_eq!(parse_delay("0"), Ok(std::time::Duration::ZERO));
        assert_eq!(
            parse_delay("1.5"),
            Ok(std::time::Duration::from_millis(1500))
        );
        for bad in ["-1", "NaN", "inf", "soon", "1e30"] {
            assert!(parse_delay(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_priority("1"), Ok(1.0));
        assert_eq!(parse_priority("0.25"), Ok(0.25));
        for bad in ["-0.1", "1.01", "NaN", "high"] {
            assert!(parse_priority(bad).is_err(), "{bad}");
        }
    }
}
