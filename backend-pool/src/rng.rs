//! Randomness and hashing as inputs: a seeded generator the caller owns, and a hash that gives
//! the same value in every process on every platform (so Maglev maps a key the same everywhere).

/// A small, fast, seeded generator (wyrand). The caller owns it, one per thread, so runs
/// reproduce from the seed and picking takes no shared state.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator whose whole sequence is fixed by `seed`.
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// A generator seeded afresh, different in every call, thread and process: for a proxy that
    /// needs no reproducible run. Draws from a per-thread generator keyed once per thread by the
    /// standard library's random hasher keys, so it takes no lock and shares no counter.
    pub fn from_entropy() -> Self {
        use core::cell::Cell;
        use core::hash::BuildHasher;
        std::thread_local! {
            static SOURCE: Cell<u64> =
                Cell::new(std::hash::RandomState::new().hash_one(0x736978_u64));
        }
        SOURCE.with(|source| {
            let mut rng = Rng::new(source.get());
            let seed = rng.next_u64();
            source.set(rng.state);
            Rng::new(mix64(seed))
        })
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.state) * u128::from(self.state ^ 0xe703_7ed1_a0b4_28db);
        (t >> 64) as u64 ^ t as u64
    }

    /// Uniform in `0..n` (n > 0), by multiply-shift rather than a division.
    #[inline]
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        scale(self.next_u64(), n)
    }
}

/// Maps 64 uniform bits onto `0..n` without a division (Lemire's multiply-shift).
#[inline]
pub(crate) fn scale(bits: u64, n: u64) -> u64 {
    ((u128::from(bits) * u128::from(n)) >> 64) as u64
}

/// The splitmix64 finaliser: every input bit affects every output bit.
#[inline]
pub(crate) const fn mix64(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A stable 64-bit hash of bytes: defined on little-endian words, so it never changes with the
/// platform, the process or the Rust version (unlike `std`'s `DefaultHasher`).
#[inline]
pub(crate) fn stable_hash(bytes: &[u8], seed: u64) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = seed ^ (bytes.len() as u64).wrapping_mul(K);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(word))
            .wrapping_mul(K)
            .rotate_left(29);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let mut word = [0u8; 8];
        word[..tail.len()].copy_from_slice(tail);
        h = (h ^ u64::from_le_bytes(word))
            .wrapping_mul(K)
            .rotate_left(29);
    }
    mix64(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let mut c = Rng::new(8);
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    #[test]
    fn from_entropy_differs_between_calls_and_threads() {
        let here = [
            Rng::from_entropy().next_u64(),
            Rng::from_entropy().next_u64(),
        ];
        let there = std::thread::spawn(|| Rng::from_entropy().next_u64())
            .join()
            .unwrap();
        assert_ne!(here[0], here[1]);
        assert!(!here.contains(&there));
    }

    #[test]
    fn below_stays_in_range() {
        let mut rng = Rng::new(1);
        for n in [1, 2, 3, 7, 1000, u64::MAX] {
            for _ in 0..100 {
                assert!(rng.below(n) < n);
            }
        }
    }

    // Pinned values: if these change, every Maglev table in the fleet would remap keys.
    #[test]
    fn stable_hash_is_pinned() {
        assert_eq!(stable_hash(b"", 0), mix64(0));
        let a = stable_hash(b"example.com", 1);
        assert_eq!(a, stable_hash(b"example.com", 1));
        assert_ne!(a, stable_hash(b"example.con", 1));
        assert_ne!(a, stable_hash(b"example.com", 2));
        assert_eq!(stable_hash(b"example.com", 1), 187_163_549_081_195_901);
    }
}
