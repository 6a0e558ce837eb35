//! Test-only packet builders and checkers, written from RFC 791 / RFC 8200 / RFC 768 / RFC 793.

use std::vec::Vec;

use core::net::{Ipv4Addr, Ipv6Addr};

use crate::checksum;
use crate::config::Config;
use crate::eam::Eam;
use crate::rfc6052::Pool6;

pub(crate) const V4_HOST: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
pub(crate) const V6_HOST_AS_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 33);
pub(crate) const OWN_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);

pub(crate) fn a6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

pub(crate) static EAMS: [Eam; 2] = [
    eam(
        crate::prefix::v4(1, 0, 0, 0, 24),
        v6p(0x2001, 0xdb8, 3, 120),
    ),
    eam(
        crate::prefix::v4(10, 0, 0, 0, 24),
        v6p(0x2001, 0xdb8, 2, 120),
    ),
];

pub(crate) const fn eam(v4: crate::prefix::Ipv4Prefix, v6: crate::prefix::Ipv6Prefix) -> Eam {
    match Eam::new(v4, v6) {
        Ok(e) => e,
        Err(_) => panic!("bad EAM"),
    }
}

const fn v6p(a: u16, b: u16, c: u16, len: u8) -> crate::prefix::Ipv6Prefix {
    match crate::prefix::Ipv6Prefix::new(Ipv6Addr::new(a, b, c, 0, 0, 0, 0, 0), len) {
        Ok(p) => p,
        Err(_) => panic!("bad prefix"),
    }
}

/// The address plan of the documentation examples: pool6 2001:db8:100::/40, two EAMs, own
/// addresses, an RFC 6791 pool of one address.
pub(crate) fn config() -> Config<'static> {
    let mut c = Config::new(Some(
        Pool6::new("2001:db8:100::/40".parse().unwrap()).unwrap(),
    ));
    c.eam = &EAMS;
    c.own_v4 = Some(OWN_V4);
    c.own_v6 = Some(a6("2001:db8:1c0:2:1::"));
    c.rfc6791_v4 = Some("203.0.113.8/32".parse().unwrap());
    c
}

/// 192.0.2.33 under 2001:db8:100::/40.
pub(crate) fn v6_host() -> Ipv6Addr {
    a6("2001:db8:1c0:2:21::")
}

/// 198.51.100.2 under 2001:db8:100::/40.
pub(crate) fn v4_host_as_v6() -> Ipv6Addr {
    a6("2001:db8:1c6:3364:2::")
}

#[derive(Debug, Clone)]
pub(crate) struct V4 {
    pub(crate) tos: u8,
    pub(crate) id: u16,
    pub(crate) df: bool,
    pub(crate) mf: bool,
    pub(crate) offset: u16,
    pub(crate) ttl: u8,
    pub(crate) proto: u8,
    pub(crate) src: Ipv4Addr,
    pub(crate) dst: Ipv4Addr,
    pub(crate) options: Vec<u8>,
}

impl V4 {
    pub(crate) fn new(proto: u8) -> Self {
        Self {
            tos: 0,
            id: 0x1234,
            df: true,
            mf: false,
            offset: 0,
            ttl: 64,
            proto,
            src: V4_HOST,
            dst: V6_HOST_AS_V4,
            options: Vec::new(),
        }
    }

    /// The packet with `payload`, header checksum set, and the L4 checksum filled in when
    /// `fix_l4` (and the packet is not a non-first fragment).
    pub(crate) fn build(&self, payload: &[u8], fix_l4: bool) -> Vec<u8> {
        let ihl = 20 + self.options.len();
        let mut p = Vec::with_capacity(ihl + payload.len());
        let total = (ihl + payload.len()) as u16;
        p.push(0x40 | (ihl / 4) as u8);
        p.push(self.tos);
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&self.id.to_be_bytes());
        let flags = (u16::from(self.df) << 14) | (u16::from(self.mf) << 13) | self.offset;
        p.extend_from_slice(&flags.to_be_bytes());
        p.push(self.ttl);
        p.push(self.proto);
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(&self.src.octets());
        p.extend_from_slice(&self.dst.octets());
        p.extend_from_slice(&self.options);
        p.extend_from_slice(payload);
        let c = checksum::finish(checksum::sum(&p[..ihl]));
        p[10..12].copy_from_slice(&c.to_be_bytes());
        if fix_l4 && self.offset == 0 {
            let sum4 = checksum::pseudo4(self.src, self.dst, self.proto, payload.len() as u32);
            fix_l4_checksum(&mut p[ihl..], self.proto, sum4);
        }
        p
    }
}

#[derive(Debug, Clone)]
pub(crate) struct V6 {
    pub(crate) traffic_class: u8,
    pub(crate) hop_limit: u8,
    pub(crate) src: Ipv6Addr,
    pub(crate) dst: Ipv6Addr,
    /// Extension headers as (type, bytes); each `bytes` starts with its Next Header byte, which
    /// `build` overwrites.
    pub(crate) exts: Vec<(u8, Vec<u8>)>,
    pub(crate) proto: u8,
}

impl V6 {
    pub(crate) fn new(proto: u8) -> Self {
        Self {
            traffic_class: 0,
            hop_limit: 64,
            src: v6_host(),
            dst: v4_host_as_v6(),
            exts: Vec::new(),
            proto,
        }
    }

    pub(crate) fn build(&self, payload: &[u8], fix_l4: bool) -> Vec<u8> {
        let mut p = Vec::new();
        p.push(0x60 | (self.traffic_class >> 4));
        p.push(self.traffic_class << 4);
        p.extend_from_slice(&[0, 0]);
        let ext_len: usize = self.exts.iter().map(|(_, b)| b.len()).sum();
        p.extend_from_slice(&((ext_len + payload.len()) as u16).to_be_bytes());
        p.push(self.exts.first().map_or(self.proto, |(t, _)| *t));
        p.push(self.hop_limit);
        p.extend_from_slice(&self.src.octets());
        p.extend_from_slice(&self.dst.octets());
        for (i, (_, b)) in self.exts.iter().enumerate() {
            let next = self.exts.get(i + 1).map_or(self.proto, |(t, _)| *t);
            p.push(next);
            p.extend_from_slice(&b[1..]);
        }
        let l4 = p.len();
        p.extend_from_slice(payload);
        let first = !self
            .exts
            .iter()
            .any(|(t, b)| *t == 44 && (b[2] != 0 || b[3] & 0xf8 != 0));
        if fix_l4 && first {
            let sum6 = checksum::pseudo6(self.src, self.dst, self.proto, payload.len() as u32);
            fix_l4_checksum(&mut p[l4..], self.proto, sum6);
        }
        p
    }
}

/// A Fragment header (RFC 8200 §4.5) for [`V6::exts`].
pub(crate) fn frag6(offset: u16, more: bool, id: u32) -> (u8, Vec<u8>) {
    let mut b = std::vec![0, 0];
    b.extend_from_slice(&((offset << 3) | u16::from(more)).to_be_bytes());
    b.extend_from_slice(&id.to_be_bytes());
    (44, b)
}

/// An 8-byte Hop-by-Hop, Destination Options (PadN) or Routing header for [`V6::exts`].
pub(crate) fn ext8(kind: u8, segments_left: u8) -> (u8, Vec<u8>) {
    match kind {
        43 => (43, std::vec![0, 0, 0, segments_left, 0, 0, 0, 0]),
        _ => (kind, std::vec![0, 0, 1, 4, 0, 0, 0, 0]),
    }
}

fn csum_at(proto: u8) -> Option<usize> {
    match proto {
        6 => Some(16),
        17 => Some(6),
        1 | 58 => Some(2),
        _ => None,
    }
}

/// Sets the TCP/UDP/ICMP checksum of `seg`; `pseudo` is the pseudo-header sum (ignored for ICMPv4).
pub(crate) fn fix_l4_checksum(seg: &mut [u8], proto: u8, pseudo: u32) {
    let Some(at) = csum_at(proto) else { return };
    if seg.len() < at + 2 {
        return;
    }
    seg[at..at + 2].fill(0);
    let acc = if proto == 1 {
        checksum::sum(seg)
    } else {
        checksum::add(pseudo, checksum::sum(seg))
    };
    let mut c = checksum::finish(acc);
    if proto == 17 && c == 0 {
        c = 0xffff;
    }
    seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// Checks every checksum of an emitted, unfragmented IPv4 or IPv6 packet: the IPv4 header, and the
/// TCP/UDP/ICMP checksum over the pseudo-header. Returns a description of the first problem.
pub(crate) fn verify(pkt: &[u8]) -> Result<(), &'static str> {
    match pkt.first().map(|b| b >> 4) {
        Some(4) => {
            let ihl = usize::from(pkt[0] & 15) * 4;
            if checksum::fold(checksum::sum(&pkt[..ihl])) != 0xffff {
                return Err("IPv4 header checksum");
            }
            if usize::from(u16::from_be_bytes([pkt[2], pkt[3]])) != pkt.len() {
                return Err("IPv4 total length");
            }
            let proto = pkt[9];
            let frag = u16::from_be_bytes([pkt[6], pkt[7]]) & 0x3fff != 0;
            if frag || csum_at(proto).is_none() {
                return Ok(());
            }
            let seg = &pkt[ihl..];
            let src = Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]);
            let dst = Ipv4Addr::new(pkt[16], pkt[17], pkt[18], pkt[19]);
            if proto == 17 && seg[6..8] == [0, 0] {
                return Ok(());
            }
            let acc = if proto == 1 {
                checksum::sum(seg)
            } else {
                checksum::add(
                    checksum::pseudo4(src, dst, proto, seg.len() as u32),
                    checksum::sum(seg),
                )
            };
            if checksum::fold(acc) == 0xffff {
                Ok(())
            } else {
                Err("IPv4 L4 checksum")
            }
        }
        Some(6) => {
            if 40 + usize::from(u16::from_be_bytes([pkt[4], pkt[5]])) != pkt.len() {
                return Err("IPv6 payload length");
            }
            let h = crate::wire::Ipv6::parse(pkt, crate::wire::Parse::Strict)
                .map_err(|_| "IPv6 parse")?;
            if h.is_fragment() || csum_at(h.proto).is_none() {
                return Ok(());
            }
            let acc = checksum::add(
                checksum::pseudo6(h.src, h.dst, h.proto, h.payload.len() as u32),
                checksum::sum(h.payload),
            );
            if checksum::fold(acc) == 0xffff {
                Ok(())
            } else {
                Err("IPv6 L4 checksum")
            }
        }
        _ => Err("not an IP packet"),
    }
}

/// The folded one's complement sum of the transport segment of an unfragmented packet, pseudo-header
/// included (none for ICMPv4): 0xffff when its checksum is right, and otherwise a deficit that an
/// incremental update (RFC 1624) carries over unchanged.
pub(crate) fn l4_sum(pkt: &[u8]) -> u16 {
    if pkt[0] >> 4 == 4 {
        let ihl = usize::from(pkt[0] & 15) * 4;
        let seg = &pkt[ihl..];
        let src = Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]);
        let dst = Ipv4Addr::new(pkt[16], pkt[17], pkt[18], pkt[19]);
        return checksum::fold(if pkt[9] == 1 {
            checksum::sum(seg)
        } else {
            checksum::add(
                checksum::pseudo4(src, dst, pkt[9], seg.len() as u32),
                checksum::sum(seg),
            )
        });
    }
    let h = crate::wire::Ipv6::parse(pkt, crate::wire::Parse::Strict).unwrap();
    checksum::fold(checksum::add(
        checksum::pseudo6(h.src, h.dst, h.proto, h.payload.len() as u32),
        checksum::sum(h.payload),
    ))
}
