//! Internet checksum arithmetic: the RFC 1071 one's-complement sum, pseudo-headers, and the RFC 1624
//! incremental update that lets a translated packet keep a wrong checksum equivalently wrong.

use core::net::{Ipv4Addr, Ipv6Addr};

/// One's-complement sum of `data` as big-endian 16-bit words (odd tail padded with zero), not folded.
///
/// Reads eight bytes at a time: the one's-complement sum does not care how the words are grouped
/// (RFC 1071 §2(B)), so two 32-bit halves per step give the same result with fewer additions.
#[inline]
pub fn sum(data: &[u8]) -> u32 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let v = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        acc += (v >> 32) + (v & 0xffff_ffff);
    }
    let mut words = chunks.remainder().chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(*last) << 8;
    }
    fold64(acc)
}

#[inline]
fn fold64(mut acc: u64) -> u32 {
    while acc > 0xffff_ffff {
        acc = (acc & 0xffff_ffff) + (acc >> 32);
    }
    acc as u32
}

/// Folds a 32-bit accumulator to 16 bits (end-around carry), without complementing.
#[inline]
pub fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Adds two unfolded sums without losing carries.
#[inline]
pub fn add(a: u32, b: u32) -> u32 {
    let (s, carry) = a.overflowing_add(b);
    s + u32::from(carry)
}

/// The checksum to write for data whose sum is `acc`.
pub fn finish(acc: u32) -> u16 {
    !fold(acc)
}

/// RFC 1624 eqn. 3: `HC' = ~(~HC + ~m + m')`, where `removed` sums the old words and `added` the new.
///
/// Works on whatever the old checksum was, so a wrong checksum stays exactly as wrong.
#[inline]
pub fn update(old: u16, removed: u32, added: u32) -> u16 {
    let acc = add(add(u32::from(!old), u32::from(!fold(removed))), added);
    !fold(acc)
}

/// A UDP checksum that came out as zero is sent as all ones: zero means "none" (RFC 768), and
/// IPv6 forbids it (RFC 8200 §8.1). Both are the same value in one's-complement arithmetic.
pub fn udp(c: u16) -> u16 {
    if c == 0 { 0xffff } else { c }
}

/// Sum of the IPv4 pseudo-header (RFC 768 / RFC 793).
pub fn pseudo4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: u32) -> u32 {
    let mut acc = sum(&src.octets());
    acc = add(acc, sum(&dst.octets()));
    acc = add(acc, u32::from(proto));
    add(acc, len)
}

/// Sum of the IPv6 pseudo-header (RFC 8200 §8.1).
pub fn pseudo6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, len: u32) -> u32 {
    let mut acc = sum(&src.octets());
    acc = add(acc, sum(&dst.octets()));
    acc = add(acc, (len >> 16) + (len & 0xffff));
    add(acc, u32::from(next))
}

/// Sum of the addresses alone: the part of a pseudo-header a translation replaces when the length
/// and protocol stay equal.
#[inline]
pub fn addrs4(src: Ipv4Addr, dst: Ipv4Addr) -> u32 {
    fold64(u64::from(src.to_bits()) + u64::from(dst.to_bits()))
}

/// See [`addrs4`].
#[inline]
pub fn addrs6(src: Ipv6Addr, dst: Ipv6Addr) -> u32 {
    let halves = |a: u128| (a >> 64) as u64 as u128 + (a as u64) as u128;
    let wide = halves(src.to_bits()) + halves(dst.to_bits());
    fold64((wide >> 64) as u64 + ((wide as u64) >> 32) + (wide as u64 & 0xffff_ffff))
}

/// The IPv4 header checksum of `header` (its checksum field is taken as zero).
pub fn ipv4_header(header: &[u8]) -> u16 {
    let acc = sum(header);
    let stored = header
        .get(10..12)
        .map_or(0, |c| u32::from(u16::from_be_bytes([c[0], c[1]])));
    // Subtracting in one's-complement is adding the complement.
    finish(add(acc, u32::from(!(stored as u16))))
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 1071 §3 numerical example: the sum of these words is ddf2.
    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data)), 0xddf2);
    }

    #[test]
    fn grouping_does_not_matter() {
        let data: [u8; 37] = core::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11));
        for n in 0..=data.len() {
            let mut acc = 0u32;
            for w in data[..n].chunks(2) {
                acc += u32::from(w[0]) << 8 | u32::from(*w.get(1).unwrap_or(&0));
            }
            assert_eq!(fold(sum(&data[..n])), fold(acc), "{n} bytes");
        }
        let a: Ipv6Addr = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:ffff::fffe".parse().unwrap();
        let bytes = [a.octets(), b.octets()].concat();
        assert_eq!(fold(addrs6(a, b)), fold(sum(&bytes)));
        let (c, d) = (
            Ipv4Addr::new(255, 255, 255, 255),
            Ipv4Addr::new(255, 255, 0, 1),
        );
        assert_eq!(
            fold(addrs4(c, d)),
            fold(sum(&[c.octets(), d.octets()].concat()))
        );
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(fold(sum(&[0x12, 0x34, 0x56])), 0x1234 + 0x5600);
    }

    // RFC 1624 §4: HC = 0xdd2f, m = 0x5555 changes to m' = 0x3285; the new checksum is 0x0000.
    #[test]
    fn rfc1624_example() {
        assert_eq!(update(0xdd2f, 0x5555, 0x3285), 0x0000);
    }

    #[test]
    fn incremental_equals_recomputed() {
        let mut data =
            *b"\x45\x00\x00\x54\xab\xcd\x40\x00\x40\x01\x00\x00\xc0\x00\x02\x01\xc6\x33\x64\x02";
        let c = finish(sum(&data));
        data[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(fold(sum(&data)), 0xffff);
        // Decrement TTL and update incrementally.
        let old = u32::from(u16::from_be_bytes([data[8], data[9]]));
        data[8] -= 1;
        let new = u32::from(u16::from_be_bytes([data[8], data[9]]));
        let c2 = update(c, old, new);
        data[10..12].copy_from_slice(&c2.to_be_bytes());
        assert_eq!(fold(sum(&data)), 0xffff);
        assert_eq!(ipv4_header(&data), c2);
    }

    #[test]
    fn wrong_checksum_stays_equally_wrong() {
        let data = [1u8, 2, 3, 4, 5, 6];
        let right = finish(sum(&data));
        let wrong = right.wrapping_add(7);
        let moved = update(wrong, sum(&[1, 2]), sum(&[9, 9]));
        let right2 = finish(sum(&[9, 9, 3, 4, 5, 6]));
        assert_eq!(moved, right2.wrapping_add(7));
    }
}
