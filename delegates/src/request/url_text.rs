//! A request's URL text, parsed: [`Url::parse`], reusing the origin of the last URL parsed on the
//! same thread when the next one starts with the same text.
//!
//! A URL's host is the costly part of its parse: the `url` crate runs it through IDNA even when it
//! is plain ASCII, and writes an IP address back out as text. Per request, in callgrind
//! (`courier-bench --only small`, `--only small-h2`), parsing `http://127.0.0.1:PORT/resource/1024`
//! took 12,400 instructions, a fifth of what a small GET cost Courier's side, and 4,200 with the
//! origin reused; `https://localhost:PORT/bytes/1024` took 3,300, and 2,100. Programs send request
//! after request to one host; for them, the origin's text is compared with the last one, and only
//! the path, query and fragment are parsed, relative to the origin parsed before.
//!
//! The result is always what `Url::parse` gives (a property test below compares the two on
//! generated text). The origin is reused only when the parser reads it the same way alone as
//! before a path: a lowercase scheme among `http`, `https`, `ws` and `wss`, then an authority of
//! lowercase letters, digits, dots, hyphens and colons only (no user, no brackets, no escapes), then
//! a single `/`, and no tab or line break anywhere after it. Anything else goes to `Url::parse`
//! whole.

use std::cell::RefCell;

use url::Url;

thread_local! {
    /// The origin text of the last plain URL parsed on this thread, and its parse. One entry: a
    /// program that alternates hosts parses their origins again, as without it.
    static LAST_ORIGIN: RefCell<Option<(String, Url)>> = const { RefCell::new(None) };
}

/// Parses `text` as [`Url::parse`] does.
pub(super) fn parse(text: &str) -> Result<Url, url::ParseError> {
    let Some(split) = plain_origin_len(text) else {
        return Url::parse(text);
    };
    let (origin, rest) = text.split_at(split);
    LAST_ORIGIN.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((seen, base)) = last.as_ref()
            && seen == origin
        {
            return base.join(rest);
        }
        match Url::parse(origin) {
            Ok(base) => {
                let url = base.join(rest);
                *last = Some((origin.to_owned(), base));
                url
            }
            // The same error as the whole text's parse gives.
            Err(_) => Url::parse(text),
        }
    })
}

/// The length of `text`'s origin (scheme and authority) when it is written plainly and followed by
/// a path that starts with a single `/` (two would start another authority, and a special scheme
/// reads `\` as `/`) and holds no tab or line break (the parser removes them before it reads).
fn plain_origin_len(text: &str) -> Option<usize> {
    let scheme = ["http://", "https://", "ws://", "wss://"]
        .into_iter()
        .find(|s| text.starts_with(s))?;
    let bytes = text.as_bytes();
    let start = scheme.len();
    let end = start
        + bytes[start..]
            .iter()
            .position(|b| !matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b':'))?;
    let path = &bytes[end..];
    let single_slash = path.first() == Some(&b'/') && !matches!(path.get(1), Some(b'/' | b'\\'));
    // The parser drops tabs and line breaks wherever they are, so `/\t/` is `//`.
    let unbroken = !path.iter().any(|b| matches!(b, b'\t' | b'\n' | b'\r'));
    (end > start && single_slash && unbroken).then_some(end)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Parses `text` through the reuse, twice (the second finds its origin), and checks both
    /// against `Url::parse`.
    fn same_as_url_parse(text: &str) -> Result<(), TestCaseError> {
        let whole = Url::parse(text);
        for _ in 0..2 {
            let reused = parse(text);
            prop_assert_eq!(&reused, &whole, "{:?}", text);
            if let (Ok(a), Ok(b)) = (&reused, &whole) {
                prop_assert_eq!(a.as_str(), b.as_str());
            }
        }
        Ok(())
    }

    #[test]
    fn reuses_only_plain_origins() {
        assert_eq!(plain_origin_len("http://127.0.0.1:8080/a"), Some(21));
        assert_eq!(plain_origin_len("https://example.com/"), Some(19));
        for text in [
            "http://127.0.0.1:8080",    // no path
            "http://example.com?q",     // no path before the query
            "http://example.com//x",    // another authority
            "http://example.com/\\x",   // `\` is `/` here
            "http:///x",                // no authority
            "HTTP://example.com/",      // the scheme is lowercased
            "http://Example.com/",      // so is the host
            "http://user@example.com/", // a user
            "http://[::1]/",            // brackets
            "http://%65xample.com/",    // escapes
            "file://host/x",            // another scheme
            " http://example.com/",     // trimmed first
            "http://exa\tmple.com/",    // tabs are removed
            "http://example.com/\t/x",  // so this is `//x`
            "http://example.com/a\nb",  // line breaks too
        ] {
            assert_eq!(plain_origin_len(text), None, "{text:?}");
        }
    }

    #[test]
    fn known_tricky_texts_parse_as_url_parse_does() {
        for text in [
            "http://example.com:80/a/../b?x#y",
            "http://example.com:/a",
            "http://example.com:99999/a",
            "http://127.1/a",
            "http://0x7f.1/a",
            "http://1.2.3.4.5/a",
            "http://a..b/a",
            "http://-a-/a",
            "http://xn--/a",
            "http://xn--nxasmq6b/a",
            "https://example.com:443/%2e%2e/x/./y",
            "ws://h:1/a b",
            "wss://h/ü?ü#ü",
            "http://h/a\t\nb ",
            "http://example.com/\t\\",
            "http://example.com/\n/x",
            "http://h:8080:8080/a",
            "http://h/",
        ] {
            same_as_url_parse(text).unwrap();
        }
    }

    fn url_text() -> impl Strategy<Value = String> {
        let scheme = prop::sample::select(vec![
            "http://", "https://", "ws://", "wss://", "HTTP://", "ftp://", "file://", "http:/",
        ]);
        let host = prop::sample::select(vec![
            "example.com",
            "127.0.0.1",
            "127.1",
            "0x7f.0.0.1",
            "1.2.3.4.5",
            "a..b",
            "",
            "-",
            "xn--",
            "xn--nxasmq6b",
            "Example.COM",
            "[::1]",
            "%41b",
            "u:p@h",
            "h.",
            "09",
        ]);
        let port = prop::sample::select(vec![
            "", ":", ":0", ":80", ":443", ":8080", ":65535", ":65536", ":1:2", ":x",
        ]);
        // What follows the authority: a start that decides how the rest is read, then anything.
        let start = prop::sample::select(vec![
            "", "/", "//", "/\\", "\\", "?", "#", "/.", "/..", "/%2e", " ", "\t/", "/\t/", "/\t\\",
            "/\n/", "/\r\\",
        ]);
        let rest = "[/\\\\.a%2e?#: \t\u{fc}@\u{0}\u{1f}\u{7f}\u{a0}\u{feff}\r\n-]{0,12}";
        (scheme, host, port, start, rest)
            .prop_map(|(s, h, p, start, r)| format!("{s}{h}{p}{start}{r}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn parses_as_url_parse_does(text in url_text(), other in url_text()) {
            same_as_url_parse(&text)?;
            // After another origin, and back.
            same_as_url_parse(&other)?;
            same_as_url_parse(&text)?;
        }

        #[test]
        fn parses_any_text_as_url_parse_does(text in "\\PC{0,40}") {
            same_as_url_parse(&text)?;
        }

        #[test]
        fn parses_any_path_as_url_parse_does(path in "(?s).{0,24}") {
            // Any character at all after a plain origin, controls included.
            same_as_url_parse(&format!("http://example.com/{path}"))?;
        }
    }
}
