//! Content decoding: gzip, deflate and br bodies decoded as they arrive, with a guard against
//! decompression bombs.
//!
//! The decoders are streaming writers (flate2, brotli-decompressor): each chunk of the encoded body goes
//! in, the decoded bytes available so far come out, so memory stays bounded by a chunk's expansion.
//! `deflate` is meant to be zlib-wrapped (RFC 9110) but some servers send raw deflate; like curl and
//! browsers, both are accepted.

use std::io::{self, Write};

use bytes::Bytes;
use http::HeaderValue;

/// The `Accept-Encoding` a request carries by default.
pub const ACCEPT_ENCODING: &str = "gzip, deflate, br";

/// Decoded bytes beyond which the expansion ratio is checked.
const RATIO_GRACE: u64 = 16 * 1024 * 1024;

/// Why decoding stopped.
#[derive(Debug)]
#[non_exhaustive]
pub enum DecodeError {
    /// The body is not valid for its encoding (or ends early).
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

enum Inner {
    Gzip(flate2::write::GzDecoder<Vec<u8>>),
    /// Undecided until the first bytes show whether a zlib header is there.
    Deflate(Option<Vec<u8>>),
    Zlib(flate2::write::ZlibDecoder<Vec<u8>>),
    RawDeflate(flate2::write::DeflateDecoder<Vec<u8>>),
    Brotli(Box<brotli_decompressor::DecompressorWriter<Vec<u8>>>),
}

/// A streaming decoder for one response body.
pub struct Decoder {
    inner: Inner,
    encoded: u64,
    decoded: u64,
    max_ratio: u64,
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
    /// A decoder for `Content-Encoding: encoding`, or `None` for `identity` and encodings this crate
    /// does not decode (the body is then delivered as sent). Once more than 16 MiB came out, a body
    /// that expands more than `max_ratio` times is refused.
    pub fn for_encoding(encoding: &HeaderValue, max_ratio: u64) -> Option<Decoder> {
        let name = encoding.to_str().ok()?.trim().to_ascii_lowercase();
        let inner = match name.as_str() {
            "gzip" | "x-gzip" => Inner::Gzip(flate2::write::GzDecoder::new(Vec::new())),
            "deflate" => Inner::Deflate(Some(Vec::new())),
            "br" => Inner::Brotli(Box::new(brotli_decompressor::DecompressorWriter::new(
                Vec::new(),
                64 * 1024,
            ))),
            _ => return None,
        };
        Some(Decoder {
            inner,
            encoded: 0,
            decoded: 0,
            max_ratio: max_ratio.max(1),
        })
    }

    /// Feeds encoded bytes; returns the decoded bytes they completed.
    ///
    /// # Errors
    /// The body is corrupt, or expands beyond the limit.
    pub fn feed(&mut self, input: &[u8]) -> Result<Bytes, DecodeError> {
        self.encoded += input.len() as u64;
        let out = match &mut self.inner {
            Inner::Gzip(d) => write_and_take(d, input, |d| d.get_mut()),
            Inner::Zlib(d) => write_and_take(d, input, |d| d.get_mut()),
            Inner::RawDeflate(d) => write_and_take(d, input, |d| d.get_mut()),
            Inner::Brotli(d) => write_and_take(d.as_mut(), input, |d| d.get_mut()),
            Inner::Deflate(head) => {
                let mut seen = head.take().unwrap_or_default();
                seen.extend_from_slice(input);
                if seen.len() < 2 {
                    *head = Some(seen);
                    return Ok(Bytes::new());
                }
                // A zlib header: CMF says deflate (low nibble 8) and CMF*256+FLG is a multiple of 31.
                let zlib =
                    seen[0] & 0x0f == 8 && (u16::from(seen[0]) << 8 | u16::from(seen[1])) % 31 == 0;
                self.inner = if zlib {
                    Inner::Zlib(flate2::write::ZlibDecoder::new(Vec::new()))
                } else {
                    Inner::RawDeflate(flate2::write::DeflateDecoder::new(Vec::new()))
                };
                self.encoded -= seen.len() as u64;
                return self.feed(&seen);
            }
        }
        .map_err(DecodeError::Corrupt)?;
        self.count(out)
    }

    /// The body ended: returns the last decoded bytes.
    ///
    /// # Errors
    /// The body stopped before its encoding was complete, or is corrupt.
    pub fn finish(&mut self) -> Result<Bytes, DecodeError> {
        let out = match &mut self.inner {
            Inner::Gzip(d) => finish_and_take(d.try_finish(), d.get_mut()),
            Inner::Zlib(d) => finish_and_take(d.try_finish(), d.get_mut()),
            Inner::RawDeflate(d) => finish_and_take(d.try_finish(), d.get_mut()),
            Inner::Brotli(d) => finish_and_take(d.flush(), d.get_mut()),
            Inner::Deflate(head) => {
                if head.as_ref().is_some_and(|h| !h.is_empty()) {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "deflate body too short",
                    ))
                } else {
                    Ok(Bytes::new())
                }
            }
        }
        .map_err(DecodeError::Corrupt)?;
        self.count(out)
    }

    fn count(&mut self, out: Bytes) -> Result<Bytes, DecodeError> {
        self.decoded += out.len() as u64;
        if self.decoded > RATIO_GRACE && self.decoded / self.encoded.max(1) > self.max_ratio {
            return Err(DecodeError::TooExpanded {
                encoded: self.encoded,
                decoded: self.decoded,
            });
        }
        Ok(out)
    }
}

fn write_and_take<W: Write>(
    w: &mut W,
    input: &[u8],
    out: impl FnOnce(&mut W) -> &mut Vec<u8>,
) -> io::Result<Bytes> {
    w.write_all(input)?;
    Ok(Bytes::from(std::mem::take(out(w))))
}

fn finish_and_take(done: io::Result<()>, out: &mut Vec<u8>) -> io::Result<Bytes> {
    done?;
    Ok(Bytes::from(std::mem::take(out)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn decode_in_pieces(enc: &str, body: &[u8], piece: usize) -> Result<Vec<u8>, DecodeError> {
        let mut d = Decoder::for_encoding(&HeaderValue::from_str(enc).unwrap(), 200).unwrap();
        let mut out = Vec::new();
        for chunk in body.chunks(piece.max(1)) {
            out.extend_from_slice(&d.feed(chunk)?);
        }
        out.extend_from_slice(&d.finish()?);
        Ok(out)
    }

    #[test]
    fn gzip_deflate_and_raw_deflate_decode_in_any_pieces() {
        let text: Vec<u8> = b"Hello World! ".repeat(5000);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), Compression::default());
        z.write_all(&text).unwrap();
        let zlib = z.finish().unwrap();
        let mut r = flate2::write::DeflateEncoder::new(Vec::new(), Compression::default());
        r.write_all(&text).unwrap();
        let raw = r.finish().unwrap();
        for piece in [1, 7, 4096] {
            assert_eq!(decode_in_pieces("gzip", &gz(&text), piece).unwrap(), text);
            assert_eq!(decode_in_pieces("deflate", &zlib, piece).unwrap(), text);
            assert_eq!(decode_in_pieces("deflate", &raw, piece).unwrap(), text);
        }
    }

    #[test]
    fn identity_and_unknown_encodings_are_left_alone() {
        assert!(Decoder::for_encoding(&HeaderValue::from_static("identity"), 200).is_none());
        assert!(Decoder::for_encoding(&HeaderValue::from_static("zstd"), 200).is_none());
    }

    #[test]
    fn corrupt_and_truncated_bodies_are_errors() {
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
    }

    #[test]
    fn a_bomb_is_stopped_early() {
        let zeros = vec![0u8; 64 * 1024 * 1024];
        let bomb = gz(&zeros);
        match decode_in_pieces("gzip", &bomb, 16 * 1024) {
            Err(DecodeError::TooExpanded { decoded, .. }) => {
                assert!(
                    decoded < 20 * 1024 * 1024,
                    "stopped soon after the grace: {decoded}"
                )
            }
            other => panic!("expected a refusal, got {:?}", other.map(|v| v.len())),
        }
    }
}
