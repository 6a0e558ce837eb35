//! Packets with right checksums for the stateful translator's property test and fuzz target
//! (which includes this file by path): the addresses they share, and IPv6 and IPv4 packets
//! built around a transport segment.
#![allow(dead_code, unreachable_pub)] // each includer uses a part

use core::net::{Ipv4Addr, Ipv6Addr};

use nat64_xlat::checksum::{add, finish, pseudo4, pseudo6, sum};
use nat64_xlat::{Config, Pool6, Translator};

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const ICMP4: u8 = 1;
pub const ICMP6: u8 = 58;

/// `a` under the Well-Known Prefix, as the IPv6 hosts name IPv4 ones.
pub fn wkp(a: Ipv4Addr) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o[..4].copy_from_slice(&[0, 0x64, 0xff, 0x9b]);
    o[12..].copy_from_slice(&a.octets());
    Ipv6Addr::from(o)
}

/// The Well-Known Prefix, and own addresses so refusals are answered.
pub fn translator() -> Translator<'static> {
    let mut c = Config::new(Some(Pool6::new("64:ff9b::/96".parse().unwrap()).unwrap()));
    c.own_v4 = Some(Ipv4Addr::new(100, 64, 0, 1));
    c.own_v6 = Some("2001:db8:64::1".parse().unwrap());
    Translator::new(c)
}

/// Fills in the checksum of segment `seg` of protocol `proto` (`pseudo`: its pseudo-header sum,
/// unused for ICMPv4); a segment too short to hold one is left as it is.
pub fn fix(seg: &mut [u8], proto: u8, pseudo: u32) {
    let at = match proto {
        TCP => 16,
        UDP => 6,
        _ => 2,
    };
    if seg.len() < at + 2 {
        return;
    }
    seg[at..at + 2].fill(0);
    let acc = if proto == ICMP4 {
        sum(seg)
    } else {
        add(pseudo, sum(seg))
    };
    let mut c = finish(acc);
    if proto == UDP && c == 0 {
        c = 0xffff;
    }
    seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// An IPv6 packet with hop limit `hop` around `l4`, its checksum filled in.
pub fn pkt6(src: Ipv6Addr, dst: Ipv6Addr, proto: u8, hop: u8, mut l4: Vec<u8>) -> Vec<u8> {
    let n = l4.len() as u32;
    fix(&mut l4, proto, pseudo6(src, dst, proto, n));
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    p.extend_from_slice(&[proto, hop]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&l4);
    p
}

/// An IPv4 packet (DF, no options) with TTL `ttl` around `l4`, both checksums filled in.
pub fn pkt4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, ttl: u8, mut l4: Vec<u8>) -> Vec<u8> {
    let n = l4.len() as u32;
    fix(&mut l4, proto, pseudo4(src, dst, proto, n));
    let total = (20 + l4.len()) as u16;
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0x12, 0x34, 0x40, 0, ttl, proto, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let c = finish(sum(&p));
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&l4);
    p
}
