//! `multipart/x-mixed-replace`: a body made of parts that each replace the previous one (server push
//! of camera frames, status pages). URLSession hands each part to `did_receive_response` and
//! `did_receive_data`; this parser splits the body as it arrives, with no limit on its length but a
//! bound on what it holds: a part's headers are at most [`MAX_PART_HEADERS`] bytes, the padding
//! after a boundary at most [`MAX_BOUNDARY_LINE`], and a boundary 1 to 70 characters (RFC 2046).

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

/// The most bytes a part's header block may take (with its blank line).
pub const MAX_PART_HEADERS: usize = 64 * 1024;

/// The most bytes of transport padding after a boundary, up to its line end.
pub const MAX_BOUNDARY_LINE: usize = 1024;

/// Why a body cannot be split into parts.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MultipartError {
    /// A part's headers go on past [`MAX_PART_HEADERS`].
    HeadersTooLong,
    /// A boundary line goes on past [`MAX_BOUNDARY_LINE`].
    BoundaryLineTooLong,
}

impl std::fmt::Display for MultipartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MultipartError::HeadersTooLong => write!(
                f,
                "a part's headers are longer than {MAX_PART_HEADERS} bytes"
            ),
            MultipartError::BoundaryLineTooLong => write!(
                f,
                "a boundary line is longer than {MAX_BOUNDARY_LINE} bytes"
            ),
        }
    }
}

impl std::error::Error for MultipartError {}

/// The boundary of a `multipart/x-mixed-replace` content type, if it is one with a usable boundary
/// (1 to 70 characters).
pub fn mixed_replace_boundary(content_type: &HeaderValue) -> Option<String> {
    let text = content_type.to_str().ok()?;
    let mut parts = text.split(';');
    let kind = parts.next()?.trim();
    if !kind.eq_ignore_ascii_case("multipart/x-mixed-replace") {
        return None;
    }
    parts.find_map(|p| {
        let (name, value) = p.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_owned())
            .filter(|b| (1..=70).contains(&b.len()))
    })
}

/// What the parser found.
#[derive(Debug, PartialEq, Eq)]
pub enum PartEvent {
    /// A new part begins, with these headers.
    Part(HeaderMap),
    /// Bytes of the current part's body.
    Data(Bytes),
    /// The closing boundary: nothing follows.
    End,
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    /// Before the first boundary.
    Preamble,
    /// After a boundary line: a part's headers.
    Headers,
    /// A part's body.
    Body,
    /// After the closing boundary.
    Done,
}

/// Splits a `multipart/x-mixed-replace` body into parts, fed in any pieces.
#[derive(Debug)]
pub struct MixedReplace {
    /// `--boundary`.
    delimiter: Vec<u8>,
    buf: BytesMut,
    state: State,
}

impl MixedReplace {
    /// A parser for parts separated by `boundary`.
    pub fn new(boundary: &str) -> MixedReplace {
        MixedReplace {
            delimiter: format!("--{boundary}").into_bytes(),
            buf: BytesMut::new(),
            state: State::Preamble,
        }
    }

    /// Feeds body bytes; returns what they completed.
    ///
    /// # Errors
    /// A part's headers or a boundary line are longer than the limits; the parser is of no further
    /// use.
    pub fn feed(&mut self, data: &[u8]) -> Result<Vec<PartEvent>, MultipartError> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        loop {
            match self.state {
                State::Done => {
                    self.buf.clear();
                    return Ok(out);
                }
                State::Preamble => {
                    let Some(at) = find(&self.buf, &self.delimiter) else {
                        // Keep what could be the start of the delimiter.
                        let keep = self.delimiter.len().min(self.buf.len());
                        self.buf.advance(self.buf.len() - keep);
                        return Ok(out);
                    };
                    self.buf.advance(at + self.delimiter.len());
                    if !self.after_delimiter(&mut out)? {
                        return Ok(out);
                    }
                }
                State::Headers => {
                    let Some(end) = find(&self.buf, b"\r\n\r\n") else {
                        // A part with no headers starts its body at once.
                        if self.buf.starts_with(b"\r\n") {
                            self.buf.advance(2);
                            out.push(PartEvent::Part(HeaderMap::new()));
                            self.state = State::Body;
                            continue;
                        }
                        if self.buf.len() >= MAX_PART_HEADERS {
                            return Err(MultipartError::HeadersTooLong);
                        }
                        return Ok(out);
                    };
                    if end + 4 > MAX_PART_HEADERS {
                        return Err(MultipartError::HeadersTooLong);
                    }
                    let head = self.buf.split_to(end + 4);
                    out.push(PartEvent::Part(parse_headers(&head[..end])));
                    self.state = State::Body;
                }
                State::Body => {
                    let mut marker = b"\r\n".to_vec();
                    marker.extend_from_slice(&self.delimiter);
                    match find(&self.buf, &marker) {
                        Some(at) => {
                            if at > 0 {
                                out.push(PartEvent::Data(self.buf.split_to(at).freeze()));
                            }
                            self.buf.advance(marker.len());
                            if !self.after_delimiter(&mut out)? {
                                return Ok(out);
                            }
                        }
                        None => {
                            // Everything but a possible partial marker at the end is body.
                            let safe = self.buf.len().saturating_sub(marker.len() - 1);
                            if safe > 0 {
                                out.push(PartEvent::Data(self.buf.split_to(safe).freeze()));
                            }
                            return Ok(out);
                        }
                    }
                }
            }
        }
    }

    /// After a delimiter: `--` closes the body, a line end opens a part. False when more bytes
    /// are needed (the delimiter is put back).
    fn after_delimiter(&mut self, out: &mut Vec<PartEvent>) -> Result<bool, MultipartError> {
        if self.buf.len() < 2 {
            self.put_delimiter_back();
            return Ok(false);
        }
        if self.buf.starts_with(b"--") {
            self.state = State::Done;
            out.push(PartEvent::End);
            return Ok(true);
        }
        // Skip transport padding up to the line end.
        match find(&self.buf, b"\r\n") {
            Some(at) if at + 2 > MAX_BOUNDARY_LINE => Err(MultipartError::BoundaryLineTooLong),
            Some(at) => {
                self.buf.advance(at + 2);
                self.state = State::Headers;
                Ok(true)
            }
            None if self.buf.len() >= MAX_BOUNDARY_LINE => Err(MultipartError::BoundaryLineTooLong),
            None => {
                self.put_delimiter_back();
                Ok(false)
            }
        }
    }

    /// Puts the delimiter just consumed back in front of the buffer, until what follows it can be
    /// told.
    fn put_delimiter_back(&mut self) {
        let mut again = BytesMut::new();
        if self.state == State::Body {
            again.extend_from_slice(b"\r\n");
        }
        again.extend_from_slice(&self.delimiter);
        again.extend_from_slice(&self.buf);
        self.buf = again;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_headers(block: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in block.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(line[..colon].trim_ascii()),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) {
            headers.append(name, value);
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = b"preamble\r\n--frame\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n--frame\r\nContent-Type: text/html\r\nX-N: 2\r\n\r\n<b>second</b>\r\n--frame--\r\nepilogue";

    fn collect(piece: usize) -> Vec<(Option<String>, Vec<u8>)> {
        let mut p = MixedReplace::new("frame");
        let mut parts: Vec<(Option<String>, Vec<u8>)> = Vec::new();
        let mut ended = false;
        for chunk in BODY.chunks(piece) {
            for e in p.feed(chunk).unwrap() {
                match e {
                    PartEvent::Part(h) => parts.push((
                        h.get("content-type")
                            .map(|v| v.to_str().unwrap().to_owned()),
                        Vec::new(),
                    )),
                    PartEvent::Data(d) => parts.last_mut().unwrap().1.extend_from_slice(&d),
                    PartEvent::End => ended = true,
                }
            }
        }
        assert!(ended, "piece {piece}");
        parts
    }

    #[test]
    fn parts_come_out_the_same_whatever_the_pieces() {
        let whole = collect(BODY.len());
        assert_eq!(
            whole,
            [
                (Some("text/plain".to_owned()), b"first part".to_vec()),
                (Some("text/html".to_owned()), b"<b>second</b>".to_vec()),
            ]
        );
        for piece in [1, 2, 3, 5, 7, 11] {
            assert_eq!(collect(piece), whole, "piece {piece}");
        }
    }

    /// Every event of `body` fed in the given pieces, with the data of each part joined.
    fn events(body: &[u8], cuts: &[usize]) -> Result<Vec<PartEvent>, MultipartError> {
        let mut p = MixedReplace::new("frame");
        let mut out: Vec<PartEvent> = Vec::new();
        let mut at = 0;
        for cut in cuts.iter().copied().chain([body.len()]) {
            let end = cut.clamp(at, body.len());
            for e in p.feed(&body[at..end])? {
                match (out.last_mut(), e) {
                    (Some(PartEvent::Data(d)), PartEvent::Data(more)) => {
                        let mut joined = d.to_vec();
                        joined.extend_from_slice(&more);
                        *d = Bytes::from(joined);
                    }
                    (_, e) => out.push(e),
                }
            }
            at = end;
        }
        Ok(out)
    }

    #[test]
    fn padding_after_a_boundary_split_anywhere_is_skipped() {
        let body = b"--frame  \t \r\nA: 1\r\n\r\none\r\n--frame \r\n\r\ntwo\r\n--frame--";
        let whole = events(body, &[]).unwrap();
        assert_eq!(whole.len(), 5, "{whole:?}");
        for cut in 0..body.len() {
            assert_eq!(events(body, &[cut]).unwrap(), whole, "cut at {cut}");
        }
    }

    #[test]
    fn headers_and_padding_are_bounded() {
        let mut p = MixedReplace::new("frame");
        p.feed(b"--frame\r\n").unwrap();
        let line = vec![b'a'; 1000];
        let mut refused = None;
        for _ in 0..100 {
            if let Err(e) = p.feed(&line) {
                refused = Some(e);
                break;
            }
        }
        assert_eq!(refused, Some(MultipartError::HeadersTooLong));
        let mut p = MixedReplace::new("frame");
        assert_eq!(
            p.feed(&[b"--frame".as_slice(), &[b' '; 2000]].concat()),
            Err(MultipartError::BoundaryLineTooLong)
        );
        let long = format!("multipart/x-mixed-replace; boundary={}", "b".repeat(71));
        assert_eq!(
            mixed_replace_boundary(&HeaderValue::from_str(&long).unwrap()),
            None
        );
    }

    proptest::proptest! {
        /// Any bytes in any pieces: events or a bounded error, never a panic.
        #[test]
        fn arbitrary_bodies_never_panic(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096),
            cuts in proptest::collection::vec(0usize..4096, 0..8),
        ) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            let _ = events(&body, &cuts);
        }

        /// A well-formed body split anywhere gives the same parts as whole.
        #[test]
        fn parts_are_the_same_however_the_body_is_split(
            parts in proptest::collection::vec((proptest::collection::vec(0u8..=255, 0..64), 0usize..4), 1..5),
            cuts in proptest::collection::vec(0usize..1024, 0..8),
        ) {
            let mut body = b"preamble\r\n".to_vec();
            for (data, padding) in &parts {
                body.extend_from_slice(b"--frame");
                body.extend(std::iter::repeat_n(b' ', *padding));
                body.extend_from_slice(b"\r\nContent-Type: x/y\r\n\r\n");
                // Part bodies never hold the delimiter: keep them to lower-case letters.
                body.extend(data.iter().map(|b| b'a' + b % 26));
                body.extend_from_slice(b"\r\n");
            }
            body.extend_from_slice(b"--frame--\r\n");
            let mut cuts = cuts;
            cuts.sort_unstable();
            proptest::prop_assert_eq!(events(&body, &cuts).unwrap(), events(&body, &[]).unwrap());
        }
    }

    #[test]
    fn the_boundary_is_read_from_the_content_type() {
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(
            mixed_replace_boundary(&v("multipart/x-mixed-replace; boundary=\"frame\"")).as_deref(),
            Some("frame")
        );
        assert_eq!(
            mixed_replace_boundary(&v("Multipart/X-Mixed-Replace;boundary=b1")).as_deref(),
            Some("b1")
        );
        assert_eq!(
            mixed_replace_boundary(&v("multipart/form-data; boundary=x")),
            None
        );
        assert_eq!(mixed_replace_boundary(&v("text/plain")), None);
    }
}
