//! ICMP type/code mapping (RFC 7915 §4.2 and §5.2), the two Parameter Problem pointer tables
//! (figures 3 and 6), and MTU translation with RFC 1191 plateaus.

use crate::wire::MIN_MTU6;
use crate::wire::field::{FRAG6_LEN, IPV4_LEN, IPV6_LEN};

/// ICMPv4 types and codes the translator knows.
pub mod v4 {
    /// Echo Reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination Unreachable.
    pub const DEST_UNREACH: u8 = 3;
    /// Echo Request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time Exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
    /// Parameter Problem.
    pub const PARAM_PROBLEM: u8 = 12;
}

/// ICMPv6 types the translator knows.
pub mod v6 {
    /// Destination Unreachable.
    pub const DEST_UNREACH: u8 = 1;
    /// Packet Too Big.
    pub const PACKET_TOO_BIG: u8 = 2;
    /// Time Exceeded.
    pub const TIME_EXCEEDED: u8 = 3;
    /// Parameter Problem.
    pub const PARAM_PROBLEM: u8 = 4;
    /// Echo Request.
    pub const ECHO_REQUEST: u8 = 128;
    /// Echo Reply.
    pub const ECHO_REPLY: u8 = 129;
}

/// How to fill bytes 4-7 of the translated ICMP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rest {
    /// Echo: identifier and sequence copied.
    Copy,
    /// Unused (apart from the RFC 4884 length, handled separately).
    Unused,
    /// An MTU, translated.
    Mtu,
    /// A Parameter Problem pointer, translated by the table.
    Pointer,
    /// A fixed pointer value (ICMPv4 protocol unreachable → IPv6 Next Header, offset 6).
    FixedPointer(u8),
}

/// A translated ICMP type: the new type, code and the rule for bytes 4-7.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapped {
    /// New type.
    pub ty: u8,
    /// New code.
    pub code: u8,
    /// Rule for bytes 4-7.
    pub rest: Rest,
}

const fn m(ty: u8, code: u8, rest: Rest) -> Option<Mapped> {
    Some(Mapped { ty, code, rest })
}

/// Whether an ICMPv4 type is an error (carries a quoted packet).
pub const fn is_error_v4(ty: u8) -> bool {
    matches!(ty, 3 | 4 | 5 | 11 | 12)
}

/// Whether an ICMPv6 type is an error (types 0-127, RFC 4443 §2.1).
pub const fn is_error_v6(ty: u8) -> bool {
    ty < 128
}

/// RFC 7915 §4.2: ICMPv4 → ICMPv6. `None`: silently drop.
pub const fn map_4to6(ty: u8, code: u8) -> Option<Mapped> {
    match (ty, code) {
        (v4::ECHO_REQUEST, _) => m(v6::ECHO_REQUEST, code, Rest::Copy),
        (v4::ECHO_REPLY, _) => m(v6::ECHO_REPLY, code, Rest::Copy),
        (v4::DEST_UNREACH, 0 | 1 | 5 | 6 | 7 | 8 | 11 | 12) => m(v6::DEST_UNREACH, 0, Rest::Unused),
        (v4::DEST_UNREACH, 2) => m(v6::PARAM_PROBLEM, 1, Rest::FixedPointer(6)),
        (v4::DEST_UNREACH, 3) => m(v6::DEST_UNREACH, 4, Rest::Unused),
        (v4::DEST_UNREACH, 4) => m(v6::PACKET_TOO_BIG, 0, Rest::Mtu),
        (v4::DEST_UNREACH, 9 | 10 | 13 | 15) => m(v6::DEST_UNREACH, 1, Rest::Unused),
        (v4::TIME_EXCEEDED, _) => m(v6::TIME_EXCEEDED, code, Rest::Unused),
        (v4::PARAM_PROBLEM, 0 | 2) => m(v6::PARAM_PROBLEM, 0, Rest::Pointer),
        _ => None,
    }
}

/// RFC 7915 §5.2: ICMPv6 → ICMPv4. `None`: silently drop.
pub const fn map_6to4(ty: u8, code: u8) -> Option<Mapped> {
    match (ty, code) {
        (v6::ECHO_REQUEST, _) => m(v4::ECHO_REQUEST, code, Rest::Copy),
        (v6::ECHO_REPLY, _) => m(v4::ECHO_REPLY, code, Rest::Copy),
        (v6::DEST_UNREACH, 0 | 2 | 3) => m(v4::DEST_UNREACH, 1, Rest::Unused),
        (v6::DEST_UNREACH, 1) => m(v4::DEST_UNREACH, 10, Rest::Unused),
        (v6::DEST_UNREACH, 4) => m(v4::DEST_UNREACH, 3, Rest::Unused),
        (v6::PACKET_TOO_BIG, _) => m(v4::DEST_UNREACH, 4, Rest::Mtu),
        (v6::TIME_EXCEEDED, _) => m(v4::TIME_EXCEEDED, code, Rest::Unused),
        (v6::PARAM_PROBLEM, 0) => m(v4::PARAM_PROBLEM, 0, Rest::Pointer),
        (v6::PARAM_PROBLEM, 1) => m(v4::DEST_UNREACH, 2, Rest::Unused),
        _ => None,
    }
}

/// RFC 7915 figure 3: an IPv4 Parameter Problem pointer as an IPv6 one. `None`: "n/a", drop.
pub const fn pointer_4to6(p: u8) -> Option<u8> {
    match p {
        0 => Some(0),
        1 => Some(1),
        2 | 3 => Some(4),
        8 => Some(7),
        9 => Some(6),
        12..=15 => Some(8),
        16..=19 => Some(24),
        _ => None,
    }
}

/// RFC 7915 figure 6: an IPv6 Parameter Problem pointer as an IPv4 one. `None`: "n/a", drop.
pub const fn pointer_6to4(p: u32) -> Option<u8> {
    match p {
        0 => Some(0),
        1 => Some(1),
        4 | 5 => Some(2),
        6 => Some(9),
        7 => Some(8),
        8..=23 => Some(12),
        24..=39 => Some(16),
        _ => None,
    }
}

/// RFC 1191 §7 plateau table.
const PLATEAUS: [u16; 11] = [
    65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68,
];

/// The largest plateau below `total_len` (the length of the packet that did not fit), or 68.
pub fn plateau_below(total_len: u16) -> u16 {
    PLATEAUS
        .iter()
        .copied()
        .find(|&p| p < total_len)
        .unwrap_or(68)
}

/// How much longer the IPv6 header is than the IPv4 one without options.
const HEADER_GROWTH: u32 = (IPV6_LEN - IPV4_LEN) as u32;

/// RFC 7915 §4.2: Fragmentation Needed → Packet Too Big MTU:
/// `min(MTU + 20, IPv6 next hop MTU, IPv4 next hop MTU + 20)`, never below 1280; an MTU of zero
/// (a pre-RFC 1191 router) is replaced by the plateau below the quoted packet's length.
pub fn mtu_4to6(reported: u16, quoted_total_len: u16, mtu6: u16, mtu4: u16) -> u32 {
    let reported = if reported == 0 {
        plateau_below(quoted_total_len)
    } else {
        reported
    };
    let m = (u32::from(reported) + HEADER_GROWTH)
        .min(u32::from(mtu6))
        .min(u32::from(mtu4) + HEADER_GROWTH);
    m.max(MIN_MTU6 as u32)
}

/// RFC 7915 §5.2: Packet Too Big → Fragmentation Needed MTU:
/// `min(MTU - 20, IPv4 next hop MTU, IPv6 next hop MTU - 20)`, in 16 bits. The RFC asks to take
/// a Fragment header in the packet in error into account: then the headers differ by 28 bytes, not
/// 20. A reported MTU below 1280 is raised to 1280 first: no IPv6 link is narrower (RFC 8200 §5),
/// so such a report is bogus and must not shrink the IPv4 path below 1260 (an MTU of 0 would
/// stall it).
pub fn mtu_6to4(reported: u32, mtu4: u16, mtu6: u16, fragment_header: bool) -> u16 {
    let growth = HEADER_GROWTH + if fragment_header { FRAG6_LEN as u32 } else { 0 };
    let m = reported
        .max(MIN_MTU6 as u32)
        .saturating_sub(growth)
        .min(u32::from(mtu4))
        .min(u32::from(mtu6).saturating_sub(growth));
    m.min(0xffff) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7915 §4.2, every row of the ICMPv4 → ICMPv6 list.
    #[test]
    fn icmpv4_to_icmpv6_every_row() {
        let got = |t, c| map_4to6(t, c).map(|m| (m.ty, m.code, m.rest));
        assert_eq!(got(8, 0), Some((128, 0, Rest::Copy)));
        assert_eq!(got(0, 0), Some((129, 0, Rest::Copy)));
        for code in [0, 1] {
            assert_eq!(got(3, code), Some((1, 0, Rest::Unused)), "3/{code}");
        }
        assert_eq!(got(3, 2), Some((4, 1, Rest::FixedPointer(6))));
        assert_eq!(got(3, 3), Some((1, 4, Rest::Unused)));
        assert_eq!(got(3, 4), Some((2, 0, Rest::Mtu)));
        for code in [5, 6, 7, 8, 11, 12] {
            assert_eq!(got(3, code), Some((1, 0, Rest::Unused)), "3/{code}");
        }
        for code in [9, 10, 13, 15] {
            assert_eq!(got(3, code), Some((1, 1, Rest::Unused)), "3/{code}");
        }
        assert_eq!(got(3, 14), None);
        assert_eq!(got(3, 16), None);
        for code in [0, 1] {
            assert_eq!(got(11, code), Some((3, code, Rest::Unused)));
        }
        assert_eq!(got(12, 0), Some((4, 0, Rest::Pointer)));
        assert_eq!(got(12, 1), None);
        assert_eq!(got(12, 2), Some((4, 0, Rest::Pointer)));
        assert_eq!(got(12, 3), None);
        // Information requests/replies, timestamps, address masks, router messages, source quench,
        // redirect, alternate host address, and unknown types: all dropped.
        for ty in [4, 5, 6, 9, 10, 13, 14, 15, 16, 17, 18, 40, 255] {
            assert_eq!(got(ty, 0), None, "type {ty}");
        }
    }

    // RFC 7915 §5.2, every row of the ICMPv6 → ICMPv4 list.
    #[test]
    fn icmpv6_to_icmpv4_every_row() {
        let got = |t, c| map_6to4(t, c).map(|m| (m.ty, m.code, m.rest));
        assert_eq!(got(128, 0), Some((8, 0, Rest::Copy)));
        assert_eq!(got(129, 0), Some((0, 0, Rest::Copy)));
        assert_eq!(got(1, 0), Some((3, 1, Rest::Unused)));
        assert_eq!(got(1, 1), Some((3, 10, Rest::Unused)));
        assert_eq!(got(1, 2), Some((3, 1, Rest::Unused)));
        assert_eq!(got(1, 3), Some((3, 1, Rest::Unused)));
        assert_eq!(got(1, 4), Some((3, 3, Rest::Unused)));
        for code in [5, 6, 7] {
            assert_eq!(got(1, code), None);
        }
        assert_eq!(got(2, 0), Some((3, 4, Rest::Mtu)));
        assert_eq!(got(3, 0), Some((11, 0, Rest::Unused)));
        assert_eq!(got(3, 1), Some((11, 1, Rest::Unused)));
        assert_eq!(got(4, 0), Some((12, 0, Rest::Pointer)));
        assert_eq!(got(4, 1), Some((3, 2, Rest::Unused)));
        assert_eq!(got(4, 2), None);
        // MLD (130-132), Neighbor Discovery (133-137) and unknown informational types: dropped.
        for ty in [130, 131, 132, 133, 134, 135, 136, 137, 200, 100] {
            assert_eq!(got(ty, 0), None, "type {ty}");
        }
    }

    // RFC 7915 figure 3, complete.
    #[test]
    fn pointer_table_4to6() {
        let want: [(u8, Option<u8>); 21] = [
            (0, Some(0)),
            (1, Some(1)),
            (2, Some(4)),
            (3, Some(4)),
            (4, None),
            (5, None),
            (6, None),
            (7, None),
            (8, Some(7)),
            (9, Some(6)),
            (10, None),
            (11, None),
            (12, Some(8)),
            (13, Some(8)),
            (14, Some(8)),
            (15, Some(8)),
            (16, Some(24)),
            (17, Some(24)),
            (18, Some(24)),
            (19, Some(24)),
            (20, None),
        ];
        for (p, w) in want {
            assert_eq!(pointer_4to6(p), w, "pointer {p}");
        }
        assert_eq!(pointer_4to6(255), None);
    }

    // RFC 7915 figure 6, complete.
    #[test]
    fn pointer_table_6to4() {
        for p in 0..=60u32 {
            let w = match p {
                0 => Some(0),
                1 => Some(1),
                2 | 3 => None,
                4 | 5 => Some(2),
                6 => Some(9),
                7 => Some(8),
                8..=23 => Some(12),
                24..=39 => Some(16),
                _ => None,
            };
            assert_eq!(pointer_6to4(p), w, "pointer {p}");
        }
        assert_eq!(pointer_6to4(u32::MAX), None);
    }

    #[test]
    fn mtu_translation() {
        // Frag Needed 1261 -> 1281; 1260 -> 1280; below 1260 -> floor 1280.
        assert_eq!(mtu_4to6(1261, 1500, 1500, 1500), 1281);
        assert_eq!(mtu_4to6(1260, 1500, 1500, 1500), 1280);
        assert_eq!(mtu_4to6(576, 1500, 1500, 1500), 1280);
        // Bounded by the IPv6 next hop and the IPv4 next hop + 20.
        assert_eq!(mtu_4to6(9000, 9020, 1500, 9000), 1500);
        assert_eq!(mtu_4to6(9000, 9020, 9000, 1400), 1420);
        // MTU 0: RFC 1191 plateau below the quoted length.
        assert_eq!(mtu_4to6(0, 1500, 9000, 9000), 1492 + 20);
        assert_eq!(mtu_4to6(0, 9000, 65535, 65535), 8166 + 20);
        // Packet Too Big 1280 -> 1260; bounded by both links.
        assert_eq!(mtu_6to4(1280, 1500, 1500, false), 1260);
        assert_eq!(mtu_6to4(1280, 1500, 1500, true), 1252);
        assert_eq!(mtu_6to4(9000, 1500, 9000, false), 1500);
        assert_eq!(mtu_6to4(9000, 9000, 1500, false), 1480);
        // Below the IPv6 minimum (0 included): taken as 1280.
        assert_eq!(mtu_6to4(0, 1500, 1500, false), 1260);
        assert_eq!(mtu_6to4(1279, 1500, 1500, true), 1252);
        assert_eq!(mtu_6to4(10, 1000, 1500, false), 1000);
    }

    #[test]
    fn plateaus() {
        assert_eq!(plateau_below(1500), 1492);
        assert_eq!(plateau_below(1492), 1006);
        assert_eq!(plateau_below(65535), 32000);
        assert_eq!(plateau_below(60), 68);
    }
}
