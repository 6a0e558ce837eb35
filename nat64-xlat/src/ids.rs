//! The IPv4 Identification counter: the translator's only mutable state.

use core::net::Ipv4Addr;
use core::sync::atomic::{AtomicU16, Ordering};

/// Numbers the IPv4 packets made from unfragmented IPv6 ones: a shared counter plus a per-flow
/// offset keyed by [`crate::Config::id_key`] (the hash-based generator of RFC 7739 §5.3), so a host
/// that sees its own IDs cannot predict another flow's.
#[derive(Debug)]
pub(crate) struct Ids(AtomicU16);

impl Ids {
    /// A counter starting at `at`.
    pub(crate) const fn new(at: u16) -> Self {
        Self(AtomicU16::new(at))
    }

    /// Where the counter is.
    #[cfg(feature = "alloc")]
    pub(crate) fn now(&self) -> u16 {
        self.0.load(Ordering::Relaxed)
    }

    /// Sets the counter.
    #[cfg(feature = "alloc")]
    pub(crate) fn set(&self, at: u16) {
        self.0.store(at, Ordering::Relaxed);
    }

    /// The Identification for a packet `src` → `dst`, with `key` the configured [`crate::Config::id_key`].
    #[inline]
    pub(crate) fn next(&self, key: u64, src: Ipv4Addr, dst: Ipv4Addr) -> u16 {
        let h = (src.to_bits() ^ key as u32)
            .wrapping_mul(0x9e37_79b1)
            .wrapping_add(dst.to_bits() ^ (key >> 32) as u32)
            .wrapping_mul(0x85eb_ca6b);
        self.count().wrapping_add((h >> 16) as u16)
    }

    #[inline]
    fn count(&self) -> u16 {
        // A plain load and store, not an atomic add: two threads may now and then draw the same ID,
        // which only matters if both datagrams also get fragmented on the IPv4 side at once; the
        // locked add would cost more than the rest of the header translation.
        let id = self.0.load(Ordering::Relaxed);
        self.0.store(id.wrapping_add(1), Ordering::Relaxed);
        id
    }
}
