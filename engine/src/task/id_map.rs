//! `IdMap`: a hash map keyed by numbers this process hands out in order (task ids, actor ids).
//! No peer chooses them, so they need spread, not SipHash's defence against chosen collisions: each
//! task is looked up in such maps several times, and SipHash cost about 1,000 instructions of a
//! 1 KiB GET.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A map keyed by ids this process hands out itself (never by anything a server or a file says).
pub(crate) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// A multiply-rotate hasher (FxHash's step) for [`IdMap`]: the multiply carries a small number's
/// bits into the top ones, which the table's probe uses.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl IdHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn add(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(Self::SEED);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::hash::{BuildHasher, BuildHasherDefault};

    use ractor::ActorId;

    use super::*;

    /// Ids handed out in order spread over the table: distinct hashes, and every value of the top
    /// seven bits (the part of a hash the table's probe compares) in use.
    #[test]
    fn sequential_ids_spread_over_the_table() {
        let build = BuildHasherDefault::<IdHasher>::default();
        let hashes: Vec<u64> = (0..10_000u64).map(|id| build.hash_one(id)).collect();
        assert_eq!(hashes.iter().collect::<HashSet<_>>().len(), hashes.len());
        let tops: HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        assert_eq!(tops.len(), 128);
        let actors: HashSet<u64> = (0..1_000u64)
            .map(|pid| build.hash_one(ActorId::Local(pid)))
            .collect();
        assert_eq!(actors.len(), 1_000);
    }
}
