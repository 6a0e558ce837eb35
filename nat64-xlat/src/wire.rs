//! Checked views of the IPv4 and IPv6 headers the translator reads, strict for the packet itself and
//! lax for the truncated packet quoted inside an ICMP error.

use core::net::{Ipv4Addr, Ipv6Addr};

use crate::checksum;
use crate::outcome::DropReason;

/// IP protocol numbers the translator looks at.
pub(crate) mod proto {
    pub(crate) const ICMP: u8 = 1;
    pub(crate) const TCP: u8 = 6;
    pub(crate) const UDP: u8 = 17;
    pub(crate) const HOP_BY_HOP: u8 = 0;
    pub(crate) const ROUTING: u8 = 43;
    pub(crate) const FRAGMENT: u8 = 44;
    pub(crate) const ICMPV6: u8 = 58;
    pub(crate) const DEST_OPTS: u8 = 60;
}

/// The smallest IPv6 link MTU (RFC 8200 §5): no IPv6 link is narrower, and fragments are cut to it.
pub(crate) const MIN_MTU6: usize = 1280;

/// Offsets and lengths of the header fields the translator reads and writes by hand (smoltcp's
/// `mod field`): one place, not literals at every use.
pub(crate) mod field {
    /// IPv4 header without options.
    pub(crate) const IPV4_LEN: usize = 20;
    /// IPv6 fixed header.
    pub(crate) const IPV6_LEN: usize = 40;
    /// IPv6 Fragment header.
    pub(crate) const FRAG6_LEN: usize = 8;
    /// The checksum in a TCP header.
    pub(crate) const TCP_CHECKSUM: usize = 16;
    /// The checksum in a UDP header.
    pub(crate) const UDP_CHECKSUM: usize = 6;
    /// ICMP (v4 and v6 alike): type, code, checksum, the four bytes after it, and the header length.
    pub(crate) const ICMP_TYPE: usize = 0;
    pub(crate) const ICMP_CODE: usize = 1;
    pub(crate) const ICMP_CHECKSUM: usize = 2;
    pub(crate) const ICMP_REST: usize = 4;
    pub(crate) const ICMP_LEN: usize = 8;

    /// A field of more than one byte.
    pub(crate) type Field = core::ops::Range<usize>;

    // IPv4 header (RFC 791 §3.1).
    pub(crate) const V4_VER_IHL: usize = 0;
    pub(crate) const V4_TOS: usize = 1;
    pub(crate) const V4_LENGTH: Field = 2..4;
    pub(crate) const V4_IDENT: Field = 4..6;
    pub(crate) const V4_FLG_OFF: Field = 6..8;
    pub(crate) const V4_TTL: usize = 8;
    pub(crate) const V4_PROTOCOL: usize = 9;
    pub(crate) const V4_CHECKSUM: Field = 10..12;
    pub(crate) const V4_SRC: Field = 12..16;
    pub(crate) const V4_DST: Field = 16..20;

    // IPv6 header (RFC 8200 §3).
    pub(crate) const V6_VER_TC_FLOW: Field = 0..4;
    pub(crate) const V6_LENGTH: Field = 4..6;
    pub(crate) const V6_NXT_HDR: usize = 6;
    pub(crate) const V6_HOP_LIMIT: usize = 7;
    pub(crate) const V6_SRC: Field = 8..24;
    pub(crate) const V6_DST: Field = 24..40;

    // IPv6 Fragment header (RFC 8200 §4.5), from its first byte.
    pub(crate) const FRAG_NXT_HDR: usize = 0;
    pub(crate) const FRAG_RESERVED: usize = 1;
    pub(crate) const FRAG_OFFSET_M: Field = 2..4;
    pub(crate) const FRAG_IDENT: Field = 4..8;

    // IPv6 Hop-by-Hop, Routing and Destination Options headers (RFC 8200 §4.3-4.6): the next
    // header, the length in 8-byte units not counting the first 8, and a Routing header's
    // Segments Left.
    pub(crate) const EXT_NXT_HDR: usize = 0;
    pub(crate) const EXT_LEN: usize = 1;
    pub(crate) const EXT_UNIT: usize = 8;
    pub(crate) const ROUTING_SEGMENTS_LEFT: usize = 3;

    // IPv4 options (RFC 791 §3.1): end of list, no-operation, and the two source routes.
    pub(crate) const OPT_END: u8 = 0;
    pub(crate) const OPT_NOP: u8 = 1;
    pub(crate) const OPT_LSRR: u8 = 0x83;
    pub(crate) const OPT_SSRR: u8 = 0x89;
}

/// The big-endian 16-bit field `f` of `b`, whose length was checked.
#[inline(always)]
fn be16(b: &[u8], f: field::Field) -> u16 {
    u16::from_be_bytes([b[f.start], b[f.start + 1]])
}

/// The big-endian 16-bit word at `b[at..at + 2]`; `Truncated` when `b` ends before it.
#[inline]
pub(crate) fn read16(b: &[u8], at: usize) -> Result<u16, DropReason> {
    match b.get(at..at + 2) {
        Some(&[hi, lo]) => Ok(u16::from_be_bytes([hi, lo])),
        _ => Err(DropReason::Truncated),
    }
}

/// Whether the input is trusted to be whole (the packet itself) or may be cut short (a quote).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Parse {
    Strict,
    Lax,
}

/// An IPv4 header, checked once; `payload` is what follows the options, bounded by Total Length and,
/// for a lax parse, by the bytes present.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ipv4<'a> {
    pub(crate) header: &'a [u8],
    pub(crate) payload: &'a [u8],
    pub(crate) tos: u8,
    pub(crate) total_len: u16,
    pub(crate) id: u16,
    pub(crate) df: bool,
    pub(crate) mf: bool,
    /// Fragment offset in 8-byte units.
    pub(crate) offset: u16,
    pub(crate) ttl: u8,
    pub(crate) proto: u8,
    pub(crate) src: Ipv4Addr,
    pub(crate) dst: Ipv4Addr,
}

impl<'a> Ipv4<'a> {
    // Always: returned out of line, the view's packed fields come back through memory and stall
    // store forwarding.
    #[inline(always)]
    pub(crate) fn parse(data: &'a [u8], mode: Parse) -> Result<Self, DropReason> {
        let fixed = data.get(..field::IPV4_LEN).ok_or(DropReason::Truncated)?;
        if fixed[field::V4_VER_IHL] >> 4 != 4 {
            return Err(DropReason::Malformed);
        }
        let ihl = usize::from(fixed[field::V4_VER_IHL] & 0x0f) * 4;
        if ihl < field::IPV4_LEN {
            return Err(DropReason::Malformed);
        }
        let header = data.get(..ihl).ok_or(DropReason::Truncated)?;
        let total_len = be16(fixed, field::V4_LENGTH);
        let total = usize::from(total_len);
        if total < ihl {
            return Err(DropReason::Malformed);
        }
        let end = match mode {
            Parse::Strict => {
                if total > data.len() {
                    return Err(DropReason::Truncated);
                }
                if checksum::fold(checksum::sum(header)) != 0xffff {
                    return Err(DropReason::Ipv4HeaderChecksum);
                }
                total
            }
            Parse::Lax => total.min(data.len()),
        };
        let flags = be16(fixed, field::V4_FLG_OFF);
        Ok(Self {
            header,
            payload: &data[ihl..end],
            tos: fixed[field::V4_TOS],
            total_len,
            id: be16(fixed, field::V4_IDENT),
            df: flags & 0x4000 != 0,
            mf: flags & 0x2000 != 0,
            offset: flags & 0x1fff,
            ttl: fixed[field::V4_TTL],
            proto: fixed[field::V4_PROTOCOL],
            src: Ipv4Addr::from(<[u8; 4]>::try_from(&fixed[field::V4_SRC]).unwrap_or_default()),
            dst: Ipv4Addr::from(<[u8; 4]>::try_from(&fixed[field::V4_DST]).unwrap_or_default()),
        })
    }

    #[inline]
    pub(crate) fn is_fragment(&self) -> bool {
        self.mf || self.offset != 0
    }

    /// Payload length by the header (may exceed `payload.len()` in a quote).
    #[inline]
    pub(crate) fn claimed_payload_len(&self) -> u16 {
        self.total_len - self.header.len() as u16
    }

    /// An unexpired loose or strict source route option (RFC 791): its pointer still lies inside it.
    #[inline]
    pub(crate) fn has_unexpired_source_route(&self) -> bool {
        let mut opts = &self.header[field::IPV4_LEN..];
        while let [kind, rest @ ..] = opts {
            match *kind {
                field::OPT_END => return false,
                field::OPT_NOP => opts = rest,
                _ => {
                    let [len, ptr, ..] = rest else { return false };
                    let len = usize::from(*len);
                    if len < 2 || len > opts.len() {
                        return false;
                    }
                    let source_route = matches!(*kind, field::OPT_LSRR | field::OPT_SSRR);
                    if source_route && usize::from(*ptr) <= len {
                        return true;
                    }
                    opts = &opts[len..];
                }
            }
        }
        false
    }
}

/// The IPv6 Fragment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frag {
    /// Offset in 8-byte units.
    pub(crate) offset: u16,
    pub(crate) more: bool,
    pub(crate) id: u32,
}

/// An IPv6 header with its extension headers walked. `payload` is the upper-layer data (for a
/// non-first fragment, the fragment's data), bounded by Payload Length and, when lax, by the bytes
/// present.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ipv6<'a> {
    pub(crate) payload: &'a [u8],
    pub(crate) traffic_class: u8,
    pub(crate) payload_len: u16,
    pub(crate) hop_limit: u8,
    pub(crate) src: Ipv6Addr,
    pub(crate) dst: Ipv6Addr,
    /// The upper-layer protocol (for fragments, the Fragment header's Next Header).
    pub(crate) proto: u8,
    /// Bytes of extension headers (Fragment header included).
    pub(crate) ext_len: usize,
    pub(crate) frag: Option<Frag>,
    /// Offset from the start of the packet of the Segments Left byte of a Routing header with
    /// Segments Left non-zero.
    /// (A u32: past 64 KiB of extension headers it no longer fits 16 bits.)
    pub(crate) segments_left_at: Option<u32>,
    /// An extension header follows the Fragment header.
    pub(crate) ext_after_frag: bool,
}

impl<'a> Ipv6<'a> {
    // Always: returned out of line, the view's packed fields come back through memory and stall
    // store forwarding.
    #[inline(always)]
    pub(crate) fn parse(data: &'a [u8], mode: Parse) -> Result<Self, DropReason> {
        let fixed = data.get(..field::IPV6_LEN).ok_or(DropReason::Truncated)?;
        if fixed[field::V6_VER_TC_FLOW.start] >> 4 != 6 {
            return Err(DropReason::Malformed);
        }
        let payload_len = be16(fixed, field::V6_LENGTH);
        let claimed_end = field::IPV6_LEN + usize::from(payload_len);
        let end = match mode {
            Parse::Strict if claimed_end > data.len() => return Err(DropReason::Truncated),
            Parse::Strict => claimed_end,
            Parse::Lax => claimed_end.min(data.len()),
        };
        let data = &data[..end];
        let mut next = fixed[field::V6_NXT_HDR];
        let mut pos = field::IPV6_LEN;
        let mut frag = None;
        let mut segments_left_at = None;
        let mut ext_after_frag = false;
        loop {
            match next {
                proto::HOP_BY_HOP | proto::ROUTING | proto::DEST_OPTS => {
                    let h = data
                        .get(pos..pos + field::EXT_LEN + 1)
                        .ok_or(DropReason::Truncated)?;
                    let len = (usize::from(h[field::EXT_LEN]) + 1) * field::EXT_UNIT;
                    if pos + len > data.len() {
                        return Err(DropReason::Truncated);
                    }
                    if frag.is_some() {
                        ext_after_frag = true;
                    }
                    let segments_left = pos + field::ROUTING_SEGMENTS_LEFT;
                    if next == proto::ROUTING
                        && data[segments_left] != 0
                        && segments_left_at.is_none()
                    {
                        segments_left_at = Some(segments_left as u32);
                    }
                    next = h[field::EXT_NXT_HDR];
                    pos += len;
                }
                proto::FRAGMENT if frag.is_none() => {
                    let h = data
                        .get(pos..pos + field::FRAG6_LEN)
                        .ok_or(DropReason::Truncated)?;
                    let off = be16(h, field::FRAG_OFFSET_M);
                    let f = Frag {
                        offset: off >> 3,
                        more: off & 1 != 0,
                        id: u32::from_be_bytes(
                            <[u8; 4]>::try_from(&h[field::FRAG_IDENT]).unwrap_or_default(),
                        ),
                    };
                    frag = Some(f);
                    next = h[field::FRAG_NXT_HDR];
                    pos += field::FRAG6_LEN;
                    // The data of a non-first fragment is not a header chain.
                    if f.offset != 0 {
                        break;
                    }
                }
                proto::FRAGMENT => {
                    ext_after_frag = true;
                    break;
                }
                _ => break,
            }
        }
        Ok(Self {
            payload: &data[pos..],
            traffic_class: (fixed[0] << 4) | (fixed[1] >> 4),
            payload_len,
            hop_limit: fixed[field::V6_HOP_LIMIT],
            src: Ipv6Addr::from(<[u8; 16]>::try_from(&fixed[field::V6_SRC]).unwrap_or_default()),
            dst: Ipv6Addr::from(<[u8; 16]>::try_from(&fixed[field::V6_DST]).unwrap_or_default()),
            proto: next,
            ext_len: pos - field::IPV6_LEN,
            frag,
            segments_left_at,
            ext_after_frag,
        })
    }

    #[inline]
    pub(crate) fn is_fragment(&self) -> bool {
        self.frag.is_some_and(|f| f.offset != 0 || f.more)
    }

    /// Upper-layer length by the header (may exceed `payload.len()` in a quote).
    #[inline]
    pub(crate) fn claimed_payload_len(&self) -> usize {
        usize::from(self.payload_len).saturating_sub(self.ext_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4(options: &[u8], payload: &[u8]) -> [u8; 64] {
        let mut p = [0u8; 64];
        let ihl = 20 + options.len();
        p[0] = 0x40 | (ihl / 4) as u8;
        let total = (ihl + payload.len()) as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[8] = 64;
        p[9] = 17;
        p[12..16].copy_from_slice(&[192, 0, 2, 1]);
        p[16..20].copy_from_slice(&[198, 51, 100, 2]);
        p[20..ihl].copy_from_slice(options);
        p[ihl..ihl + payload.len()].copy_from_slice(payload);
        let c = checksum::finish(checksum::sum(&p[..ihl]));
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p
    }

    #[test]
    fn ipv4_strict_and_lax() {
        let p = ipv4(&[], &[1, 2, 3, 4]);
        let h = Ipv4::parse(&p, Parse::Strict).unwrap();
        assert_eq!(h.payload, &[1, 2, 3, 4]);
        assert_eq!(h.ttl, 64);
        assert_eq!(
            Ipv4::parse(&p[..23], Parse::Strict).unwrap_err(),
            DropReason::Truncated
        );
        assert_eq!(
            Ipv4::parse(&p[..23], Parse::Lax).unwrap().payload,
            &[1, 2, 3]
        );
        assert_eq!(
            Ipv4::parse(&p[..19], Parse::Lax).unwrap_err(),
            DropReason::Truncated
        );
        let mut bad = p;
        bad[10] ^= 1;
        assert_eq!(
            Ipv4::parse(&bad, Parse::Strict).unwrap_err(),
            DropReason::Ipv4HeaderChecksum
        );
        assert!(Ipv4::parse(&bad, Parse::Lax).is_ok());
        let mut short_ihl = p;
        short_ihl[0] = 0x44;
        assert_eq!(
            Ipv4::parse(&short_ihl, Parse::Lax).unwrap_err(),
            DropReason::Malformed
        );
    }

    #[test]
    fn source_route_expiry() {
        // LSRR, length 7, pointer 4: one hop still to visit.
        let live = ipv4(&[0x83, 7, 4, 1, 2, 3, 4, 0], &[]);
        assert!(
            Ipv4::parse(&live, Parse::Strict)
                .unwrap()
                .has_unexpired_source_route()
        );
        // Pointer 8 > length 7: expired.
        let done = ipv4(&[0x83, 7, 8, 1, 2, 3, 4, 0], &[]);
        assert!(
            !Ipv4::parse(&done, Parse::Strict)
                .unwrap()
                .has_unexpired_source_route()
        );
        // SSRR behind a NOP; record route (7) is not a source route.
        let strict = ipv4(&[1, 0x89, 7, 4, 1, 2, 3, 4], &[]);
        assert!(
            Ipv4::parse(&strict, Parse::Strict)
                .unwrap()
                .has_unexpired_source_route()
        );
        let rr = ipv4(&[7, 7, 4, 0, 0, 0, 0, 0], &[]);
        assert!(
            !Ipv4::parse(&rr, Parse::Strict)
                .unwrap()
                .has_unexpired_source_route()
        );
    }

    fn ipv6(exts: &[u8], first: u8, payload: &[u8]) -> ([u8; 128], usize) {
        let mut p = [0u8; 128];
        p[0] = 0x60;
        let plen = exts.len() + payload.len();
        p[4..6].copy_from_slice(&(plen as u16).to_be_bytes());
        p[6] = first;
        p[7] = 64;
        p[40..40 + exts.len()].copy_from_slice(exts);
        p[40 + exts.len()..40 + plen].copy_from_slice(payload);
        (p, 40 + plen)
    }

    #[test]
    fn ipv6_walks_extension_headers() {
        // Hop-by-Hop (8) -> Routing (8, segments left 0) -> Fragment -> UDP.
        let exts = [
            43, 0, 1, 4, 0, 0, 0, 0, //
            44, 0, 0, 0, 0, 0, 0, 0, //
            17, 0, 0x00, 0x09, 0, 0, 0x12, 0x34,
        ];
        let (p, n) = ipv6(&exts, 0, &[9, 9]);
        let h = Ipv6::parse(&p[..n], Parse::Strict).unwrap();
        assert_eq!(h.proto, 17);
        assert_eq!(h.ext_len, 24);
        assert_eq!(h.payload, &[9, 9]);
        assert_eq!(
            h.frag,
            Some(Frag {
                offset: 1,
                more: true,
                id: 0x1234
            })
        );
        assert_eq!(h.segments_left_at, None);
        assert!(!h.ext_after_frag);
    }

    #[test]
    fn ipv6_segments_left_and_ext_after_fragment() {
        let exts = [60, 0, 0, 2, 0, 0, 0, 0, 17, 0, 0, 0, 0, 0, 0, 0];
        let (p, n) = ipv6(&exts, 43, &[]);
        assert_eq!(
            Ipv6::parse(&p[..n], Parse::Strict)
                .unwrap()
                .segments_left_at,
            Some(43)
        );
        let exts = [60, 0, 0, 0, 0, 0, 0, 1, 17, 0, 1, 4, 0, 0, 0, 0];
        let (p, n) = ipv6(&exts, 44, &[]);
        assert!(Ipv6::parse(&p[..n], Parse::Strict).unwrap().ext_after_frag);
    }

    #[test]
    fn ipv6_truncation() {
        let (p, n) = ipv6(&[], 17, &[1, 2, 3, 4]);
        assert_eq!(
            Ipv6::parse(&p[..n - 1], Parse::Strict).unwrap_err(),
            DropReason::Truncated
        );
        assert_eq!(
            Ipv6::parse(&p[..n - 1], Parse::Lax).unwrap().payload.len(),
            3
        );
        assert_eq!(
            Ipv6::parse(&p[..39], Parse::Lax).unwrap_err(),
            DropReason::Truncated
        );
        let mut v4 = p;
        v4[0] = 0x40;
        assert_eq!(
            Ipv6::parse(&v4[..n], Parse::Lax).unwrap_err(),
            DropReason::Malformed
        );
    }
}
