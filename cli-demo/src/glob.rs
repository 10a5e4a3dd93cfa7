//! curl's URL globbing: a URL given on the command line with `{a,b,c}` sets and `[1-10]`,
//! `[001-100]`, `[a-z]` or `[1-100:10]` ranges in it stands for one URL per combination, the
//! rightmost pattern changing fastest; and `#N` in an output name stands for the value the Nth
//! pattern has in that URL (`-o "file_#1.txt"`).
//!
//! The rules are curl's (`tool_urlglob.c`): a backslash before a bracket or a brace makes it a
//! plain character; a `[...]` holding an IPv6 address (`http://[::1]:8080/`) is the address, not a
//! range; sets do not nest; a range counts up (`[9-1]` is refused), by a step of 1 unless `:N`
//! says; a range whose first number has leading zeros pads every number to its width. `-g`
//! (`--globoff`) turns globbing off. Unlike curl, a URL may stand for at most [`MOST_URLS`]
//! URLs: each becomes a task of the command, and a list of that many is held in memory.

use std::net::Ipv6Addr;

/// The most URLs one globbed URL may stand for.
pub(crate) const MOST_URLS: usize = 100_000;

/// The most patterns one URL may hold (curl's limit).
const MOST_PATTERNS: usize = 100;

/// One URL a globbed URL stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Globbed {
    /// The URL.
    pub(crate) url: String,
    /// The value each pattern has in it, in the order the patterns appear (`#1` is the first).
    pub(crate) values: Vec<String>,
}

/// A part of a URL: text as it is, or a pattern that takes each of its values in turn.
#[derive(Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Pattern(Vec<String>),
}

/// Every URL `url` stands for, in curl's order. A URL without patterns stands for itself.
///
/// # Errors
/// A pattern that does not parse (an unclosed set, a nested one, a range that counts down or mixes
/// letters and numbers...), or more than [`MOST_URLS`] URLs.
pub(crate) fn expand(url: &str) -> Result<Vec<Globbed>, String> {
    let parts = parse(url).map_err(|(at, why)| format!("{url}: {why} at position {}", at + 1))?;
    let mut count: usize = 1;
    for part in &parts {
        if let Part::Pattern(values) = part {
            count = count
                .checked_mul(values.len())
                .filter(|n| *n <= MOST_URLS)
                .ok_or_else(|| {
                    format!(
                        "{url} stands for more than {MOST_URLS} URLs; give smaller ranges (or -g \
                         to take brackets and braces as they are)"
                    )
                })?;
        }
    }
    let patterns: Vec<&[String]> = parts
        .iter()
        .filter_map(|p| match p {
            Part::Pattern(values) => Some(values.as_slice()),
            Part::Text(_) => None,
        })
        .collect();
    let mut out = Vec::with_capacity(count);
    // An odometer over the patterns' values, the last one turning fastest.
    let mut at = vec![0usize; patterns.len()];
    for _ in 0..count {
        let mut url = String::new();
        let mut values = Vec::with_capacity(patterns.len());
        let mut n = 0;
        for part in &parts {
            match part {
                Part::Text(text) => url.push_str(text),
                Part::Pattern(_) => {
                    let value = &patterns[n][at[n]];
                    url.push_str(value);
                    values.push(value.clone());
                    n += 1;
                }
            }
        }
        out.push(Globbed { url, values });
        for i in (0..at.len()).rev() {
            at[i] += 1;
            if at[i] < patterns[i].len() {
                break;
            }
            at[i] = 0;
        }
    }
    Ok(out)
}

/// Whether `url` has a pattern in it (and parses).
pub(crate) fn has_patterns(url: &str) -> bool {
    parse(url).is_ok_and(|parts| parts.iter().any(|p| matches!(p, Part::Pattern(_))))
}

/// `template` with each `#N` replaced by the Nth value; a `#` not followed by the number of a
/// value stays as it is, as in curl.
pub(crate) fn fill(template: &str, values: &[String]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(hash) = rest.find('#') {
        out.push_str(&rest[..hash]);
        let after = &rest[hash + 1..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        match after[..digits].parse::<usize>() {
            Ok(n) if (1..=values.len()).contains(&n) => {
                out.push_str(&values[n - 1]);
                rest = &after[digits..];
            }
            _ => {
                out.push('#');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whether `template` names a value (`#1`, `#2`...) of some URL.
pub(crate) fn names_values(template: &str) -> bool {
    template
        .split('#')
        .skip(1)
        .any(|after| after.starts_with(|c: char| c.is_ascii_digit() && c != '0'))
}

/// The URL's parts; an error names the byte it is at.
fn parse(url: &str) -> Result<Vec<Part>, (usize, String)> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut patterns = 0;
    let mut chars = url.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' if chars.peek().is_some_and(|(_, n)| "[]{}".contains(*n)) => {
                text.push(chars.next().expect("peeked").1);
            }
            '[' if ipv6_literal(&url[at + 1..]).is_some() => {
                let len = ipv6_literal(&url[at + 1..]).expect("checked");
                text.push_str(&url[at..at + len + 2]);
                while chars.peek().is_some_and(|(i, _)| *i < at + len + 2) {
                    chars.next();
                }
            }
            '[' | '{' => {
                patterns += 1;
                if patterns > MOST_PATTERNS {
                    return Err((at, format!("more than {MOST_PATTERNS} patterns")));
                }
                let close = if c == '[' { ']' } else { '}' };
                // A set's values, split at its commas as they come (a backslash makes the next
                // character a plain one: `{a\,b,c}` has two values); a range's text.
                let mut values = vec![String::new()];
                let mut closed = false;
                while let Some((i, n)) = chars.next() {
                    let value = values.last_mut().expect("never empty");
                    match n {
                        n if n == close => {
                            closed = true;
                            break;
                        }
                        '[' | '{' => return Err((i, "a pattern inside a pattern".into())),
                        '\\' if c == '{' && chars.peek().is_some() => {
                            value.push(chars.next().expect("peeked").1);
                        }
                        ',' if c == '{' => values.push(String::new()),
                        n => value.push(n),
                    }
                }
                if !closed {
                    return Err((at, format!("'{c}' without its '{close}'")));
                }
                if c == '[' {
                    values = range(&values[0]).map_err(|why| (at, why))?;
                }
                if !text.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut text)));
                }
                parts.push(Part::Pattern(values));
            }
            ']' | '}' => return Err((at, format!("'{c}' without its opening"))),
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    Ok(parts)
}

/// The length of the IPv6 address (with a `%25` zone, as in a URL) that `after` starts with,
/// up to its `]`; `None` when `after` is not one.
fn ipv6_literal(after: &str) -> Option<usize> {
    let end = after.find(']')?;
    let address = &after[..end];
    let without_zone = address.split_once('%').map_or(address, |(a, _)| a);
    without_zone.parse::<Ipv6Addr>().ok().map(|_| end)
}

/// A range's values: `a-z` (one case), `1-10` (`01-10` pads to the first number's width), with
/// `:STEP` after either.
fn range(body: &str) -> Result<Vec<String>, String> {
    let (span, step) = match body.split_once(':') {
        Some((span, step)) => (
            span,
            step.parse::<u64>()
                .ok()
                .filter(|s| *s > 0)
                .ok_or_else(|| format!("a range's step is a number above 0, not '{step}'"))?,
        ),
        None => (body, 1),
    };
    let bad = || format!("'[{body}]' is not a range (such as [1-10], [01-10], [a-z] or [1-9:2])");
    let (first, last) = span.split_once('-').ok_or_else(bad)?;
    let letter = |s: &str| {
        let mut chars = s.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) if c.is_ascii_alphabetic() => Some(c),
            _ => None,
        }
    };
    if let (Some(a), Some(z)) = (letter(first), letter(last)) {
        if a.is_ascii_lowercase() != z.is_ascii_lowercase() || a > z {
            return Err(bad());
        }
        return Ok((a..=z)
            .step_by(usize::try_from(step).unwrap_or(usize::MAX))
            .map(String::from)
            .collect());
    }
    let number = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    let (Some(a), Some(z)) = (number(first), number(last)) else {
        return Err(bad());
    };
    if a > z {
        return Err(bad());
    }
    let count = (z - a) / step + 1;
    if count > MOST_URLS as u64 {
        return Err(format!("'[{body}]' stands for more than {MOST_URLS} URLs"));
    }
    let width = if first.len() > 1 && first.starts_with('0') {
        first.len()
    } else {
        0
    };
    Ok((0..count)
        .map(|i| format!("{:0width$}", a + i * step))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(pattern: &str) -> Vec<String> {
        expand(pattern)
            .unwrap()
            .into_iter()
            .map(|g| g.url)
            .collect()
    }

    #[test]
    fn sets_and_ranges_expand_as_curls_do() {
        assert_eq!(urls("http://h/a"), ["http://h/a"]);
        assert_eq!(
            urls("http://h/{a,b}/[1-2]"),
            [
                "http://h/a/1",
                "http://h/a/2",
                "http://h/b/1",
                "http://h/b/2"
            ]
        );
        assert_eq!(
            urls("http://h/f[08-11]"),
            [
                "http://h/f08",
                "http://h/f09",
                "http://h/f10",
                "http://h/f11"
            ]
        );
        assert_eq!(
            urls("http://h/[1-10:4]"),
            ["http://h/1", "http://h/5", "http://h/9"]
        );
        assert_eq!(
            urls("http://h/[x-z]"),
            ["http://h/x", "http://h/y", "http://h/z"]
        );
        assert_eq!(
            urls("http://h/[a-e:2]"),
            ["http://h/a", "http://h/c", "http://h/e"]
        );
        assert_eq!(urls("http://h/{,s}"), ["http://h/", "http://h/s"]);
        assert_eq!(urls(r"http://h/{a\,b,\}}"), ["http://h/a,b", "http://h/}"]);
        // Escaped, and an IPv6 address: as they are.
        assert_eq!(urls(r"http://h/\[1-2\]\{a\}"), ["http://h/[1-2]{a}"]);
        assert_eq!(
            urls("http://[::1]:80/[1-2]"),
            ["http://[::1]:80/1", "http://[::1]:80/2"]
        );
        assert_eq!(
            urls("http://[fe80::1%25eth0]/"),
            ["http://[fe80::1%25eth0]/"]
        );
        let g = expand("http://h/{a,b}/[1-2]").unwrap();
        assert_eq!(g[2].values, ["b", "1"]);
    }

    #[test]
    fn bad_patterns_are_refused_with_where() {
        for (url, says) in [
            ("http://h/{a,b", "without its '}' at position 10"),
            ("http://h/[1-2", "without its ']'"),
            ("http://h/a]", "without its opening at position 11"),
            ("http://h/{a,[1-2]}", "a pattern inside a pattern"),
            ("http://h/[2-1]", "is not a range"),
            ("http://h/[a-Z]", "is not a range"),
            ("http://h/[a-9]", "is not a range"),
            ("http://h/[1-2:0]", "step"),
            ("http://h/[]", "is not a range"),
            ("http://h/[0-100000]", "more than 100000"),
            ("http://h/[1-400][1-400]", "more than 100000"),
            ("http://h/[0-99999999999999999999]", "is not a range"),
        ] {
            let e = expand(url).unwrap_err();
            assert!(e.contains(says), "{url}: {e}");
        }
        assert!(
            expand(&"{a}".repeat(101))
                .unwrap_err()
                .contains("more than 100 patterns")
        );
    }

    #[test]
    fn output_names_take_the_values() {
        let values = ["a".to_owned(), "07".to_owned()];
        assert_eq!(fill("f_#1_#2.txt", &values), "f_a_07.txt");
        assert_eq!(fill("#3#0#x#", &values), "#3#0#x#");
        assert_eq!(fill("#12", &values), "#12");
        assert!(names_values("out/#1.bin"));
        assert!(!names_values("out#/#0.bin"));
        assert!(!names_values("plain.bin"));
    }

    proptest::proptest! {
        /// Any text: a list of URLs or an error, never a panic, and never more than the limit.
        #[test]
        fn any_text_expands_or_is_refused(url in "[a-z:/\\[\\]{},0-9\\\\%-]{0,40}") {
            if let Ok(list) = expand(&url) {
                proptest::prop_assert!(!list.is_empty() && list.len() <= MOST_URLS);
            }
        }
    }
}
