//! The one place where Courier's records become bytes and back: bincode 2 inside a checked envelope.
//!
//! Envelope layout (all integers little-endian):
//!
//! ```text
//! magic "CRSD" (4) | format version u16 (2) | payload length u32 (4) | payload | SHA-256 of all before (32)
//! ```
//!
//! Why an envelope: bincode itself is not self-describing and is unmaintained (3.0.0 is a tombstone), so
//! the format can change under us. The magic tells our blobs from anything else, the version lets a later
//! release refuse (or migrate) an older layout instead of misreading it, and the checksum catches a blob
//! that was truncated or altered on its way through an application's storage. Moving to another format is
//! a change to this module and a version bump.

use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

/// The first bytes of every blob Courier writes.
pub const MAGIC: [u8; 4] = *b"CRSD";

/// The format version this build writes and the only one it reads.
pub const FORMAT_VERSION: u16 = 1;

const HEADER_LEN: usize = 4 + 2 + 4;
const CHECKSUM_LEN: usize = 32;

/// Why a blob could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecError {
    /// Shorter than an envelope, or shorter than its header says.
    Truncated,
    /// Does not start with [`MAGIC`]: not a Courier blob.
    BadMagic,
    /// Written by a build with another format version.
    UnsupportedVersion(u16),
    /// The checksum does not match: the blob was altered or damaged.
    ChecksumMismatch,
    /// The envelope is sound but its payload does not decode as the expected record.
    Malformed(String),
    /// The record could not be encoded (a bug: every record Courier writes is encodable).
    Encode(String),
}

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CodecError::Truncated => f.write_str("the data is truncated"),
            CodecError::BadMagic => f.write_str("the data is not Courier data (bad magic)"),
            CodecError::UnsupportedVersion(v) => write!(
                f,
                "the data has format version {v}; this build reads version {FORMAT_VERSION}"
            ),
            CodecError::ChecksumMismatch => f.write_str("the data is damaged (checksum mismatch)"),
            CodecError::Malformed(why) => write!(f, "the data does not decode: {why}"),
            CodecError::Encode(why) => write!(f, "cannot encode: {why}"),
        }
    }
}

impl std::error::Error for CodecError {}

/// The largest payload this build writes or reads. A record is a few kilobytes (a cached response
/// carries its body, and the URL cache stores none larger than this); the limit also bounds what
/// bincode may allocate for a length read from a blob.
pub const MAX_PAYLOAD: usize = 64 << 20;

fn config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_PAYLOAD>,
> {
    bincode::config::standard().with_limit::<MAX_PAYLOAD>()
}

/// Encodes `value` in an envelope.
///
/// # Errors
/// Only [`CodecError::Encode`], which the records in this crate never cause.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let payload = bincode::serde::encode_to_vec(value, config())
        .map_err(|e| CodecError::Encode(e.to_string()))?;
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|n| *n as usize <= MAX_PAYLOAD)
        .ok_or_else(|| CodecError::Encode("payload larger than 64 MiB".into()))?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len() + CHECKSUM_LEN);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&payload);
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    Ok(out)
}

/// Decodes an envelope written by [`encode`].
///
/// # Errors
/// A [`CodecError`] naming what is wrong; nothing is decoded from a blob that fails any check.
pub fn decode<T: DeserializeOwned>(blob: &[u8]) -> Result<T, CodecError> {
    if blob.len() < HEADER_LEN + CHECKSUM_LEN {
        return Err(if blob.len() >= 4 && blob[..4] != MAGIC {
            CodecError::BadMagic
        } else {
            CodecError::Truncated
        });
    }
    if blob[..4] != MAGIC {
        return Err(CodecError::BadMagic);
    }
    let version = u16::from_le_bytes([blob[4], blob[5]]);
    if version != FORMAT_VERSION {
        return Err(CodecError::UnsupportedVersion(version));
    }
    let len = u32::from_le_bytes([blob[6], blob[7], blob[8], blob[9]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(CodecError::Malformed(format!(
            "a payload of {len} bytes, more than the {MAX_PAYLOAD} allowed"
        )));
    }
    let body_end = HEADER_LEN.checked_add(len).ok_or(CodecError::Truncated)?;
    if blob.len() != body_end + CHECKSUM_LEN {
        return Err(CodecError::Truncated);
    }
    let sum = Sha256::digest(&blob[..body_end]);
    if sum.as_slice() != &blob[body_end..] {
        return Err(CodecError::ChecksumMismatch);
    }
    let (value, used) = bincode::serde::decode_from_slice(&blob[HEADER_LEN..body_end], config())
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    if used != len {
        return Err(CodecError::Malformed(format!(
            "{} trailing payload bytes",
            len - used
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Sample {
        n: u64,
        s: String,
        v: Vec<u8>,
    }

    fn sample() -> Sample {
        Sample {
            n: 7,
            s: "hi".into(),
            v: vec![1, 2, 3],
        }
    }

    #[test]
    fn round_trip() {
        let blob = encode(&sample()).unwrap();
        assert_eq!(&blob[..4], b"CRSD");
        assert_eq!(decode::<Sample>(&blob).unwrap(), sample());
    }

    #[test]
    fn every_damage_is_named() {
        let blob = encode(&sample()).unwrap();
        assert_eq!(decode::<Sample>(&blob[..5]), Err(CodecError::Truncated));
        assert_eq!(
            decode::<Sample>(&blob[..blob.len() - 1]),
            Err(CodecError::Truncated)
        );
        let mut other = blob.clone();
        other[0] = b'X';
        assert_eq!(decode::<Sample>(&other), Err(CodecError::BadMagic));
        let mut newer = blob.clone();
        newer[4] = 9;
        assert_eq!(
            decode::<Sample>(&newer),
            Err(CodecError::UnsupportedVersion(9))
        );
        let mut flipped = blob.clone();
        let mid = HEADER_LEN + 1;
        flipped[mid] ^= 0xff;
        assert_eq!(
            decode::<Sample>(&flipped),
            Err(CodecError::ChecksumMismatch)
        );
        assert_eq!(
            decode::<Sample>(b"not courier data at all, no no no no no no no"),
            Err(CodecError::BadMagic)
        );
    }

    #[test]
    fn a_sound_envelope_with_the_wrong_record_is_malformed() {
        let blob = encode(&"just a string").unwrap();
        assert!(matches!(
            decode::<Sample>(&blob),
            Err(CodecError::Malformed(_))
        ));
    }

    /// Reseals `payload` in a sound envelope, as someone who edits a blob and recomputes its
    /// checksum would (the checksum is not a secret).
    fn reseal(payload: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(payload);
        let sum = Sha256::digest(&out);
        out.extend_from_slice(&sum);
        out
    }

    /// A resealed payload that claims a huge length for a byte string or a list: refused, without
    /// allocating what it claims.
    #[test]
    fn a_resealed_payload_claiming_huge_lengths_is_refused() {
        // bincode's varint: 0xfd then a u64 length.
        for claim in [u64::MAX, 1 << 40, 1 << 32, (MAX_PAYLOAD as u64) + 1] {
            let mut payload = vec![7u8, 2, b'h', b'i', 0xfd];
            payload.extend_from_slice(&claim.to_le_bytes());
            assert!(matches!(
                decode::<Sample>(&reseal(&payload)),
                Err(CodecError::Malformed(_))
            ));
        }
    }

    // 256 cases each by default; `PROPTEST_CASES=N` runs N.
    proptest::proptest! {
        /// Arbitrary bytes: an error, never a panic.
        #[test]
        fn arbitrary_blobs_never_panic(blob in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = decode::<Sample>(&blob);
        }

        /// A valid record's payload mutated (bytes changed, cut, extended) and resealed: it decodes
        /// as some record or is refused, never panics or allocates without bound. For the test
        /// record, a resume record and a cache record.
        #[test]
        fn resealed_mutations_never_panic(
            s in "[a-z]{0,40}",
            v in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            flips in proptest::collection::vec((proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()), 1..6),
            cut in proptest::prelude::any::<proptest::sample::Index>(),
            extra in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..16),
        ) {
            let mutate = |blob: Vec<u8>| {
                let mut payload = blob[HEADER_LEN..blob.len() - CHECKSUM_LEN].to_vec();
                for (at, byte) in &flips {
                    let i = at.index(payload.len());
                    payload[i] = *byte;
                }
                payload.truncate(cut.index(payload.len() + 1));
                payload.extend_from_slice(&extra);
                reseal(&payload)
            };
            let sample = Sample { n: 7, s: s.clone(), v: v.clone() };
            let _ = decode::<Sample>(&mutate(encode(&sample).unwrap()));
            let resume = crate::ResumeRecord::sample(&s, &v);
            let _ = decode::<crate::ResumeRecord>(&mutate(encode(&resume).unwrap()));
            let cached = crate::cache::CacheRecord {
                url: s.clone(),
                policy: "{}".into(),
                status: 200,
                version: 20,
                headers: vec![(s.clone(), v.clone())],
                body: v.clone(),
            };
            let _ = decode::<crate::cache::CacheRecord>(&mutate(encode(&cached).unwrap()));
        }
    }

    /// Damaged blobs never panic the decoder: a small deterministic fuzz over flipped and cut bytes.
    #[test]
    fn damaged_blobs_never_panic() {
        let blob = encode(&sample()).unwrap();
        let mut x: u32 = 0x9e37_79b9;
        for i in 0..2000 {
            let mut b = blob.clone();
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let pos = (x as usize) % b.len();
            b[pos] = (x >> 8) as u8;
            b.truncate(b.len() - (i % 3));
            assert!(decode::<Sample>(&b).is_err() || b == blob);
        }
    }
}
