//! ICMP echo to the gateway's own addresses, answered in place: operators and their monitoring
//! ping the translator itself, which has no IP stack of its own on the device.

use core::net::{Ipv4Addr, Ipv6Addr};

use nat64_xlat::checksum;

const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

/// What became of a packet addressed to one of our own addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Own {
    /// Not for us: translate it.
    NotOurs,
    /// Rewritten in place into the echo reply.
    Replied,
    /// For us but not an echo request we answer (another protocol, options, a fragment, a
    /// bad checksum): dropped.
    Refused,
}

/// An ICMPv4 echo request to `own` becomes its reply: addresses swapped, type 8 → 0, TTL 64.
pub(crate) fn answer_v4(p: &mut [u8], own: Option<Ipv4Addr>) -> Own {
    let Some(own) = own else { return Own::NotOurs };
    if p.len() < 20 || p[16..20] != own.octets() {
        return Own::NotOurs;
    }
    let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
    let fragment = u16::from_be_bytes([p[6], p[7]]) & 0x3fff != 0;
    if p[0] != 0x45 || p[9] != ICMP || total != p.len() || total < 28 || fragment {
        return Own::Refused;
    }
    if checksum::finish(checksum::sum(&p[..20])) != 0
        || checksum::finish(checksum::sum(&p[20..])) != 0
        || p[20] != 8
        || p[21] != 0
    {
        return Own::Refused;
    }
    // No reply to a group, a broadcast, "this network" or loopback: none can have sent it.
    let src = Ipv4Addr::from(<[u8; 4]>::try_from(&p[12..16]).unwrap_or_default());
    let first = src.octets()[0];
    if src.is_multicast() || src.is_broadcast() || first == 0 || first == 127 {
        return Own::Refused;
    }
    p.copy_within(12..16, 16);
    p[12..16].copy_from_slice(&own.octets());
    p[8] = 64;
    p[10..12].fill(0);
    let c = checksum::finish(checksum::sum(&p[..20]));
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20] = 0;
    p[22..24].fill(0);
    let c = checksum::finish(checksum::sum(&p[20..]));
    p[22..24].copy_from_slice(&c.to_be_bytes());
    Own::Replied
}

/// An ICMPv6 echo request to `own` becomes its reply: addresses swapped, type 128 → 129, hop
/// limit 64. Extension headers are not walked: an echo request behind one is refused.
pub(crate) fn answer_v6(p: &mut [u8], own: Option<Ipv6Addr>) -> Own {
    let Some(own) = own else { return Own::NotOurs };
    if p.len() < 40 || p[24..40] != own.octets() {
        return Own::NotOurs;
    }
    let payload = usize::from(u16::from_be_bytes([p[4], p[5]]));
    if p[6] != ICMPV6 || payload + 40 != p.len() || payload < 8 || p[40] != 128 || p[41] != 0 {
        return Own::Refused;
    }
    let src: [u8; 16] = p[8..24].try_into().unwrap_or_default();
    let src = Ipv6Addr::from(src);
    if src.is_multicast() || src.is_unspecified() || src.is_loopback() {
        return Own::Refused;
    }
    let pseudo = checksum::pseudo6(src, own, ICMPV6, payload as u32);
    if checksum::finish(checksum::add(pseudo, checksum::sum(&p[40..]))) != 0 {
        return Own::Refused;
    }
    p.copy_within(8..24, 24);
    p[8..24].copy_from_slice(&own.octets());
    p[7] = 64;
    p[40] = 129;
    p[42..44].fill(0);
    let pseudo = checksum::pseudo6(own, src, ICMPV6, payload as u32);
    let c = checksum::finish(checksum::add(pseudo, checksum::sum(&p[40..])));
    p[42..44].copy_from_slice(&c.to_be_bytes());
    Own::Replied
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn echo_v6(src: Ipv6Addr, dst: Ipv6Addr, data: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, ICMPV6, 64];
        p[4..6].copy_from_slice(&((8 + data.len()) as u16).to_be_bytes());
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        p.extend_from_slice(&[128, 0, 0, 0, 0x12, 0x34, 0, 1]);
        p.extend_from_slice(data);
        let pseudo = checksum::pseudo6(src, dst, ICMPV6, (8 + data.len()) as u32);
        let c = checksum::finish(checksum::add(pseudo, checksum::sum(&p[40..])));
        p[42..44].copy_from_slice(&c.to_be_bytes());
        p
    }

    pub(crate) fn echo_v4(src: Ipv4Addr, dst: Ipv4Addr, data: &[u8]) -> Vec<u8> {
        let total = (28 + data.len()) as u16;
        let mut p = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, ICMP, 0, 0];
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        let c = checksum::finish(checksum::sum(&p[..20]));
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p.extend_from_slice(&[8, 0, 0, 0, 0x12, 0x34, 0, 1]);
        p.extend_from_slice(data);
        let c = checksum::finish(checksum::sum(&p[20..]));
        p[22..24].copy_from_slice(&c.to_be_bytes());
        p
    }

    const OWN6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x64, 0, 0, 0, 0, 1);
    const HOST6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 6, 0, 0, 0, 0, 0x10);
    const OWN4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const HOST4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);

    #[test]
    fn v6_request_becomes_a_valid_reply() {
        let mut p = echo_v6(HOST6, OWN6, b"abcdefgh");
        assert_eq!(answer_v6(&mut p, Some(OWN6)), Own::Replied);
        assert_eq!(&p[8..24], &OWN6.octets());
        assert_eq!(&p[24..40], &HOST6.octets());
        assert_eq!((p[7], p[40]), (64, 129));
        assert_eq!(&p[44..48], &[0x12, 0x34, 0, 1]);
        let pseudo = checksum::pseudo6(OWN6, HOST6, ICMPV6, 16);
        assert_eq!(
            checksum::finish(checksum::add(pseudo, checksum::sum(&p[40..]))),
            0
        );
    }

    #[test]
    fn v4_request_becomes_a_valid_reply() {
        let mut p = echo_v4(HOST4, OWN4, b"xyz");
        assert_eq!(answer_v4(&mut p, Some(OWN4)), Own::Replied);
        assert_eq!(&p[12..16], &OWN4.octets());
        assert_eq!(&p[16..20], &HOST4.octets());
        assert_eq!((p[8], p[20]), (64, 0));
        assert_eq!(checksum::finish(checksum::sum(&p[..20])), 0);
        assert_eq!(checksum::finish(checksum::sum(&p[20..])), 0);
    }

    #[test]
    fn others_pass_and_bad_requests_are_refused() {
        let mut p = echo_v6(HOST6, OWN6, b"abc");
        assert_eq!(answer_v6(&mut p, None), Own::NotOurs);
        assert_eq!(answer_v6(&mut p, Some(HOST6)), Own::NotOurs);
        p[45] ^= 1; // corrupt the identifier: checksum fails
        assert_eq!(answer_v6(&mut p, Some(OWN6)), Own::Refused);
        let mut p = echo_v4(HOST4, OWN4, b"abc");
        p[30] ^= 1;
        assert_eq!(answer_v4(&mut p, Some(OWN4)), Own::Refused);
        for src in [
            Ipv4Addr::new(0, 0, 0, 0),
            Ipv4Addr::LOCALHOST,
            Ipv4Addr::BROADCAST,
        ] {
            let mut p = echo_v4(src, OWN4, b"abc");
            assert_eq!(answer_v4(&mut p, Some(OWN4)), Own::Refused, "{src}");
        }
        let mut p = echo_v6(Ipv6Addr::LOCALHOST, OWN6, b"abc");
        assert_eq!(answer_v6(&mut p, Some(OWN6)), Own::Refused);
        let mut p = echo_v4(HOST4, OWN4, b"abc");
        p.push(0); // longer than its total length
        assert_eq!(answer_v4(&mut p, Some(OWN4)), Own::Refused);
    }
}
