//! `multipart/x-mixed-replace`: a body made of parts that each replace the previous one (server push
//! of camera frames, status pages). URLSession hands each part to `did_receive_response` and
//! `did_receive_data`; this parser splits the body as it arrives, with no limit on its length.

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

/// The boundary of a `multipart/x-mixed-replace` content type, if it is one.
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
    pub fn feed(&mut self, data: &[u8]) -> Vec<PartEvent> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        loop {
            match self.state {
                State::Done => {
                    self.buf.clear();
                    return out;
                }
                State::Preamble => {
                    let Some(at) = find(&self.buf, &self.delimiter) else {
                        // Keep what could be the start of the delimiter.
                        let keep = self.delimiter.len().min(self.buf.len());
                        self.buf.advance(self.buf.len() - keep);
                        return out;
                    };
                    self.buf.advance(at + self.delimiter.len());
                    if !self.after_delimiter(&mut out) {
                        return out;
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
                        return out;
                    };
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
                            if !self.after_delimiter(&mut out) {
                                return out;
                            }
                        }
                        None => {
                            // Everything but a possible partial marker at the end is body.
                            let safe = self.buf.len().saturating_sub(marker.len() - 1);
                            if safe > 0 {
                                out.push(PartEvent::Data(self.buf.split_to(safe).freeze()));
                            }
                            return out;
                        }
                    }
                }
            }
        }
    }

    /// After a delimiter: `--` closes the body, a line end opens a part. False when more bytes
    /// are needed (the delimiter is put back).
    fn after_delimiter(&mut self, out: &mut Vec<PartEvent>) -> bool {
        if self.buf.len() < 2 {
            // Put the delimiter back until we can tell.
            let mut again = BytesMut::from(&self.delimiter[..]);
            if self.state == State::Body {
                again = BytesMut::from(&b"\r\n"[..]);
                again.extend_from_slice(&self.delimiter);
            }
            again.extend_from_slice(&self.buf);
            self.buf = again;
            return false;
        }
        if self.buf.starts_with(b"--") {
            self.state = State::Done;
            out.push(PartEvent::End);
            return true;
        }
        // Skip transport padding up to the line end.
        match find(&self.buf, b"\r\n") {
            Some(at) => {
                self.buf.advance(at + 2);
                self.state = State::Headers;
                true
            }
            None => false,
        }
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
            for e in p.feed(chunk) {
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
