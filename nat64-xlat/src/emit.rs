//! Writing headers into the caller's buffer, and the few bytes of a copied payload that change.

use core::net::Ipv4Addr;

use crate::checksum;
use crate::icmp::Mapped;
use crate::outcome::DropReason;
use crate::wire::{field, proto, read16};

/// The bytes of an upper-layer payload that change: the ICMP type (offset 0) and one checksum,
/// applied after the payload is copied (or left in place), so fragments and whole packets share one
/// path. Small and flat, so it moves around in registers.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Patches {
    ty: Option<u8>,
    checksum: Option<(u16, u16)>,
}

impl Patches {
    /// A new ICMP type, at offset 0.
    #[inline]
    pub(crate) fn ty(&mut self, v: u8) {
        self.ty = Some(v);
    }

    /// A new checksum at offset `at` (inside a transport header: far below 65536).
    #[inline]
    pub(crate) fn checksum(&mut self, at: usize, v: u16) {
        self.checksum = Some((at as u16, v));
    }

    /// RFC 1624: the TCP or UDP checksum of `data` (`proto`) for addresses whose sum went from
    /// `from` to `to`. Gives the old checksum, `Truncated` when `data` ends before it. A zero UDP
    /// checksum ("none" in IPv4) is left as it is, for the caller to decide.
    #[inline(always)]
    pub(crate) fn readdress(
        &mut self,
        proto: u8,
        data: &[u8],
        from: u32,
        to: u32,
    ) -> Result<u16, DropReason> {
        let udp = proto == proto::UDP;
        let at = if udp {
            field::UDP_CHECKSUM
        } else {
            field::TCP_CHECKSUM
        };
        let old = read16(data, at)?;
        if udp && old == 0 {
            return Ok(0);
        }
        let c = checksum::update(old, from, to);
        self.checksum(at, if udp { checksum::udp(c) } else { c });
        Ok(old)
    }

    /// An ICMP message of `data` whose type and code become `to` from `from`, and whose checksum changes from covering the pseudo-header sum `pseudo_from` to
    /// `pseudo_to` (zero on the ICMPv4 side, which has none), by RFC 1624. A quoted message may be
    /// cut: without the checksum field only the type changes.
    #[inline(always)]
    pub(crate) fn retype_icmp(
        &mut self,
        data: &[u8],
        from: [u8; 2],
        to: [u8; 2],
        pseudo_from: u32,
        pseudo_to: u32,
    ) {
        self.ty(to[0]);
        if let Ok(old) = read16(data, field::ICMP_CHECKSUM) {
            let c = checksum::update(
                old,
                checksum::add(u32::from(u16::from_be_bytes(from)), pseudo_from),
                checksum::add(u32::from(u16::from_be_bytes(to)), pseudo_to),
            );
            self.checksum(field::ICMP_CHECKSUM, c);
        }
    }

    /// Adds the patches of a packet quoted in an ICMP error (first fragment or whole), whose
    /// addresses sum to `addrs.0` before and `addrs.1` after: a TCP or UDP checksum updated, or an
    /// ICMP message (protocol `icmp_proto` on the quoted side) retyped by `map` with the
    /// pseudo-header sums `pseudo()` (before, after). A quote cut short is patched as far as it
    /// goes. Filled in place, not returned: moving the patches out through a `Result` costs the
    /// ICMP error path a tenth of its time (a store-forwarding stall).
    #[inline(always)]
    pub(crate) fn quote(
        &mut self,
        proto: u8,
        icmp_proto: u8,
        data: &[u8],
        addrs: (u32, u32),
        map: impl FnOnce(u8, u8) -> Option<Mapped>,
        pseudo: impl FnOnce() -> (u32, u32),
    ) -> Result<(), DropReason> {
        if proto == proto::TCP || proto == proto::UDP {
            // A zero UDP checksum stays zero: the quote only has to identify the flow.
            self.readdress(proto, data, addrs.0, addrs.1).ok();
        } else if proto == icmp_proto {
            if let (Some(&ty), Some(&code)) = (data.first(), data.get(1)) {
                let m = map(ty, code).ok_or(DropReason::InnerPacket)?;
                let (from, to) = pseudo();
                self.retype_icmp(data, [ty, code], [m.ty, m.code], from, to);
            }
        }
        Ok(())
    }

    /// Applies the patches that fall in `dst`, a copy of the payload starting at payload offset `start`.
    #[inline]
    pub(crate) fn apply(&self, dst: &mut [u8], start: usize) {
        let mut put = |at: usize, v: u8| {
            if let Some(b) = at.checked_sub(start).and_then(|i| dst.get_mut(i)) {
                *b = v;
            }
        };
        if let Some(ty) = self.ty {
            put(0, ty);
        }
        if let Some((at, v)) = self.checksum {
            let [hi, lo] = v.to_be_bytes();
            put(usize::from(at), hi);
            put(usize::from(at) + 1, lo);
        }
    }
}

/// The fields of an IPv6 header the translator writes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hdr6 {
    pub(crate) traffic_class: u8,
    pub(crate) next: u8,
    pub(crate) hop_limit: u8,
    // Addresses as integers: aligned, so moving a header around never splits a store.
    pub(crate) src: u128,
    pub(crate) dst: u128,
}

/// An IPv6 Fragment header's fields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frag6 {
    pub(crate) offset: u16,
    pub(crate) more: bool,
    pub(crate) id: u32,
}

/// Writes the header of the ICMP message `msg` (type, code, the four bytes `rest`, and the checksum
/// over `msg` plus the pseudo-header sum `pseudo`, zero for ICMPv4); the body must already be in
/// place.
#[inline(always)]
pub(crate) fn icmp_header(msg: &mut [u8], ty: u8, code: u8, rest: u32, pseudo: u32) {
    msg[field::ICMP_TYPE] = ty;
    msg[field::ICMP_CODE] = code;
    msg[field::ICMP_CHECKSUM..field::ICMP_REST].fill(0);
    msg[field::ICMP_REST..field::ICMP_LEN].copy_from_slice(&rest.to_be_bytes());
    let c = checksum::finish(checksum::add(pseudo, checksum::sum(msg)));
    msg[field::ICMP_CHECKSUM..field::ICMP_REST].copy_from_slice(&c.to_be_bytes());
}

/// Writes an IPv6 header (and Fragment header) announcing `upper_len` bytes after them; returns the
/// header length.
// Always: the header fields (16-byte addresses among them) then stay in registers.
#[inline(always)]
pub(crate) fn ipv6_header(
    out: &mut [u8],
    h: &Hdr6,
    frag: Option<Frag6>,
    upper_len: usize,
) -> Result<usize, DropReason> {
    let hlen = field::IPV6_LEN + if frag.is_some() { field::FRAG6_LEN } else { 0 };
    let plen = u16::try_from(upper_len + hlen - field::IPV6_LEN).map_err(|_| DropReason::TooBig)?;
    let b = out.get_mut(..hlen).ok_or(DropReason::BufferTooSmall)?;
    // Version 6, the traffic class, flow label 0.
    let vtf = 0x6000_0000 | u32::from(h.traffic_class) << 20;
    b[field::V6_VER_TC_FLOW].copy_from_slice(&vtf.to_be_bytes());
    b[field::V6_LENGTH].copy_from_slice(&plen.to_be_bytes());
    b[field::V6_NXT_HDR] = if frag.is_some() {
        proto::FRAGMENT
    } else {
        h.next
    };
    b[field::V6_HOP_LIMIT] = h.hop_limit;
    b[field::V6_SRC].copy_from_slice(&h.src.to_be_bytes());
    b[field::V6_DST].copy_from_slice(&h.dst.to_be_bytes());
    if let Some(f) = frag {
        let fh = &mut b[field::IPV6_LEN..];
        fh[field::FRAG_NXT_HDR] = h.next;
        fh[field::FRAG_RESERVED] = 0;
        let off = (f.offset << 3) | u16::from(f.more);
        fh[field::FRAG_OFFSET_M].copy_from_slice(&off.to_be_bytes());
        fh[field::FRAG_IDENT].copy_from_slice(&f.id.to_be_bytes());
    }
    Ok(hlen)
}

/// The fields of an IPv4 header the translator writes (always IHL 5).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hdr4 {
    pub(crate) tos: u8,
    pub(crate) id: u16,
    pub(crate) df: bool,
    pub(crate) mf: bool,
    pub(crate) offset: u16,
    pub(crate) ttl: u8,
    pub(crate) proto: u8,
    pub(crate) src: u32,
    pub(crate) dst: u32,
}

/// Writes a 20-byte IPv4 header with total length `20 + upper_len` and its checksum.
// Always: the header fields (16-byte addresses among them) then stay in registers.
#[inline(always)]
pub(crate) fn ipv4_header(out: &mut [u8], h: &Hdr4, upper_len: usize) -> Result<usize, DropReason> {
    let total = u16::try_from(upper_len + field::IPV4_LEN).map_err(|_| DropReason::TooBig)?;
    let b = out
        .get_mut(..field::IPV4_LEN)
        .ok_or(DropReason::BufferTooSmall)?;
    b[field::V4_VER_IHL] = 0x45;
    b[field::V4_TOS] = h.tos;
    b[field::V4_LENGTH].copy_from_slice(&total.to_be_bytes());
    b[field::V4_IDENT].copy_from_slice(&h.id.to_be_bytes());
    let flags = (u16::from(h.df) << 14) | (u16::from(h.mf) << 13) | (h.offset & 0x1fff);
    b[field::V4_FLG_OFF].copy_from_slice(&flags.to_be_bytes());
    b[field::V4_TTL] = h.ttl;
    b[field::V4_PROTOCOL] = h.proto;
    // Summed from the values rather than read back from `out`: reading bytes just stored as wider
    // words stalls the store buffer.
    let words = [
        0x4500 | u32::from(h.tos),
        u32::from(total),
        u32::from(h.id),
        u32::from(flags),
        u32::from(h.ttl) << 8 | u32::from(h.proto),
    ];
    let acc = checksum::add(
        words.iter().sum::<u32>(),
        checksum::addrs4(Ipv4Addr::from_bits(h.src), Ipv4Addr::from_bits(h.dst)),
    );
    b[field::V4_CHECKSUM].copy_from_slice(&checksum::finish(acc).to_be_bytes());
    b[field::V4_SRC].copy_from_slice(&h.src.to_be_bytes());
    b[field::V4_DST].copy_from_slice(&h.dst.to_be_bytes());
    Ok(field::IPV4_LEN)
}

/// Copies `data` to `out[at..]`, failing cleanly when it does not fit.
#[inline]
pub(crate) fn copy(out: &mut [u8], at: usize, data: &[u8]) -> Result<(), DropReason> {
    out.get_mut(at..at + data.len())
        .ok_or(DropReason::BufferTooSmall)?
        .copy_from_slice(data);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv6Addr;

    #[test]
    fn patches_land_only_inside_their_fragment() {
        let mut p = Patches::default();
        p.ty(0xaa);
        p.checksum(10, 0xbbcc);
        let mut first = [0u8; 8];
        p.apply(&mut first, 0);
        assert_eq!(first, [0xaa, 0, 0, 0, 0, 0, 0, 0]);
        let mut second = [0u8; 8];
        p.apply(&mut second, 8);
        assert_eq!(second, [0, 0, 0xbb, 0xcc, 0, 0, 0, 0]);
        let mut third = [0u8; 8];
        p.apply(&mut third, 16);
        assert_eq!(third, [0; 8]);
    }

    #[test]
    fn headers_refuse_small_buffers() {
        let h = Hdr6 {
            traffic_class: 0xb8,
            next: 17,
            hop_limit: 63,
            src: Ipv6Addr::LOCALHOST.to_bits(),
            dst: Ipv6Addr::LOCALHOST.to_bits(),
        };
        let mut small = [0u8; 47];
        assert_eq!(
            ipv6_header(
                &mut small,
                &h,
                Some(Frag6 {
                    offset: 1,
                    more: true,
                    id: 7
                }),
                8
            ),
            Err(DropReason::BufferTooSmall)
        );
        let mut buf = [0u8; 48];
        assert_eq!(
            ipv6_header(
                &mut buf,
                &h,
                Some(Frag6 {
                    offset: 1,
                    more: true,
                    id: 7
                }),
                8
            ),
            Ok(48)
        );
        assert_eq!(&buf[..8], &[0x6b, 0x80, 0, 0, 0, 16, 44, 63]);
        assert_eq!(&buf[40..48], &[17, 0, 0, 9, 0, 0, 0, 7]);
        let h4 = Hdr4 {
            tos: 0,
            id: 1,
            df: true,
            mf: false,
            offset: 0,
            ttl: 63,
            proto: 6,
            src: Ipv4Addr::LOCALHOST.to_bits(),
            dst: Ipv4Addr::LOCALHOST.to_bits(),
        };
        assert_eq!(
            ipv4_header(&mut buf[..19], &h4, 0),
            Err(DropReason::BufferTooSmall)
        );
        assert_eq!(ipv4_header(&mut buf, &h4, 0xffff), Err(DropReason::TooBig));
        assert_eq!(ipv4_header(&mut buf, &h4, 8), Ok(20));
        assert_eq!(checksum::fold(checksum::sum(&buf[..20])), 0xffff);
        // All-ones fields must not overflow the sum (found by fuzzing).
        let ones = Hdr4 {
            tos: 0xff,
            id: 0xffff,
            ttl: 0xff,
            proto: 0xff,
            src: Ipv4Addr::BROADCAST.to_bits(),
            dst: Ipv4Addr::new(255, 255, 255, 254).to_bits(),
            ..h4
        };
        assert_eq!(ipv4_header(&mut buf, &ones, 0xffff - 20), Ok(20));
        assert_eq!(checksum::fold(checksum::sum(&buf[..20])), 0xffff);
        assert_eq!(&buf[6..8], &[0x40, 0]);
    }
}
