//! Content decoding: gzip, deflate and br bodies decoded as they arrive, in bounded steps, with a
//! guard against decompression bombs.
//!
//! A body's encoded bytes are [`Decoder::feed`]: queued, not decoded. [`Decoder::next_chunk`] then
//! decodes them a step at a time: at most [`INPUT_STEP`] encoded bytes go into the codec at once, and
//! a step hands out at most about [`OUTPUT_STEP`] decoded bytes (deflate cannot expand one step's
//! input past about 1 MiB; brotli, which can expand a few bytes into gigabytes, is driven through its
//! streaming API with a fixed output window). The expansion limit is checked after every step, so a
//! bomb is refused when at most one step's output is in memory, never after a whole network chunk
//! was inflated.
//!
//! `deflate` is meant to be zlib-wrapped (RFC 9110) but some servers send raw deflate; like curl and
//! browsers, both are accepted. gzip bodies of several members (concatenated files) decode whole.
//! A body encoded more than once (`Content-Encoding: gzip, br`, or one header line per coding)
//! goes through one decoder per coding, the last applied first, each in the same bounded steps;
//! the expansion limit then holds for the whole chain, from the bytes received to the bytes out.
//!
//! One body labelled gzip is not decoded: a gzip file that a server labels with its own coding
//! ([`is_a_gzip_file`]), as wget and browsers keep it.

use std::io::{self, Write};

use brotli_decompressor::{BrotliDecompressStream, BrotliResult, BrotliState, StandardAlloc};
use bytes::{Buf, Bytes};
use http::HeaderValue;

/// The `Accept-Encoding` a request carries by default.
pub const ACCEPT_ENCODING: &str = "gzip, deflate, br";

/// Decoded bytes beyond which the expansion ratio is checked.
pub const RATIO_GRACE: u64 = 16 * 1024 * 1024;

/// Encoded bytes handed to the codec in one step.
pub const INPUT_STEP: usize = 1024;

/// The most codings one body may carry for it to be decoded (curl's limit is 5). A body with more
/// is delivered as sent, as one with a coding this crate does not know: a chain of decoders is
/// memory a server could multiply.
pub const MAX_CODINGS: usize = 4;

/// Decoded bytes after which a step ends and its output is handed out. A deflate step may overshoot
/// it by what one [`INPUT_STEP`] of input expands to (at most about 1 MiB); a brotli step never does.
pub const OUTPUT_STEP: usize = 64 * 1024;

/// The `Content-Type`s of a gzip file, as servers name it.
const GZIP_TYPES: [&str; 6] = [
    "application/gzip",
    "application/x-gzip",
    "application/x-gunzip",
    "application/gzipped",
    "application/gzip-compressed",
    "application/x-tgz",
];

/// The file name endings of a gzip file.
const GZIP_ENDINGS: [&str; 3] = [".gz", ".tgz", ".gzip"];

/// Whether a body labelled `Content-Encoding: gzip` is a gzip file whose coding is its own rather
/// than one applied for the transfer: gzip is its only coding, and its `Content-Type` is a gzip
/// type or the file name that ends the URL's `path` ends in `.gz`, `.tgz` or `.gzip`. Such a body
/// is kept as sent. A server that labels its `.tar.gz` files so (an `AddEncoding x-gzip .gz`, an
/// object stored with `Content-Encoding: gzip`) means the archive, whose checksum a package
/// manager checks; decoded, it would be the `.tar`. wget keeps such a body by its type, browsers
/// by its type or name; URLSession decodes it.
pub fn is_a_gzip_file(headers: &http::HeaderMap, path: &str) -> bool {
    let mut codings = headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .flat_map(|line| line.to_str().unwrap_or("?").split(','))
        .map(str::trim)
        .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity"));
    let only_gzip = matches!(
        (codings.next(), codings.next()),
        (Some(c), None) if c.eq_ignore_ascii_case("gzip") || c.eq_ignore_ascii_case("x-gzip")
    );
    if !only_gzip {
        return false;
    }
    let typed = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim())
        .is_some_and(|essence| GZIP_TYPES.iter().any(|t| essence.eq_ignore_ascii_case(t)));
    let name = path.rsplit('/').next().unwrap_or("").to_ascii_lowercase();
    typed || GZIP_ENDINGS.iter().any(|e| name.ends_with(e))
}

/// Why decoding stopped.
#[derive(Debug)]
#[non_exhaustive]
pub enum DecodeError {
    /// The body is not valid for its encoding (or ends early, or goes on after its end).
    Corrupt(io::Error),
    /// The body expands more than the limit allows: a decompression bomb, most likely.
    TooExpanded {
        /// Encoded bytes read.
        encoded: u64,
        /// Decoded bytes produced.
        decoded: u64,
    },
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Corrupt(e) => write!(f, "the body does not decode: {e}"),
            DecodeError::TooExpanded { encoded, decoded } => write!(
                f,
                "the body expands from {encoded} to more than {decoded} bytes: refused as a decompression bomb"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

fn corrupt(why: &'static str) -> DecodeError {
    DecodeError::Corrupt(io::Error::new(io::ErrorKind::InvalidData, why))
}

type BrotliDecoderState = BrotliState<StandardAlloc, StandardAlloc, StandardAlloc>;

enum Inner {
    Gzip(flate2::write::MultiGzDecoder<Vec<u8>>),
    /// Undecided until the first bytes show whether a zlib header is there.
    Deflate(Vec<u8>),
    Zlib(flate2::write::ZlibDecoder<Vec<u8>>),
    RawDeflate(flate2::write::DeflateDecoder<Vec<u8>>),
    Brotli {
        state: Box<BrotliDecoderState>,
        /// The stream's end was decoded.
        done: bool,
        /// The last step filled its output window: more output is waiting without more input.
        more: bool,
    },
    /// Test hook: an encoding whose decoder panics, as a bug in a codec would.
    #[cfg(feature = "test-hooks")]
    Panic,
}

/// A streaming decoder for one response body.
pub struct Decoder {
    inner: Inner,
    /// Fed and not yet decoded.
    pending: Bytes,
    /// Decoded and not yet handed out (brotli and the sniffing stage; flate2 keeps its own).
    out: Vec<u8>,
    /// Encoded bytes the codec has consumed.
    encoded: u64,
    /// Decoded bytes produced.
    decoded: u64,
    max_ratio: u64,
    /// The body ended and the codec was told so.
    finished: bool,
    /// The decoder for the coding applied before this one, which this one's output feeds.
    then: Option<Box<Decoder>>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("encoded", &self.encoded)
            .field("decoded", &self.decoded)
            .finish_non_exhaustive()
    }
}

impl Decoder {
    /// A decoder for a response's `Content-Encoding` (its header lines, in order: pass
    /// `headers.get_all(CONTENT_ENCODING)`), or `None` when it names no coding but `identity`,
    /// one this crate does not decode, or more than [`MAX_CODINGS`] (the body is then delivered as
    /// sent). Once more than [`RATIO_GRACE`] bytes came out, a body that expands more than
    /// `max_ratio` times is refused.
    pub fn for_encoding<'a>(
        encoding: impl IntoIterator<Item = &'a HeaderValue>,
        max_ratio: u64,
    ) -> Option<Decoder> {
        let mut codings = Vec::new();
        for line in encoding {
            for coding in line.to_str().ok()?.split(',') {
                let coding = coding.trim();
                if !coding.is_empty() && !coding.eq_ignore_ascii_case("identity") {
                    if codings.len() == MAX_CODINGS {
                        return None;
                    }
                    codings.push(coding);
                }
            }
        }
        // The last coding applied is undone first; each decoder feeds the one before it.
        let mut chain: Option<Decoder> = None;
        for coding in codings {
            let mut stage = Decoder::for_coding(coding, max_ratio)?;
            stage.then = chain.map(Box::new);
            chain = Some(stage);
        }
        chain
    }

    /// A decoder for one coding.
    fn for_coding(coding: &str, max_ratio: u64) -> Option<Decoder> {
        let name = coding.to_ascii_lowercase();
        let inner = match name.as_str() {
            "gzip" | "x-gzip" => Inner::Gzip(flate2::write::MultiGzDecoder::new(Vec::new())),
            "deflate" => Inner::Deflate(Vec::new()),
            "br" => Inner::Brotli {
                state: Box::new(BrotliState::new(
                    StandardAlloc::default(),
                    StandardAlloc::default(),
                    StandardAlloc::default(),
                )),
                done: false,
                more: false,
            },
            #[cfg(feature = "test-hooks")]
            "x-courier-test-panic" => Inner::Panic,
            _ => return None,
        };
        Some(Decoder {
            inner,
            pending: Bytes::new(),
            out: Vec::new(),
            encoded: 0,
            decoded: 0,
            max_ratio: max_ratio.max(1),
            finished: false,
            then: None,
        })
    }

    /// Queues encoded bytes; [`Decoder::next_chunk`] decodes them. Call it only once the bytes fed
    /// before were decoded (`next_chunk` returned `None`), so the queue holds one network chunk at most.
    pub fn feed(&mut self, input: Bytes) {
        if self.pending.is_empty() {
            self.pending = input;
        } else {
            let mut joined = Vec::with_capacity(self.pending.len() + input.len());
            joined.extend_from_slice(&self.pending);
            joined.extend_from_slice(&input);
            self.pending = Bytes::from(joined);
        }
    }

    /// Decodes what was fed, one bounded step after another, and returns the next decoded bytes, or
    /// `None` when everything fed so far has been decoded and handed out.
    ///
    /// # Errors
    /// The body is corrupt, or expands beyond the limit.
    pub fn next_chunk(&mut self) -> Result<Option<Bytes>, DecodeError> {
        let Some(mut then) = self.then.take() else {
            return self.stage_next_chunk();
        };
        let out = self.through(&mut then, Decoder::stage_next_chunk);
        self.then = Some(then);
        out
    }

    /// The next bytes out of the decoder `then` (the chain after this one), fed from this one's
    /// output as `produce` makes it (a step, or the end's flush); `None` when both are drained.
    fn through(
        &mut self,
        then: &mut Decoder,
        mut produce: impl FnMut(&mut Decoder) -> Result<Option<Bytes>, DecodeError>,
    ) -> Result<Option<Bytes>, DecodeError> {
        loop {
            if let Some(out) = then.next_chunk()? {
                self.check_chain(then)?;
                return Ok(Some(out));
            }
            match produce(self)? {
                Some(bytes) => then.feed(bytes),
                None => return Ok(None),
            }
        }
    }

    /// The whole chain's expansion, from the bytes that came in to those out of `then`, the rest
    /// of the chain: each decoder's own limit would let a chain of them expand by its power.
    fn check_chain(&self, then: &Decoder) -> Result<(), DecodeError> {
        let decoded = then.decoded_total();
        if decoded > RATIO_GRACE && decoded / self.encoded.max(1) > self.max_ratio {
            return Err(DecodeError::TooExpanded {
                encoded: self.encoded,
                decoded,
            });
        }
        Ok(())
    }

    /// Bytes out of the last decoder of the chain.
    fn decoded_total(&self) -> u64 {
        match &self.then {
            Some(then) => then.decoded_total(),
            None => self.decoded,
        }
    }

    /// [`Decoder::next_chunk`] for this decoder alone.
    fn stage_next_chunk(&mut self) -> Result<Option<Bytes>, DecodeError> {
        while self.buffered() < OUTPUT_STEP {
            if !self.pending.is_empty() {
                self.step()?;
            } else if !self.drain()? {
                break;
            }
            self.check_ratio()?;
        }
        Ok(self.take_out())
    }

    /// With no input left, brings out what the codec still holds from the input it consumed (flate2
    /// keeps up to 32 KiB inside; brotli stops when its output window is full). Returns true when
    /// there may be more.
    fn drain(&mut self) -> Result<bool, DecodeError> {
        let before = self.buffered();
        let more = match &mut self.inner {
            Inner::Gzip(d) => d.flush().map(|()| false),
            Inner::Zlib(d) => d.flush().map(|()| false),
            Inner::RawDeflate(d) => d.flush().map(|()| false),
            Inner::Brotli {
                state,
                done,
                more: more @ true,
            } => {
                let room = OUTPUT_STEP.saturating_sub(self.out.len());
                brotli_step(state, done, more, &[], &mut self.out, room)?;
                Ok(*more)
            }
            _ => Ok(false),
        }
        .map_err(DecodeError::Corrupt)?;
        self.decoded += (self.buffered() - before) as u64;
        Ok(more)
    }

    /// The body ended: decodes the rest and returns the last decoded bytes, a chunk at a time; call
    /// it until it returns `None`.
    ///
    /// # Errors
    /// The body stopped before its encoding was complete, or is corrupt.
    pub fn finish(&mut self) -> Result<Option<Bytes>, DecodeError> {
        let Some(mut then) = self.then.take() else {
            return self.stage_finish();
        };
        // This decoder's rest goes through the chain, then the chain's own end.
        let out = match self.through(&mut then, Decoder::stage_finish) {
            Ok(None) => then
                .finish()
                .and_then(|last| self.check_chain(&then).map(|()| last)),
            other => other,
        };
        self.then = Some(then);
        out
    }

    /// [`Decoder::finish`] for this decoder alone.
    fn stage_finish(&mut self) -> Result<Option<Bytes>, DecodeError> {
        if let Some(chunk) = self.stage_next_chunk()? {
            return Ok(Some(chunk));
        }
        if self.finished {
            return Ok(None);
        }
        self.finished = true;
        // An empty body is empty in any encoding (a 204, a `Content-Length: 0` that names one), as
        // curl and browsers read it: nothing to decode, no error.
        if self.encoded == 0 {
            return Ok(None);
        }
        let before = self.buffered();
        let done = match &mut self.inner {
            Inner::Gzip(d) => d.try_finish(),
            Inner::Zlib(d) => d.try_finish(),
            Inner::RawDeflate(d) => d.try_finish(),
            Inner::Brotli { done: true, .. } => Ok(()),
            Inner::Brotli { .. } => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "brotli body ends before its end",
            )),
            Inner::Deflate(head) if head.is_empty() => Ok(()),
            Inner::Deflate(_) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "deflate body too short",
            )),
            #[cfg(feature = "test-hooks")]
            Inner::Panic => Ok(()),
        };
        done.map_err(DecodeError::Corrupt)?;
        // What the codec flushed at the end (less than its internal buffer).
        self.decoded += (self.buffered() - before) as u64;
        self.check_ratio()?;
        Ok(self.take_out())
    }

    /// Decoded bytes waiting to be handed out.
    fn buffered(&self) -> usize {
        match &self.inner {
            Inner::Gzip(d) => d.get_ref().len(),
            Inner::Zlib(d) => d.get_ref().len(),
            Inner::RawDeflate(d) => d.get_ref().len(),
            _ => self.out.len(),
        }
    }

    fn take_out(&mut self) -> Option<Bytes> {
        let out = match &mut self.inner {
            Inner::Gzip(d) => std::mem::take(d.get_mut()),
            Inner::Zlib(d) => std::mem::take(d.get_mut()),
            Inner::RawDeflate(d) => std::mem::take(d.get_mut()),
            _ => std::mem::take(&mut self.out),
        };
        (!out.is_empty()).then(|| Bytes::from(out))
    }

    /// One bounded step: at most [`INPUT_STEP`] encoded bytes in, at most one step's output out.
    fn step(&mut self) -> Result<(), DecodeError> {
        let take = self.pending.len().min(INPUT_STEP);
        let before = self.buffered();
        let consumed = match &mut self.inner {
            Inner::Gzip(d) => write_some(d, &self.pending[..take], "gzip")?,
            Inner::Zlib(d) => write_some(d, &self.pending[..take], "deflate")?,
            Inner::RawDeflate(d) => write_some(d, &self.pending[..take], "deflate")?,
            Inner::Brotli { state, done, more } => {
                let room = OUTPUT_STEP.saturating_sub(self.out.len());
                brotli_step(
                    state,
                    done,
                    more,
                    &self.pending[..take],
                    &mut self.out,
                    room,
                )?
            }
            Inner::Deflate(head) => {
                // A zlib header: CMF says deflate (low nibble 8) and CMF*256+FLG is a multiple of 31.
                head.push(self.pending[0]);
                if head.len() == 2 {
                    let zlib = head[0] & 0x0f == 8
                        && (u16::from(head[0]) << 8 | u16::from(head[1])) % 31 == 0;
                    let seen = std::mem::take(head);
                    self.inner = if zlib {
                        Inner::Zlib(flate2::write::ZlibDecoder::new(Vec::new()))
                    } else {
                        Inner::RawDeflate(flate2::write::DeflateDecoder::new(Vec::new()))
                    };
                    // The first sniffed byte goes back in front of the rest, which starts with the
                    // second (not consumed yet).
                    let mut again = Vec::with_capacity(self.pending.len() + 1);
                    again.push(seen[0]);
                    again.extend_from_slice(&self.pending);
                    self.pending = Bytes::from(again);
                    self.encoded -= 1;
                    return Ok(());
                }
                1
            }
            #[cfg(feature = "test-hooks")]
            Inner::Panic => panic!("injected decoder panic"),
        };
        self.pending.advance(consumed);
        self.encoded += consumed as u64;
        self.decoded += (self.buffered() - before) as u64;
        Ok(())
    }

    fn check_ratio(&self) -> Result<(), DecodeError> {
        if self.decoded > RATIO_GRACE && self.decoded / self.encoded.max(1) > self.max_ratio {
            return Err(DecodeError::TooExpanded {
                encoded: self.encoded,
                decoded: self.decoded,
            });
        }
        Ok(())
    }
}

/// One `write` into a flate2 writer: it consumes some input and buffers at most what that input
/// expands to. A writer that takes nothing more has seen its stream end: what follows is not part of
/// the body's encoding.
fn write_some<W: Write>(w: &mut W, input: &[u8], name: &'static str) -> Result<usize, DecodeError> {
    match w.write(input) {
        Ok(0) => Err(corrupt(match name {
            "gzip" => "gzip body goes on after its end",
            _ => "deflate body goes on after its end",
        })),
        Ok(n) => Ok(n),
        Err(e) => Err(DecodeError::Corrupt(e)),
    }
}

/// One step of brotli's streaming decoder: `input` in, at most `room` bytes appended to `out`.
/// Returns how much input it consumed.
fn brotli_step(
    state: &mut BrotliDecoderState,
    done: &mut bool,
    more: &mut bool,
    input: &[u8],
    out: &mut Vec<u8>,
    room: usize,
) -> Result<usize, DecodeError> {
    if *done {
        return match input.is_empty() {
            true => Ok(0),
            false => Err(corrupt("brotli body goes on after its end")),
        };
    }
    let start = out.len();
    out.resize(start + room, 0);
    let (mut available_in, mut input_offset) = (input.len(), 0);
    let (mut available_out, mut output_offset, mut total_out) = (room, start, 0);
    let result = BrotliDecompressStream(
        &mut available_in,
        &mut input_offset,
        input,
        &mut available_out,
        &mut output_offset,
        out,
        &mut total_out,
        state,
    );
    out.truncate(output_offset);
    *more = matches!(result, BrotliResult::NeedsMoreOutput);
    match result {
        BrotliResult::ResultFailure => Err(corrupt("invalid brotli body")),
        BrotliResult::ResultSuccess => {
            *done = true;
            Ok(input_offset)
        }
        BrotliResult::NeedsMoreInput | BrotliResult::NeedsMoreOutput => Ok(input_offset),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use proptest::prelude::*;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), Compression::default());
        z.write_all(data).unwrap();
        z.finish().unwrap()
    }

    fn raw(data: &[u8]) -> Vec<u8> {
        let mut r = flate2::write::DeflateEncoder::new(Vec::new(), Compression::default());
        r.write_all(data).unwrap();
        r.finish().unwrap()
    }

    fn br(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut e = brotli::CompressorWriter::new(&mut out, 4096, 9, 22);
        e.write_all(data).unwrap();
        drop(e);
        out
    }

    /// Decodes `body` fed in pieces of `piece` bytes; also returns the largest chunk handed out.
    fn decode(enc: &str, body: &[u8], piece: usize) -> Result<(Vec<u8>, usize), DecodeError> {
        let mut d = Decoder::for_encoding([&HeaderValue::from_str(enc).unwrap()], 200).unwrap();
        let (mut out, mut largest) = (Vec::new(), 0);
        for chunk in body.chunks(piece.max(1)) {
            d.feed(Bytes::copy_from_slice(chunk));
            while let Some(c) = d.next_chunk()? {
                largest = largest.max(c.len());
                out.extend_from_slice(&c);
            }
        }
        while let Some(c) = d.finish()? {
            largest = largest.max(c.len());
            out.extend_from_slice(&c);
        }
        Ok((out, largest))
    }

    fn decode_in_pieces(enc: &str, body: &[u8], piece: usize) -> Result<Vec<u8>, DecodeError> {
        decode(enc, body, piece).map(|(out, _)| out)
    }

    #[test]
    fn every_encoding_decodes_in_any_pieces() {
        let text: Vec<u8> = b"Hello World! ".repeat(25_000);
        for piece in [1, 7, 4096, 1 << 20] {
            assert_eq!(decode_in_pieces("gzip", &gz(&text), piece).unwrap(), text);
            assert_eq!(
                decode_in_pieces("deflate", &zlib(&text), piece).unwrap(),
                text
            );
            assert_eq!(
                decode_in_pieces("deflate", &raw(&text), piece).unwrap(),
                text
            );
            assert_eq!(decode_in_pieces("br", &br(&text), piece).unwrap(), text);
        }
    }

    /// What the bytes fed so far decode to comes out before the body ends: a stream of small
    /// messages is not held back inside the codec.
    #[test]
    fn everything_fed_comes_out_without_waiting_for_the_end() {
        let text: Vec<u8> = b"Hello World! ".repeat(25_000);
        for (enc, body) in [
            ("gzip", gz(&text)),
            ("deflate", zlib(&text)),
            ("br", br(&text)),
        ] {
            let mut d = Decoder::for_encoding([&HeaderValue::from_static(enc)], 200).unwrap();
            d.feed(Bytes::from(body));
            let mut out = Vec::new();
            while let Some(c) = d.next_chunk().unwrap() {
                assert!(c.len() <= OUTPUT_STEP + 1100 * INPUT_STEP, "{enc}");
                out.extend_from_slice(&c);
            }
            assert_eq!(out.len(), text.len(), "{enc}");
            assert_eq!(d.finish().unwrap(), None, "{enc}");
        }
    }

    #[test]
    fn gzip_members_concatenated_decode_whole() {
        let mut body = gz(b"first ");
        body.extend_from_slice(&gz(b"second"));
        assert_eq!(decode_in_pieces("gzip", &body, 5).unwrap(), b"first second");
    }

    #[test]
    fn a_body_encoded_twice_or_more_is_decoded_the_last_coding_first() {
        let text: Vec<u8> = b"stacked codings ".repeat(20_000);
        let gzip_then_br = br(&gz(&text));
        let twice_gzip = gz(&gz(&text));
        let three = gz(&br(&zlib(&text)));
        for piece in [1, 333, 1 << 20] {
            assert_eq!(
                decode_in_pieces("gzip, br", &gzip_then_br, piece).unwrap(),
                text
            );
            assert_eq!(
                decode_in_pieces("gzip,gzip", &twice_gzip, piece).unwrap(),
                text
            );
            assert_eq!(
                decode_in_pieces("deflate, identity, br, GZIP", &three, piece).unwrap(),
                text
            );
        }
        // One header line per coding, in the order they were applied.
        let mut d = Decoder::for_encoding(
            [
                &HeaderValue::from_static("gzip"),
                &HeaderValue::from_static("br"),
            ],
            200,
        )
        .unwrap();
        d.feed(Bytes::from(gzip_then_br.clone()));
        let mut out = Vec::new();
        while let Some(c) = d.next_chunk().unwrap() {
            out.extend_from_slice(&c);
        }
        while let Some(c) = d.finish().unwrap() {
            out.extend_from_slice(&c);
        }
        assert_eq!(out, text);
        // A chain cut short, or in the wrong order, is an error, not bytes half decoded.
        assert!(decode_in_pieces("gzip, br", &gzip_then_br[..gzip_then_br.len() - 3], 7).is_err());
        assert!(decode_in_pieces("br, gzip", &gzip_then_br, 7).is_err());
        assert!(decode_in_pieces("gzip, gzip", b"", 1).unwrap().is_empty());
    }

    #[test]
    fn codings_unknown_or_too_many_leave_the_body_as_sent() {
        let none = |v: &'static str| Decoder::for_encoding([&HeaderValue::from_static(v)], 200);
        assert!(none("gzip, zstd").is_none());
        assert!(none("identity, identity").is_none());
        assert!(none("gzip, gzip, gzip, gzip").is_some(), "four is the most");
        assert!(none("gzip, gzip, gzip, gzip, gzip").is_none());
        assert!(none(", ,").is_none());
        assert!(none(" gzip , ").is_some());
    }

    /// Each decoder of a chain within the limit, the chain far past it: gzip twice over 64 MiB
    /// of zeros expands about 1,000 times in the inner decoder and about 300 in the outer
    /// (under 16 MiB, unchecked), about 300,000 times in all.
    #[test]
    fn a_chain_is_held_to_the_limit_as_a_whole() {
        let body = gz(&gz(&vec![0u8; 64 * 1024 * 1024]));
        let mut d = Decoder::for_encoding([&HeaderValue::from_static("gzip, gzip")], 2000).unwrap();
        d.feed(Bytes::from(body));
        let refused = loop {
            match d.next_chunk() {
                Ok(Some(_)) => {}
                Ok(None) => break d.finish().err(),
                Err(e) => break Some(e),
            }
        };
        match refused {
            Some(DecodeError::TooExpanded { decoded, .. }) => {
                assert!(decoded < RATIO_GRACE + 2 * 1024 * 1024, "{decoded}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_gzip_file_labelled_with_its_own_coding_is_known_by_its_type_or_name() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut h = http::HeaderMap::new();
            for (k, v) in pairs {
                h.append(*k, HeaderValue::from_static(v));
            }
            h
        };
        let gz_type = h(&[
            ("content-encoding", "x-gzip"),
            ("content-type", "Application/X-Gzip; charset=binary"),
        ]);
        assert!(is_a_gzip_file(&gz_type, "/download"));
        let text = h(&[("content-encoding", "gzip"), ("content-type", "text/plain")]);
        assert!(!is_a_gzip_file(&text, "/notes.txt"));
        assert!(is_a_gzip_file(&text, "/src/pkg-1.0.TAR.GZ"));
        assert!(is_a_gzip_file(&text, "/pkg.tgz"));
        // The name is the path's last segment, and only gzip alone counts.
        assert!(!is_a_gzip_file(&text, "/dir.gz/notes.txt"));
        let twice = h(&[("content-encoding", "gzip"), ("content-encoding", "gzip")]);
        assert!(!is_a_gzip_file(&twice, "/pkg.tar.gz"));
        let br = h(&[
            ("content-encoding", "br"),
            ("content-type", "application/gzip"),
        ]);
        assert!(!is_a_gzip_file(&br, "/pkg.tar.gz"));
        assert!(!is_a_gzip_file(&h(&[]), "/pkg.tar.gz"));
        let labelled = h(&[("content-encoding", "identity, gzip")]);
        assert!(is_a_gzip_file(&labelled, "/pkg.tar.gz"));
    }

    #[test]
    fn identity_and_unknown_encodings_are_left_alone() {
        assert!(Decoder::for_encoding([&HeaderValue::from_static("identity")], 200).is_none());
        assert!(Decoder::for_encoding([&HeaderValue::from_static("zstd")], 200).is_none());
    }

    #[test]
    fn corrupt_truncated_and_overlong_bodies_are_errors() {
        let good = gz(b"some text that is long enough to matter");
        assert!(matches!(
            decode_in_pieces("gzip", b"definitely not gzip", 4),
            Err(DecodeError::Corrupt(_))
        ));
        assert!(matches!(
            decode_in_pieces("gzip", &good[..good.len() - 6], 4),
            Err(DecodeError::Corrupt(_))
        ));
        assert!(decode_in_pieces("br", b"\xff\xff\xff\xff garbage", 3).is_err());
        let text = b"a brotli body".repeat(10);
        let b = br(&text);
        assert!(decode_in_pieces("br", &b[..b.len() - 1], 3).is_err());
        let mut overlong = b.clone();
        overlong.extend_from_slice(b"tail");
        assert!(decode_in_pieces("br", &overlong, 3).is_err());
        let mut overlong = zlib(&text);
        overlong.extend_from_slice(b"tail");
        assert!(decode_in_pieces("deflate", &overlong, 3).is_err());
        assert!(decode_in_pieces("deflate", b"x", 1).is_err(), "one byte");
        assert!(decode_in_pieces("deflate", b"", 1).unwrap().is_empty());
    }

    #[test]
    fn an_empty_body_decodes_to_nothing_in_every_encoding() {
        for enc in ["gzip", "deflate", "br"] {
            assert_eq!(decode_in_pieces(enc, b"", 1).unwrap(), b"", "{enc}");
        }
    }

    /// Zeros in every encoding, as a hostile server would send them: refused soon after the grace,
    /// and no chunk handed out is ever larger than a step's worth.
    #[test]
    fn a_bomb_is_stopped_early_in_bounded_steps() {
        let zeros = vec![0u8; 64 * 1024 * 1024];
        for (enc, body) in [
            ("gzip", gz(&zeros)),
            ("deflate", zlib(&zeros)),
            ("br", br(&zeros)),
        ] {
            let mut d = Decoder::for_encoding([&HeaderValue::from_str(enc).unwrap()], 200).unwrap();
            let mut largest = 0;
            let mut refused = None;
            'body: for chunk in body.chunks(64 * 1024) {
                d.feed(Bytes::copy_from_slice(chunk));
                loop {
                    match d.next_chunk() {
                        Ok(Some(c)) => largest = largest.max(c.len()),
                        Ok(None) => break,
                        Err(e) => {
                            refused = Some(e);
                            break 'body;
                        }
                    }
                }
            }
            match refused {
                Some(DecodeError::TooExpanded { decoded, .. }) => assert!(
                    decoded < RATIO_GRACE + 2 * 1024 * 1024,
                    "{enc}: stopped soon after the grace: {decoded}"
                ),
                other => panic!("{enc}: expected a refusal, got {other:?}"),
            }
            assert!(
                largest <= OUTPUT_STEP + 1100 * INPUT_STEP,
                "{enc}: a chunk of {largest} bytes"
            );
        }
    }

    // 256 cases each by default; `PROPTEST_CASES=N` runs N.
    proptest! {
        /// Arbitrary bytes under every encoding: an error or a result, never a panic or a hang.
        #[test]
        fn arbitrary_bodies_never_panic(
            enc in prop::sample::select(vec!["gzip", "deflate", "br", "gzip, br", "br, deflate, gzip"]),
            body in prop::collection::vec(any::<u8>(), 0..2048),
            piece in 1usize..300,
        ) {
            let _ = decode_in_pieces(enc, &body, piece);
        }

        /// Valid bodies with bytes flipped, cut or extended: decoded, or refused with an error.
        #[test]
        fn mutated_bodies_never_panic(
            enc in prop::sample::select(vec!["gzip", "deflate", "br", "gzip, br", "deflate, gzip"]),
            text in prop::collection::vec(any::<u8>(), 0..4096),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            cut in any::<prop::sample::Index>(),
            piece in 1usize..600,
        ) {
            let mut body = match enc {
                "gzip" => gz(&text),
                "deflate" => zlib(&text),
                "br" => br(&text),
                "gzip, br" => br(&gz(&text)),
                _ => gz(&zlib(&text)),
            };
            for (at, byte) in &flips {
                let i = at.index(body.len());
                body[i] ^= *byte;
            }
            let whole = flips.is_empty();
            if !whole {
                body.truncate(cut.index(body.len() + 1));
            }
            let decoded = decode_in_pieces(enc, &body, piece);
            if whole {
                prop_assert_eq!(decoded.unwrap(), text);
            }
        }
    }
}
